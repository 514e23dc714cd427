"""Validation against the official TMF v4 schemas in tests/tmf_specs (swagger 2.0: draft 4)."""

from __future__ import annotations

import datetime as dt
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

SPECS = Path(__file__).parent / "tmf_specs"
TMF638 = "TMF638_ServiceInventory_v4.0.0.swagger.json"
TMF639 = "TMF639_ResourceInventory_v4.0.0.swagger.json"
TMF639_HOTFIX = "TMF639_ResourceInventory_v4.0.0-github-hotfix.swagger.json"
TMF656 = "TMF656_ServiceProblemManagement_v4.0.0.swagger.json"
TMF656_V3 = "TMF656_ServiceProblemManagement_v3.0.0.swagger.json"  # the v3 path's


# Only date-time is checked, and here rather than by jsonschema's own checker, which checks it only
# when the optional rfc3339-validator happens to be installed. The specs' other formats (uri,
# base64, float) are not promised by the simulators.
FORMATS = jsonschema.FormatChecker(formats=())
_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)T([01]\d|2[0-3]):([0-5]\d):([0-5]\d)(\.\d+)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)", re.IGNORECASE
)


@FORMATS.checks("date-time")
def is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True  # a format says nothing about other types
    match = _RFC3339.fullmatch(value)
    if match is None:
        return False
    try:
        dt.date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:  # a 30 February
        return False
    return True


@cache
def validator(spec_file: str, definition: str) -> jsonschema.Draft4Validator:
    swagger = json.loads((SPECS / spec_file).read_text())
    return jsonschema.Draft4Validator(
        {"$ref": f"#/definitions/{definition}", "definitions": swagger["definitions"]}, format_checker=FORMATS
    )


# The entities a server answers with. Every such answer carries its id and href (TMF's API design
# guidelines; only TMF639's Resource writes them down as required), so an answer without them is
# no entity: TMF638's Service and TMF656's ServiceProblem require nothing, and would accept `{}`
# or an error body. The id may be empty: the simulators serve items with empty ids on purpose.
ENTITIES = ("Service", "Resource", "ServiceProblem")


def entity_errors(definition: str, document: object) -> list[str]:
    """What makes `document` no answer of an entity at all, whatever its schema allows."""
    if definition not in ENTITIES:
        return []
    if not isinstance(document, dict):
        return [f"an entity is a JSON object, not {type(document).__name__}"]
    errors = [] if isinstance(document.get("id"), str) else ["id is missing"]
    href = document.get("href")
    return errors + ([] if isinstance(href, str) and href else ["href is missing"])


def assert_valid(spec_file: str, definition: str, document: object) -> None:
    errors = sorted(validator(spec_file, definition).iter_errors(document), key=lambda e: list(e.path))
    where = document.get("id") if isinstance(document, dict) else None
    found = entity_errors(definition, document) + [f"{list(e.path)}: {e.message}" for e in errors]
    assert not found, f"{where!r} against {definition} of {spec_file}: " + "; ".join(found[:5])


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


# The schema keywords the simulators' nested check understands; any other in a definition the
# entity reaches fails the derivation below, rather than being silently left unchecked.
_MEMBER_KEYWORDS = {"type", "format", "items", "$ref", "minItems", "description", "example", "default"}
_DEFINITION_KEYWORDS = {"type", "properties", "required", "enum", "description"}


def member_type(schema: dict, found: dict) -> str:
    """A member's type as dmemu.simulators.schema.DEFINITIONS writes it: a JSON type, "date-time", "any"
    for the empty definition Any, a definition's name for a $ref to it, "X[]" for an array of X and
    "X[1+]" for one that must hold at least one."""
    assert set(schema) <= _MEMBER_KEYWORDS, schema
    if "$ref" in schema:
        assert set(schema) <= {"$ref", "description"}, schema  # swagger 2.0 ignores a $ref's siblings
        name = schema["$ref"].rsplit("/", 1)[1]
        return "any" if found[name] == {} else name
    if schema["type"] == "array":
        assert schema.get("minItems", 0) in (0, 1), schema
        return member_type(schema["items"], found) + ("[1+]" if schema.get("minItems") else "[]")
    assert "minItems" not in schema and "items" not in schema, schema
    if schema["type"] == "string" and schema.get("format") == "date-time":
        return "date-time"
    assert schema["type"] in ("string", "boolean", "integer", "number"), schema
    return schema["type"]


def nested_definitions(entity: str, *spec_files: str) -> tuple[dict[str, dict[str, Any]], dict[str, set[str]]]:
    """The object definitions `entity` reaches, as {name: {"required": set, "members": {member: type}}},
    and the enumerations it reaches, as {name: values}.

    With several files (the two TMF639 ones) a definition asks what any of them asks: members and
    required members of all, which must agree on each member's type."""
    objects: dict[str, dict[str, Any]] = {}
    enumerations: dict[str, set[str]] = {}
    for spec_file in spec_files:
        found = definitions(spec_file)
        waiting, seen = [entity], set()
        while waiting:
            name = waiting.pop()
            if name in seen:
                continue
            seen.add(name)
            definition = found[name]
            assert set(definition) <= _DEFINITION_KEYWORDS, (name, set(definition))
            if "enum" in definition:
                assert definition["type"] == "string" and "properties" not in definition, name
                assert enumerations.setdefault(name, set(definition["enum"])) == set(definition["enum"]), name
                continue
            assert definition["type"] == "object", name
            merged = objects.setdefault(name, {"required": set(), "members": {}})
            merged["required"] |= set(definition.get("required", ()))
            for member, schema in definition["properties"].items():
                typed = member_type(schema, found)
                assert merged["members"].setdefault(member, typed) == typed, (spec_file, name, member)
                referred = typed.split("[", 1)[0]
                if referred in found:
                    waiting.append(referred)
    return objects, enumerations
