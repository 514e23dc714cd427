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


def definitions(spec_file: str) -> dict:
    return json.loads((SPECS / spec_file).read_text())["definitions"]


def attribute_types(spec_file: str, *names: str) -> dict[str, str]:
    """The first-level attributes of these definitions with their JSON types, as dmemu.simulators.schema
    writes them: "date-time" for that string format, "string" for a $ref to an enumeration, "object"
    for any other $ref, "array" for an array (of $refs to objects, which is checked)."""
    found = definitions(spec_file)

    def type_of(schema: dict) -> str:
        if "$ref" in schema:
            return "string" if found[schema["$ref"].rsplit("/", 1)[1]].get("type") == "string" else "object"
        if schema["type"] == "array":
            assert type_of(schema["items"]) == "object", schema
        if schema["type"] == "string" and schema.get("format") == "date-time":
            return "date-time"
        return schema["type"]

    types: dict[str, str] = {}
    for name in names:
        for attribute, schema in found[name]["properties"].items():
            assert types.setdefault(attribute, type_of(schema)) == type_of(schema), attribute
    return types
