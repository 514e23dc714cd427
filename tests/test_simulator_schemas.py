"""Every answer of the simulators validates against the official TMF v4 schemas."""

from __future__ import annotations

import pytest
import requests
from tmf_schemas import TMF638, TMF639, TMF639_HOTFIX, TMF656, assert_valid, attribute_types, definitions

from dmemu.simulators import schema
from dmemu.simulators.inventory import InventorySpec
from dmemu.simulators.server import Simulators

SPEC = InventorySpec(services=120, carriers=40, resources=200, seed=3, duplicate_ids=2, empty_ids=2)


@pytest.fixture(scope="module")
def sim():
    with Simulators(SPEC, now=lambda: 1_772_000_000.0) as simulators:
        yield simulators


@pytest.fixture(scope="module")
def http():
    with requests.Session() as session:
        session.trust_env = False
        yield session


def test_every_service_and_carrier_validates(sim, http):
    for ses in (False, True):
        services = http.get(sim.url("tmf638", ses=ses)).json()
        assert len(services) == 160 + 4  # with the duplicate and empty-id items
        for service in services:
            assert_valid(TMF638, "Service", service)


def test_every_resource_validates(sim, http):
    for ses in (False, True):
        resources = http.get(sim.url("tmf639", ses=ses)).json()
        assert len(resources) >= 200
        for resource in resources:
            assert_valid(TMF639, "Resource", resource)


def test_retrieved_and_field_selected_items_validate(sim, http):
    first = http.get(sim.url("tmf638"), params={"limit": 1}).json()[0]
    assert_valid(TMF638, "Service", http.get(f"{sim.url('tmf638')}/{first['id']}").json())
    for item in http.get(sim.url("tmf639"), params={"fields": "name,resourceStatus", "limit": 10}).json():
        assert_valid(TMF639, "Resource", item)


def test_created_and_patched_items_validate(sim, http):
    service = http.post(sim.url("tmf638"), json={"state": "designed", "serviceSpecification": {"id": "spec-9", "name": "Spec"}, "name": "S"})
    assert service.status_code == 201
    assert_valid(TMF638, "Service", service.json())
    resource = http.post(sim.url("tmf639"), json={"name": "Modem 9", "@type": "Modem"})
    assert resource.status_code == 201
    assert_valid(TMF639_HOTFIX, "Resource", resource.json())
    patched = http.patch(
        f"{sim.url('tmf639')}/{resource.json()['id']}",
        json={"resourceStatus": "reserved"},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert_valid(TMF639_HOTFIX, "Resource", patched.json())


def test_service_problems_validate_through_their_lifecycle(sim, http):
    body = {
        "category": "network",
        "priority": 1,
        "description": "Carrier down",
        "reason": "loss of signal",
        "originatorParty": {"id": "dm", "name": "DataMiner", "@referredType": "Organization"},
        "affectedService": [{"id": "SVC-0000001"}],
    }
    for ses in (False, True):
        problem = http.post(sim.url("tmf656", ses=ses), json=body).json()
        assert_valid(TMF656, "ServiceProblem", problem)
        for status in ("inProgress", "resolved", "closed"):
            problem = http.patch(
                f"{sim.url('tmf656', ses=ses)}/{problem['id']}", json={"status": status}, headers={"Content-Type": "application/merge-patch+json"}
            ).json()
            assert_valid(TMF656, "ServiceProblem", problem)
    for problem in http.get(sim.url("tmf656")).json():
        assert_valid(TMF656, "ServiceProblem", problem)


def test_error_bodies_validate(sim, http):
    answers = [
        http.get(sim.url("tmf638"), params={"offset": "x"}),
        http.get(f"{sim.url('tmf639')}/missing"),
        http.post(sim.url("tmf656"), json={"priority": "high"}),
    ]
    for answer in answers:
        assert answer.status_code in (400, 404)
        assert_valid(TMF656, "Error", answer.json())


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
    assert set(definitions(spec_file)[entity]["properties"]) <= schema.FILTERABLE[api]


FEATURE = {"name": "turbo", "isEnabled": True, "featureCharacteristic": [{"name": "boost", "value": 2}]}


def test_a_resource_patched_with_a_feature_and_a_date_validates(sim, http):
    resource = http.get(sim.url("tmf639"), params={"limit": 1}).json()[0]
    patched = http.patch(
        f"{sim.url('tmf639', ses=True)}/{resource['id']}",
        json={"activationFeature": [FEATURE], "endOperatingDate": "2027-01-01T00:00:00Z", "description": None},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert patched.status_code == 200, patched.text
    assert_valid(TMF639, "Resource", patched.json())
    listed = http.get(sim.url("tmf639", ses=True), params={"offset": 0, "limit": 5}).json()
    for item in listed:
        assert_valid(TMF639, "Resource", item)
