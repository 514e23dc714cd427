"""Validation against the official TMF v4 schemas in tests/tmf_specs (swagger 2.0: draft 4)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import jsonschema

SPECS = Path(__file__).parent / "tmf_specs"
TMF638 = "TMF638_ServiceInventory_v4.0.0.swagger.json"
TMF639 = "TMF639_ResourceInventory_v4.0.0.swagger.json"
TMF639_HOTFIX = "TMF639_ResourceInventory_v4.0.0-github-hotfix.swagger.json"
TMF656 = "TMF656_ServiceProblemManagement_v4.0.0.swagger.json"


@cache
def validator(spec_file: str, definition: str) -> jsonschema.Draft4Validator:
    swagger = json.loads((SPECS / spec_file).read_text())
    return jsonschema.Draft4Validator({"$ref": f"#/definitions/{definition}", "definitions": swagger["definitions"]})


def assert_valid(spec_file: str, definition: str, document: object) -> None:
    errors = sorted(validator(spec_file, definition).iter_errors(document), key=lambda e: list(e.path))
    where = document.get("id") if isinstance(document, dict) else None
    assert not errors, f"{where!r} against {definition} of {spec_file}: " + "; ".join(
        f"{list(e.path)}: {e.message}" for e in errors[:5]
    )
