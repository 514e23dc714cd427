"""The TMF656 simulator as a ServiceNow-backed endpoint: correlation and SNOW query terms, upstream
activity over simulated time, rate limiting, /hub notifications and the v3 path."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
import requests
from simulated_time import START, FakeTime
from tmf_schemas import TMF656, assert_valid

from dmemu.simulators import ProblemActivity, Simulators
from dmemu.simulators.inventory import InventorySpec

SPEC = InventorySpec(services=5, carriers=2, resources=5, seed=7)
MERGE = {"Content-Type": "application/merge-patch+json"}


def problem_body(ticket: str | None = None, **more: object) -> dict[str, object]:
    body: dict[str, object] = {
        "category": "network",
        "priority": 2,
        "description": "Carrier down",
        "reason": "loss of signal",
        "originatorParty": {"id": "dm-1", "name": "DataMiner", "@referredType": "Organization"},
        "originatingSystem": "dataminer",
        **more,
    }
    if ticket is not None:
        body["externalIdentifier"] = [{"id": ticket, "externalIdentifierType": "DataMinerTicketId", "owner": "DataMiner"}]
    return body


@pytest.fixture
def sim(now):
    with Simulators(SPEC, now=now) as simulators:
        yield simulators


def snow(http: requests.Session, sim: Simulators, query: str) -> list[dict[str, object]]:
    answer = http.get(sim.url("tmf656", ses=True), params={"sysparm_query": query})
    assert answer.status_code == 200, answer.text
    return answer.json()


def ids(problems: list[dict[str, object]]) -> list[object]:
    return [problem["id"] for problem in problems]


class TestCorrelationAndQueries:
    def test_the_ticket_id_finds_its_problem_at_both_paths(self, sim, http):
        first = http.post(sim.url("tmf656"), json=problem_body("DMS/1")).json()
        second = http.post(sim.url("tmf656", ses=True), json=problem_body("DMS/2")).json()
        for ticket, problem in (("DMS/1", first), ("DMS/2", second)):
            found = http.get(sim.url("tmf656"), params={"externalIdentifier.id": ticket}).json()
            assert ids(found) == [problem["id"]]
            assert ids(snow(http, sim, f"correlation_id={ticket}")) == [problem["id"]]
        assert http.get(sim.url("tmf656"), params={"externalIdentifier.id": "DMS/3"}).json() == []
        assert snow(http, sim, "correlation_id=DMS/3") == []
        # an identifier of another type with that id is no correlation id
        http.post(sim.url("tmf656"), json=problem_body(externalIdentifier=[{"id": "DMS/9", "externalIdentifierType": "other"}]))
        assert snow(http, sim, "correlation_id=DMS/9") == []

    def test_every_problem_has_an_incident_number_at_the_ses_path(self, sim, http):
        plain = http.post(sim.url("tmf656"), json=problem_body("DMS/1")).json()
        assert [e["externalIdentifierType"] for e in plain["externalIdentifier"]] == ["DataMinerTicketId"]
        shown = http.get(f"{sim.url('tmf656', ses=True)}/{plain['id']}").json()
        number = "INC" + plain["id"].removeprefix("SP-")
        assert [(e["id"], e["externalIdentifierType"]) for e in shown["externalIdentifier"][:2]] == [
            ("DMS/1", "DataMinerTicketId"), (number, "incidentNumber"),
        ]  # fmt: skip
        assert_valid(TMF656, "ServiceProblem", shown)
        assert ids(snow(http, sim, f"number={number}")) == [plain["id"]]
        ses = http.post(sim.url("tmf656", ses=True), json=problem_body("DMS/2")).json()
        ses_number = next(e["id"] for e in ses["externalIdentifier"] if e["externalIdentifierType"] == "incidentNumber")
        assert ids(snow(http, sim, f"number={ses_number}^correlation_id=DMS/2")) == [ses["id"]]
        assert snow(http, sim, f"number={ses_number}^correlation_id=DMS/1") == []  # ^ is AND

    def test_created_and_updated_since_at_second_precision(self, sim, http, now):
        early = http.post(sim.url("tmf656", ses=True), json=problem_body("DMS/1")).json()
        now.value += 10.7
        late = http.post(sim.url("tmf656", ses=True), json=problem_body("DMS/2")).json()
        now.value += 5
        http.patch(f"{sim.url('tmf656')}/{early['id']}", json={"priority": 1}, headers=MERGE)
        moment = dt.datetime.fromtimestamp(START + 10, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        assert ids(snow(http, sim, f"sys_created_on>={moment}")) == [late["id"]]  # created at START+10.7: that second
        assert ids(snow(http, sim, f"sys_updated_on>={moment}^ORDERBYsys_updated_on")) == [late["id"], early["id"]]
        assert ids(snow(http, sim, f"u_source=dataminer^sys_created_on>={moment}^ORDERBYDESCsys_created_on")) == [late["id"]]
        bad = http.get(sim.url("tmf656", ses=True), params={"sysparm_query": "sys_created_on>=today"})
        assert bad.status_code == 400 and "sys_created_on>=today" in bad.json()["message"]

    def test_last_update_gte_at_the_v4_path(self, sim, http, now):
        early = http.post(sim.url("tmf656"), json=problem_body("DMS/1")).json()
        now.value += 60
        late = http.post(sim.url("tmf656"), json=problem_body("DMS/2")).json()
        found = http.get(sim.url("tmf656"), params={"lastUpdate.gte": late["lastUpdate"]}).json()
        assert ids(found) == [late["id"]]
        found = http.get(sim.url("tmf656"), params={"lastUpdate.gte": early["lastUpdate"]}).json()
        assert ids(found) == [early["id"], late["id"]]


DAY = 86_400
BUSY = ProblemActivity(create=4, acknowledge=2, progress=1, note=3, priority=1, resolve=1, close=0.5, seed=11)


def history(activity: ProblemActivity, *, creates_at: tuple[float, ...] = (0, 3_000)) -> list[dict[str, object]]:
    """Every problem after a simulated day of `activity`, with clients creating at the given offsets."""
    clock = FakeTime()
    simulators = Simulators(SPEC, now=clock, activity=activity)
    for offset in creates_at:
        clock.value = START + offset
        simulators.problems.create(problem_body(f"DMS/{offset}"))
    clock.value = START + DAY
    simulators.stop()  # never started: this closes its socket
    return [{name: value for name, value in problem.items() if name != "href"} for problem in simulators.problems.all()]


class TestUpstreamActivity:
    def test_the_same_seed_gives_the_same_history(self):
        first, again = history(BUSY), history(BUSY)
        assert first == again and len(first) > 50
        assert history(ProblemActivity(**{**_fields(BUSY), "seed": 12})) != first

    def test_a_day_of_activity_follows_the_rates(self):
        problems = history(BUSY)
        raised = [p for p in problems if p["originatingSystem"] == "servicenow"]
        assert len(raised) == 4 * 24  # a whole rate makes exactly that many a hour
        for problem in raised:
            assert problem["originatorParty"]["id"].startswith("snow-user-")
            assert any(e["externalIdentifierType"] == "incidentNumber" for e in problem["externalIdentifier"])
            assert_valid(TMF656, "ServiceProblem", {**problem, "href": f"http://127.0.0.1/{problem['id']}"})  # history drops hrefs
        notes = [note for p in problems for note in p.get("note", [])]
        assert 50 <= len(notes) <= 3 * 24  # a note needs a problem to land on: the first hours find few
        assert all(set(note) >= {"author", "date", "text"} for note in notes)
        statuses = Counter(p["status"] for p in problems)
        assert statuses["closed"] and statuses["resolved"] and statuses["inProgress"] + statuses["pending"] + statuses["held"]
        acknowledged = [p for p in problems if p["status"] != "acknowledged" and "responsibleParty" in p]
        assert acknowledged and all(p["responsibleParty"]["id"].startswith("snow-op-") for p in acknowledged)
        # every change stamps a whole second after the problem's creation
        for problem in problems:
            assert problem["creationDate"] <= problem["lastUpdate"] and problem["lastUpdate"].endswith("Z")

    def test_nothing_happens_without_activity_or_before_it_starts(self, now):
        quiet = Simulators(SPEC, now=now)
        quiet.stop()
        quiet.problems.create(problem_body("DMS/1"))
        now.value += DAY
        assert [p["lastUpdate"] for p in quiet.problems.all()] == [dt.datetime.fromtimestamp(START, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")]
        later = Simulators(SPEC, now=now, activity=ProblemActivity(create=10, start=now.value + DAY))
        later.stop()
        assert len(later.problems) == 0
        now.value += DAY + 3_600
        assert len(later.problems) == 10

    def test_bursts_update_several_problems_in_one_second(self, http, now):
        activity = ProblemActivity(bursts=1, burst_size=4, seed=3)
        with Simulators(SPEC, now=now, activity=activity) as busy:
            for number in range(10):
                busy.problems.create(problem_body(f"DMS/{number}"))
            now.value += 3_600  # one burst
            problems = http.get(busy.url("tmf656")).json()
            seconds = Counter(p["lastUpdate"] for p in problems if p["lastUpdate"] != p["creationDate"])
            assert list(seconds.values()) == [4]
            second = min(seconds)
            since = second.replace("T", " ").removesuffix("Z")
            found = snow(http, busy, f"sys_updated_on>={since}")
            assert len(found) == 4  # the >= watermark sees every record of that second
            for problem in problems:
                assert_valid(TMF656, "ServiceProblem", problem)

    def test_activity_is_applied_lazily_once(self, now, monkeypatch):
        from dmemu.simulators import problems as problems_module

        made: list[int] = []
        real = problems_module.hour_events
        monkeypatch.setattr(problems_module, "hour_events", lambda activity, start, hour: made.append(hour) or real(activity, start, hour))
        busy = Simulators(SPEC, now=now, activity=ProblemActivity(create=2, note=5))
        busy.stop()
        now.value += 10 * 3_600 - 1
        assert len(busy.problems) == 20 and made == list(range(10))
        for _ in range(5):
            busy.problems.all()
        assert made == list(range(10))  # read again at the same time: nothing made or applied again
        now.value += 1
        busy.problems.all()
        assert made == list(range(11))

    def test_bad_settings_are_refused_naming_the_field(self):
        with pytest.raises(ValueError, match="ProblemActivity.note"):
            ProblemActivity(note=-1)
        with pytest.raises(ValueError, match="ProblemActivity.burst_size"):
            ProblemActivity(burst_size=0)


def _fields(activity: ProblemActivity) -> dict[str, object]:
    import attrs

    return attrs.asdict(activity)


class TestRateLimit:
    def test_beyond_the_limit_answers_429_with_retry_after(self, sim, http, now):
        from dmemu.simulators import Fault

        sim.faults.add(Fault(api="tmf656", kind="rate_limit", limit=3, per=10))
        statuses = [http.get(sim.url("tmf656")).status_code for _ in range(3)]
        refused = http.get(sim.url("tmf656", ses=True))
        assert statuses == [200, 200, 200] and refused.status_code == 429
        assert refused.headers["Retry-After"] == "10" and refused.json()["reason"] == "Too Many Requests"
        assert http.get(sim.url("tmf638")).status_code == 200  # another API: not limited
        now.value += 4
        assert http.get(sim.url("tmf656")).headers["Retry-After"] == "6"  # refused ones do not count
        now.value += 6
        assert http.get(sim.url("tmf656")).status_code == 200
        assert [r.fault for r in sim.requests("tmf656")] == [None, None, None, "rate_limit", "rate_limit", None]

    def test_a_given_retry_after_and_the_admin_endpoint(self, sim, http):
        answer = http.post(f"{sim.base_url}/_admin/faults", json={"kind": "rate_limit", "limit": 1, "per": 60, "retry_after": 2.5, "method": "POST"})
        assert answer.status_code == 201 and answer.json()[0]["limit"] == 1
        assert http.post(sim.url("tmf656"), json=problem_body()).status_code == 201
        refused = http.post(sim.url("tmf656"), json=problem_body())
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "3"
        assert http.get(sim.url("tmf656")).status_code == 200  # only POSTs are limited
        assert len(sim.problems) == 1

    @pytest.mark.parametrize(
        ("fields", "message"),
        [
            ({"kind": "rate_limit", "per": 1}, "limit None"),
            ({"kind": "rate_limit", "limit": 2}, "per None"),
            ({"kind": "rate_limit", "limit": 2, "per": 0}, "per 0"),
            ({"kind": "rate_limit", "limit": 2.5, "per": 1}, "limit 2.5"),
            ({"kind": "rate_limit", "limit": 2, "per": 1, "status": 500}, "answers 429"),
            ({"kind": "status", "limit": 2}, "for kind 'rate_limit'"),
        ],
    )
    def test_bad_rate_limits_are_refused(self, fields, message):
        from dmemu.simulators import Fault

        with pytest.raises(ValueError, match=message):
            Fault(**fields)


class CallbackServer:
    """A loopback listener of our own: records each POSTed event; answers 500 to the first `failing` POSTs."""

    def __init__(self, failing: int = 0) -> None:
        import http.server
        import json
        import threading

        self.events: list[dict[str, object]] = []
        self.attempts = 0
        self.failing = failing
        self.arrived = threading.Condition()
        listener = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers["Content-Length"]))
                with listener.arrived:
                    listener.attempts += 1
                    failed = listener.attempts <= listener.failing
                    if not failed:
                        listener.events.append(json.loads(data))
                    listener.arrived.notify_all()
                self.send_response(500 if failed else 201)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/listener"

    def wait_for(self, count: int) -> list[dict[str, object]]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.events) >= count, timeout=10), self.events
            return list(self.events)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener():
    server = CallbackServer()
    yield server
    server.close()


@pytest.fixture
def hub_sim(now):
    with Simulators(SPEC, now=now, notification_retry_delays=(0.01, 0.02, 0.04)) as simulators:
        yield simulators


EVENT_DEFINITIONS = {
    "ServiceProblemCreateEvent": "ServiceProblemCreateEvent",
    "ServiceProblemStateChangeEvent": "ServiceProblemStateChangeEvent",
    "ServiceProblemAttributeValueChangeEvent": "ServiceProblemAttributeValueChangeEvent",
}


class TestHub:
    def test_subscribe_and_hear_creates_and_changes_in_order(self, hub_sim, http, listener, now):
        sim = hub_sim
        answer = http.post(sim.hub_url(), json={"callback": listener.url})
        assert answer.status_code == 201, answer.text
        subscription = answer.json()
        assert subscription["callback"] == listener.url and answer.headers["Location"].endswith(f"/hub/{subscription['id']}")
        assert_valid(TMF656, "EventSubscription", subscription)
        assert http.get(answer.headers["Location"]).json() == subscription
        created = http.post(sim.url("tmf656", ses=True), json=problem_body("DMS/1")).json()
        now.value += 2
        http.patch(f"{sim.url('tmf656')}/{created['id']}", json={"status": "inProgress", "priority": 1}, headers=MERGE)
        events = listener.wait_for(3)
        assert [e["eventType"] for e in events] == [
            "ServiceProblemCreateEvent", "ServiceProblemStateChangeEvent", "ServiceProblemAttributeValueChangeEvent",
        ]  # fmt: skip
        assert events[2]["fieldPath"] == "priority" and len({e["eventId"] for e in events}) == 3
        assert events[1]["eventTime"] == events[1]["event"]["serviceProblem"]["lastUpdate"]
        for event in events:
            assert_valid(TMF656, EVENT_DEFINITIONS[event["eventType"]], event)
            problem = event["event"]["serviceProblem"]
            assert problem["href"].startswith(sim.url("tmf656"))  # as the v4 path shows it
            assert_valid(TMF656, "ServiceProblem", problem)
        assert sim.hub.drain() and [d.delivered for d in sim.deliveries()] == [True, True, True]

    def test_the_ses_hub_shows_ses_problems_and_a_query_narrows(self, hub_sim, http, listener):
        sim = hub_sim
        query = "eventType=ServiceProblemStateChangeEvent&status=resolved"
        subscription = http.post(sim.hub_url(ses=True), json={"callback": listener.url, "query": query}).json()
        assert subscription["query"] == query
        created = http.post(sim.url("tmf656"), json=problem_body("DMS/1")).json()
        for status in ("inProgress", "resolved"):
            http.patch(f"{sim.url('tmf656')}/{created['id']}", json={"status": status}, headers=MERGE)
        (event,) = listener.wait_for(1)
        problem = event["event"]["serviceProblem"]
        assert problem["status"] == "resolved" and problem["href"].startswith(sim.url("tmf656", ses=True))
        assert any(e["externalIdentifierType"] == "incidentNumber" for e in problem["externalIdentifier"])
        bad = http.post(sim.hub_url(), json={"callback": listener.url, "query": "eventType=Nope"})
        assert bad.status_code == 400 and "Nope" in bad.json()["message"]
        assert http.post(sim.hub_url(), json={"query": "x"}).status_code == 400
        assert http.post(sim.hub_url(), json={"callback": "ftp://x"}).status_code == 400

    def test_failed_deliveries_are_retried_in_order_then_given_up(self, hub_sim, http):
        sim = hub_sim
        flaky = CallbackServer(failing=2)
        try:
            http.post(sim.hub_url(), json={"callback": flaky.url})
            first = http.post(sim.url("tmf656"), json=problem_body("DMS/1")).json()
            second = http.post(sim.url("tmf656"), json=problem_body("DMS/2")).json()
            assert sim.hub.drain()
            events = flaky.wait_for(2)
            assert [e["event"]["serviceProblem"]["id"] for e in events] == [first["id"], second["id"]]
            assert [(d.problem, d.attempt, d.status) for d in sim.deliveries()] == [
                (first["id"], 1, 500), (first["id"], 2, 500), (first["id"], 3, 201), (second["id"], 1, 201),
            ]  # fmt: skip
        finally:
            flaky.close()
        deaf = CallbackServer(failing=10**6)
        try:
            http.post(sim.hub_url(), json={"callback": deaf.url})
            http.post(sim.url("tmf656"), json=problem_body("DMS/3"))
            assert sim.hub.drain()
            assert deaf.attempts == 4
        finally:
            deaf.close()
        http.post(sim.url("tmf656"), json=problem_body("DMS/4"))  # given up: the next event is tried, at a closed port now
        assert sim.hub.drain()
        deliveries = [(d.problem, d.attempt, d.status) for d in sim.deliveries() if d.subscription == "2"]
        assert [attempt for _, attempt, _ in deliveries] == [1, 2, 3, 4] * 2
        assert [status for _, _, status in deliveries] == [500] * 4 + [0] * 4  # no answer from a closed port
        assert len({problem for problem, _, _ in deliveries}) == 2

    def test_unsubscribe_stops_delivery(self, hub_sim, http, listener):
        sim = hub_sim
        gone = http.post(sim.hub_url(), json={"callback": listener.url}).json()
        other = CallbackServer()
        try:
            http.post(sim.hub_url(), json={"callback": other.url})
            assert http.delete(f"{sim.hub_url()}/{gone['id']}").status_code == 204
            assert http.get(f"{sim.hub_url()}/{gone['id']}").status_code == 404
            assert http.delete(f"{sim.hub_url()}/{gone['id']}").status_code == 404
            http.post(sim.url("tmf656"), json=problem_body("DMS/1"))
            assert sim.hub.drain()
            other.wait_for(1)  # delivered elsewhere, so the change was published
            assert listener.events == [] and {d.subscription for d in sim.deliveries()} == {"2"}
        finally:
            other.close()

    def test_activity_is_notified_and_stop_ends_the_threads(self, now, http, listener):
        import threading

        with Simulators(SPEC, now=now, activity=ProblemActivity(create=3, seed=5)) as sim:
            http.post(sim.hub_url(), json={"callback": listener.url, "query": "originatingSystem=servicenow"})
            now.value += 3_600
            sim.problems.catch_up()  # the ticker would too, a moment later
            events = listener.wait_for(3)
            assert {e["eventType"] for e in events} == {"ServiceProblemCreateEvent"}
            assert [e["eventTime"] for e in events] == sorted(e["eventTime"] for e in events)
        assert not [t for t in threading.enumerate() if t.name.startswith(("dmemu-hub", "dmemu-problem-activity"))]


V3_BODY = {
    "category": "network",
    "priority": 3,
    "description": "Encoder unreachable",
    "reason": "unknown",
    "correlationId": "DMS/77",
    "originatorParty": {"id": "legacy-1", "name": "Legacy OSS"},  # v3 asks no @referredType
    "affectedService": [{"id": "SVC-0000001", "href": "http://x/service/SVC-0000001"}],
    "comment": [{"author": "ops", "text": "seen at 10:00", "date": "2026-03-01T10:00:00Z"}],
    "extensionInfo": [{"name": "site", "value": "Betzdorf"}],
    "relatedObject": [{"id": "EQ-1", "href": "http://x/eq/EQ-1"}],
}


class TestV3:
    def test_the_v3_tables_are_the_specs(self):
        from tmf_schemas import TMF656_V3, attribute_types, definitions, nested_definitions

        from dmemu.simulators import schema

        objects, enumerations = nested_definitions("ServiceProblem", TMF656_V3)
        tables = {name: {"required": set(d.required), "members": dict(d.members)} for name, d in schema.DEFINITIONS["tmf656v3"].items()}
        assert tables == objects and schema.ENUMERATION_TYPES["tmf656v3"] == enumerations
        assert schema.ATTRIBUTE_TYPES["tmf656v3"] == attribute_types(TMF656_V3, "ServiceProblem_Create", "ServiceProblem_Update")
        assert schema.PATCHABLE["tmf656v3"] == set(definitions(TMF656_V3)["ServiceProblem_Update"]["properties"])
        assert schema.CREATE_REQUIRED["tmf656v3"] == tuple(definitions(TMF656_V3)["ServiceProblem_Create"]["required"])

    def test_create_get_patch_in_v3_and_the_same_problem_in_v4(self, sim, http, now):
        from tmf_schemas import TMF656_V3

        v3_url = sim.url("tmf656", version=3)
        created = http.post(v3_url, json=V3_BODY)
        assert created.status_code == 201, created.text
        problem = created.json()
        assert_valid(TMF656_V3, "ServiceProblem", problem)
        assert problem["correlationId"] == "DMS/77" and problem["comment"][0]["text"] == "seen at 10:00"
        assert problem["timeRaised"] == problem["timeChanged"] and "lastUpdate" not in problem
        assert created.headers["Location"] == problem["href"] and problem["href"].startswith(v3_url)
        as_v4 = http.get(f"{sim.url('tmf656')}/{problem['id']}").json()
        assert_valid(TMF656, "ServiceProblem", as_v4)
        assert as_v4["note"] == V3_BODY["comment"] and as_v4["characteristic"] == V3_BODY["extensionInfo"]
        assert as_v4["originatorParty"]["@referredType"] == "Party" and as_v4["relatedEntity"][0]["role"] == "relatedObject"
        assert ids(http.get(sim.url("tmf656"), params={"externalIdentifier.id": "DMS/77"}).json()) == [problem["id"]]
        assert ids(snow(http, sim, "correlation_id=DMS/77")) == [problem["id"]]
        now.value += 30
        patched = http.patch(
            f"{v3_url}/{problem['id']}", json={"status": "inProgress", "comment": [*problem["comment"], {"text": "on it"}]}, headers=MERGE
        )
        assert patched.status_code == 200, patched.text
        assert_valid(TMF656_V3, "ServiceProblem", patched.json())
        assert patched.json()["timeChanged"] > problem["timeChanged"] and len(patched.json()["comment"]) == 2
        assert_valid(TMF656_V3, "ServiceProblem", http.get(f"{v3_url}/{problem['id']}").json())
        listed = http.get(v3_url, params={"status": "inProgress", "fields": "comment,timeChanged"}).json()
        assert ids(listed) == [problem["id"]] and set(listed[0]) == {"id", "href", "comment", "timeChanged"}

    def test_v4_problems_read_in_v3_validate(self, sim, http):
        from tmf_schemas import TMF656_V3

        body = problem_body("DMS/5", affectedService=[{"id": "SVC-0000002"}], underlyingAlarm=[{"id": "AL-1"}])
        created = http.post(sim.url("tmf656"), json=body).json()
        shown = http.get(f"{sim.url('tmf656', version=3)}/{created['id']}").json()
        assert_valid(TMF656_V3, "ServiceProblem", shown)
        assert shown["affectedService"][0]["href"] == f"{sim.url('tmf638')}/SVC-0000002"
        assert shown["underlyingAlarm"][0]["href"] == "urn:dmemu:ResourceAlarmRef:AL-1"
        for problem in http.get(sim.url("tmf656", version=3)).json():
            assert_valid(TMF656_V3, "ServiceProblem", problem)

    @pytest.mark.parametrize(
        ("method", "body", "message"),
        [
            ("POST", {**V3_BODY, "category": None}, "category must be a string"),
            ("POST", {name: value for name, value in V3_BODY.items() if name != "reason"}, "missing required attributes: reason"),
            ("POST", {**V3_BODY, "comment": "hello"}, "comment must be an array"),
            ("POST", {**V3_BODY, "affectedService": [{"id": "SVC-1"}]}, "affectedService[0].href is required"),
            ("PATCH", {"correlationId": "DMS/8"}, "correlationId cannot be patched"),
            ("PATCH", {"status": "Closed"}, "status 'Closed' is not one of"),
        ],
    )
    def test_bad_v3_bodies_are_refused_with_v3_errors(self, sim, http, method, body, message):
        from tmf_schemas import TMF656_V3

        url = sim.url("tmf656", version=3)
        if method == "PATCH":
            url += "/" + http.post(url, json=V3_BODY).json()["id"]
        answer = http.request(method, url, json=body, headers=MERGE)
        assert answer.status_code == 400 and message in answer.json()["message"], answer.text
        assert_valid(TMF656_V3, "Error", answer.json())

    def test_the_v3_hub_sends_v3_problems(self, hub_sim, http, listener):
        from tmf_schemas import TMF656_V3

        http.post(hub_sim.hub_url(version=3), json={"callback": listener.url})
        http.post(hub_sim.url("tmf656"), json=problem_body("DMS/1"))
        (event,) = listener.wait_for(1)
        assert_valid(TMF656_V3, "ServiceProblemCreateNotification", event)
        assert_valid(TMF656_V3, "ServiceProblem", event["event"]["serviceProblem"])
        assert event["event"]["serviceProblem"]["correlationId"] == "DMS/1"


def test_an_extension_types_own_attributes_may_be_patched_and_a_plain_problems_may_not(sim, http):
    headers = {"Content-Type": "application/merge-patch+json"}
    extended = http.post(sim.url("tmf656"), json=problem_body(**{"@type": "AcmeServiceProblem", "@baseType": "ServiceProblem", "beam": "B7"}))
    assert extended.status_code == 201, extended.text
    changed = http.patch(f"{sim.url('tmf656')}/{extended.json()['id']}", json={"beam": "B9"}, headers=headers)
    assert changed.status_code == 200 and changed.json()["beam"] == "B9"
    plain = http.post(sim.url("tmf656"), json=problem_body()).json()
    refused = http.patch(f"{sim.url('tmf656')}/{plain['id']}", json={"beam": "B9"}, headers=headers)
    assert refused.status_code == 400 and "beam cannot be patched" in refused.json()["message"]
    assert "beam" not in sim.problems.get(plain["id"])
    refused = http.patch(f"{sim.url('tmf656')}/{extended.json()['id']}", json={"originatingSystem": "elsewhere"}, headers=headers)
    assert refused.status_code == 400  # a v4 attribute the client may not change stays refused
