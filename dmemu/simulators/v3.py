"""TMF656 v3 at ``/tmf-api/serviceProblemManagement/v3/serviceProblem``: the same problems, v3 bodies.

Bodies are checked against the v3 definitions (`schema`, API ``tmf656v3``: required attributes,
types down through the nested definitions, and for a patch only what ``ServiceProblem_Update``
lists), then stored as v4 through `problems.ServiceProblems`, which checks the v4 rules as well
(the lifecycle's status values among them: v3's status is free text). Answers are v3.

Names, v3 -> v4 (the v3 spec's attributes that v4 renamed):

    comment -> note, extensionInfo -> characteristic (also inside impactPatterns and
    trackingRecord), associatedTroubleTicket -> troubleTicket, associatedSLAViolation ->
    slaViolation, impactPatterns -> impactPattern, relatedObject -> relatedEntity;
    timeRaised is creationDate and timeChanged is lastUpdate (set by the server);
    correlationId is the ``DataMinerTicketId`` externalIdentifier (`problems.CORRELATION_TYPE`).

What v4 requires and v3 does not is filled in on the way in: a related party's
``@referredType`` ("Party"), a related entity's ``@referredType`` ("Entity") and ``role``
(the attribute's name). What v3 requires and a v4 client may have left out is filled in on the
way out: a reference's ``href``, pointing at the simulator's TMF638 service, TMF639 resource or
v3 service problem, and for other references an ``urn:dmemu:<definition>:<id>``. Attributes v3
does not know (name, externalIdentifier) stay in v3 answers; creationDate and lastUpdate go
(they are timeRaised and timeChanged there).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .problems import CORRELATION_TYPE, correlation_ids
from .schema import CREATE_REQUIRED, DEFINITIONS, PATCHABLE, check_attribute_types
from .tmf import bad_request

API = "tmf656v3"
TOP_LEVEL_RENAMES = {  # v3 name -> v4 name, on the problem itself
    "comment": "note",
    "extensionInfo": "characteristic",
    "associatedTroubleTicket": "troubleTicket",
    "associatedSLAViolation": "slaViolation",
    "impactPatterns": "impactPattern",
    "relatedObject": "relatedEntity",
}
NESTED_RENAMES = {"extensionInfo": "characteristic"}  # inside ImpactPattern and TrackingRecord
_RENAMED_INSIDE = ("impactPatterns", "trackingRecord")  # the v3 attributes whose objects rename members
_V4_FILLS = {  # v4 definition -> members v4 requires that a v3 body may lack, and what they get
    "RelatedParty": {"@referredType": "Party"},
    "RelatedEntity": {"@referredType": "Entity"},
}
_RELATED_ENTITY_ATTRIBUTES = ("firstAlert", "relatedObject")  # v3 names; v4 RelatedEntity wants a role
_PARTY_ATTRIBUTES = ("originatorParty", "responsibleParty", "relatedParty")


def _objects(value: Any) -> list[dict[str, Any]]:
    """The objects of an attribute's value: itself, or an array's elements."""
    if isinstance(value, dict):
        return [value]
    return [element for element in value if isinstance(element, dict)] if isinstance(value, list) else []


def from_v3(body: Any, *, patch: bool = False) -> dict[str, Any]:
    """A v3 create (or merge patch) checked against the v3 definitions, as the v4 store takes it."""
    if not isinstance(body, dict):
        raise bad_request("a service problem is a JSON object" if not patch else "a merge patch is a JSON object")
    if patch:
        forbidden = sorted(body.keys() - PATCHABLE[API])
        if forbidden:
            raise bad_request(f"{', '.join(forbidden)} cannot be patched")
    else:
        missing = [name for name in CREATE_REQUIRED[API] if name not in body]
        if missing:
            raise bad_request(f"missing required attributes: {', '.join(missing)}")
    check_attribute_types(API, body, merge_patch=patch)
    converted: dict[str, Any] = {}
    for name, value in body.items():
        if name in ("timeRaised", "timeChanged") and not patch:
            continue  # the server's to set
        if name == "correlationId":
            converted["externalIdentifier"] = [{"id": value, "externalIdentifierType": CORRELATION_TYPE}]
            continue
        if name in _RENAMED_INSIDE and value is not None:
            value = [_renamed(item, NESTED_RENAMES) for item in value] if isinstance(value, list) else _renamed(value, NESTED_RENAMES)
        if value is not None:
            # A whole reference (one with its id) gets what v4 requires; a partial one merges into the stored one.
            for item in _objects(value):
                if "id" not in item:
                    continue
                if name in _PARTY_ATTRIBUTES:
                    _fill(item, _V4_FILLS["RelatedParty"])
                elif name in _RELATED_ENTITY_ATTRIBUTES:
                    _fill(item, {**_V4_FILLS["RelatedEntity"], "role": name})
        converted[TOP_LEVEL_RENAMES.get(name, name)] = value
    return converted


def to_v3(problem: Mapping[str, Any], urls: Mapping[str, str]) -> dict[str, Any]:
    """A stored (v4) problem as v3 answers it; `urls` gives the collection URL of the references'
    definitions ("ServiceRef", "ResourceRef", "ServiceProblemRef") for the hrefs v3 requires."""
    v4_to_v3 = {v4: v3 for v3, v4 in TOP_LEVEL_RENAMES.items()}
    shown: dict[str, Any] = {}
    for name, value in problem.items():
        if name in ("creationDate", "lastUpdate"):
            continue
        v3_name = v4_to_v3.get(name, name)
        if v3_name in _RENAMED_INSIDE:
            nested = {v4: v3 for v3, v4 in NESTED_RENAMES.items()}
            value = [_renamed(item, nested) for item in value] if isinstance(value, list) else _renamed(value, nested)
        shown[v3_name] = value
    shown["timeRaised"] = problem.get("creationDate", problem.get("timeRaised"))
    shown["timeChanged"] = problem.get("lastUpdate", problem.get("timeChanged"))
    correlation = correlation_ids(dict(problem))
    if correlation and isinstance(correlation[0], str):
        shown["correlationId"] = correlation[0]
    entity = DEFINITIONS[API]["ServiceProblem"]
    for name, typed in entity.members.items():
        definition = typed.split("[", 1)[0]
        if name in shown and definition in DEFINITIONS[API] and "href" in DEFINITIONS[API][definition].required:
            shown[name] = _with_hrefs(shown[name], definition, urls)
    return shown


def _with_hrefs(value: Any, definition: str, urls: Mapping[str, str]) -> Any:
    def fixed(item: Any) -> Any:
        if not isinstance(item, dict) or "href" in item or not isinstance(item.get("id"), str):
            return item
        base = urls.get(definition)
        href = f"{base}/{item['id']}" if base else f"urn:dmemu:{definition}:{item['id']}"
        return {**item, "href": href}

    return [fixed(item) for item in value] if isinstance(value, list) else fixed(value)


def _renamed(item: Any, names: Mapping[str, str]) -> Any:
    if not isinstance(item, dict):
        return item
    return {names.get(name, name): value for name, value in item.items()}


def _fill(item: dict[str, Any], defaults: Mapping[str, str]) -> None:
    for name, value in defaults.items():
        item.setdefault(name, value)


def v3_error(body: Mapping[str, str]) -> dict[str, Any]:
    """A TMF error body as v3 writes it: code and status are integers there."""
    shown: dict[str, Any] = dict(body)
    for name in ("code", "status"):
        if isinstance(shown.get(name), str) and shown[name].isdigit():
            shown[name] = int(shown[name])
    return shown
