"""JSON text as `json.dumps` writes it, with CPython's C encoder made once.

`json.dumps` (and `JSONEncoder.encode`) builds a new C encoder on every call, which costs as
much as encoding a small message: elements exchange many (a flow's lock requests and command
replies, requests between elements) and state files hold many small rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


def json_encoder(*, compact: bool = False, allow_nan: bool = True, sort_keys: bool = False) -> Callable[[Any], str]:
    """An encoder writing exactly what ``json.dumps(value, allow_nan=allow_nan, sort_keys=sort_keys)``
    writes (with ``separators=(",", ":")`` when `compact`), and raising what it raises. It keeps
    no circular-reference bookkeeping: a value containing itself ends in RecursionError, and is
    then encoded the standard way, which tells a circular value (ValueError) from a deep one."""
    item_separator, key_separator = (",", ":") if compact else (", ", ": ")
    plain = json.JSONEncoder(separators=(item_separator, key_separator), allow_nan=allow_nan, sort_keys=sort_keys)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # another Python: the standard way
        return plain.encode
    quote = json.encoder.encode_basestring_ascii
    iterencode = make(None, plain.default, quote, None, key_separator, item_separator, sort_keys, False, allow_nan)

    def encode(value: Any) -> str:
        if isinstance(value, str):
            return quote(value)
        try:
            return "".join(iterencode(value, 0))
        except RecursionError:
            return plain.encode(value)

    return encode


dumps = json_encoder()
"""``json.dumps(value)``, faster."""
