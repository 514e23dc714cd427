"""What the TMF v4 specifications say about each API's items, as data the server checks bodies against.

The tables come from the v4 swagger files in ``shared/tmf/specs`` (and, as API ``tmf656v3``, TMF656's
v3 file, for the v3 path) (copied to ``tests/tmf_specs``,
which only the tests read). ``DEFINITIONS`` holds, for each API, the object definitions its entity
(``Service``, ``Resource``, ``ServiceProblem``) reaches through its members: which members each
requires and each member's type; ``ENUMERATION_TYPES`` the enumerations they reach. TMF639's come
from both its files, the official one and the ``-github-hotfix`` one (which the created items'
answers are validated against), each asking what either asks: the hotfix file requires more (a
``resourceSpecification`` with an href) and the official one has ``activationFeature``, so an
answer passes both. ``ATTRIBUTE_TYPES`` and ``ENUMERATIONS`` are their first level;
``PATCHABLE`` comes from the ``*_Update`` definitions, ``CREATE_REQUIRED`` from the ``*_Create``
ones. ``tests/test_simulator_schemas.py`` derives the tables again from the files and compares, so
an edit here that strays from the specs fails a test.

A member's type is a JSON type (``"string"``, ``"boolean"``, ``"integer"``, ``"number"``),
``"date-time"`` for a string of that format, ``"any"`` for the specs' empty definition ``Any``
(anything, null too), a definition's name (an object of that definition, or a string among an
enumeration's values), ``"X[]"`` for an array of X or ``"X[1+]"`` for one holding at least one X.
Every array in these definitions is an array of objects. Members a definition does not list are
allowed (none of them forbids more), and formats other than date-time (uri) are not checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from .tmf import TmfError, bad_request, instant, too_deep


class Definition(NamedTuple):
    """An object definition: the members it requires, and each member's type."""

    required: frozenset[str]
    members: Mapping[str, str]


def _object(required: str, strings: str, **others: str) -> Definition:
    """A `Definition` from space-separated names: the required members, the string members, then
    the other members with their types (their names are all Python names)."""
    return Definition(frozenset(required.split()), {**dict.fromkeys(strings.split(), "string"), **others})


ENTITIES: dict[str, str] = {"tmf638": "Service", "tmf639": "Resource", "tmf656": "ServiceProblem", "tmf656v3": "ServiceProblem"}

# The typed members a Service and a ServiceRefOrValue share, and a Resource and a ResourceRefOrValue
# (a RefOrValue adds the "@" strings): written once.
_SERVICE_MEMBERS: dict[str, str] = dict(
    endDate="date-time", hasStarted="boolean", isBundle="boolean", isServiceEnabled="boolean",
    isStateful="boolean", startDate="date-time", feature="Feature[]", note="Note[]",
    place="RelatedPlaceRefOrValue[]", relatedEntity="RelatedEntityRefOrValue[]",
    relatedParty="RelatedParty[]", serviceCharacteristic="Characteristic[]",
    serviceOrderItem="RelatedServiceOrderItem[]", serviceRelationship="ServiceRelationship[]",
    serviceSpecification="ServiceSpecificationRef", state="ServiceStateType",
    supportingResource="ResourceRef[]", supportingService="ServiceRefOrValue[]",
)
_RESOURCE_MEMBERS: dict[str, str] = dict(
    endOperatingDate="date-time", startOperatingDate="date-time", activationFeature="Feature[]",
    administrativeState="ResourceAdministrativeStateType", attachment="AttachmentRefOrValue[]",
    note="Note[]", operationalState="ResourceOperationalStateType", place="RelatedPlaceRefOrValue",
    relatedParty="RelatedParty[]", resourceCharacteristic="Characteristic[]",
    resourceRelationship="ResourceRelationship[]", resourceSpecification="ResourceSpecificationRef",
    resourceStatus="ResourceStatusType", usageState="ResourceUsageStateType",
)

DEFINITIONS: dict[str, dict[str, Definition]] = {
    "tmf638": {
        "Service": _object(
            "",
            "id href category description name serviceDate serviceType startMode",
            **_SERVICE_MEMBERS,
        ),
        "ServiceRefOrValue": _object(
            "id",
            "id href category description name serviceDate serviceType startMode @baseType @schemaLocation @type "
            "@referredType",
            **_SERVICE_MEMBERS,
        ),
        "ResourceRef": _object("id", "id href name @baseType @schemaLocation @type @referredType"),
        "ServiceSpecificationRef": _object(
            "id",
            "id href name version @baseType @schemaLocation @type @referredType",
        ),
        "ServiceRelationship": _object(
            "relationshipType service",
            "relationshipType",
            service="ServiceRefOrValue", serviceRelationshipCharacteristic="Characteristic[]",
        ),
        "Characteristic": _object(
            "name value",
            "id name valueType @baseType @schemaLocation @type",
            characteristicRelationship="CharacteristicRelationship[]", value="any",
        ),
        "CharacteristicRelationship": _object("", "id relationshipType"),
        "RelatedServiceOrderItem": _object(
            "itemId serviceOrderId",
            "itemId role serviceOrderHref serviceOrderId @referredType",
            itemAction="OrderItemActionType",
        ),
        "RelatedParty": _object(
            "@referredType id",
            "id href name role @baseType @schemaLocation @type @referredType",
        ),
        "RelatedEntityRefOrValue": _object(
            "role",
            "id href name role @baseType @schemaLocation @type @referredType",
        ),
        "RelatedPlaceRefOrValue": _object(
            "role",
            "id href name role @baseType @schemaLocation @type @referredType",
        ),
        "Note": _object("date author text", "id author text", date="date-time"),
        "Feature": _object(
            "featureCharacteristic name id",
            "id name",
            isBundle="boolean", isEnabled="boolean", constraint="ConstraintRef[]",
            featureCharacteristic="Characteristic[1+]", featureRelationship="FeatureRelationship[]",
        ),
        "FeatureRelationship": _object("name relationshipType", "id name relationshipType", validFor="TimePeriod"),
        "TimePeriod": _object("", "", endDateTime="date-time", startDateTime="date-time"),
        "ConstraintRef": _object("id", "id href name version @baseType @schemaLocation @type @referredType"),
    },
    "tmf639": {
        "Resource": _object(
            "href id",
            "id href category description name resourceVersion @baseType @schemaLocation @type",
            **_RESOURCE_MEMBERS,
        ),
        "ResourceSpecificationRef": _object(
            "id href",
            "id href name version @baseType @schemaLocation @type @referredType",
        ),
        "ResourceRelationship": _object(
            "relationshipType resource",
            "id href relationshipType @baseType @schemaLocation @type",
            resource="ResourceRefOrValue", resourceRelationshipCharacteristic="Characteristic[]",
        ),
        "ResourceRefOrValue": _object(
            "href id",
            "id href category description name resourceVersion @baseType @schemaLocation @type @referredType",
            **_RESOURCE_MEMBERS,
        ),
        "Characteristic": _object(
            "name value",
            "id name valueType @baseType @schemaLocation @type",
            characteristicRelationship="CharacteristicRelationship[]", value="any",
        ),
        "CharacteristicRelationship": _object("", "id href relationshipType @baseType @schemaLocation @type"),
        "RelatedParty": _object(
            "@referredType id",
            "id href name role @baseType @schemaLocation @type @referredType",
        ),
        "RelatedPlaceRefOrValue": _object(
            "role href id",
            "id href name role @baseType @schemaLocation @type @referredType",
        ),
        "Note": _object("", "id href author text @baseType @schemaLocation @type", date="date-time"),
        "AttachmentRefOrValue": _object(
            "",
            "id href attachmentType content description mimeType name url @baseType @schemaLocation @type "
            "@referredType",
            size="Quantity", validFor="TimePeriod",
        ),
        "TimePeriod": _object("", "", endDateTime="date-time", startDateTime="date-time"),
        "Quantity": _object("", "units", amount="number"),
        "Feature": _object(
            "featureCharacteristic name",
            "id name",
            isBundle="boolean", isEnabled="boolean", constraint="ConstraintRef[]",
            featureCharacteristic="Characteristic[1+]", featureRelationship="FeatureRelationship[]",
        ),
        "FeatureRelationship": _object("name relationshipType", "id name relationshipType", validFor="TimePeriod"),
        "ConstraintRef": _object("id", "id href name version @baseType @schemaLocation @type @referredType"),
    },
    "tmf656": {
        "ServiceProblem": _object(
            "",
            "id href category description impactImportanceFactor name originatingSystem problemEscalation reason "
            "statusChangeReason @baseType @schemaLocation @type",
            affectedNumberOfServices="integer", creationDate="date-time", lastUpdate="date-time",
            priority="integer", resolutionDate="date-time", statusChangeDate="date-time",
            affectedLocation="RelatedPlace[]", affectedResource="ResourceRef[]", affectedService="ServiceRef[]",
            characteristic="Characteristic[]", externalIdentifier="ExternalIdentifier[]",
            firstAlert="RelatedEntity", impactPattern="ImpactPattern", note="Note[]",
            originatorParty="RelatedParty", parentProblem="ServiceProblemRef[]", relatedEntity="RelatedEntity[]",
            relatedEvent="EventRef[]", relatedParty="RelatedParty[]", responsibleParty="RelatedParty",
            rootCauseResource="ResourceRef[]", rootCauseService="ServiceRef[]", slaViolation="SLAViolationRef[]",
            status="ServiceProblemStateType", trackingRecord="TrackingRecord[]",
            troubleTicket="TroubleTicketRef[]", underlyingAlarm="ResourceAlarmRef[]",
            underlyingProblem="ServiceProblemRef[]",
        ),
        "ServiceProblemRef": _object("id", "id href name @baseType @schemaLocation @type @referredType"),
        "ResourceAlarmRef": _object(
            "id",
            "id href @baseType @schemaLocation @type @referredType",
            changeRequest="EntityRef",
        ),
        "EntityRef": _object("id", "id href name @baseType @schemaLocation @type @referredType"),
        "TroubleTicketRef": _object("id", "id href name @baseType @schemaLocation @type @referredType"),
        "TrackingRecord": _object(
            "",
            "id description systemId user @baseType @schemaLocation @type",
            time="date-time", characteristic="Characteristic[]",
        ),
        "Characteristic": _object(
            "name value",
            "id name valueType @baseType @schemaLocation @type",
            characteristicRelationship="CharacteristicRelationship[]", value="any",
        ),
        "CharacteristicRelationship": _object("", "id href relationshipType @baseType @schemaLocation @type"),
        "SLAViolationRef": _object("id", "id href name @baseType @schemaLocation @type @referredType"),
        "ServiceRef": _object("id", "id href name @baseType @schemaLocation @type @referredType"),
        "ResourceRef": _object("id", "id href name @baseType @schemaLocation @type @referredType"),
        "RelatedParty": _object(
            "@referredType id",
            "id href name role @baseType @schemaLocation @type @referredType",
        ),
        "EventRef": _object(
            "id",
            "id href name @baseType @schemaLocation @type @referredType",
            eventTime="date-time",
        ),
        "RelatedEntity": _object(
            "@referredType id role",
            "id href name role @baseType @schemaLocation @type @referredType",
        ),
        "Note": _object("", "id author text @baseType @schemaLocation @type", date="date-time"),
        "ImpactPattern": _object(
            "",
            "id href description @baseType @schemaLocation @type",
            characteristic="Characteristic[]",
        ),
        "ExternalIdentifier": _object("id", "id href externalIdentifierType owner @baseType @schemaLocation @type"),
        "RelatedPlace": _object("", "id href name role @baseType @schemaLocation @type @referredType"),
    },
    # TMF656 v3 (TMF656_ServiceProblemManagement_v3.0.0.swagger.json), served at its own path (`v3`).
    "tmf656v3": {
        "ServiceProblem": _object(
            "",
            "id href category correlationId description impactImportanceFactor originatingSystem problemEscalation "
            "reason status statusChangeReason @baseType @schemaLocation @type",
            affectedNumberOfServices="integer", priority="integer", resolutionDate="date-time",
            statusChangeDate="date-time", timeChanged="date-time", timeRaised="date-time",
            affectedLocation="Place[]", affectedResource="ResourceRef[]", affectedService="ServiceRef[]",
            associatedSLAViolation="SLAViolationRef[]", associatedTroubleTicket="TroubleTicketRef[]", comment="Note[]",
            extensionInfo="Characteristic[]", firstAlert="RelatedEntityRef", impactPatterns="ImpactPattern",
            originatorParty="RelatedParty", parentProblem="ServiceProblemRef[]", relatedEvent="EventRef[]",
            relatedObject="RelatedEntityRef[]", relatedParty="RelatedParty[]", responsibleParty="RelatedParty",
            rootCauseResource="ResourceRef[]", rootCauseService="ServiceRef[]", trackingRecord="TrackingRecord[]",
            underlyingAlarm="ResourceAlarmRef[]", underlyingProblem="ServiceProblemRef[]",
        ),
        "ServiceProblemRef": _object("href id", "id href correlationId @baseType @schemaLocation @type @referredType"),
        "ResourceAlarmRef": _object(
            "href id", "id href @baseType @schemaLocation @type @referredType", changeRequest="ChangeRequestRef"
        ),
        "ChangeRequestRef": _object("href id", "id href @baseType @schemaLocation @type @referredType"),
        "TrackingRecord": _object(
            "",
            "id description systemId user @baseType @schemaLocation @type",
            time="date-time", extensionInfo="Characteristic[]",
        ),
        "Characteristic": _object("name value", "name valueType @baseType @schemaLocation @type", value="any"),
        "ServiceRef": _object("href id", "id href @baseType @schemaLocation @type @referredType"),
        "ResourceRef": _object("href id", "id href name @baseType @schemaLocation @type @referredType"),
        "RelatedParty": _object("", "id href name role @baseType @schemaLocation @type @referredType"),
        "RelatedEntityRef": _object("href id", "id href name @baseType @schemaLocation @type @referredType"),
        "EventRef": _object(
            "href id", "id href eventType @baseType @schemaLocation @type @referredType", eventTime="date-time"
        ),
        "ImpactPattern": _object("", "description @baseType @schemaLocation @type", extensionInfo="Characteristic[]"),
        "Note": _object("", "author system text @baseType @schemaLocation @type", date="date-time"),
        "TroubleTicketRef": _object(
            "href id", "id href correlationId status @baseType @schemaLocation @type @referredType"
        ),
        "SLAViolationRef": _object("href id", "id href @baseType @schemaLocation @type @referredType"),
        "Place": _object("", "id href name role @baseType @schemaLocation @type"),
    },
}  # fmt: skip

ENUMERATION_TYPES: dict[str, dict[str, frozenset[str]]] = {
    "tmf638": {
        "ServiceStateType": frozenset({"feasibilityChecked", "designed", "reserved", "inactive", "active", "terminated"}),
        "OrderItemActionType": frozenset({"add", "modify", "delete", "noChange"}),
    },
    "tmf639": {
        "ResourceAdministrativeStateType": frozenset({"locked", "unlocked", "shutdown"}),
        "ResourceOperationalStateType": frozenset({"enable", "disable"}),
        "ResourceStatusType": frozenset({"standby", "alarm", "available", "reserved", "unknown", "suspended"}),
        "ResourceUsageStateType": frozenset({"idle", "active", "busy"}),
    },
    "tmf656": {
        "ServiceProblemStateType": frozenset({
            "acknowledged", "rejected", "pending", "held", "inProgress", "resolved", "cancelled", "closed",
        }),
    },
    "tmf656v3": {},  # v3's status is a string (its description lists the values; the v4 store checks them)
}  # fmt: skip


def _first_level_type(api: str, member_type: str) -> str:
    if member_type.endswith("]"):
        return "array"
    if member_type in ENUMERATION_TYPES[api]:
        return "string"
    return "object" if member_type in DEFINITIONS[api] else member_type


# The entities' first-level attributes, as JSON types; not id and href, which the server sets (the
# properties of the *_Create and *_Update definitions together, as the tests check).
ATTRIBUTE_TYPES: dict[str, dict[str, str]] = {
    api: {
        name: _first_level_type(api, typed)
        for name, typed in DEFINITIONS[api][entity].members.items()
        if name not in ("id", "href")
    }
    for api, entity in ENTITIES.items()
}

# The first-level enumerated attributes: a value outside them is a mistake, in a filter as in a body.
ENUMERATIONS: dict[str, dict[str, frozenset[str]]] = {
    api: {
        name: ENUMERATION_TYPES[api][typed]
        for name, typed in DEFINITIONS[api][entity].members.items()
        if typed in ENUMERATION_TYPES[api]
    }
    for api, entity in ENTITIES.items()
}

# Attributes served here beyond those definitions: TMF638 items carry "@type" (carriers are
# "element") though Service_Create lists none of the "@" attributes, inventory items the
# lastUpdate that SES adds (v4 has none), and TMF656 answers the v3 time names that older
# clients read.
EXTENSION_TYPES: dict[str, dict[str, str]] = {
    "tmf638": {"@type": "string", "@baseType": "string", "@schemaLocation": "string", "lastUpdate": "date-time"},
    "tmf639": {"lastUpdate": "date-time"},
    "tmf656": {"timeRaised": "date-time", "timeChanged": "date-time"},
    "tmf656v3": {},
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
    # Not correlationId, firstAlert, originatingSystem, timeRaised or trackingRecord (nor id, href).
    "tmf656v3": frozenset({
        "@baseType", "@schemaLocation", "@type", "affectedLocation", "affectedNumberOfServices", "affectedResource",
        "affectedService", "associatedSLAViolation", "associatedTroubleTicket", "category", "comment", "description",
        "extensionInfo", "impactImportanceFactor", "impactPatterns", "originatorParty", "parentProblem", "priority",
        "problemEscalation", "reason", "relatedEvent", "relatedObject", "relatedParty", "resolutionDate",
        "responsibleParty", "rootCauseResource", "rootCauseService", "status", "statusChangeDate", "statusChangeReason",
        "timeChanged", "underlyingAlarm", "underlyingProblem",
    }),
}  # fmt: skip

# The required attributes of the *_Create definitions (TMF639's official file also lists href
# and id, a known bug the hotfix file corrects).
CREATE_REQUIRED: dict[str, tuple[str, ...]] = {
    "tmf638": ("state", "serviceSpecification"),
    "tmf639": ("name",),
    "tmf656": ("category", "priority", "description", "reason", "originatorParty"),
    "tmf656v3": ("category", "priority", "description", "reason", "originatorParty"),
}

# The first-level attributes of what the server answers with (the entity's, id and href among
# them, and the extensions), as JSON types: what a list may filter on and ask `fields` of.
ANSWER_TYPES: dict[str, dict[str, str]] = {
    api: {**{name: _first_level_type(api, typed) for name, typed in DEFINITIONS[api][entity].members.items()}, **EXTENSION_TYPES[api]}
    for api, entity in ENTITIES.items()
}

# What a body may set at the first level (not id and href, which the server sets), and what a whole
# item is: the entity with the extensions served here.
_BODY_TYPES: dict[str, dict[str, str]] = {
    api: {
        **{name: typed for name, typed in DEFINITIONS[api][entity].members.items() if name not in ("id", "href")},
        **EXTENSION_TYPES[api],
    }
    for api, entity in ENTITIES.items()
}
_ITEM_DEFINITIONS: dict[str, Definition] = {
    api: Definition(DEFINITIONS[api][entity].required, {**DEFINITIONS[api][entity].members, **EXTENSION_TYPES[api]})
    for api, entity in ENTITIES.items()
}

_DESCRIPTIONS = {
    "string": "a string",
    "date-time": "a date-time string (RFC 3339, such as 2026-01-31T12:00:00Z)",
    "boolean": "a boolean",
    "integer": "an integer",
    "number": "a number",
    "object": "an object",
    "array": "an array of objects",
}


# The check recurses more often per level than the JSON parser, which refuses deeper bodies the same way.


def check_attribute_types(api: str, body: Mapping[str, Any], *, merge_patch: bool = False) -> None:
    """400 naming, by its path, the first thing in a create's or a merge patch's `body` that the v4
    definitions do not allow.

    Each known attribute is checked down through the definitions it refers to: JSON types,
    date-times, enumerated values, required members, non-empty arrays; the message names where,
    as in ``originatorParty.id is required`` or ``relatedParty[0].id must be a string, not null``.
    A merge patch is checked for what it decides alone: a null removes (a mistake only for a
    required member), an array replaces whole, an object merges, so whether a merged object
    keeps its required members is known only from the result (`check_item`). The first level's
    required attributes and the attributes the specs do not know are left to the caller.
    """
    types = _BODY_TYPES[api]
    try:
        for name, value in body.items():
            expected = types.get(name)
            if expected is None or (value is None and merge_patch):
                continue
            _check(api, value, expected, name, merging=merge_patch)
    except RecursionError:
        raise too_deep() from None


def check_item(api: str, item: Mapping[str, Any]) -> None:
    """400 naming, by its path, the first thing in a whole item (a merge patch's result, before it
    is stored) that the v4 entity definition does not allow; as `check_attribute_types` checks a
    create, with the entity's required members (TMF639: href and id) too, and what a create
    requires, which a patch cannot take away."""
    removed = [name for name in CREATE_REQUIRED[api] if item.get(name) is None]
    if removed:
        raise bad_request(f"{', '.join(removed)} is required and cannot be removed")
    try:
        _check_object(api, item, _ITEM_DEFINITIONS[api], "", merging=False)
    except RecursionError:
        raise too_deep() from None


def _check(api: str, value: Any, expected: str, path: str, *, merging: bool) -> None:
    if expected.endswith("]"):
        element_type, _, bound = expected[:-1].partition("[")
        if not isinstance(value, list) or not all(isinstance(element, dict) for element in value):
            raise _wrong_type(path, "array", value)
        if bound == "1+" and not value:
            raise bad_request(f"{path} must hold at least one element")
        for index, element in enumerate(value):
            _check(api, element, element_type, f"{path}[{index}]", merging=False)  # arrays replace whole
    elif expected in DEFINITIONS[api]:
        if not isinstance(value, dict):
            raise _wrong_type(path, "object", value)
        _check_object(api, value, DEFINITIONS[api][expected], path, merging=merging)
    elif expected in ENUMERATION_TYPES[api]:
        allowed = ENUMERATION_TYPES[api][expected]
        if not isinstance(value, str):
            raise _wrong_type(path, "string", value)
        if value not in allowed:
            raise bad_request(f"{path} {value!r} is not one of {', '.join(sorted(allowed))}")
    elif not _is_of_type(value, expected):
        raise _wrong_type(path, expected, value)


def _check_object(api: str, value: Mapping[str, Any], definition: Definition, path: str, *, merging: bool) -> None:
    """`path` is "" for a whole item; in a merge (`merging`) members absent are the target's to keep."""
    prefix = f"{path}." if path else ""
    for member, member_value in value.items():
        expected = definition.members.get(member)
        if expected is None:
            continue
        if member_value is None and merging:
            if member in definition.required:
                raise bad_request(f"{prefix}{member} is required and cannot be removed")
            continue
        _check(api, member_value, expected, prefix + member, merging=merging)
    if not merging:
        missing = sorted(definition.required - value.keys())
        if missing:
            raise bad_request("; ".join(f"{prefix}{member} is required" for member in missing))


def _wrong_type(path: str, expected: str, value: Any) -> TmfError:
    got = repr(value) if isinstance(value, str) else _json_type(value)  # a string: show which one
    return bad_request(f"{path} must be {_DESCRIPTIONS[expected]}, not {got}")


def _is_of_type(value: Any, expected: str) -> bool:
    if expected == "string":
        return isinstance(value, str)
    if expected == "date-time":
        return instant(value, date_alone=False) is not None  # the swagger "date-time" format: RFC 3339
    if expected == "boolean":
        return isinstance(value, bool)
    if expected == "integer":
        return type(value) is int  # not a bool, which Python counts as an int
    if expected == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected == "any":
        return True
    raise ValueError(f"unknown member type {expected!r}")


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
