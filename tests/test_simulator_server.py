"""The simulators over real loopback HTTP: TMF conventions, service problems, auth, faults."""

from __future__ import annotations

import datetime as dt
import json
import math
import queue
import re
import socket
import threading
import time

import pytest
import requests
from simulated_time import FakeTime

from dmemu.simulators import server as server_module
from dmemu.simulators.faults import Fault, RequestRecord
from dmemu.simulators.inventory import RESOURCE_PATH, Collection, InventorySpec
from dmemu.simulators.server import ITEMS_PER_WRITE, SES_PATHS, Simulators

SPEC = InventorySpec(services=95, carriers=20, resources=60, seed=7)


@pytest.fixture
def sim(now):
    with Simulators(SPEC, now=now) as simulators:
        yield simulators


def raw_answer(sim: Simulators, request: bytes, *, end_of_request: bool = False) -> str:
    """The server's answer to bytes sent on a socket of our own, read until the server closes.

    `end_of_request` also closes our side after sending, as a client that stops mid-body does."""
    host, port = sim.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        raw.sendall(request)
        if end_of_request:
            raw.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := raw.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def error_body(response: requests.Response) -> dict:
    body = response.json()
    assert set(body) == {"code", "reason", "message", "status"}
    assert body["status"] == str(response.status_code)
    return body


class TestLists:
    def test_paging_visits_every_item_once_in_a_stable_order(self, sim, http):
        url = sim.url("tmf638")
        seen, offset = [], 0
        while True:
            response = http.get(url, params={"offset": offset, "limit": 40})
            assert response.headers["X-Total-Count"] == "115"
            assert response.headers["X-Result-Count"] == str(len(response.json()))
            page = response.json()
            if not page:
                assert offset >= 115  # past the end: an empty page
                break
            assert response.status_code == 206  # every page is part of the 115
            seen.extend(item["id"] for item in page)
            offset += 40
        assert len(seen) == 115 and len(set(seen)) == 115
        assert http.get(url, params={"offset": 0, "limit": 40}).json()[0]["id"] == seen[0]

    def test_no_limit_is_a_200_with_everything_and_a_trailing_slash_works(self, sim, http):
        response = http.get(sim.url("tmf639") + "/")
        assert response.status_code == 200
        assert len(response.json()) == 60 == int(response.headers["X-Total-Count"])

    def test_a_limit_covering_everything_is_a_200(self, sim, http):
        response = http.get(sim.url("tmf639"), params={"limit": 1000})
        assert response.status_code == 200 and len(response.json()) == 60

    def test_fields_keeps_id_href_and_the_named_attributes(self, sim, http):
        page = http.get(sim.url("tmf638"), params={"fields": "name,state", "limit": 5}).json()
        assert all(set(item) == {"id", "href", "name", "state"} for item in page)
        one = http.get(f"{sim.url('tmf638')}/{page[0]['id']}", params={"fields": "name"}).json()
        assert set(one) == {"id", "href", "name"}

    def test_type_element_gives_the_carriers(self, sim, http):
        carriers = http.get(sim.url("tmf638", ses=True), params={"@type": "element"}).json()
        assert len(carriers) == 20 and all(item["@type"] == "element" for item in carriers)

    def test_filters_equal_dotted_or_and_comparisons(self, sim, http):
        everything = http.get(sim.url("tmf638")).json()
        states = {item["state"] for item in everything}
        some = sorted(states)[:2]
        by_state = http.get(sim.url("tmf638"), params={"state": ",".join(some)}).json()
        assert by_state and {item["state"] for item in by_state} <= set(some)
        assert len(by_state) == sum(item["state"] in some for item in everything)
        customers = http.get(sim.url("tmf638"), params={"relatedParty.role": "customer"}).json()
        assert customers and all(any(p.get("role") == "customer" for p in item.get("relatedParty", [])) for item in customers)
        median = sorted(item["lastUpdate"] for item in everything)[len(everything) // 2]
        counts = {}
        for operator, keeps in (("gt", "__gt__"), ("gte", "__ge__"), ("lt", "__lt__"), ("lte", "__le__")):
            found = http.get(sim.url("tmf638"), params={f"lastUpdate.{operator}": median}).json()
            assert [i["id"] for i in found] == [i["id"] for i in everything if getattr(i["lastUpdate"], keeps)(median)]
            counts[operator] = len(found)
        assert counts["gte"] > counts["gt"] and counts["lte"] > counts["lt"]  # the median itself tells them apart
        assert counts["gte"] + counts["lt"] == counts["gt"] + counts["lte"] == len(everything)
        # Instants, not text: the same moment in another zone, or with a fraction, compares as that moment.
        moment = dt.datetime.strptime(median, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
        in_paris = moment.astimezone(dt.timezone(dt.timedelta(hours=1))).isoformat()
        assert len(http.get(sim.url("tmf638"), params={"lastUpdate.gte": in_paris}).json()) == counts["gte"]
        half_past = (moment + dt.timedelta(milliseconds=500)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert len(http.get(sim.url("tmf638"), params={"lastUpdate.gte": half_past}).json()) == counts["gt"]

    def test_updated_days_ago_and_status(self, http):
        # Right after the inventory's start, with churn: some items changed in the last day.
        start = InventorySpec().start
        now = FakeTime(start + 3 * 86400)
        with Simulators(InventorySpec(services=95, carriers=20, resources=60, seed=7, churn_per_day=0.1), now=now) as sim:
            everything = http.get(sim.url("tmf638")).json()
            for days in (0, 2):
                recent = http.get(sim.url("tmf638", ses=True), params={"updatedDaysAgo": days}).json()
                threshold = dt.datetime.fromtimestamp(now() - (days + 1) * 86400, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                expected = [i["id"] for i in everything if i["lastUpdate"] >= threshold]
                assert recent and sorted(i["id"] for i in recent) == sorted(expected)
            active = http.get(sim.url("tmf638", ses=True), params={"status": 1}).json()
            assert active and all(item["state"] == "active" for item in active)
            assert len(active) == sum(item["state"] == "active" for item in everything)
            resources = http.get(sim.url("tmf639")).json()
            available = http.get(sim.url("tmf639", ses=True), params={"status": 1}).json()
            assert 0 < len(available) < len(resources)
            assert [i["id"] for i in available] == [i["id"] for i in resources if i["resourceStatus"] == "available"]

    @pytest.mark.parametrize(
        ("params", "message"),
        [
            ({"offset": "x"}, "offset='x' is not a whole number"),
            ({"limit": "-1"}, "limit='-1' must not be negative"),
            ({"lastUpdate.gte": "a,b"}, "a comparison takes one value"),
            ({"updatedDaysAgo": "yesterday"}, "updatedDaysAgo='yesterday'"),
            ({"status": "2"}, "status='2'"),
            ({"fields": ","}, "fields: give at least one attribute name"),
            ({"a..b": "1"}, "is not an attribute path"),
            ({"foo": "bar"}, "'foo' is not an attribute of this API"),
            ({"state": "sleeping"}, "state=sleeping: not a state value"),
            ({"state": "active,asleep"}, "state=asleep: not a state value"),
            ({"fields": "name,colour"}, "fields: colour is not an attribute of this API"),
            ({"lastUpdate.gte": "garbage"}, "lastUpdate.gte='garbage' is not a date-time"),
            ({"startDate.lt": "zzz"}, "startDate.lt='zzz' is not a date-time"),
            ({"state.eq": "active"}, "state.eq: state is a string, with no attribute 'eq'"),
            ({"hasStarted": "yes"}, "hasStarted: 'yes' is not true or false"),
            ({"lastUpdate.lt": "2026-01-31T12:00:00"}, "is not a date-time"),  # RFC 3339 wants a zone
            ({"lastUpdate.lt": "2026-W05-1"}, "is not a date-time"),
            ({"hasStarted.gt": "true"}, "hasStarted is a boolean, it cannot be compared"),
            ({"relatedParty.gt": "x"}, "relatedParty is not a plain value, it cannot be compared"),
            ({"updatedDaysAgo": str(10**20)}, "at most 36500 days"),
            ({"status": ["1", "0"]}, "status is given more than once"),
            ({"updatedDaysAgo": ["x", "1"]}, "updatedDaysAgo is given more than once"),
            ({"offset": ["0", "40"]}, "offset is given more than once"),
        ],
    )
    def test_a_malformed_query_is_a_400_with_a_tmf_error(self, sim, http, params, message):
        response = http.get(sim.url("tmf638", ses=True), params=params)
        assert response.status_code == 400
        assert message in error_body(response)["message"]


class TestInventoryItems:
    def test_retrieve_and_unknown_id(self, sim, http):
        first = http.get(sim.url("tmf639"), params={"limit": 1}).json()[0]
        assert http.get(f"{sim.url('tmf639')}/{first['id']}").json() == first
        missing = http.get(f"{sim.url('tmf639')}/nope")
        assert missing.status_code == 404 and "nope" in error_body(missing)["message"]

    def test_create_patch_delete(self, sim, http):
        url = sim.url("tmf638")
        created = http.post(url, json={"name": "New", "state": "active", "serviceSpecification": {"id": "spec-1"}})
        assert created.status_code == 201 and created.headers["Location"] == created.json()["href"]
        item_id = created.json()["id"]
        patched = http.patch(f"{url}/{item_id}", json={"description": "changed"}, headers={"Content-Type": "application/merge-patch+json"})
        assert patched.status_code == 200 and patched.json()["description"] == "changed"
        assert http.get(url, params={"id": item_id}).json()[0]["description"] == "changed"
        assert http.delete(f"{url}/{item_id}").status_code == 204
        assert http.get(f"{url}/{item_id}").status_code == 404
        assert http.get(url).headers["X-Total-Count"] == "115"

    def test_patching_a_generated_item_keeps_its_place(self, sim, http):
        url = sim.url("tmf639")
        ids = [item["id"] for item in http.get(url).json()]
        response = http.patch(f"{url}/{ids[3]}", json={"resourceStatus": "reserved"}, headers={"Content-Type": "application/merge-patch+json"})
        assert response.status_code == 200
        listed = http.get(url).json()
        assert [item["id"] for item in listed] == ids and listed[3]["resourceStatus"] == "reserved"

    @pytest.mark.parametrize(
        ("body", "headers", "status", "message"),
        [
            ({"id": "x"}, {"Content-Type": "application/merge-patch+json"}, 400, "id cannot be patched"),
            ({"lastUpdate": "x"}, {"Content-Type": "application/merge-patch+json"}, 400, "lastUpdate cannot be patched"),
            ({"name": "x"}, {"Content-Type": "application/json"}, 415, "application/merge-patch+json"),
            ({"state": "exploded"}, {"Content-Type": "application/merge-patch+json"}, 400, "state 'exploded' is not one of"),
        ],
    )
    def test_bad_patches(self, sim, http, body, headers, status, message):
        first = http.get(sim.url("tmf638"), params={"limit": 1}).json()[0]
        response = http.patch(f"{sim.url('tmf638')}/{first['id']}", json=body, headers=headers)
        assert response.status_code == status and message in error_body(response)["message"]

    def test_create_needs_the_required_attributes_with_spec_values(self, sim, http):
        response = http.post(sim.url("tmf638"), json={"name": "No state"})
        assert response.status_code == 400
        assert "state, serviceSpecification" in error_body(response)["message"]
        bogus = http.post(sim.url("tmf638"), json={"state": "bogus", "serviceSpecification": {"id": "s"}})
        assert bogus.status_code == 400 and "state 'bogus' is not one of" in error_body(bogus)["message"]
        resource = http.post(sim.url("tmf639"), json={"name": "M", "resourceStatus": "exploded"})
        assert resource.status_code == 400 and "resourceStatus 'exploded'" in error_body(resource)["message"]


PROBLEM = {
    "category": "network",
    "priority": 2,
    "description": "Carrier down",
    "reason": "loss of signal",
    "originatorParty": {"id": "dm-1", "name": "DataMiner", "@referredType": "Organization"},
    "originatingSystem": "dataminer",
}
MERGE = {"Content-Type": "application/merge-patch+json"}


class TestServiceProblems:
    def test_create_stamps_times_and_the_ses_path_adds_an_incident(self, sim, http, now):
        plain = http.post(sim.url("tmf656"), json=PROBLEM)
        assert plain.status_code == 201 and plain.headers["Location"].endswith(plain.json()["id"])
        body = plain.json()
        assert body["status"] == "acknowledged"
        stamp = dt.datetime.fromtimestamp(now(), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert body["creationDate"] == body["lastUpdate"] == body["statusChangeDate"] == body["timeRaised"] == stamp
        assert "externalIdentifier" not in body
        ses = http.post(sim.url("tmf656", ses=True), json=PROBLEM).json()
        incident = next(e for e in ses["externalIdentifier"] if e["externalIdentifierType"] == "incidentNumber")["id"]
        assert incident.startswith("INC") and len(incident) == 10 and incident[3:].isdigit()
        assert any(e["externalIdentifierType"] == "incidentLink" and incident in e["id"] for e in ses["externalIdentifier"])

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"category": None}, "missing required attributes: category"),
            ({"priority": "high"}, "priority must be an integer, not 'high'"),
            ({"priority": 11}, "priority 11 must be an integer from 1"),
            ({"originatorParty": "me"}, "originatorParty must be an object, not 'me'"),
            ({"description": None, "reason": None}, "missing required attributes: description, reason"),
            ({"id": "mine"}, "id are set by the server"),
        ],
    )
    def test_create_validates_the_required_fields(self, sim, http, change, message):
        body = {k: v for k, v in {**PROBLEM, **change}.items() if v is not None}
        response = http.post(sim.url("tmf656"), json=body)
        assert response.status_code == 400 and message in error_body(response)["message"]
        assert len(sim.problems) == 0

    def test_the_lifecycle_is_enforced_and_stamped(self, sim, http, now):
        problem = http.post(sim.url("tmf656"), json=PROBLEM).json()
        url = f"{sim.url('tmf656')}/{problem['id']}"
        for status in ("inProgress", "resolved"):
            now.value += 60
            answer = http.patch(url, json={"status": status}, headers=MERGE)
            assert answer.status_code == 200, answer.text
        resolved = answer.json()
        assert resolved["statusChangeDate"] == resolved["timeChanged"] == resolved["resolutionDate"] == resolved["lastUpdate"]
        assert resolved["timeRaised"] == problem["timeRaised"]
        refused = http.patch(url, json={"status": "acknowledged"}, headers=MERGE)
        assert refused.status_code == 409 and "from 'resolved' to 'acknowledged'" in error_body(refused)["message"]
        unknown = http.patch(url, json={"status": "sleeping"}, headers=MERGE)
        assert unknown.status_code == 400
        forged = http.patch(url, json={"status": "closed", "statusChangeDate": "1999-01-01T00:00:00Z"}, headers=MERGE).json()
        assert forged["statusChangeDate"] == forged["lastUpdate"] != "1999-01-01T00:00:00Z"  # the server stamps
        emptied = http.patch(url, json={"category": None}, headers=MERGE)
        assert emptied.status_code == 400 and "category is required" in error_body(emptied)["message"]
        nested = http.patch(url, json={"impactPattern": {"description": "x", "id": None}}, headers=MERGE).json()
        assert nested["impactPattern"] == {"description": "x"}  # RFC 7386: nulls inside an object patch are removals
        for field in ("id", "href", "originatingSystem", "trackingRecord"):
            response = http.patch(url, json={field: "x"}, headers=MERGE)
            assert response.status_code == 400 and f"{field} cannot be patched" in error_body(response)["message"]
        assert http.delete(url).status_code == 204 and http.get(url).status_code == 404

    @pytest.mark.parametrize(
        ("statuses", "last_allowed"),
        [
            (("resolved",), True),  # the SES connector closes by patching to resolved, from any open state
            (("pending", "resolved"), True),
            (("held", "resolved", "closed"), True),
            (("inProgress", "resolved", "inProgress"), True),  # reopened
            (("closed",), False),  # only a resolved problem closes
            (("resolved", "closed", "inProgress"), False),  # closed, rejected and cancelled are final
            (("rejected", "inProgress"), False),
            (("cancelled", "resolved"), False),
            (("inProgress", "acknowledged"), False),  # acknowledged is where problems begin, never again
        ],
    )
    def test_status_changes_follow_the_lifecycle(self, sim, http, statuses, last_allowed):
        url = f"{sim.url('tmf656')}/{http.post(sim.url('tmf656'), json=PROBLEM).json()['id']}"
        for status in statuses[:-1]:
            assert http.patch(url, json={"status": status}, headers=MERGE).status_code == 200
        last = http.patch(url, json={"status": statuses[-1]}, headers=MERGE)
        assert last.status_code == (200 if last_allowed else 409), last.text
        before = statuses[-2] if len(statuses) > 1 else "acknowledged"
        assert http.get(url).json()["status"] == (statuses[-1] if last_allowed else before)  # a refusal changes nothing

    def test_integer_attributes_filter_as_numbers(self, sim, http):
        for priority in (1, 2, 3):
            http.post(sim.url("tmf656"), json={**PROBLEM, "priority": priority})
        assert [p["priority"] for p in http.get(sim.url("tmf656"), params={"priority": "2"}).json()] == [2]
        assert [p["priority"] for p in http.get(sim.url("tmf656"), params={"priority.gt": "1.5"}).json()] == [2, 3]
        assert [p["priority"] for p in http.get(sim.url("tmf656"), params={"priority.lte": "2e0"}).json()] == [1, 2]
        for params, message in (
            ({"priority": "5.0"}, "'5.0' is not an integer"),
            ({"priority": "+5"}, "'+5' is not an integer"),
            ({"priority": "2,x"}, "'x' is not an integer"),
            ({"priority.gt": "high"}, "'high' is not a number"),
        ):
            refused = http.get(sim.url("tmf656"), params=params)
            assert refused.status_code == 400 and message in error_body(refused)["message"], params

    def test_ses_lists_by_servicenow_encoded_query(self, sim, http, now):
        first = http.post(sim.url("tmf656", ses=True), json=PROBLEM).json()
        now.value += 3600
        second = http.post(sim.url("tmf656", ses=True), json=PROBLEM).json()
        other = http.post(sim.url("tmf656", ses=True), json={**PROBLEM, "originatingSystem": "other"}).json()
        since = dt.datetime.fromtimestamp(now(), dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        found = http.get(sim.url("tmf656", ses=True), params={"sysparm_query": f"u_source=dataminer^sys_updated_on>={since}"})
        assert [p["id"] for p in found.json()] == [second["id"]]
        everything = http.get(sim.url("tmf656", ses=True), params={"sysparm_query": "u_source=dataminer"}).json()
        assert [p["id"] for p in everything] == [first["id"], second["id"]]
        bad = http.get(sim.url("tmf656", ses=True), params={"sysparm_query": "sys_updated_on>=yesterday"})
        assert bad.status_code == 400 and "YYYY-MM-DD HH:MM:SS" in error_body(bad)["message"]
        unsupported = http.get(sim.url("tmf656", ses=True), params={"sysparm_query": "priority=1"})
        assert unsupported.status_code == 400 and "not supported" in error_body(unsupported)["message"]
        newest_first = http.get(sim.url("tmf656", ses=True), params={"sysparm_query": "u_source=dataminer^ORDERBYDESCsys_updated_on"})
        assert [p["id"] for p in newest_first.json()] == [second["id"], first["id"]]
        now.value += 60
        http.patch(f"{sim.url('tmf656', ses=True)}/{first['id']}", json={"description": "still down"}, headers=MERGE)
        by_update = http.get(sim.url("tmf656", ses=True), params={"sysparm_query": "ORDERBYsys_updated_on"}).json()
        assert [p["id"] for p in by_update][-1] == first["id"]  # updated last, listed last
        by_creation = http.get(sim.url("tmf656", ses=True), params={"sysparm_query": "ORDERBYsys_created_on"}).json()
        assert [p["id"] for p in by_creation] == [first["id"], second["id"], other["id"]]
        wrong_order = http.get(sim.url("tmf656", ses=True), params={"sysparm_query": "ORDERBYpriority"})
        assert wrong_order.status_code == 400 and "order by one of sys_updated_on" in error_body(wrong_order)["message"]
        on_v4 = http.get(sim.url("tmf656"), params={"sysparm_query": "u_source=dataminer"})
        assert on_v4.status_code == 400  # a ServiceNow query is SES's, not TMF's
        assert http.get(f"{sim.url('tmf656')}/{first['id']}", params={"fields": "status"}).json().keys() == {"id", "href", "status"}

    def test_ses_alarm_create(self, sim, http):
        response = http.post(sim.url("tmf642", ses=True), json={"alarmType": "communicationsAlarm", "perceivedSeverity": "critical"})
        assert response.status_code == 201 and response.json()["id"] == "AL-0000001" and sim.alarms


class TestAuth:
    def test_each_api_has_its_own_credentials(self, now, http):
        with Simulators(SPEC, now=now, credentials={"tmf638": ("svc", "one"), "tmf639": ("res", "two")}) as sim:
            denied = http.get(sim.url("tmf638"))
            assert denied.status_code == 401 and denied.headers["WWW-Authenticate"].startswith("Basic")
            assert http.get(sim.url("tmf638"), auth=("res", "two")).status_code == 401
            assert http.get(sim.url("tmf638", ses=True), auth=("svc", "one"), params={"limit": 1}).status_code == 206
            assert http.get(sim.url("tmf639"), auth=("res", "two")).status_code == 200
            assert http.get(sim.url("tmf656")).status_code == 200  # no credentials configured

    @pytest.mark.parametrize(
        ("authorization", "status"),
        [
            ("basic c3ZjOm9uZQ==", 200),  # RFC 7617: the scheme is case-insensitive
            ("BASIC  c3ZjOm9uZQ== ", 200),
            ("Basic c3ZjOm9uZQ", 401),  # not base64
            ("Basic c3ZjOnR3bw==", 401),  # svc:two
            ("Bearer c3ZjOm9uZQ==", 401),
            ("c3ZjOm9uZQ==", 401),
        ],
    )
    def test_the_authorization_header_is_read_as_rfc_7617_says(self, now, http, authorization, status):
        with Simulators(SPEC, now=now, credentials={"tmf638": ("svc", "one")}) as sim:
            answer = http.get(sim.url("tmf638"), headers={"Authorization": authorization})
            assert answer.status_code == status
            if status == 401:
                assert answer.headers["WWW-Authenticate"].startswith("Basic") and error_body(answer)["code"] == "401"


class TestFaults:
    def test_a_status_fault_on_one_request_with_retry_after(self, sim, http):
        sim.faults.add(Fault(api="tmf638", status=503, retry_after=2, requests={2}))
        assert http.get(sim.url("tmf638")).status_code == 200
        failed = http.get(sim.url("tmf638"))
        assert failed.status_code == 503 and failed.headers["Retry-After"] == "2"
        error_body(failed)
        assert http.get(sim.url("tmf638")).status_code == 200
        assert [(r.number, r.status, r.fault) for r in sim.requests("tmf638")] == [(1, 200, None), (2, 503, "status"), (3, 200, None)]
        sim.faults.clear_log()  # a new phase of a test: numbering starts again
        assert sim.requests() == []
        assert [http.get(sim.url("tmf638")).status_code for _ in range(2)] == [200, 503]

    def test_a_fault_on_one_page(self, sim, http):
        sim.faults.add(Fault(api="tmf639", status=504, pages={1}))
        statuses = [http.get(sim.url("tmf639"), params={"offset": offset, "limit": 20}).status_code for offset in (0, 20, 40)]
        assert statuses == [206, 504, 206]

    def test_broken_answers(self, sim, http):
        sim.faults.add(
            Fault(api="tmf638", kind="malformed", requests={1}),
            Fault(api="tmf638", kind="truncated", requests={2}),
            Fault(api="tmf638", kind="drop", requests={3}),
        )
        malformed = http.get(sim.url("tmf638"))
        with pytest.raises(ValueError):
            malformed.json()
        with pytest.raises(requests.RequestException):
            http.get(sim.url("tmf638"))
        with pytest.raises(requests.ConnectionError):
            http.get(sim.url("tmf638"))
        assert http.get(sim.url("tmf638")).status_code == 200
        assert [r.fault for r in sim.requests("tmf638")] == ["malformed", "truncated", "drop", None]

    def test_a_dropped_create_never_happened_and_a_lost_one_did(self, sim, http):
        """drop: the connection closes before the request takes effect; lost: after, so a blind retry duplicates."""
        sim.faults.add(Fault(api="tmf656", kind="drop", requests={1}), Fault(api="tmf656", kind="lost", requests={2}))
        for _ in range(2):
            with pytest.raises(requests.ConnectionError):
                http.post(sim.url("tmf656", ses=True), json=PROBLEM)
        retried = http.post(sim.url("tmf656", ses=True), json=PROBLEM)
        assert retried.status_code == 201
        assert [p["id"] for p in sim.problems.all()] == ["SP-0000001", retried.json()["id"]] == ["SP-0000001", "SP-0000002"]
        assert [(r.status, r.fault) for r in sim.requests("tmf656")] == [(0, "drop"), (201, "lost"), (201, None)]

    def test_latency_delays_the_real_answer(self, now, http, monkeypatch):
        """The server waits the fault's latency before each answer it hits, then answers for real.

        The wait is the server's own `time.sleep`, held here until the test lets it go: the
        answers are seen to wait for it, with no race against the wall clock."""

        class HeldTime:
            """The server's time module; each sleep is recorded, then waits for the test's word.

            Every sleep has a gate of its own, handed to the test in the order the sleeps began:
            releasing one sleep can never let another one go (with one shared semaphore, a second
            sleeper could take the permit meant for a first that had not reached its wait yet)."""

            def __init__(self) -> None:
                self.slept: list[float] = []
                self.gates: queue.Queue[threading.Event] = queue.Queue()

            def sleep(self, seconds: float) -> None:
                gate = threading.Event()
                self.slept.append(seconds)
                self.gates.put(gate)
                assert gate.wait(timeout=10)

            def next_sleeper(self) -> threading.Event:
                return self.gates.get(timeout=10)

            def __getattr__(self, name: str) -> object:
                return getattr(time, name)

        held = HeldTime()
        monkeypatch.setattr(server_module, "time", held)
        with Simulators(SPEC, now=now) as sim:
            sim.faults.add(Fault(api="tmf639", kind="latency", latency=0.3, requests={1, 2}))
            with pytest.raises(requests.Timeout):  # a client that waits less gives up
                http.get(sim.url("tmf639"), timeout=0.05)
            held.next_sleeper().set()  # the first request's wait ends after its client left

            answers: list[requests.Response] = []
            second = threading.Thread(target=lambda: answers.append(http.get(sim.url("tmf639"), params={"limit": 2}, timeout=10)))
            second.start()
            second_sleep = held.next_sleeper()  # the server waits out the latency...
            second.join(0.2)
            assert second.is_alive() and answers == []  # ...and the answer waits with it
            second_sleep.set()
            second.join(30)
            assert len(answers) == 1 and answers[0].status_code == 206 and len(answers[0].json()) == 2
            assert held.slept == [0.3, 0.3]  # the configured latency, once for each request it hits
            assert http.get(sim.url("tmf639"), params={"limit": 2}).status_code == 206  # the third waits for nothing
            assert held.slept == [0.3, 0.3]
            assert [(r.number, r.status, r.fault) for r in sim.requests("tmf639")] == [
                (1, 200, "latency"), (2, 206, "latency"), (3, 206, None)
            ]  # fmt: skip

    def test_probabilistic_faults_are_reproducible_from_the_seed(self, now, http):
        def statuses() -> list[int]:
            with Simulators(SPEC, now=now, seed=42) as sim:
                sim.faults.add(Fault(api="tmf639", status=500, probability=0.3), Fault(api="tmf639", status=502, probability=0.3))
                for _ in range(60):
                    http.get(sim.url("tmf639"), params={"limit": 1})
                return [r.status for r in sim.requests("tmf639")]

        first = statuses()
        assert {206, 500, 502} <= set(first)  # each fault draws on its own seed
        assert statuses() == first

    def test_the_admin_endpoint_sets_faults_and_shows_the_log(self, sim, http):
        added = http.post(f"{sim.base_url}/_admin/faults", json=[{"api": "tmf656", "status": 429, "retry_after": 1}])
        assert added.status_code == 201 and added.json()[0]["status"] == 429
        assert http.get(sim.url("tmf656")).status_code == 429
        assert http.delete(f"{sim.base_url}/_admin/faults").status_code == 204
        assert http.get(sim.url("tmf656")).status_code == 200
        assert http.get(f"{sim.base_url}/tmf-api/nothing/here").status_code == 404
        log = http.get(f"{sim.base_url}/_admin/requests").json()
        assert [(r["api"], r["status"]) for r in log] == [("tmf656", 429), ("tmf656", 200), ("unknown", 404)]
        bad = http.post(f"{sim.base_url}/_admin/faults", json={"kind": "explode"})
        assert bad.status_code == 400 and "explode" in error_body(bad)["message"]


def test_the_simulators_import_nothing_from_the_client_side():
    import ast
    from pathlib import Path

    import dmemu.simulators

    package = Path(dmemu.simulators.__file__).parent
    for module in package.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.ImportFrom):
                name = ("." * node.level) + (node.module or "")
                assert not name.startswith(("..", "dmemu.protocol", "dmemu.elements", "dmemu.pages")), f"{module.name} imports {name}"
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith(("dmemu.protocol", "dmemu.elements")) for a in node.names), module.name


def test_dmemu_simulate_serves_until_interrupted(http):
    import signal
    import subprocess
    import sys
    from pathlib import Path

    console_script = Path(sys.executable).parent / "dmemu"
    process = subprocess.Popen(
        [
            str(console_script), "simulate", "--services", "30", "--carriers", "5", "--resources", "10",
            "--user", "u", "--password", "p", "--credentials", "tmf639=inv:secret", "--duplicate-ids", "2", "--churn", "0.1",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(9)]
        assert lines[0].startswith("dmemu simulators on http://127.0.0.1:")
        tmf638 = next(line.split()[-1] for line in lines if line.strip().startswith("tmf638 (TMF v4)"))
        assert http.get(tmf638).status_code == 401
        answer = http.get(tmf638, auth=("u", "p"), params={"@type": "element"})
        assert answer.status_code == 200 and len(answer.json()) == 5
        assert http.get(tmf638, auth=("u", "p")).headers["X-Total-Count"] == "37"  # with the 2 duplicates
        tmf639 = tmf638.replace("serviceInventory/v4/service", "resourceInventoryManagement/v4/resource")
        assert http.get(tmf639, auth=("u", "p")).status_code == 401
        assert http.get(tmf639, auth=("inv", "secret")).status_code == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0
    finally:
        process.kill()


def test_dmemu_simulate_speeds_simulated_time_up(http):
    """At a day a second, a churning inventory has items updated in the last day within a few seconds."""
    import signal
    import subprocess
    import sys
    from pathlib import Path

    console_script = Path(sys.executable).parent / "dmemu"
    command = [str(console_script), "simulate", "--services", "40", "--carriers", "0", "--resources", "0", "--churn", "0.5", "--speed", "86400"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert "simulated time 86400 times as fast" in banner
        tmf638 = next(line.split()[-1] for line in iter(process.stdout.readline, "") if line.strip().startswith("tmf638 (SES)"))
        recent: list = []
        deadline = time.monotonic() + 30
        while not recent and time.monotonic() < deadline:  # a simulated day passes each second
            recent = http.get(tmf638, params={"updatedDaysAgo": "0"}).json()
            time.sleep(0.2)
        assert recent and all(" change " in item["description"] for item in recent)  # changed by churn, not initial
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0
    finally:
        process.kill()


def test_dmemu_simulate_refuses_a_bad_size_and_a_port_in_use():
    import subprocess
    import sys
    from pathlib import Path

    console_script = str(Path(sys.executable).parent / "dmemu")
    bad = subprocess.run([console_script, "simulate", "--services", "-5"], capture_output=True, text=True)
    assert bad.returncode == 2 and "-5 is not between 0 and 1,000,000" in bad.stderr
    no_port = subprocess.run([console_script, "simulate", "--port", "70000"], capture_output=True, text=True)
    assert no_port.returncode == 2 and "70000 is not a TCP port" in no_port.stderr
    bad_login = subprocess.run([console_script, "simulate", "--credentials", "tmf999=u:p"], capture_output=True, text=True)
    assert bad_login.returncode == 2 and "write API=USER:PASSWORD" in bad_login.stderr
    too_much = subprocess.run([console_script, "simulate", "--churn", "1.5"], capture_output=True, text=True)
    assert too_much.returncode == 2 and "1.5 is not a fraction" in too_much.stderr
    standing_still = subprocess.run([console_script, "simulate", "--speed", "0"], capture_output=True, text=True)
    assert standing_still.returncode == 2 and "0 is not a speed from above 0" in standing_still.stderr
    alone = subprocess.run([console_script, "simulate", "--password", "p"], capture_output=True, text=True)
    assert alone.returncode == 2 and "--password goes with --user" in alone.stderr
    with Simulators(InventorySpec(services=1, carriers=0, resources=0)) as taken:
        port = taken.base_url.rsplit(":", 1)[1]
        busy = subprocess.run([console_script, "simulate", "--port", port], capture_output=True, text=True)
    assert busy.returncode == 2 and busy.stderr.count("\n") == 1 and f"cannot listen on 127.0.0.1:{port}" in busy.stderr


def test_concurrent_clients_are_served_at_once(sim, http):
    """A client held up by a slow answer does not hold up the others (one thread each)."""

    sim.faults.add(Fault(api="tmf639", kind="latency", latency=1.0, requests={1}))
    slow_answered = threading.Event()

    def slow_client():
        with requests.Session() as own:
            own.trust_env = False
            own.get(sim.url("tmf639"), params={"limit": 1}, timeout=10)
        slow_answered.set()

    slow = threading.Thread(target=slow_client)
    slow.start()
    try:
        fast = [http.get(sim.url("tmf638"), params={"limit": 5}, timeout=0.9).status_code for _ in range(5)]
        assert fast == [206] * 5
        assert not slow_answered.is_set()  # answered while the slow request was still waiting
    finally:
        slow.join(10)


class TestEditsAndRaces:
    def test_concurrent_creates_get_distinct_ids_and_concurrent_patches_keep_both(self, sim):

        url = sim.url("tmf639")
        created: list[str] = []

        def create_many():
            with requests.Session() as own:
                own.trust_env = False
                for _ in range(20):
                    answer = own.post(url, json={"name": "Modem"})
                    assert answer.status_code == 201
                    created.append(answer.json()["id"])

        workers = [threading.Thread(target=create_many) for _ in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(10)
        assert len(created) == 80 == len(set(created))

        target = created[0]

        def patch(field: str):
            with requests.Session() as own:
                own.trust_env = False
                own.patch(f"{url}/{target}", json={field: f"set {field}"}, headers=MERGE)

        patchers = [threading.Thread(target=patch, args=(field,)) for field in ("description", "category")]
        for patcher in patchers:
            patcher.start()
        for patcher in patchers:
            patcher.join(10)
        with requests.Session() as own:
            own.trust_env = False
            item = own.get(f"{url}/{target}").json()
        assert (item["description"], item["category"]) == ("set description", "set category")

    def test_an_id_can_be_used_again_after_a_delete(self, sim, http):
        url = sim.url("tmf639")
        assert http.post(url, json={"id": "R-1", "name": "first"}).status_code == 201
        assert http.post(url, json={"id": "R-1", "name": "again"}).status_code == 409
        assert http.delete(f"{url}/R-1").status_code == 204
        assert http.post(url, json={"id": "R-1", "name": "second"}).status_code == 201
        assert http.get(f"{url}/R-1").json()["name"] == "second"
        assert [i["name"] for i in http.get(url, params={"id": "R-1"}).json()] == ["second"]

    def test_edited_items_are_found_by_updated_days_ago(self, sim, http):
        url = sim.url("tmf639", ses=True)
        before = {i["id"] for i in http.get(url, params={"updatedDaysAgo": 0}).json()}
        target = http.get(url, params={"limit": 1}).json()[0]["id"]
        assert target not in before
        http.patch(f"{url}/{target}", json={"resourceStatus": "reserved"}, headers=MERGE)
        after = {i["id"] for i in http.get(url, params={"updatedDaysAgo": 0}).json()}
        assert after == before | {target}

    def test_a_bad_content_length_is_a_400(self, sim):
        answer = raw_answer(sim, b"POST " + sim.url("tmf656").removeprefix(sim.base_url).encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
        assert answer.startswith("HTTP/1.1 400") and "Content-Length 'abc' is not a length" in answer


def test_other_methods_get_a_json_405_with_allow(sim, http):
    answer = http.put(sim.url("tmf638"), json={})
    assert answer.status_code == 405 and answer.headers["Allow"] == "GET, POST, PATCH, DELETE"
    assert "PUT is not supported" in error_body(answer)["message"]
    head = http.head(sim.url("tmf638"))
    assert head.status_code == 405 and head.headers["Allow"]


def test_a_malformed_servicenow_query_is_a_400_even_with_nothing_stored(sim, http):
    answer = http.get(sim.url("tmf656", ses=True), params={"sysparm_query": "sys_updated_on>=2026-13-01 00:00:00"})
    assert answer.status_code == 400 and "wants YYYY-MM-DD HH:MM:SS" in error_body(answer)["message"]


class TestFaultsPerRoute:
    def test_target_and_paths_narrow_a_fault(self, sim, http):
        sim.faults.add(Fault(api="tmf638", status=500, target="item"), Fault(api="tmf639", status=502, paths="ses"))
        listed = http.get(sim.url("tmf638"), params={"limit": 1})
        assert listed.status_code == 206
        item_id = listed.json()[0]["id"]
        assert http.get(f"{sim.url('tmf638')}/{item_id}").status_code == 500
        assert http.get(f"{sim.url('tmf638', ses=True)}/{item_id}").status_code == 500
        assert http.post(sim.url("tmf638"), json={"state": "active", "serviceSpecification": {"id": "s"}}).status_code == 201
        assert http.get(sim.url("tmf639")).status_code == 200
        assert http.get(sim.url("tmf639", ses=True)).status_code == 502
        assert http.get(f"{sim.url('tmf639', ses=True)}/RES-0000001").status_code == 502
        assert http.get(f"{sim.url('tmf639')}/RES-0000001").status_code == 200

    def test_a_query_fault_hits_only_requests_with_those_values(self, sim, http):
        sim.faults.add(
            Fault(api="tmf638", status=504, query={"@type": "element"}),
            Fault(api="tmf638", status=503, retry_after=1.5, query={"updatedDaysAgo": "0"}),
        )
        url = sim.url("tmf638", ses=True)
        assert http.get(url, params={"@type": "element"}).status_code == 504
        assert http.get(url, params={"limit": 5, "@type": "element"}).status_code == 504  # other parameters may come too
        assert http.get(url, params={"@type": "CustomerFacingService"}).status_code == 200
        assert http.get(url).status_code == 200
        periodic = http.get(url, params={"updatedDaysAgo": 0})
        assert periodic.status_code == 503 and periodic.headers["Retry-After"] == "2"  # whole seconds, rounded up
        assert http.get(url, params={"updatedDaysAgo": 1}).status_code == 200

    @pytest.mark.parametrize("status", [429, 503])
    def test_a_throttling_status_sends_retry_after(self, sim, http, status):
        sim.faults.add(Fault(api="tmf656", status=status, retry_after=30, method="POST"))
        answer = http.post(sim.url("tmf656"), json=PROBLEM)
        assert answer.status_code == status and answer.headers["Retry-After"] == "30"
        assert error_body(answer)["code"] == str(status)
        assert http.get(sim.url("tmf656")).status_code == 200  # only POST is faulted
        sim.faults.clear()
        sim.faults.add(Fault(api="tmf656", status=status))
        assert "Retry-After" not in http.get(sim.url("tmf656")).headers  # none asked for

    @pytest.mark.parametrize(
        ("fields", "message"),
        [
            ({"api": "tmf999"}, "fault api 'tmf999' is not one of tmf638, tmf639, tmf656, tmf642, osb, *"),
            ({"method": "get"}, "fault method 'get' is not one of GET, POST, PATCH, DELETE or None"),
            ({"target": "items"}, "fault target 'items' is not one of collection, item or None"),
            ({"paths": "v4"}, "fault paths 'v4' is not one of tmf, ses, v3 or None"),
            ({"operation": "Create"}, "fault operation 'Create' is not one of SearchTicketRequest, CreateTicketRequest"),
            ({"query": {"limit": 40}}, "fault query parameters and values are strings, not 'limit': 40"),
            ({"query": "limit=40"}, "fault query 'limit=40' is not a mapping"),
            ({"requests": "12"}, "'12' is not a collection of request or page numbers"),
            ({"pages": [1, -1]}, "whole numbers from 0, not -1"),
            ({"retry_after": -1}, "fault retry_after -1 is not a number of seconds from 0"),
            ({"retry_after": math.inf}, "fault retry_after inf is not a number of seconds from 0"),
            ({"latency": math.nan}, "fault latency nan is not a number of seconds from 0"),
            ({"latency": "1"}, "fault latency '1' is not a number of seconds from 0"),
            ({"latency": 1e300}, "fault latency 1e+300 is not a number of seconds from 0 to 86400"),
            ({"status": 204}, "fault status 204 is not an HTTP error status (400 to 599)"),
            ({"status": 503.0}, "fault status 503.0 is not an HTTP error status"),
        ],
    )
    def test_a_bad_fault_is_refused_naming_the_value(self, sim, http, fields, message):
        with pytest.raises(ValueError, match=re.escape(message)):
            Fault(**fields)
        # Python's JSON writes NaN and Infinity, and reads them back: the admin endpoint sees them too.
        answer = http.post(f"{sim.base_url}/_admin/faults", data=json.dumps(fields), headers={"Content-Type": "application/json"})
        assert answer.status_code == 400 and message in error_body(answer)["message"]
        assert sim.faults.faults == []

    def test_faults_round_trip_through_json_and_the_admin_endpoint(self, sim, http):
        fault = Fault(
            api="tmf639", kind="latency", latency=0.01, requests={3, 1}, pages={0}, method="GET", probability=0.5,
            target="collection", paths="ses", query={"@type": "Modem"},
        )  # fmt: skip
        data = fault.to_json()
        assert data["query"] == {"@type": "Modem"} and data["requests"] == [1, 3]
        assert Fault.from_json(json.loads(json.dumps(data))) == fault
        added = http.post(f"{sim.base_url}/_admin/faults", json=data)
        assert added.status_code == 201 and added.json() == [data]
        assert sim.faults.faults == [fault] and http.get(f"{sim.base_url}/_admin/faults").json() == [data]


class TestRequestLog:
    def test_the_log_keeps_query_headers_body_and_time_with_credentials_masked(self, now, http):
        with Simulators(SPEC, now=now, credentials={"tmf639": ("inv", "s3cret")}) as sim:
            before = time.time()
            http.post(sim.url("tmf639"), params={"note": "a b"}, json={"name": "Modem"}, auth=("inv", "s3cret"), headers={"X-Trace": "t-1"})
            (record,) = sim.requests("tmf639")
            assert (record.number, record.method, record.status) == (1, "POST", 201)
            assert record.query == {"note": "a b"} and record.headers["X-Trace"] == "t-1"
            assert record.headers["Authorization"] == "Basic ***"
            assert json.loads(record.body) == {"name": "Modem"}
            assert before <= record.time <= time.time()
            shown = http.get(f"{sim.base_url}/_admin/requests").json()
            assert shown[0]["query"] == {"note": "a b"} and shown[0]["headers"]["Authorization"] == "Basic ***"
            assert json.loads(shown[0]["body"]) == {"name": "Modem"} and shown[0]["time"] == record.time
            assert "s3cret" not in json.dumps(shown) and "aW52OnMzY3JldA" not in json.dumps(shown)  # nor its base64

    def test_a_large_body_is_logged_up_to_64_kib(self, sim, http):
        answer = http.post(sim.url("tmf642", ses=True), json={"alarmType": "x", "specificProblem": "y" * 100_000})
        assert answer.status_code == 201
        (record,) = sim.requests("tmf642")
        assert len(record.body) == 64 * 1024 and record.body.startswith('{"alarmType": "x"')

    def test_the_admin_endpoint_filters_and_clears_the_log(self, sim, http):
        http.get(sim.url("tmf638"), params={"limit": 1})
        http.get(sim.url("tmf639"), params={"limit": 1})
        only = http.get(f"{sim.base_url}/_admin/requests", params={"api": "tmf639"}).json()
        assert [(r["api"], r["number"]) for r in only] == [("tmf639", 1)]
        assert http.delete(f"{sim.base_url}/_admin/requests").status_code == 204
        assert http.get(f"{sim.base_url}/_admin/requests").json() == [] and sim.requests() == []
        http.get(sim.url("tmf639"), params={"limit": 1})
        assert [r.number for r in sim.requests("tmf639")] == [1]  # numbering starts again

    def test_records_built_the_old_way_still_work(self):
        record = RequestRecord(1, "tmf638", "GET", "/x", 200, None)
        assert (record.query, record.headers, record.body, record.time) == ({}, {}, "", 0.0)


class TestHrefs:
    @pytest.mark.parametrize("ses", [False, True])
    def test_listed_retrieved_created_and_patched_items_agree_on_absolute_hrefs(self, sim, http, ses):
        for api in ("tmf638", "tmf639"):
            url = sim.url(api, ses=ses)
            assert url.startswith("http://127.0.0.1:")
            page = http.get(url, params={"limit": 3}).json()
            assert [item["href"] for item in page] == [f"{url}/{item['id']}" for item in page]
            assert [item["href"] for item in http.get(url, params={"limit": 3, "fields": "name"}).json()] == [item["href"] for item in page]
            assert http.get(page[0]["href"]).json() == page[0]
        services = http.get(sim.url("tmf638", ses=ses), params={"limit": 20}).json()
        references = [ref["href"] for item in services for ref in item["supportingResource"]]
        assert references and all(ref.startswith(sim.base_url + RESOURCE_PATH + "/") for ref in references)
        assert http.get(references[0]).status_code == 200  # a reference leads to the item
        url = sim.url("tmf638", ses=ses)
        created = http.post(url, json={"state": "active", "serviceSpecification": {"id": "s"}})
        item_id = created.json()["id"]
        assert created.headers["Location"] == created.json()["href"] == f"{url}/{item_id}"
        patched = http.patch(f"{url}/{item_id}", json={"name": "renamed"}, headers=MERGE).json()
        assert patched["href"] == f"{url}/{item_id}"
        assert http.get(url, params={"offset": 115, "limit": 5}).json() == [patched]  # an edited store's page
        assert http.get(url, params={"id": item_id}).json() == [patched]  # a filtered list
        other = sim.url("tmf638", ses=not ses)
        assert http.get(f"{other}/{item_id}").json()["href"] == f"{other}/{item_id}"  # each path gives its own

    def test_service_problems_and_alarms_carry_hrefs_of_the_path_asked(self, sim, http):
        tmf, ses = sim.url("tmf656"), sim.url("tmf656", ses=True)
        created = http.post(tmf, json=PROBLEM).json()
        assert created["href"] == f"{tmf}/{created['id']}"
        assert http.get(f"{ses}/{created['id']}").json()["href"] == f"{ses}/{created['id']}"
        assert [p["href"] for p in http.get(ses).json()] == [f"{ses}/{created['id']}"]
        patched = http.patch(f"{ses}/{created['id']}", json={"status": "inProgress"}, headers=MERGE).json()
        assert patched["href"] == f"{ses}/{created['id']}"
        assert sim.problems.get(created["id"])["href"] == f"{tmf}/{created['id']}"  # stored at the TMF v4 path
        alarm = http.post(sim.url("tmf642", ses=True), json={"alarmType": "x"})
        assert alarm.headers["Location"] == alarm.json()["href"] == f"{sim.url('tmf642', ses=True)}/AL-0000001"


CHUNKED_PATH = "/gstm/dataminer/tmf/api/v1/tmf642/alarm"


class TestChunkedBodies:
    def test_chunked_creates_and_patches_are_read(self, sim, http):
        url = sim.url("tmf639")
        created = http.post(url, data=iter([b'{"name": ', b'"Chunked modem"}']), headers={"Content-Type": "application/json"})
        assert created.status_code == 201 and created.json()["name"] == "Chunked modem"
        assert sim.requests("tmf639")[-1].headers["Transfer-Encoding"] == "chunked"  # the client did send chunks
        patched = http.patch(f"{url}/{created.json()['id']}", data=iter([b'{"description"', b"", b': "via chunks"}']), headers=MERGE)
        assert patched.status_code == 200 and patched.json()["description"] == "via chunks"

    def test_chunk_extensions_and_trailers_are_accepted(self, sim):
        body = b'7;note=x\r\n{"a": 1\r\n1\r\n}\r\n0\r\nX-Checksum: 1\r\n\r\n'
        answer = raw_answer(
            sim, b"POST " + CHUNKED_PATH.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n" + body
        )
        assert answer.startswith("HTTP/1.1 201") and sim.alarms[0]["a"] == 1

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (b"zz\r\n{}\r\n0\r\n\r\n", "chunk size 'zz' is not a hexadecimal number"),
            (b"-2\r\n{}\r\n0\r\n\r\n", "chunk size '-2' is not a hexadecimal number"),
            (b"2\r\n{}XX0\r\n\r\n", "a chunk of 2 bytes is cut short or not followed by CRLF"),
            (b"a\r\n{}", "a chunk of 10 bytes is cut short"),
            (b"2\r\n{}\r\n", "a chunk-size line is missing"),
            (b"2\r\n{}\r\n0\r\nX-Trailer: 1\r\n", "the trailer does not end with an empty line"),
        ],
    )
    def test_a_malformed_chunked_body_is_a_400(self, sim, body, message):
        answer = raw_answer(
            sim, b"POST " + CHUNKED_PATH.encode() + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body, end_of_request=True
        )
        assert answer.startswith("HTTP/1.1 400") and message in answer
        assert sim.alarms == []

    def test_a_malformed_chunked_body_with_another_method_is_a_400_too(self, sim):
        request = b"PUT " + CHUNKED_PATH.encode() + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
        answer = raw_answer(sim, request, end_of_request=True)
        assert answer.startswith("HTTP/1.1 400") and "chunk size 'zz'" in answer


EDITED = InventorySpec(
    services=95, carriers=20, resources=60, seed=7, duplicate_ids=3, empty_ids=2,
    churn_per_day=0.05, arrivals_per_day=0.02, removals_per_day=0.05,
)  # fmt: skip
EVERYTHING = {"lastUpdate.gte": "1970-01-01T00:00:00Z"}  # true of every item, but not a filter lists serve by position


def read_pages(http: requests.Session, url: str, params: dict, size: int) -> list[dict]:
    """Every page of a list, checking the counts of each answer."""
    items: list[dict] = []
    total = None
    while True:
        answer = http.get(url, params={**params, "offset": len(items), "limit": size})
        assert total is None or answer.headers["X-Total-Count"] == total  # nothing changes while paging
        total = answer.headers["X-Total-Count"]
        page = answer.json()
        assert answer.headers["X-Result-Count"] == str(len(page))
        items += page
        if len(page) < size:
            assert len(items) == int(total)
            return items


class TestListsAfterEdits:
    def test_paging_an_edited_store_shows_every_edit_in_its_place(self, http):
        now = FakeTime(EDITED.start + 3 * 86400 + 100)
        with Simulators(EDITED, now=now) as sim:
            url = sim.url("tmf638", ses=True)
            original = http.get(url).json()
            ids = [item["id"] for item in original]
            duplicated = next(i for i in ids if i and ids.count(i) > 1)
            singles = [i for i in ids if i and ids.count(i) == 1]
            deleted = {singles[0], singles[40], singles[-1]}
            for item_id in deleted:
                assert http.delete(f"{url}/{item_id}").status_code == 204
            patched = {}
            for item_id in (singles[6], singles[39], duplicated):
                answer = http.patch(f"{url}/{item_id}", json={"description": f"patched {item_id}"}, headers=MERGE)
                patched[item_id] = answer.json()
            created = [
                http.post(url, json={"state": "active", "serviceSpecification": {"id": "s"}, "@type": "element"}).json(),
                http.post(url, json={"state": "designed", "serviceSpecification": {"id": "s"}}).json(),
            ]
            expected = [patched.get(item["id"], item) for item in original if item["id"] not in deleted] + created
            assert sum(item["id"] == duplicated for item in expected) == ids.count(duplicated)  # every copy shows the patch
            for size in (7, 40):
                assert read_pages(http, url, {}, size) == expected
            assert http.get(url, params={"offset": 0, "limit": 7}).status_code == 206
            for params in ({}, {"@type": "element"}, {"updatedDaysAgo": "0"}, {"updatedDaysAgo": "0", "@type": "element"}, {"updatedDaysAgo": "2"}):
                listed = http.get(url, params=params)
                scanned = http.get(url, params={**params, **EVERYTHING}).json()
                assert listed.json() == scanned, params
                assert read_pages(http, url, params, 9) == scanned, params
                assert listed.headers["X-Total-Count"] == str(len(scanned))
            recent = {item["id"] for item in http.get(url, params={"updatedDaysAgo": "0"}).json()}
            assert set(patched) | {item["id"] for item in created} <= recent and not deleted & recent

    def test_a_filtered_list_is_scanned_once_and_follows_time_and_edits(self, http, monkeypatch):
        scans = []
        where = Collection.where
        monkeypatch.setattr(
            Collection, "where", lambda view, predicate, **options: scans.append("update" if options.get("update") else "scan") or where(view, predicate, **options)
        )
        now = FakeTime(EDITED.start + 3 * 86400)
        with Simulators(EDITED, now=now) as sim:
            url = sim.url("tmf638", ses=True)

            def active(params: dict) -> list[dict]:
                return [item for item in http.get(url, params=params).json() if item["state"] == "active"]

            for params in ({}, {"@type": "element"}):
                assert read_pages(http, url, {**params, "status": "1"}, 7) == active(params), params
            assert scans == ["scan", "scan"]  # one scan per filter, however many pages
            now.value += 86400  # a day of churn, arrivals and removals: the kept scan is brought up to date
            assert read_pages(http, url, {"status": "1"}, 7) == active({})
            assert scans == ["scan", "scan", "update"]
            first = active({})[0]
            http.patch(f"{url}/{first['id']}", json={"state": "inactive"}, headers=MERGE)
            assert first["id"] not in [item["id"] for item in read_pages(http, url, {"status": "1"}, 7)]

    def test_a_resource_patched_into_another_type_is_listed_with_that_type(self, sim, http):
        url = sim.url("tmf639")
        modem = http.get(url, params={"@type": "Modem", "limit": 1}).json()[0]
        everything = http.get(url).json()
        http.patch(f"{url}/{modem['id']}", json={"@type": "Amplifier"}, headers=MERGE)
        amplifiers = http.get(url, params={"@type": "Amplifier"}).json()
        assert modem["id"] in [item["id"] for item in amplifiers]
        assert modem["id"] not in [item["id"] for item in http.get(url, params={"@type": "Modem"}).json()]
        assert [item["id"] for item in amplifiers] == [item["id"] for item in everything if item["@type"] == "Amplifier" or item["id"] == modem["id"]]

    def test_paging_a_large_edited_store_costs_the_page_not_the_collection(self, http):
        # 200,000 services: a list that rebuilt the collection per request would take seconds here.
        with Simulators(InventorySpec(services=200_000, carriers=0, resources=0), now=FakeTime()) as sim:
            url = sim.url("tmf638")
            assert http.delete(f"{url}/SVC-0000002").status_code == 204
            http.patch(f"{url}/SVC-0150001", json={"name": "patched"}, headers=MERGE)
            created = http.post(url, json={"state": "active", "serviceSpecification": {"id": "s"}}).json()
            page = http.get(url, params={"offset": 149_999, "limit": 3})
            assert page.headers["X-Total-Count"] == "200000"
            assert [(item["id"], item["name"] == "patched") for item in page.json()] == [
                ("SVC-0150001", True), ("SVC-0150002", False), ("SVC-0150003", False),
            ]  # fmt: skip
            last = http.get(url, params={"offset": 199_998, "limit": 40}).json()
            assert [item["id"] for item in last] == ["SVC-0200000", created["id"]]
            recent = http.get(url, params={"updatedDaysAgo": "0", "limit": 5000}).json()
            assert {"SVC-0150001", created["id"]} <= {item["id"] for item in recent}
            assert "SVC-0000002" not in [item["id"] for item in http.get(url, params={"limit": 5}).json()]


SERVICE = {"state": "active", "serviceSpecification": {"id": "spec-1"}}


class TestBodyTypes:
    @pytest.mark.parametrize(
        ("api", "body", "message"),
        [
            ("tmf638", {**SERVICE, "isBundle": "yes"}, "isBundle must be a boolean, not 'yes'"),
            ("tmf638", {**SERVICE, "startDate": "yesterday"}, "startDate must be a date-time string (RFC 3339"),
            ("tmf638", {**SERVICE, "startDate": "2026-02-30T00:00:00Z"}, "not '2026-02-30T00:00:00Z'"),
            ("tmf638", {**SERVICE, "endDate": "2026-03-01"}, "endDate must be a date-time string"),
            ("tmf638", {**SERVICE, "relatedParty": {"id": "c"}}, "relatedParty must be an array of objects, not an object"),
            ("tmf638", {**SERVICE, "supportingResource": ["RES-1"]}, "not an array holding non-objects"),
            ("tmf638", {"state": "active", "serviceSpecification": "spec-1"}, "serviceSpecification must be an object, not 'spec-1'"),
            ("tmf638", {**SERVICE, "name": None}, "name must be a string, not null"),
            ("tmf638", {**SERVICE, "state": 1}, "state must be a string, not a number"),
            ("tmf639", {"name": 5}, "name must be a string, not a number"),
            ("tmf639", {"name": "M", "place": [{"id": "p"}]}, "place must be an object, not an array"),
            ("tmf639", {"name": "M", "activationFeature": "on"}, "activationFeature must be an array of objects"),
            ("tmf656", {**PROBLEM, "affectedNumberOfServices": 2.5}, "affectedNumberOfServices must be an integer, not a number"),
            ("tmf656", {**PROBLEM, "priority": True}, "priority must be an integer, not a boolean"),
            ("tmf656", {**PROBLEM, "affectedService": {"id": "SVC-1"}}, "affectedService must be an array of objects"),
            ("tmf656", {**PROBLEM, "firstAlert": "alarm-1"}, "firstAlert must be an object"),
        ],
    )
    def test_a_create_with_a_wrong_type_is_a_400_naming_the_attribute(self, sim, http, api, body, message):
        answer = http.post(sim.url(api), json=body)
        assert answer.status_code == 400 and message in error_body(answer)["message"]
        assert http.get(sim.url(api)).headers["X-Total-Count"] == {"tmf638": "115", "tmf639": "60", "tmf656": "0"}[api]

    @pytest.mark.parametrize(
        ("api", "changes", "message"),
        [
            ("tmf638", {"hasStarted": "true"}, "hasStarted must be a boolean, not 'true'"),
            ("tmf638", {"supportingService": [{"id": "SVC-1"}, 2]}, "supportingService must be an array of objects"),
            ("tmf639", {"endOperatingDate": 1_700_000_000}, "endOperatingDate must be a date-time string (RFC 3339, such as 2026-01-31T12:00:00Z), not a number"),
            ("tmf639", {"resourceSpecification": []}, "resourceSpecification must be an object, not an array"),
            ("tmf656", {"statusChangeReason": 7}, "statusChangeReason must be a string, not a number"),
            ("tmf656", {"responsibleParty": [{"id": "ops"}]}, "responsibleParty must be an object"),
            ("tmf656", {"firstAlert": {"id": "a"}}, "firstAlert cannot be patched"),
            ("tmf656", {"colour": "red"}, "colour cannot be patched"),
            ("tmf638", {"@type": "element"}, "@type cannot be patched"),
            ("tmf638", {"state": None, "serviceSpecification": None}, "state, serviceSpecification is required and cannot be removed"),
            ("tmf639", {"name": None}, "name is required and cannot be removed"),
            ("tmf656", {"reason": None}, "reason is required and cannot be removed"),
            ("tmf656", {"status": None}, "status cannot be removed"),
        ],
    )
    def test_a_patch_with_a_wrong_type_or_attribute_is_a_400(self, sim, http, api, changes, message):
        item_id = http.post(sim.url("tmf656"), json=PROBLEM).json()["id"] if api == "tmf656" else http.get(sim.url(api), params={"limit": 1}).json()[0]["id"]
        before = http.get(f"{sim.url(api)}/{item_id}").json()
        answer = http.patch(f"{sim.url(api)}/{item_id}", json=changes, headers=MERGE)
        assert answer.status_code == 400 and message in error_body(answer)["message"]
        assert http.get(f"{sim.url(api)}/{item_id}").json() == before

    def test_well_typed_patches_and_removals_are_taken(self, sim, http):
        resource = http.get(sim.url("tmf639"), params={"limit": 1}).json()[0]
        url = f"{sim.url('tmf639')}/{resource['id']}"
        feature = {"name": "turbo", "isEnabled": True, "featureCharacteristic": [{"name": "boost", "value": 2}]}  # TMF639 Feature wants one
        changed = http.patch(url, json={"activationFeature": [feature], "description": None}, headers=MERGE)
        assert changed.status_code == 200, changed.text
        assert changed.json()["activationFeature"] == [feature] and "description" not in changed.json()
        service = http.get(sim.url("tmf638"), params={"limit": 1}).json()[0]
        dated = http.patch(f"{sim.url('tmf638')}/{service['id']}", json={"startDate": "2026-03-01T10:00:00.5+01:00"}, headers=MERGE)
        assert dated.status_code == 200 and dated.json()["startDate"] == "2026-03-01T10:00:00.5+01:00"
        first_alert = {"id": "alarm-1", "role": "firstAlert", "@referredType": "Alarm"}  # a RelatedEntity has a role
        problem = http.post(sim.url("tmf656"), json={**PROBLEM, "firstAlert": first_alert}).json()
        noted = http.patch(f"{sim.url('tmf656')}/{problem['id']}", json={"note": [{"text": "seen"}], "timeChanged": "2026-03-01T00:00:00Z"}, headers=MERGE)
        assert noted.status_code == 200 and noted.json()["note"] == [{"text": "seen"}]


def _post_or_error(url: str, body: object) -> object:
    """The status of a POST from a session of its own, or the name of the error it raised."""
    try:
        with requests.Session() as session:
            session.trust_env = False
            return session.post(url, json=body, timeout=30).status_code
    except requests.RequestException as error:
        return type(error).__name__


class TestServerUnderStress:
    def test_connections_wait_in_the_queue_while_the_server_is_busy(self, now):
        """Sixty clients connect while nothing accepts (the server not started yet, as when it is
        too busy to): each is queued, none refused or left waiting for the kernel to retry its SYN
        (the listen backlog); once the server runs, each gets its answer."""
        sim = Simulators(SPEC, now=now)  # bound and listening, not accepting
        host, port = sim.base_url.removeprefix("http://").split(":")
        try:
            waiting = [socket.create_connection((host, int(port)), timeout=5) for _ in range(60)]
            sim.start()
            for connection in waiting:
                connection.sendall(b"GET /tmf-api/serviceInventory/v4/service?limit=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answers = []
            for connection in waiting:
                with connection:
                    answers.append(connection.makefile("rb").readline())
            assert answers == [b"HTTP/1.1 206 Partial Content\r\n"] * 60
        finally:
            sim.stop()

    @pytest.mark.parametrize("item_id", ["a b", "服务-1", "a/b", "x?y#z", "50%", ".", "..", "..."])
    def test_any_created_id_is_reachable_at_its_href(self, sim, http, item_id):
        created = http.post(sim.url("tmf638"), json={**SERVICE, "id": item_id})
        assert created.status_code == 201, created.text
        location = created.headers["Location"]
        assert location.isascii() and location == created.json()["href"]
        assert location.startswith(sim.url("tmf638") + "/") and "/" not in location.removeprefix(sim.url("tmf638") + "/")
        fetched = http.get(location)
        assert fetched.status_code == 200 and fetched.json()["id"] == item_id
        listed = [item for item in http.get(sim.url("tmf638")).json() if item["id"] == item_id]
        assert [item["href"] for item in listed] == [location]
        assert http.patch(location, json={"description": "moved"}, headers=MERGE).json()["description"] == "moved"
        assert http.delete(location).status_code == 204 and http.get(location).status_code == 404

    def test_stop_ends_kept_alive_connections_and_start_comes_back_with_the_data(self, now, http):
        sim = Simulators(SPEC, now=now).start()
        try:
            created = http.post(sim.url("tmf656"), json=PROBLEM).json()
            port = sim.port
            sim.stop()
            with pytest.raises(requests.ConnectionError):
                http.get(sim.url("tmf656"), timeout=5)  # the same session: its connection is gone too
            sim.start()
            assert sim.port == port
            assert http.get(created["href"], timeout=5).json() == created
        finally:
            sim.stop()

    def test_a_request_waiting_out_a_latency_when_the_server_stops_never_takes_effect(self, now, http, monkeypatch):
        class SignallingTime:
            """The server's time module, telling the test when a latency fault starts waiting."""

            def __init__(self) -> None:
                self.waiting = threading.Event()

            def sleep(self, seconds: float) -> None:
                self.waiting.set()
                time.sleep(seconds)

            def __getattr__(self, name: str) -> object:
                return getattr(time, name)

        signalling = SignallingTime()
        monkeypatch.setattr(server_module, "time", signalling)
        sim = Simulators(SPEC, now=now).start()
        try:
            sim.faults.add(Fault(api="tmf656", kind="latency", latency=0.5, requests={1}))
            outcome: list[object] = []
            poster = threading.Thread(target=lambda: outcome.append(_post_or_error(sim.url("tmf656"), PROBLEM)))
            poster.start()
            assert signalling.waiting.wait(10)
            sim.stop()
            poster.join()
            assert outcome == ["ConnectionError"]  # stop() closed the connection under the waiting request
            deadline = time.monotonic() + 10
            while not sim.requests("tmf656") and time.monotonic() < deadline:  # the handler wakes after the wait
                time.sleep(0.05)
            assert [(r.status, r.fault) for r in sim.requests("tmf656")] == [(0, "latency")] and len(sim.problems) == 0
            sim.start()
            assert http.get(sim.url("tmf656")).json() == []
        finally:
            sim.stop()

    def test_bodies_that_would_hurt_are_refused(self, sim, http):
        deep = http.post(sim.url("tmf656"), data="[" * 100_000 + "]" * 100_000, headers={"Content-Type": "application/json"})
        assert deep.status_code == 400 and "too deeply" in error_body(deep)["message"]
        huge = raw_answer(sim, f"POST {SES_PATHS['tmf656']} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000000000\r\n\r\n{{}}".encode())
        assert huge.startswith("HTTP/1.1 413") and '"status":"413"' in huge and "at most 16777216 bytes" in huge
        chunked = raw_answer(sim, f"POST {SES_PATHS['tmf656']} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{17 * 1024 * 1024:x}\r\n".encode())
        assert chunked.startswith("HTTP/1.1 413")
        assert len(sim.problems) == 0

    @pytest.mark.parametrize(
        ("request_head", "status"),
        [
            (b"FOO /tmf-api/serviceInventory/v4/service HTTP/1.1\r\nHost: x\r\n\r\n", 501),
            (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
            (b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", 505),
        ],
    )
    def test_http_servers_own_refusals_are_tmf_json_too(self, sim, request_head, status):
        answer = raw_answer(sim, request_head)
        head, _, body = answer.partition("\r\n\r\n")
        assert head.startswith(f"HTTP/1.1 {status}") and "application/json" in head
        assert json.loads(body)["status"] == str(status)

    def test_the_request_log_keeps_the_newest_requests(self, now, http):
        with Simulators(SPEC, now=now, log_limit=3) as sim:
            for offset in range(5):
                http.get(sim.url("tmf639"), params={"offset": offset, "limit": 1})
            assert [(r.number, r.query["offset"]) for r in sim.requests("tmf639")] == [(3, "2"), (4, "3"), (5, "4")]
        with pytest.raises(ValueError, match="log_limit 0"):
            Simulators(SPEC, log_limit=0)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"seed": "abc"}, "InventorySpec.seed must be a whole number, not 'abc'"),
        ({"services": 2.5}, "InventorySpec.services must be a whole number, not 2.5"),
        ({"duplicate_ids": True}, "InventorySpec.duplicate_ids must be a whole number, not True"),
        ({"churn_per_day": math.nan}, "InventorySpec.churn_per_day must be a finite number, not nan"),
        ({"start": "today"}, "InventorySpec.start must be a finite number, not 'today'"),
    ],
)
def test_an_inventory_spec_of_the_wrong_types_is_refused_at_once(fields, message):
    with pytest.raises(TypeError, match=re.escape(message)):
        InventorySpec(**fields)


def test_a_list_written_in_pieces_has_a_head_for_an_http_0_9_request(now):
    """http.server writes no head for HTTP/0.9; a long list (written a batch at a time) gets one
    all the same, as every other answer does."""
    with Simulators(InventorySpec(services=ITEMS_PER_WRITE + 1, carriers=0, resources=0), now=now) as sim:
        answer = raw_answer(sim, b"GET " + sim.url("tmf638").removeprefix(sim.base_url).encode() + b"\r\n\r\n")
    head, _, body = answer.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200 ") and len(json.loads(body)) == ITEMS_PER_WRITE + 1


@pytest.mark.parametrize("size", [ITEMS_PER_WRITE + 1, 2 * ITEMS_PER_WRITE])
def test_a_list_written_in_pieces_is_its_pages_together(now, http, size):
    with Simulators(InventorySpec(services=size, carriers=0, resources=0), now=now) as sim:
        whole = http.get(sim.url("tmf638"))
        assert whole.status_code == 200 and int(whole.headers["Content-Length"]) == len(whole.content)
        pages = [item for offset in range(0, size, 700) for item in http.get(sim.url("tmf638"), params={"offset": offset, "limit": 700}).json()]
        assert whole.json() == pages and len(pages) == size
