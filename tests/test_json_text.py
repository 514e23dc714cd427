"""`dmemu.protocol.json_text`: exactly what json.dumps writes, for every variant the engine uses."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from dmemu.protocol.json_text import dumps, json_encoder

VALUES: list[Any] = [
    "é☃ \"quoted\"\n", {"b": [1, 2.5, None, True], "a": {"d": "c"}}, (1, "x"), [], {}, 10**30, -0.0, 1e-7, None, False, "",
]
VARIANTS = [
    ({}, {}),
    ({"compact": True, "allow_nan": False}, {"separators": (",", ":"), "allow_nan": False}),
    ({"sort_keys": True}, {"sort_keys": True}),
]


@pytest.mark.parametrize(("options", "dumps_options"), VARIANTS)
def test_an_encoder_writes_what_json_dumps_writes(options: dict[str, Any], dumps_options: dict[str, Any]) -> None:
    encode = json_encoder(**options)
    for value in VALUES:
        assert encode(value) == json.dumps(value, **dumps_options)


def test_dumps_is_json_dumps() -> None:
    for value in [*VALUES, math.nan, math.inf]:
        assert dumps(value) == json.dumps(value)


def test_what_json_dumps_refuses_is_refused_with_the_same_errors() -> None:
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(ValueError, match="Circular reference"):
        dumps(cyclic)
    with pytest.raises(ValueError, match="Out of range float"):
        json_encoder(allow_nan=False)(math.nan)
    with pytest.raises(TypeError, match="not JSON serializable"):
        dumps({"a": object()})


def test_a_value_nested_too_deep_raises_what_json_dumps_raises() -> None:
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(RecursionError):
        json.dumps(deep)
    with pytest.raises(RecursionError):
        dumps(deep)
