"""Every answer of the simulators validates against the official TMF v4 schemas."""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from tmf_schemas import (
    TMF638,
    TMF639,
    TMF639_HOTFIX,
    TMF656,
    assert_valid,
    attribute_types,
    definitions,
    nested_definitions,
    validator,
)

from dmemu.simulators import schema
from dmemu.simulators.inventory import InventorySpec
from dmemu.simulators.server import Simulators
from dmemu.simulators.tmf import TmfError, merge_patch

SPEC = InventorySpec(services=120, carriers=40, resources=200, seed=3, duplicate_ids=2, empty_ids=2)


@pytest.fixture(scope="module")
def sim():
    """One simulator shared by the tests that only read: their counts hold in any order."""
    with Simulators(SPEC, now=lambda: 1_772_000_000.0) as simulators:
        yield simulators
        written = [f"{r.method} {r.path}" for r in simulators.requests() if r.method != "GET" and r.status < 400]
        assert not written, f"a test wrote to the shared read-only simulator: {written}"


@pytest.fixture
def fresh():
    """A simulator of the test's own: it creates or changes items, which no other test sees."""
    with Simulators(SPEC, now=lambda: 1_772_000_000.0) as simulators:
        yield simulators


@pytest.fixture(scope="module")
def http():
    with requests.Session() as session:
        session.trust_env = False
        yield session


def answered(response: requests.Response, status: int = 200) -> Any:
    """The JSON body of an answer that has the status expected: a 404's error body is no item."""
    assert response.status_code == status, f"{response.request.method} {response.url}: {response.status_code} {response.text[:300]}"
    return response.json()


def test_an_empty_object_or_an_error_body_is_no_valid_entity():
    # TMF638's Service requires nothing: the schema alone would take both.
    error = {"code": "404", "reason": "Not Found", "message": "no service X", "status": "404"}
    for document in ({}, error, [], {"id": "S-1"}, {"id": "S-1", "href": ""}):
        assert validator(TMF638, "Service").is_valid(document) or document == [], document
        with pytest.raises(AssertionError):
            assert_valid(TMF638, "Service", document)
    assert_valid(TMF656, "Error", error)
    assert_valid(TMF638, "Service", {"id": "", "href": "http://x/service/"})  # the dirty data's empty id


def test_every_service_and_carrier_validates(sim, http):
    for ses in (False, True):
        services = answered(http.get(sim.url("tmf638", ses=ses)))
        assert len(services) == 160 + 4  # with the duplicate and empty-id items
        for service in services:
            assert_valid(TMF638, "Service", service)


def test_every_resource_validates(sim, http):
    for ses in (False, True):
        resources = answered(http.get(sim.url("tmf639", ses=ses)))
        assert len(resources) == 200 + 4
        for resource in resources:
            assert_valid(TMF639, "Resource", resource)


def test_retrieved_and_field_selected_items_validate(sim, http):
    first = answered(http.get(sim.url("tmf638"), params={"limit": 1}), 206)[0]
    retrieved = answered(http.get(f"{sim.url('tmf638')}/{first['id']}"))
    assert retrieved == first
    assert_valid(TMF638, "Service", retrieved)
    selected = answered(http.get(sim.url("tmf639"), params={"fields": "name,resourceStatus", "limit": 10}), 206)
    assert len(selected) == 10 and all(set(item) == {"id", "href", "name", "resourceStatus"} for item in selected)
    for item in selected:
        assert_valid(TMF639, "Resource", item)


def _resolved(http, reference: dict[str, Any]) -> dict[str, Any]:
    """The item a reference points at, read with a GET of its href; it must be the item named."""
    target = answered(http.get(reference["href"]))
    assert (target["id"], target["href"]) == (reference["id"], reference["href"])
    assert reference.get("name", target["name"]) == target["name"]  # a relationship's reference carries no name
    return target


def test_every_service_rests_on_services_that_a_get_returns(sim, http):
    # Finding 14: a service names what it rests on (its carrier, for some an earlier service), as
    # supportingService and serviceRelationship; a carrier names the carrier it is paired with.
    services = answered(http.get(sim.url("tmf638")))
    targets: dict[str, dict[str, Any]] = {}
    on_services = 0
    for service in services:
        relationships = service["serviceRelationship"]
        if service["@type"] == "element":
            assert [r["relationshipType"] for r in relationships] == ["isPairedWith"]
            partner = targets.setdefault(relationships[0]["service"]["id"], _resolved(http, relationships[0]["service"]))
            assert partner["@type"] == "element" and partner["id"] != service["id"]
            continue
        supporting = service["supportingService"]
        # the same services, a relationship naming each by id and href only
        assert supporting and [{"id": r["id"], "href": r["href"]} for r in supporting] == [r["service"] for r in relationships]
        assert {r["relationshipType"] for r in relationships} == {"reliesOn"}
        for reference in supporting:
            if reference["id"] not in targets:
                targets[reference["id"]] = _resolved(http, reference)
        kinds = [targets[reference["id"]]["@type"] for reference in supporting]
        assert kinds[0] == "element" and kinds[1:] in ([], ["CustomerFacingService"])
        assert service["id"] not in [reference["id"] for reference in supporting]
        on_services += len(kinds) == 2
    assert 10 < on_services < 60  # about one service in four of the 120 rests on another


def test_the_services_relations_can_be_selected_and_filtered(sim, http):
    url = sim.url("tmf638")
    selected = answered(http.get(url, params={"fields": "serviceRelationship,supportingService", "limit": 20}), 206)
    assert all(set(item) == {"id", "href", "serviceRelationship", "supportingService"} for item in selected)
    for item in selected:
        assert_valid(TMF638, "Service", item)
    carrier = selected[0]["supportingService"][0]["id"]
    relying = answered(http.get(url, params={"serviceRelationship.service.id": carrier}))
    supported = answered(http.get(url, params={"supportingService.id": carrier}))
    # the services resting on it, and the carrier paired with it
    assert supported and [item["id"] for item in relying if item["@type"] != "element"] == [item["id"] for item in supported]
    assert len(relying) == len(supported) + 1
    assert all(carrier in {r["service"]["id"] for r in item["serviceRelationship"]} for item in relying)
    everyone = answered(http.get(url, params={"fields": "serviceRelationship"}))
    assert len(relying) == sum(carrier in {r["service"]["id"] for r in item["serviceRelationship"]} for item in everyone)


def test_created_and_patched_items_validate(fresh, http):
    service = answered(http.post(fresh.url("tmf638"), json={"state": "designed", "serviceSpecification": {"id": "spec-9", "name": "Spec"}, "name": "S"}), 201)
    assert_valid(TMF638, "Service", service)
    resource = answered(http.post(fresh.url("tmf639"), json={"name": "Modem 9", "@type": "Modem"}), 201)
    assert_valid(TMF639_HOTFIX, "Resource", resource)
    patched = answered(http.patch(
        f"{fresh.url('tmf639')}/{resource['id']}",
        json={"resourceStatus": "reserved"},
        headers={"Content-Type": "application/merge-patch+json"},
    ))  # fmt: skip
    assert patched["resourceStatus"] == "reserved"
    assert_valid(TMF639_HOTFIX, "Resource", patched)


def test_service_problems_validate_through_their_lifecycle(fresh, http):
    sim = fresh
    body = {
        "category": "network",
        "priority": 1,
        "description": "Carrier down",
        "reason": "loss of signal",
        "originatorParty": {"id": "dm", "name": "DataMiner", "@referredType": "Organization"},
        "affectedService": [{"id": "SVC-0000001"}],
    }
    for ses in (False, True):
        problem = answered(http.post(sim.url("tmf656", ses=ses), json=body), 201)
        assert_valid(TMF656, "ServiceProblem", problem)
        for status in ("inProgress", "resolved", "closed"):
            problem = answered(http.patch(
                f"{sim.url('tmf656', ses=ses)}/{problem['id']}", json={"status": status}, headers={"Content-Type": "application/merge-patch+json"}
            ))  # fmt: skip
            assert problem["status"] == status
            assert_valid(TMF656, "ServiceProblem", problem)
    problems = answered(http.get(sim.url("tmf656")))
    assert len(problems) == 2
    for problem in problems:
        assert_valid(TMF656, "ServiceProblem", problem)


def test_error_bodies_validate(sim, http):
    answers = [
        (http.get(sim.url("tmf638"), params={"offset": "x"}), 400),
        (http.get(f"{sim.url('tmf639')}/missing"), 404),
        (http.post(sim.url("tmf656"), json={"priority": "high"}), 400),  # refused: nothing written
    ]
    for answer, status in answers:
        body = answered(answer, status)
        assert_valid(TMF656, "Error", body)
        assert body["status"] == str(status)


SPEC_FILES = {
    "tmf638": (TMF638, "Service"),
    "tmf639": (TMF639, "Resource"),
    "tmf656": (TMF656, "ServiceProblem"),
}


@pytest.mark.parametrize("api", ["tmf638", "tmf639", "tmf656"])
def test_the_simulators_tables_are_the_specs(api):
    spec_file, entity = SPEC_FILES[api]
    assert schema.ATTRIBUTE_TYPES[api] == attribute_types(spec_file, f"{entity}_Create", f"{entity}_Update")
    assert schema.PATCHABLE[api] == set(definitions(spec_file)[f"{entity}_Update"]["properties"])
    required = definitions(TMF639_HOTFIX if api == "tmf639" else spec_file)[f"{entity}_Create"]["required"]
    assert schema.CREATE_REQUIRED[api] == tuple(required)
    for name, values in schema.ENUMERATIONS[api].items():
        enumeration = definitions(spec_file)[entity]["properties"][name]["$ref"].rsplit("/", 1)[1]
        assert values == set(definitions(spec_file)[enumeration]["enum"]), name
    assert set(definitions(spec_file)[entity]["properties"]) <= schema.ANSWER_TYPES[api].keys()


NESTED_SPEC_FILES = {"tmf638": (TMF638,), "tmf639": (TMF639, TMF639_HOTFIX), "tmf656": (TMF656,)}


@pytest.mark.parametrize("api", ["tmf638", "tmf639", "tmf656"])
def test_the_nested_definitions_are_the_specs(api):
    entity = schema.ENTITIES[api]
    assert entity == SPEC_FILES[api][1]
    objects, enumerations = nested_definitions(entity, *NESTED_SPEC_FILES[api])
    tables = {name: {"required": set(d.required), "members": dict(d.members)} for name, d in schema.DEFINITIONS[api].items()}
    assert tables == objects
    assert schema.ENUMERATION_TYPES[api] == enumerations
    arrays = [typed for d in schema.DEFINITIONS[api].values() for typed in d.members.values() if typed.endswith("]")]
    assert all(typed.split("[")[0] in objects for typed in arrays)  # the checker describes them as arrays of objects


FEATURE = {"name": "turbo", "isEnabled": True, "featureCharacteristic": [{"name": "boost", "value": 2}]}


def test_a_resource_patched_with_a_feature_and_a_date_validates(fresh, http):
    sim = fresh
    resource = answered(http.get(sim.url("tmf639"), params={"limit": 1}), 206)[0]
    patched = answered(http.patch(
        f"{sim.url('tmf639', ses=True)}/{resource['id']}",
        json={"activationFeature": [FEATURE], "endOperatingDate": "2027-01-01T00:00:00Z", "description": None},
        headers={"Content-Type": "application/merge-patch+json"},
    ))  # fmt: skip
    assert patched["activationFeature"] == [FEATURE] and "description" not in patched
    assert_valid(TMF639, "Resource", patched)
    listed = answered(http.get(sim.url("tmf639", ses=True), params={"offset": 0, "limit": 5}), 206)
    assert listed[0]["id"] == resource["id"] and listed[0]["activationFeature"] == [FEATURE]
    for item in listed:
        assert_valid(TMF639, "Resource", item)


def test_the_schemas_check_date_times():
    service = validator(TMF638, "Service")
    assert service.is_valid({"startDate": "2026-01-31T12:00:00.5+01:00", "note": [{"author": "a", "text": "t", "date": "2026-01-31T12:00:00z"}]})
    for wrong in ("yesterday", "2026-02-30T00:00:00Z", "2026-01-31", "2026-01-31T25:00:00Z", "2026-01-31T12:00:00", "2026-01-31T12:00:00+24:00"):
        assert not service.is_valid({"startDate": wrong}), wrong
        assert not service.is_valid({"note": [{"author": "a", "text": "t", "date": wrong}]}), wrong


# -- nested content -------------------------------------------------------------------------

PROBLEM = {
    "category": "network",
    "priority": 2,
    "description": "Carrier down",
    "reason": "loss of signal",
    "originatorParty": {"id": "dm-1", "name": "DataMiner", "@referredType": "Organization"},
}
SERVICE = {"state": "active", "serviceSpecification": {"id": "spec-1"}}
MERGE = {"Content-Type": "application/merge-patch+json"}
SERVER_SET = ("id", "href", "lastUpdate")
# Valid examples of the definitions generated items do not hold, so that they are exercised too.
NOTE = {"author": "noc", "date": "2026-01-31T12:00:00Z", "text": "checked the uplink"}
TIME_PERIOD = {"startDateTime": "2026-01-01T00:00:00Z", "endDateTime": "2026-12-31T23:59:59.5+01:00"}
FULL_FEATURE = {
    **FEATURE,
    "id": "F-1",  # TMF638's Feature requires an id, TMF639's does not
    "constraint": [{"id": "C-1", "name": "max"}],
    "featureRelationship": [{"name": "base", "relationshipType": "dependency", "validFor": TIME_PERIOD}],
}
NESTED_EXTRAS = {
    "tmf638": {
        "note": [NOTE],
        "feature": [FULL_FEATURE],
        "serviceOrderItem": [{"itemId": "1", "serviceOrderId": "SO-1", "itemAction": "add"}],
        "serviceRelationship": [{"relationshipType": "reliesOn", "service": {"id": "SVC-0000002", "state": "active"}}],
        "relatedEntity": [{"role": "contract", "id": "CTR-1"}],
    },
    "tmf639": {
        "note": [{"text": "checked"}],
        "activationFeature": [FULL_FEATURE],
        "attachment": [{"name": "photo", "size": {"amount": 2.5, "units": "MB"}, "validFor": TIME_PERIOD}],
    },
    "tmf656": {
        "note": [{"text": "seen", "date": "2026-01-31T12:00:00Z"}],
        "trackingRecord": [{"time": "2026-01-31T12:00:00Z", "characteristic": [{"name": "step", "value": None}]}],
        "externalIdentifier": [{"id": "INC0000001", "externalIdentifierType": "incidentNumber"}],
        "impactPattern": {"description": "all carriers", "characteristic": [{"name": "count", "value": 4}]},
        "firstAlert": {"id": "ALM-1", "@referredType": "Alarm", "role": "firstAlert"},
        "underlyingAlarm": [{"id": "ALM-1", "changeRequest": {"id": "CR-1"}}],
        "relatedEvent": [{"id": "EV-1", "eventTime": "2026-01-31T12:00:00Z"}],
        "relatedEntity": [{"id": "E-1", "@referredType": "Contract", "role": "contract"}],
    },
}


@pytest.fixture
def own():
    """A small simulator for one test, whose edits no other test sees."""
    with Simulators(InventorySpec(services=3, carriers=0, resources=3, seed=3), now=lambda: 1_772_000_000.0) as simulators:
        yield simulators


def schema_errors(api: str, item: dict[str, Any]) -> list[Any]:
    """What the official schemas find wrong with `item` as an answer (TMF639: either file)."""
    checks = {"tmf638": [(TMF638, "Service")], "tmf639": [(TMF639, "Resource"), (TMF639_HOTFIX, "Resource")], "tmf656": [(TMF656, "ServiceProblem")]}
    return [error for spec_file, definition in checks[api] for error in validator(spec_file, definition).iter_errors(item)]


def assert_answer_valid(api: str, answer: dict[str, Any]) -> None:
    assert not schema_errors(api, answer), [f"{list(e.path)}: {e.message}" for e in schema_errors(api, answer)]


def error_paths(errors: list[Any]) -> set[str]:
    """The errors' places written as the server writes paths, with a missing member's own path."""
    paths = set()
    for error in errors:
        path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.path).lstrip(".")
        if error.validator == "required":
            missing = [name for name in error.validator_value if name not in error.instance]
            paths.update(f"{path}.{name}".lstrip(".") for name in missing)
        else:
            paths.add(path)
    return paths


def total(sim: Simulators, http: requests.Session, api: str) -> str:
    answer = http.get(sim.url(api), params={"limit": 0})
    answered(answer, 206 if int(answer.headers["X-Total-Count"]) else 200)  # 206: fewer than all
    return answer.headers["X-Total-Count"]


NESTED_CREATE_FAULTS = [
    ("tmf656", {**PROBLEM, "originatorParty": {}}, "originatorParty.id is required"),
    ("tmf656", {**PROBLEM, "originatorParty": {"id": "dm"}}, "originatorParty.@referredType is required"),
    ("tmf656", {**PROBLEM, "affectedService": [{}]}, "affectedService[0].id is required"),
    ("tmf656", {**PROBLEM, "externalIdentifier": [{}]}, "externalIdentifier[0].id is required"),
    ("tmf656", {**PROBLEM, "firstAlert": {"id": "ALM-1", "@referredType": "Alarm"}}, "firstAlert.role is required"),
    ("tmf656", {**PROBLEM, "trackingRecord": [{"time": "noon"}]}, "trackingRecord[0].time must be a date-time string"),
    ("tmf656", {**PROBLEM, "underlyingAlarm": [{"id": "A", "changeRequest": {"id": 7}}]}, "underlyingAlarm[0].changeRequest.id must be a string, not a number"),
    ("tmf638", {"state": "active", "serviceSpecification": {}}, "serviceSpecification.id is required"),
    ("tmf638", {"state": "active", "serviceSpecification": {"id": None}}, "serviceSpecification.id must be a string, not null"),
    ("tmf638", {**SERVICE, "relatedParty": [{"name": "x"}]}, "relatedParty[0].@referredType is required"),
    ("tmf638", {**SERVICE, "note": [{**NOTE, "date": "2026-02-30T00:00:00Z"}]}, "note[0].date must be a date-time string"),
    ("tmf638", {**SERVICE, "serviceOrderItem": [{"itemId": "1", "serviceOrderId": "SO", "itemAction": "explode"}]},
     "serviceOrderItem[0].itemAction 'explode' is not one of add, delete, modify, noChange"),
    ("tmf638", {**SERVICE, "supportingService": [{"id": "S", "supportingService": [{"id": 5}]}]},
     "supportingService[0].supportingService[0].id must be a string, not a number"),
    ("tmf638", {**SERVICE, "supportingService": [{"id": "S", "state": "asleep"}]}, "supportingService[0].state 'asleep' is not one of"),
    ("tmf638", {**SERVICE, "feature": [{**FULL_FEATURE, "featureCharacteristic": []}]}, "feature[0].featureCharacteristic must hold at least one element"),
    ("tmf638", {**SERVICE, "serviceCharacteristic": [{"name": "x"}]}, "serviceCharacteristic[0].value is required"),
    ("tmf639", {"name": "M", "resourceSpecification": {}}, "resourceSpecification.href is required; resourceSpecification.id is required"),
    ("tmf639", {"name": "M", "resourceSpecification": {"id": "RS"}}, "resourceSpecification.href is required"),  # the hotfix file's
    ("tmf639", {"name": "M", "resourceRelationship": [{"relationshipType": "contains"}]}, "resourceRelationship[0].resource is required"),  # the official file's
    ("tmf639", {"name": "M", "attachment": [{"size": {"amount": "2"}}]}, "attachment[0].size.amount must be a number, not '2'"),
    ("tmf639", {"name": "M", "activationFeature": [{"name": "turbo", "isEnabled": True}]}, "activationFeature[0].featureCharacteristic is required"),
    ("tmf639", {"name": "M", "place": {"role": "site", "id": "P", "href": "h", "name": ["x"]}}, "place.name must be a string, not an array"),
]  # fmt: skip


@pytest.mark.parametrize(("api", "body", "message"), NESTED_CREATE_FAULTS)
def test_a_create_with_invalid_nested_content_is_a_400_naming_the_path(fresh, http, api, body, message):
    assert schema_errors(api, {**body, "id": "X", "href": "http://x/X"})  # the answer would not validate
    count = total(fresh, http, api)
    answer = http.post(fresh.url(api), json=body)
    assert answer.status_code == 400 and message in answer.json()["message"], answer.text
    assert_valid(TMF656, "Error", answer.json())
    assert total(fresh, http, api) == count


def patch_target(sim: Simulators, http: requests.Session, api: str) -> str:
    if api == "tmf656":
        return f"{sim.url(api)}/{answered(http.post(sim.url(api), json=PROBLEM), 201)['id']}"
    return f"{sim.url(api)}/{answered(http.get(sim.url(api), params={'limit': 1}), 206)[0]['id']}"


NESTED_PATCH_FAULTS = [
    ("tmf638", {"relatedParty": [{"name": "x"}]}, "relatedParty[0].@referredType is required"),
    ("tmf638", {"serviceSpecification": {"id": None}}, "serviceSpecification.id is required"),  # a null removes
    ("tmf638", {"serviceSpecification": {"version": 3}}, "serviceSpecification.version must be a string, not a number"),
    ("tmf638", {"supportingResource": [{"id": "R", "href": None}]}, "supportingResource[0].href must be a string, not null"),  # an array is not merged
    ("tmf639", {"resourceRelationship": [{"relationshipType": "contains", "resource": {"id": "R"}}]}, "resourceRelationship[0].resource.href is required"),
    ("tmf639", {"place": {"href": None}}, "place.href is required"),
    ("tmf656", {"note": [{"text": "t", "date": "soon"}]}, "note[0].date must be a date-time string"),
    ("tmf656", {"impactPattern": {"characteristic": [{"name": "x"}]}}, "impactPattern.characteristic[0].value is required"),
    ("tmf656", {"originatorParty": {"@referredType": None}}, "originatorParty.@referredType is required"),
]  # fmt: skip


@pytest.mark.parametrize(("api", "changes", "message"), NESTED_PATCH_FAULTS)
def test_a_patch_with_invalid_nested_content_is_a_400_naming_the_path(fresh, http, api, changes, message):
    url = patch_target(fresh, http, api)
    before = answered(http.get(url))
    merged = copy.deepcopy(before)
    merge_patch(merged, changes)
    assert schema_errors(api, merged)  # the answer would not validate
    answer = http.patch(url, json=changes, headers=MERGE)
    assert answer.status_code == 400 and message in answer.json()["message"], answer.text
    assert answered(http.get(url)) == before


# Only the merged item shows these: each patch merges an object without the required members
# into an item that has no such object.
# (TMF638 has none: its one object attribute, serviceSpecification, cannot be removed to begin with.)
MERGED_FAULTS = [
    ("tmf639", {"place": None}, {"place": {"role": "site"}}, "place.href is required; place.id is required"),
    ("tmf656", {}, {"responsibleParty": {"name": "ops"}}, "responsibleParty.@referredType is required; responsibleParty.id is required"),
]  # fmt: skip


@pytest.mark.parametrize(("api", "emptying", "changes", "message"), MERGED_FAULTS)
def test_check_item_finds_what_only_the_merge_makes(own, http, api, emptying, changes, message):
    url = patch_target(own, http, api)
    assert http.patch(url, json=emptying, headers=MERGE).status_code == 200
    item = answered(http.get(url))
    schema.check_attribute_types(api, changes, merge_patch=True)  # the patch alone cannot tell
    merge_patch(item, changes)
    assert schema_errors(api, item)
    with pytest.raises(TmfError, match=message.replace("[", r"\[").replace("]", r"\]")) as refused:
        schema.check_item(api, item)
    assert refused.value.status == 400


@pytest.mark.parametrize(("api", "emptying", "changes", "message"), MERGED_FAULTS)
def test_a_patch_whose_merged_item_is_invalid_is_a_400(own, http, api, emptying, changes, message):
    url = patch_target(own, http, api)
    assert http.patch(url, json=emptying, headers=MERGE).status_code == 200
    before = answered(http.get(url))
    answer = http.patch(url, json=changes, headers=MERGE)
    assert answer.status_code == 400 and message in answer.json()["message"], answer.text
    assert answered(http.get(url)) == before


def reference(item: dict[str, Any]) -> dict[str, Any]:
    return {"id": item["id"], "href": item["href"], "name": item["name"], "@referredType": item["@type"]}


def valid_bodies(sim: Simulators, http: requests.Session, rng: random.Random, count: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """Create bodies made of generated items' nested content, plus the examples of NESTED_EXTRAS."""
    services, resources = answered(http.get(sim.url("tmf638"))), answered(http.get(sim.url("tmf639")))
    for _ in range(count):
        service, resource = rng.choice(services), rng.choice(resources)
        yield "tmf638", {**{k: v for k, v in service.items() if k not in SERVER_SET}, **NESTED_EXTRAS["tmf638"]}
        yield "tmf639", {**{k: v for k, v in resource.items() if k not in SERVER_SET}, **NESTED_EXTRAS["tmf639"]}
        party = rng.choice(service["relatedParty"])
        yield "tmf656", {
            **PROBLEM,
            "originatorParty": party,
            "responsibleParty": rng.choice(resource["relatedParty"]),
            "relatedParty": service["relatedParty"] + resource["relatedParty"],
            "affectedService": [reference(service)] + service.get("supportingService", []),
            "affectedResource": service["supportingResource"],
            "rootCauseResource": [reference(resource)],
            "characteristic": service["serviceCharacteristic"],
            "affectedLocation": service["place"],
            **NESTED_EXTRAS["tmf656"],
        }


def test_valid_nested_content_is_accepted(fresh, http):
    rng = random.Random(5)
    items = {api: answered(http.get(fresh.url(api))) for api in ("tmf638", "tmf639")}
    for api, body in valid_bodies(fresh, http, rng, 15):
        assert_answer_valid(api, {**body, "id": "X", "href": "http://x/X"})
        created = http.post(fresh.url(api), json=body)
        assert created.status_code == 201, created.text
        assert_answer_valid(api, created.json())
        # A patch of another item's nested content: arrays replace, objects merge.
        donor = body if api == "tmf656" else rng.choice(items[api])
        nested = sorted(name for name, value in donor.items() if isinstance(value, (dict, list)) and name in schema.PATCHABLE[api])
        changes = {name: donor[name] for name in rng.sample(nested, k=min(3, len(nested)))}
        target = created.json() if api == "tmf656" else rng.choice(items[api])
        patched = http.patch(f"{fresh.url(api)}/{target['id']}", json=changes, headers=MERGE)
        assert patched.status_code == 200, (changes, patched.text)
        assert_answer_valid(api, patched.json())


def test_check_item_agrees_with_the_schemas_on_every_item_served(fresh, http):
    """check_item, which guards patches, takes what the official schemas take (no valid patch is
    refused for an item's own content) and refuses the same item once the schemas would refuse it."""
    for ses in (False, True):
        answered(http.post(fresh.url("tmf656", ses=ses), json=PROBLEM), 201)  # SES adds external identifiers
    checked = 0
    for api in ("tmf638", "tmf639", "tmf656"):
        for ses in (False, True):
            for item in answered(http.get(fresh.url(api, ses=ses))):
                assert_answer_valid(api, item)
                schema.check_item(api, item)
                # Its first party without the reference type the schemas require of it.
                broken = copy.deepcopy(item)
                party = broken["relatedParty"][0] if broken.get("relatedParty") else broken["originatorParty"]
                del party["@referredType"]
                assert schema_errors(api, broken)
                with pytest.raises(TmfError, match="@referredType is required") as refused:
                    schema.check_item(api, broken)
                assert refused.value.status == 400
                checked += 1
    assert checked == 2 * (164 + 204 + 2)


WRONG_VALUES = [None, 5, 2.5, True, "x", "2026-02-30T00:00:00Z", "2026-01-31T12:00:00Z", {}, [], [{}], [5]]


def nested_places(value: Any) -> Iterator[tuple[dict[str, Any] | list[Any], str | int]]:
    """Every (container, key) below a first-level attribute's value."""
    members = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, member in members:
        yield value, key
        yield from nested_places(member)


def test_the_server_refuses_exactly_the_nested_content_the_schemas_refuse(fresh, http):
    """Random changes deep in valid bodies: a 201 validates, a 400 names a place the schemas find wrong."""
    rng = random.Random(11)
    refused = accepted = 0
    for api, body in valid_bodies(fresh, http, rng, 60):
        body = copy.deepcopy(body)
        places = [place for value in body.values() for place in nested_places(value)]
        container, key = rng.choice(places)
        if isinstance(container, dict) and rng.random() < 0.3:
            del container[key]
        else:
            container[key] = copy.deepcopy(rng.choice(WRONG_VALUES))
        errors = schema_errors(api, {**body, "id": "X", "href": "http://x/X"})
        answer = http.post(fresh.url(api), json=body)
        if answer.status_code == 201:
            accepted += 1
            assert not errors, (body, [e.message for e in errors])
            assert_answer_valid(api, answer.json())
        else:
            refused += 1
            assert answer.status_code == 400 and errors, answer.text
            where = answer.json()["message"].split(" ", 1)[0]
            # An array holding a non-object is named as the array, the schemas name the element.
            assert any(path == where or path.startswith(f"{where}[") for path in error_paths(errors)), (answer.text, error_paths(errors))
    assert refused > 30 and accepted > 30  # both sides were tried


def test_a_body_nested_too_deeply_to_check_is_a_400(fresh, http):
    body = '{"id": "S"}'
    for _ in range(400):  # 800 levels: the JSON parser takes them, the check would overflow
        body = f'{{"id": "S", "supportingService": [{body}]}}'
    body = f'{{"state": "active", "serviceSpecification": {{"id": "s"}}, "supportingService": [{body}]}}'
    answer = http.post(fresh.url("tmf638"), data=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and "too deeply" in answer.json()["message"], answer.text[:300]
