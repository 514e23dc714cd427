"""The simulators over real loopback HTTP: TMF conventions, service problems, auth, faults."""

from __future__ import annotations

import datetime as dt

import pytest
import requests

from dmemu.simulators.faults import Fault
from dmemu.simulators.inventory import InventorySpec
from dmemu.simulators.server import Simulators

START = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc).timestamp()
SPEC = InventorySpec(services=95, carriers=20, resources=60, seed=7)


class FakeTime:
    """The simulated clock, moved by the test."""

    def __init__(self, now: float = START) -> None:
        self.value = now

    def __call__(self) -> float:
        return self.value


@pytest.fixture
def now() -> FakeTime:
    return FakeTime()


@pytest.fixture
def sim(now):
    with Simulators(SPEC, now=now) as simulators:
        yield simulators


@pytest.fixture
def http():
    with requests.Session() as session:
        session.trust_env = False  # loopback only, whatever the environment's proxies
        yield session


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
        newer = http.get(sim.url("tmf638"), params={"lastUpdate.gte": median}).json()
        older = http.get(sim.url("tmf638"), params={"lastUpdate.lt": median}).json()
        assert len(newer) + len(older) == len(everything)
        assert all(item["lastUpdate"] >= median for item in newer)

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
            ({"priority": "high"}, "priority must be int"),
            ({"priority": 11}, "priority 11 must be an integer from 1"),
            ({"originatorParty": "me"}, "originatorParty must be dict"),
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
        nested = http.patch(url, json={"note": {"text": "x", "author": None}}, headers=MERGE).json()
        assert nested["note"] == {"text": "x"}  # RFC 7386: nulls inside an object patch are removals
        for field in ("id", "href", "originatingSystem", "trackingRecord"):
            response = http.patch(url, json={field: "x"}, headers=MERGE)
            assert response.status_code == 400 and f"{field} cannot be patched" in error_body(response)["message"]
        assert http.delete(url).status_code == 204 and http.get(url).status_code == 404

    def test_ses_lists_by_servicenow_encoded_query(self, sim, http, now):
        first = http.post(sim.url("tmf656", ses=True), json=PROBLEM).json()
        now.value += 3600
        second = http.post(sim.url("tmf656", ses=True), json=PROBLEM).json()
        http.post(sim.url("tmf656", ses=True), json={**PROBLEM, "originatingSystem": "other"})
        since = dt.datetime.fromtimestamp(now(), dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        found = http.get(sim.url("tmf656", ses=True), params={"sysparm_query": f"u_source=dataminer^sys_updated_on>={since}"})
        assert [p["id"] for p in found.json()] == [second["id"]]
        everything = http.get(sim.url("tmf656", ses=True), params={"sysparm_query": "u_source=dataminer"}).json()
        assert [p["id"] for p in everything] == [first["id"], second["id"]]
        bad = http.get(sim.url("tmf656", ses=True), params={"sysparm_query": "sys_updated_on>=yesterday"})
        assert bad.status_code == 400 and "YYYY-MM-DD HH:MM:SS" in error_body(bad)["message"]
        unsupported = http.get(sim.url("tmf656", ses=True), params={"sysparm_query": "priority=1"})
        assert unsupported.status_code == 400 and "not supported" in error_body(unsupported)["message"]
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

    def test_latency_delays_the_real_answer(self, sim, http):
        sim.faults.add(Fault(api="tmf639", kind="latency", latency=0.3, requests={1, 2}))
        with pytest.raises(requests.Timeout):
            http.get(sim.url("tmf639"), timeout=0.05)
        delayed = http.get(sim.url("tmf639"), params={"limit": 2}, timeout=5)
        assert delayed.status_code == 206 and len(delayed.json()) == 2

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
    with Simulators(InventorySpec(services=1, carriers=0, resources=0)) as taken:
        port = taken.base_url.rsplit(":", 1)[1]
        busy = subprocess.run([console_script, "simulate", "--port", port], capture_output=True, text=True)
    assert busy.returncode == 2 and busy.stderr.count("\n") == 1 and f"cannot listen on 127.0.0.1:{port}" in busy.stderr


def test_concurrent_clients_are_served_at_once(sim, http):
    """A client held up by a slow answer does not hold up the others (one thread each)."""
    import threading

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
        import threading

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
        import socket

        host, port = sim.base_url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as raw:
            raw.sendall(b"POST " + sim.url("tmf656").removeprefix(sim.base_url).encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
            chunks = []
            while chunk := raw.recv(65536):  # the server closes the connection after answering
                chunks.append(chunk)
            answer = b"".join(chunks).decode()
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
