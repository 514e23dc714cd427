"""What the TMF v4 specifications say about each API's attributes, as data the server checks against.

The tables come from the v4 swagger files in ``shared/tmf/specs`` (copied to ``tests/tmf_specs``,
which only the tests read): ``ATTRIBUTE_TYPES`` from the properties of ``Service_Create`` and
``Service_Update`` (TMF638), ``Resource_Create`` and ``Resource_Update`` (TMF639, the official
file rather than the ``-github-hotfix`` one, which dropped ``activationFeature``) and
``ServiceProblem_Create`` and ``ServiceProblem_Update`` (TMF656); ``PATCHABLE`` from the
``*_Update`` definitions alone. ``tests/test_simulator_schemas.py`` derives them again from the
files and compares, so an edit here that strays from the specs fails a test.

Types are JSON types, with ``"date-time"`` for strings of format date-time; a ``$ref`` to an
enumeration is a ``"string"`` (its values are in ``ENUMERATIONS``), any other ``$ref`` an
``"object"``, and every array in these definitions is an array of objects.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from .tmf import bad_request

ATTRIBUTE_TYPES: dict[str, dict[str, str]] = {
    "tmf638": {
        "category": "string", "description": "string", "name": "string", "serviceDate": "string",
        "serviceType": "string", "startMode": "string", "state": "string",
        "endDate": "date-time", "startDate": "date-time",
        "hasStarted": "boolean", "isBundle": "boolean", "isServiceEnabled": "boolean", "isStateful": "boolean",
        "feature": "array", "note": "array", "place": "array", "relatedEntity": "array", "relatedParty": "array",
        "serviceCharacteristic": "array", "serviceOrderItem": "array", "serviceRelationship": "array",
        "supportingResource": "array", "supportingService": "array",
        "serviceSpecification": "object",
    },
    "tmf639": {
        "@baseType": "string", "@schemaLocation": "string", "@type": "string", "administrativeState": "string",
        "category": "string", "description": "string", "name": "string", "operationalState": "string",
        "resourceStatus": "string", "resourceVersion": "string", "usageState": "string",
        "endOperatingDate": "date-time", "startOperatingDate": "date-time",
        "activationFeature": "array", "attachment": "array", "note": "array", "relatedParty": "array",
        "resourceCharacteristic": "array", "resourceRelationship": "array",
        "place": "object", "resourceSpecification": "object",
    },
    "tmf656": {
        "affectedNumberOfServices": "integer", "priority": "integer",
        "@baseType": "string", "@schemaLocation": "string", "@type": "string", "category": "string",
        "description": "string", "impactImportanceFactor": "string", "name": "string", "originatingSystem": "string",
        "problemEscalation": "string", "reason": "string", "status": "string", "statusChangeReason": "string",
        "creationDate": "date-time", "lastUpdate": "date-time", "resolutionDate": "date-time",
        "statusChangeDate": "date-time",
        "affectedLocation": "array", "affectedResource": "array", "affectedService": "array",
        "characteristic": "array", "externalIdentifier": "array", "note": "array", "parentProblem": "array",
        "relatedEntity": "array", "relatedEvent": "array", "relatedParty": "array", "rootCauseResource": "array",
        "rootCauseService": "array", "slaViolation": "array", "trackingRecord": "array", "troubleTicket": "array",
        "underlyingAlarm": "array", "underlyingProblem": "array",
        "firstAlert": "object", "impactPattern": "object", "originatorParty": "object", "responsibleParty": "object",
    },
}  # fmt: skip

# Attributes served here beyond those definitions: TMF638 items carry "@type" (carriers are
# "element") though Service_Create lists none of the "@" attributes, and TMF656 answers carry
# the v3 time names that older clients read.
EXTENSION_TYPES: dict[str, dict[str, str]] = {
    "tmf638": {"@type": "string", "@baseType": "string", "@schemaLocation": "string"},
    "tmf639": {},
    "tmf656": {"timeRaised": "date-time", "timeChanged": "date-time"},
}

PATCHABLE: dict[str, frozenset[str]] = {
    "tmf638": frozenset({
        "category", "description", "endDate", "feature", "hasStarted", "isBundle", "isServiceEnabled", "isStateful",
        "name", "note", "place", "relatedEntity", "relatedParty", "serviceCharacteristic", "serviceOrderItem",
        "serviceRelationship", "serviceSpecification", "serviceType", "startDate", "startMode", "state",
        "supportingResource", "supportingService",
    }),
    "tmf639": frozenset({
        "@baseType", "@schemaLocation", "@type", "activationFeature", "administrativeState", "attachment", "category",
        "description", "endOperatingDate", "name", "note", "operationalState", "place", "relatedParty",
        "resourceCharacteristic", "resourceRelationship", "resourceSpecification", "resourceStatus", "resourceVersion",
        "startOperatingDate", "usageState",
    }),
    # Not firstAlert, id, href, originatingSystem or trackingRecord: ServiceProblem_Update has none of them.
    "tmf656": frozenset({
        "@baseType", "@schemaLocation", "@type", "affectedLocation", "affectedNumberOfServices", "affectedResource",
        "affectedService", "category", "characteristic", "creationDate", "description", "externalIdentifier",
        "impactImportanceFactor", "impactPattern", "lastUpdate", "name", "note", "originatorParty", "parentProblem",
        "priority", "problemEscalation", "reason", "relatedEntity", "relatedEvent", "relatedParty", "resolutionDate",
        "responsibleParty", "rootCauseResource", "rootCauseService", "slaViolation", "status", "statusChangeDate",
        "statusChangeReason", "troubleTicket", "underlyingAlarm", "underlyingProblem",
    }),
}  # fmt: skip

# The required attributes of the *_Create definitions (TMF639's official file also lists href
# and id, a known bug the hotfix file corrects).
CREATE_REQUIRED: dict[str, tuple[str, ...]] = {
    "tmf638": ("state", "serviceSpecification"),
    "tmf639": ("name",),
    "tmf656": ("category", "priority", "description", "reason", "originatorParty"),
}

# The v4 enumerations: a value outside them is a mistake, in a filter as in a body.
ENUMERATIONS: dict[str, dict[str, frozenset[str]]] = {
    "tmf638": {"state": frozenset({"feasibilityChecked", "designed", "reserved", "inactive", "active", "terminated"})},
    "tmf639": {
        "administrativeState": frozenset({"locked", "unlocked", "shutdown"}),
        "operationalState": frozenset({"enable", "disable"}),
        "resourceStatus": frozenset({"standby", "alarm", "available", "reserved", "unknown", "suspended"}),
        "usageState": frozenset({"idle", "active", "busy"}),
    },
    "tmf656": {
        "status": frozenset({"acknowledged", "rejected", "pending", "held", "inProgress", "resolved", "cancelled", "closed"})
    },
}

# First-level attributes a list may filter on: the v4 entity definitions' properties, plus the
# extensions served here ("@type" on services, "lastUpdate" on inventory, the v3 time names).
FILTERABLE: dict[str, frozenset[str]] = {
    "tmf638": frozenset({
        "category", "description", "endDate", "feature", "hasStarted", "href", "id", "isBundle", "isServiceEnabled",
        "isStateful", "name", "note", "place", "relatedEntity", "relatedParty", "serviceCharacteristic", "serviceDate",
        "serviceOrderItem", "serviceRelationship", "serviceSpecification", "serviceType", "startDate", "startMode",
        "state", "supportingResource", "supportingService", "@type", "@baseType", "@schemaLocation", "lastUpdate",
    }),
    "tmf639": frozenset({
        "@baseType", "@schemaLocation", "@type", "activationFeature", "administrativeState", "attachment", "category",
        "description", "endOperatingDate", "href", "id", "name", "note", "operationalState", "place", "relatedParty",
        "resourceCharacteristic", "resourceRelationship", "resourceSpecification", "resourceStatus", "resourceVersion",
        "startOperatingDate", "usageState", "lastUpdate",
    }),
    "tmf656": frozenset({
        "@baseType", "@schemaLocation", "@type", "affectedLocation", "affectedNumberOfServices", "affectedResource",
        "affectedService", "category", "characteristic", "creationDate", "description", "externalIdentifier",
        "firstAlert", "href", "id", "impactImportanceFactor", "impactPattern", "lastUpdate", "name", "note",
        "originatingSystem", "originatorParty", "parentProblem", "priority", "problemEscalation", "reason",
        "relatedEntity", "relatedEvent", "relatedParty", "resolutionDate", "responsibleParty", "rootCauseResource",
        "rootCauseService", "slaViolation", "status", "statusChangeDate", "statusChangeReason", "trackingRecord",
        "troubleTicket", "underlyingAlarm", "underlyingProblem", "timeRaised", "timeChanged",
    }),
}  # fmt: skip

# RFC 3339 date-time, the swagger "date-time" format: a date, a time to the second (a fraction
# allowed) and a zone.
_DATE_TIME = re.compile(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)")
_DESCRIPTIONS = {
    "string": "a string",
    "date-time": "a date-time string (RFC 3339, such as 2026-01-31T12:00:00Z)",
    "boolean": "a boolean",
    "integer": "an integer",
    "object": "an object",
    "array": "an array of objects",
}


def check_attribute_types(api: str, body: Mapping[str, Any], *, merge_patch: bool = False) -> None:
    """400 naming the first known first-level attribute of `body` whose JSON type the v4 spec does not allow.

    In a merge patch a null removes the attribute, so it passes; in a create it is a wrong type.
    Attributes the spec does not know are left to the caller.
    """
    types = {**ATTRIBUTE_TYPES[api], **EXTENSION_TYPES[api]}
    for name, value in body.items():
        expected = types.get(name)
        if expected is None or (value is None and merge_patch):
            continue
        if not _is_of_type(value, expected):
            got = repr(value) if isinstance(value, str) else _json_type(value)  # a string: show which one
            raise bad_request(f"{name} must be {_DESCRIPTIONS[expected]}, not {got}")


def _is_of_type(value: Any, expected: str) -> bool:
    if expected == "string":
        return isinstance(value, str)
    if expected == "date-time":
        return isinstance(value, str) and _is_date_time(value)
    if expected == "boolean":
        return isinstance(value, bool)
    if expected == "integer":
        return type(value) is int  # not a bool, which Python counts as an int
    if expected == "object":
        return isinstance(value, dict)
    if expected == "array":
        return isinstance(value, list) and all(isinstance(element, dict) for element in value)
    raise ValueError(f"unknown attribute type {expected!r}")


def _is_date_time(text: str) -> bool:
    if not _DATE_TIME.fullmatch(text):
        return False
    try:  # the pattern lets through a 31 February or an hour 25
        dt.datetime.fromisoformat(text[:19])
    except ValueError:
        return False
    return True


def _json_type(value: Any) -> str:
    """How JSON names the type of a decoded value (with what an array holds, when that is the fault)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array" if all(isinstance(element, dict) for element in value) else "an array holding non-objects"
    return "an object"
