"""The automatic ticketing flow end to end: alarms on a monitored element start flows that take a
Ticket Client, search through it over loopback to the OSB simulator, and create, update and
close tickets through the Ticket Gateway, on a virtual clock."""

from __future__ import annotations

import json

import pytest

from dmemu.dms import AlarmTemplate, ScriptState, Severity, Thresholds
from dmemu.elements.telenet.flow import (
    SCRIPT_NAME,
    TICKET_ERROR_PROPERTY,
    TICKET_ID_PROPERTY,
    TICKET_STATUS_PROPERTY,
    FlowSettings,
)
from dmemu.elements.telenet.suite import create_telenet_suite, flow_rule
from dmemu.elements.telenet.ticket_client import LOCKED, NOT_BUSY, UNLOCKED, command_message, lock_message
from dmemu.protocol import LogType, Number, Parameter, Protocol
from dmemu.simulators import Fault, OsbService


class Router(Protocol):
    name = "Telenet Flow Test Router"
    parameters = (Parameter(10, "Signal Loss", Number(0, 100, "%"), write=True, default=0),)


ROUTER_ALARMS = AlarmTemplate("Router", {"Signal Loss": Thresholds(high={Severity.MINOR: 10, Severity.MAJOR: 30, Severity.CRITICAL: 60})})
PATHS = {f"Router {n}": f"BRU-0{n}/slot {n}/port 1" for n in range(1, 7)}


@pytest.fixture(autouse=True)
def forget_runs_seen():
    _SEEN.clear()


@pytest.fixture
def osb(dmemu_clock):
    with OsbService(clock=dmemu_clock.now) as service:
        yield service


def make_suite(dms, tmp_path, osb, *, clients=2, routers=1, settings=None):
    names = [f"Router {n}" for n in range(1, routers + 1)]
    suite = create_telenet_suite(dms, tmp_path / "suite", service=("127.0.0.1", osb.port), clients=clients, monitored=names,
                                 topology=PATHS, flow_settings=settings, timeout=5)  # fmt: skip
    for name in names:
        router = dms.create_element(Router, name)
        dms.alarms.assign_template(router, ROUTER_ALARMS)
    return suite


def last_run(dms):
    run = dms.automation.runs(SCRIPT_NAME)[-1]
    _SEEN[id(dms)] = run.id
    return run


_SEEN: dict[int, int] = {}  # per DMS, the last run id `finish` answered


def finish(dms):
    """Let every flow end (the virtual clock moves as far as they need); answers the runs started
    since the last call."""
    runs = [run for run in dms.automation.runs(SCRIPT_NAME) if run.id > _SEEN.get(id(dms), 0)]
    for run in runs:
        run.wait(timeout=600)
    if runs:
        _SEEN[id(dms)] = runs[-1].id
    return runs


def assert_all_released(suite):
    for client in suite.clients:
        assert (client.get("Lock Status"), client.get("LockGuidId")) == (UNLOCKED, "")
        assert client.get("Processing IAS Request Busy Status") == NOT_BUSY


def client_used(suite, run):
    return next(client for client in suite.clients if client.name == run.result["client"])


def test_an_alarm_opens_updates_and_closes_its_ticket_upstream(dms, tmp_path, osb):
    suite = make_suite(dms, tmp_path, osb)
    router = dms.element("Router 1")

    router.set("Signal Loss", 40)  # Major
    [alarm] = dms.alarms.active("Router 1")
    [run] = finish(dms)
    assert run.state is ScriptState.SUCCEEDED, run.error
    assert run.result["action"] == "created"
    [ticket] = osb.tickets()
    assert (ticket.ticket_id, ticket.ticket_type, ticket.status, ticket.severity) == ("MO-000001", "MO", "Open", "Major")
    assert (ticket.network_element, ticket.alarm_id, ticket.path_details) == ("Router 1", str(alarm.id), "BRU-01/slot 1/port 1")
    assert dms.alarms.get(alarm.id).properties[TICKET_ID_PROPERTY] == "MO-000001"
    client = client_used(suite, run)
    [search] = client.table("Communication - Response Table").rows()
    assert (search["Network Element"], search["Alarm ID"], search["Result"], search["Response"]) == ("Router 1", str(alarm.id), 1, "0 tickets found: none")
    assert client.table("Searched Tickets").keys() == []
    assert client.table("Ninas Network Path Details").cell("Router 1", "Path Details") == "BRU-01/slot 1/port 1"
    assert client.get("Client Processing Data").startswith("Released by flow ") and client.get("Client Processing Data").endswith("done: created MO-000001")
    assert_all_released(suite)

    router.set("Signal Loss", 75)  # Critical: the severity changed
    [run] = finish(dms)
    assert (run.state, run.result["action"], run.result["ticket_id"]) == (ScriptState.SUCCEEDED, "updated", "MO-000001")
    [ticket] = osb.tickets()
    assert (ticket.status, ticket.severity) == ("Open", "Critical")
    client = client_used(suite, run)
    assert client.table("Searched Tickets").row("MO-000001")["Severity"] == "Major"  # as the flow found it
    assert client.table("Communication - Response Table").rows()[-1]["Response"] == "1 ticket found: MO-000001"

    router.set("Signal Loss", 0)  # cleared
    [run] = finish(dms)
    assert (run.state, run.result["action"], run.result["ticket_id"]) == (ScriptState.SUCCEEDED, "closed", "MO-000001")
    [ticket] = osb.tickets()
    assert ticket.status == "Closed"
    properties = dms.alarms.get(alarm.id).properties
    assert (properties[TICKET_ID_PROPERTY], properties[TICKET_STATUS_PROPERTY]) == ("MO-000001", "Closed")
    assert TICKET_ERROR_PROPERTY not in properties
    assert_all_released(suite)
    assert suite.gateway.get("Failed Requests") == 0


def test_flows_of_several_alarms_run_on_the_clients_at_once_one_ticket_each(dms, tmp_path, osb):
    suite = make_suite(dms, tmp_path, osb, clients=2, routers=6)
    granted = []
    for client in suite.clients:
        client.add_change_listener(
            lambda element, change: granted.append((element.name, json.loads(change.value))) if json.loads(change.value)["granted"] else None,
            ids=(client.protocol.model.resolve("Lock Reply"),),
        )
    for number in range(1, 7):
        dms.element(f"Router {number}").set("Signal Loss", 35)
    for number in range(1, 7):
        dms.element(f"Router {number}").set("Signal Loss", 65)  # each alarm changes before its create is done
    runs = finish(dms)
    assert len(runs) == 12 and all(run.state is ScriptState.SUCCEEDED for run in runs), [run.error for run in runs]
    tickets = osb.tickets()
    assert len(tickets) == 6 and {ticket.severity for ticket in tickets} == {"Critical"}
    assert sorted(ticket.network_element for ticket in tickets) == sorted(PATHS)
    for alarm in dms.alarms.active():
        if alarm.element_name.startswith("Router"):
            ticket = next(ticket for ticket in tickets if ticket.alarm_id == str(alarm.id))
            assert alarm.properties[TICKET_ID_PROPERTY] == ticket.ticket_id
    # A client was never granted to a flow while another held it: grants and releases alternate.
    for client in suite.clients:
        holders = [reply["guid"] for name, reply in granted if name == client.name and reply["action"] == "lock"]
        releases = [reply["guid"] for name, reply in granted if name == client.name and reply["action"] == "release"]
        assert holders == releases
    assert_all_released(suite)


def test_an_alarms_flows_run_in_the_order_of_its_events_so_a_change_during_the_create_updates(dms, dmemu_clock, tmp_path, osb):
    osb.processing_delay = 10  # the create takes a while upstream
    suite = make_suite(dms, tmp_path, osb, clients=3)
    router = dms.element("Router 1")
    router.set("Signal Loss", 40)
    dmemu_clock.advance(2)
    router.set("Signal Loss", 70)  # a free client is there, but this flow waits for the create's
    router.set("Signal Loss", 0)
    opened, changed, cleared = finish(dms)
    assert [run.result["action"] for run in (opened, changed, cleared)] == ["created", "updated", "closed"]
    [ticket] = osb.tickets()
    assert (ticket.status, ticket.severity) == ("Closed", "Critical")
    assert_all_released(suite)


def every(step):
    """Request numbers step, 2 * step, ...: a fault on them strikes the same requests on every run."""
    return set(range(step, 20_000, step))


def test_100_alarms_at_once_on_5_clients_under_faults_and_an_outage_get_one_ticket_each_and_never_a_client_twice(dms, tmp_path, dmemu_clock):
    # A transaction takes 40 s upstream: a create whose answers were lost is still invisible to a search when the flow asks again.
    with OsbService(clock=dmemu_clock.now, processing_delay=40) as osb:
        names = [f"Router {n}" for n in range(1, 101)]
        suite = create_telenet_suite(dms, tmp_path / "suite", service=("127.0.0.1", osb.port), clients=5, monitored=[flow_rule(protocol=Router.name)],
                                     topology={name: f"BRU/{name}" for name in names}, flow_settings=FlowSettings(attempts=8, retry_interval=5, lock_wait_limit=3600),
                                     gateway_parameters={"Result Poll Interval": 10}, timeout=5)  # fmt: skip
        holders: dict[str, list[str]] = {client.name: [""] for client in suite.clients}  # each client's LockGuidId, change by change
        replies: dict[str, list[dict]] = {client.name: [] for client in suite.clients}
        for client in suite.clients:
            model = client.protocol.model
            client.add_change_listener(lambda element, change: holders[element.name].append(change.value), ids=(model.resolve("LockGuidId"),))
            client.add_change_listener(lambda element, change: replies[element.name].append(json.loads(change.value)), ids=(model.resolve("Lock Reply"),))
        for name in names:
            dms.alarms.assign_template(dms.create_element(Router, name), ROUTER_ALARMS)
        create = "CreateTicketRequest"
        faults = (
            Fault(api="osb", kind="lost", operation=create, requests=every(7)),  # done upstream, the answer never comes
            Fault(api="osb", kind="drop", operation=create, requests=every(11)),
            Fault(api="osb", kind="nack", operation=create, requests=every(13)),
            Fault(api="osb", kind="fail", operation=create, requests=every(17)),
            Fault(api="osb", kind="lost", operation="GetTransactionResultRequest", requests=every(19)),
            Fault(api="osb", kind="drop", operation="SearchTicketRequest", requests=every(23)),
            Fault(api="osb", kind="latency", latency=0.01, requests=every(10)),
        )
        osb.faults.add(*faults)
        for name in names:
            dms.element(name).set("Signal Loss", 40)
        alarms = {alarm.element_name: alarm for alarm in dms.alarms.active() if alarm.element_name in names}
        assert len(alarms) == 100 and len(dms.automation.runs(SCRIPT_NAME, ScriptState.RUNNING)) == 100
        dmemu_clock.advance(30)
        osb.faults.add(Fault(api="osb", kind="lost", operation=create))  # from now every create is done but its answer lost...

        def lost_creates():
            return sum(record.fault == "lost" and record.operation == create for record in osb.requests())

        lost_before = lost_creates()
        for _ in range(300):
            if lost_creates() > lost_before:
                break
            dmemu_clock.advance(1)
        assert lost_creates() > lost_before
        osb.stop()  # ...then an outage longer than the Gateway's retries: it gives up on that create
        dmemu_clock.advance(20)
        osb.faults.clear()
        osb.faults.add(*faults)
        osb.start()
        runs = finish(dms)
        # Every flow ended, and well; exactly one ticket per alarm upstream, on its alarm.
        assert len(runs) == 100 and [run.state for run in runs] == [ScriptState.SUCCEEDED] * 100, [run.error for run in runs if run.error]
        assert per_alarm(osb) == {str(alarm.id): 1 for alarm in alarms.values()}
        ticket_of = {ticket.alarm_id: ticket.ticket_id for ticket in osb.tickets()}
        assert all(dms.alarms.get(alarm.id).properties[TICKET_ID_PROPERTY] == ticket_of[str(alarm.id)] for alarm in alarms.values())
        # Zero double grants: a client's holder only ever changes from nobody to one flow and back.
        for name, values in holders.items():
            for before, after in zip(values, values[1:]):
                assert before == "" or after in ("", before), (name, before, after)
            granted = None
            for reply in (reply for reply in replies[name] if reply["granted"]):
                assert (reply["action"], granted) in (("lock", None), ("release", reply["guid"])), (name, reply, granted)
                granted = reply["guid"] if reply["action"] == "lock" else None
        assert sum(len(values) for values in holders.values()) >= 200  # 100 grants and releases at least
        assert_all_released(suite)
        # The faults struck creates, and the outage struck flows and the Gateway.
        struck = {record.fault for record in osb.requests() if record.operation == create}
        assert {"lost", "drop", "nack", "fail"} <= struck
        assert any(record.fault == "latency" for record in osb.requests())
        failures = [entry.message for run in runs for entry in run.logs() if "failed, again in" in entry.message]
        # creates the Gateway gave up on in the outage, asked again with their request key (one of them done upstream)
        assert any("no answer after 4 attempts: connection failed" in message for message in failures)


def test_a_flow_that_fails_releases_its_client_and_leaves_a_trace(dms, tmp_path, osb):
    suite = make_suite(dms, tmp_path, osb)
    osb.stop()  # the ticketing service is down: the search fails
    dms.element("Router 1").set("Signal Loss", 40)
    [alarm] = dms.alarms.active("Router 1")
    [run] = finish(dms)
    assert run.state is ScriptState.FAILED
    assert run.error.startswith("TicketFlowError: search through 'Telenet Ticket Client") and "SerialConnectionError" in run.error
    assert dms.alarms.get(alarm.id).properties[TICKET_ERROR_PROPERTY].startswith("search through")
    assert_all_released(suite)
    used = [client for client in suite.clients if client.table("Communication - Response Table").row_count()]
    [client] = used
    assert "failed: search through" in client.get("Client Processing Data")
    osb.start()
    dms.element("Router 1").set("Signal Loss", 70)  # the next flow of that alarm creates its ticket and clears the error
    [run] = finish(dms)
    assert run.result["action"] == "created"
    assert dms.alarms.get(alarm.id).properties[TICKET_ERROR_PROPERTY] == ""


@pytest.mark.parametrize("kind", ["drop", "lost", "latency", "status", "malformed", "truncated", "nack"])
def test_a_search_that_meets_a_passing_fault_is_made_again(dms, tmp_path, osb, kind):
    if kind == "latency":  # an answer later than the client waits for
        suite = create_telenet_suite(dms, tmp_path / "suite", service=("127.0.0.1", osb.port), clients=2, monitored=["Router 1"],
                                     topology=PATHS, timeout=0.5)  # fmt: skip
        dms.alarms.assign_template(dms.create_element(Router, "Router 1"), ROUTER_ALARMS)
    else:
        suite = make_suite(dms, tmp_path, osb)
    osb.faults.add(Fault(api="osb", kind=kind, operation="SearchTicketRequest", requests={1}, latency=1.0 if kind == "latency" else 0))
    dms.element("Router 1").set("Signal Loss", 40)
    [run] = finish(dms)
    assert (run.state, run.result["action"]) == (ScriptState.SUCCEEDED, "created"), run.error
    searches = client_used(suite, run).table("Communication - Response Table").rows()
    assert [row["Result"] for row in searches] == [0, 1]  # a failure, then the search made again
    expected = {"latency": "SerialTimeoutError", "lost": "SerialConnectionError", "drop": "SerialConnectionError", "nack": "NACK"}
    assert expected.get(kind, "") in searches[0]["Response"]
    assert len(osb.tickets()) == 1
    assert any("attempt 1 failed, again in 10 s: search through" in entry.message for entry in run.logs())


@pytest.mark.parametrize("kind", ["nack", "fail"])
def test_a_refused_or_failed_create_is_decided_again_after_a_new_search(dms, tmp_path, osb, kind):
    make_suite(dms, tmp_path, osb)
    osb.faults.add(Fault(api="osb", kind=kind, operation="CreateTicketRequest", requests={2}))  # after the search
    dms.element("Router 1").set("Signal Loss", 40)
    [run] = finish(dms)
    assert (run.state, run.result["action"]) == (ScriptState.SUCCEEDED, "created"), run.error
    assert len([ticket for ticket in osb.tickets() if ticket.status == "Open"]) == 1
    assert any("attempt 1 failed, again in 10 s: create through" in entry.message for entry in run.logs())


def per_alarm(osb):
    """How many tickets each alarm has upstream."""
    counts: dict[str, int] = {}
    for ticket in osb.tickets():
        counts[ticket.alarm_id] = counts.get(ticket.alarm_id, 0) + 1
    return counts


def test_a_create_whose_answers_were_all_lost_is_asked_again_and_makes_one_ticket(dms, dmemu_clock, tmp_path):
    with OsbService(clock=dmemu_clock.now, processing_delay=30) as osb:
        make_suite(dms, tmp_path, osb, clients=1)
        # Request 1 is the search; 2 to 5 the Gateway's 4 attempts at the create: done upstream, every answer lost.
        osb.faults.add(Fault(api="osb", kind="lost", operation="CreateTicketRequest", requests={2, 3, 4, 5}))
        dms.element("Router 1").set("Signal Loss", 40)
        [alarm] = dms.alarms.active("Router 1")
        [run] = finish(dms)
        assert (run.state, run.result["action"], run.result["ticket_id"]) == (ScriptState.SUCCEEDED, "created", "MO-000001"), run.error
        assert any("attempt 1 failed, again in 10 s: create through" in entry.message and "no answer after 4 attempts" in entry.message for entry in run.logs())
        dmemu_clock.advance(120)
        assert per_alarm(osb) == {str(alarm.id): 1}
        assert len({transaction.request_id for transaction in osb.transactions()}) == 1  # the retry asked for the same one
        assert dms.alarms.get(alarm.id).properties[TICKET_ID_PROPERTY] == "MO-000001"


def test_a_create_whose_result_did_not_come_in_time_is_asked_again_and_makes_one_ticket(dms, dmemu_clock, tmp_path):
    with OsbService(clock=dmemu_clock.now, processing_delay=25) as osb:
        names = ["Router 1"]
        create_telenet_suite(dms, tmp_path / "suite", service=("127.0.0.1", osb.port), clients=1, monitored=names, topology=PATHS,
                             timeout=5, gateway_parameters={"Result Timeout": 10})  # fmt: skip
        dms.alarms.assign_template(dms.create_element(Router, "Router 1"), ROUTER_ALARMS)
        dms.element("Router 1").set("Signal Loss", 40)
        [alarm] = dms.alarms.active("Router 1")
        [run] = finish(dms)
        assert (run.state, run.result["action"], run.result["ticket_id"]) == (ScriptState.SUCCEEDED, "created", "MO-000001"), run.error
        assert any("FAILED: no result within 10 s" in entry.message for entry in run.logs())
        dmemu_clock.advance(120)
        assert per_alarm(osb) == {str(alarm.id): 1}


def test_after_a_failed_create_the_flow_asks_with_a_new_request_key(dms, tmp_path, osb):
    make_suite(dms, tmp_path, osb)
    osb.faults.add(Fault(api="osb", kind="fail", operation="CreateTicketRequest", requests={2}))
    dms.element("Router 1").set("Signal Loss", 40)
    [run] = finish(dms)
    assert (run.state, run.result["action"]) == (ScriptState.SUCCEEDED, "created"), run.error
    failed, done = osb.transactions()
    assert (failed.status, done.status) == ("FAILED", "COMPLETED")
    assert done.request_id == failed.request_id + "-2"


def test_a_flow_gives_up_after_its_attempts_and_says_so(dms, tmp_path, osb):
    make_suite(dms, tmp_path, osb, settings=FlowSettings(attempts=2, retry_interval=1))
    osb.faults.add(Fault(api="osb", kind="nack", operation="SearchTicketRequest"))
    dms.element("Router 1").set("Signal Loss", 40)
    [run] = finish(dms)
    assert run.state is ScriptState.FAILED and run.error.endswith("NACK: simulated refusal of request 2 (attempt 2 of 2)")
    assert [record.operation for record in osb.requests()] == ["SearchTicketRequest", "SearchTicketRequest"]


def test_a_search_the_client_cannot_build_is_neither_sent_nor_made_again(dms, tmp_path, osb):
    make_suite(dms, tmp_path, osb, settings=FlowSettings(ticket_type="XX"))  # no such ticket type
    dms.element("Router 1").set("Signal Loss", 40)
    [run] = finish(dms)
    assert run.state is ScriptState.FAILED and "search through" in run.error and "(attempt" not in run.error
    assert "the field TicketType is 'XX'" in run.error
    assert osb.requests() == []


def test_a_search_the_service_cannot_read_is_not_made_again(dms, tmp_path, osb, monkeypatch):
    from dmemu.elements.telenet import osb_messages, ticket_client

    # What the service calls unreadable (here an operation it does not know) is a SOAP Client Fault.
    monkeypatch.setattr(ticket_client, "search_request", lambda *args: osb_messages.build_request(osb_messages.Operation("ListTickets", ()), {}))
    make_suite(dms, tmp_path, osb)
    dms.element("Router 1").set("Signal Loss", 40)
    [run] = finish(dms)
    assert run.state is ScriptState.FAILED and "search through" in run.error and "(attempt" not in run.error
    assert "HTTP 500 Internal Server Error: SearchTicket: the service answered a SOAP Fault (soapenv:Client)" in run.error
    assert len(osb.requests()) == 1


def test_a_client_restarted_while_its_flow_waits_for_the_gateway_still_passes_the_answer_on(dms, dmemu_clock, tmp_path, osb):
    osb.processing_delay = 20
    suite = make_suite(dms, tmp_path, osb, clients=1)
    dms.element("Router 1").set("Signal Loss", 40)
    run = last_run(dms)
    dmemu_clock.advance(5)
    client = suite.clients[0]
    client.restart()
    assert (client.get("Lock Status"), client.get("Processing IAS Request Busy Status")) == (LOCKED, 1)
    run.wait(timeout=120)
    assert (run.state, run.result["action"], run.result["ticket_id"]) == (ScriptState.SUCCEEDED, "created", "MO-000001"), run.error
    assert len(osb.tickets()) == 1
    assert_all_released(suite)


@pytest.mark.parametrize("stopped", ["client", "gateway", "topology", "heartbeat_receiver"])
def test_an_element_stopped_between_the_ack_and_the_result_loses_nothing_acknowledged(dms, dmemu_clock, tmp_path, osb, stopped):
    osb.processing_delay = 20
    suite = make_suite(dms, tmp_path, osb, clients=1)
    dms.element("Router 1").set("Signal Loss", 40)
    [alarm] = dms.alarms.active("Router 1")
    run = last_run(dms)
    dmemu_clock.advance(5)
    client = suite.clients[0]
    assert json.loads(client.get("Client Command Reply"))["stage"] == "ack" and not run.done  # acknowledged, its result to come
    element = suite.clients[0] if stopped == "client" else getattr(suite, stopped)
    element.stop()
    dmemu_clock.advance(30)  # the result is there upstream meanwhile (and for the Gateway, its poll answered)
    element.start()
    run.wait(timeout=120)
    assert (run.state, run.result["action"], run.result["ticket_id"]) == (ScriptState.SUCCEEDED, "created", "MO-000001"), run.error
    assert dms.alarms.get(alarm.id).properties[TICKET_ID_PROPERTY] == "MO-000001"
    assert per_alarm(osb) == {str(alarm.id): 1}
    assert_all_released(suite)


def test_a_flow_killed_mid_way_leaves_its_lock_to_expire_and_the_client_is_used_again(dms, dmemu_clock, tmp_path, osb):
    osb.processing_delay = 20
    suite = make_suite(dms, tmp_path, osb, clients=1, routers=2)
    client = suite.clients[0]
    client.set("Lock Expiry Time", 60)
    dms.element("Router 1").set("Signal Loss", 40)
    [first_alarm] = dms.alarms.active("Router 1")
    killed = last_run(dms)
    dmemu_clock.advance(5)  # its create acknowledged, its result to come
    killed_guid = client.get("LockGuidId")
    assert killed.kill("killed mid-way by the test") is True
    assert killed.error == "ScriptKilledError: killed mid-way by the test"
    assert client.get("LockGuidId") == killed_guid  # a dead flow does not give its client back
    dms.element("Router 2").set("Signal Loss", 40)  # the next flow waits for the only client
    [second_alarm] = dms.alarms.active("Router 2")
    [run] = finish(dms)
    assert (run.state, run.result["client"], run.result["action"]) == (ScriptState.SUCCEEDED, client.name, "created"), run.error
    assert any(f"the lock of flow {killed_guid} expired" in entry.message for entry in client.logs(LogType.ERROR))
    # The killed flow's create was made upstream; its alarm got no ticket id (its next flow would find the ticket).
    assert per_alarm(osb) == {str(first_alarm.id): 1, str(second_alarm.id): 1}
    assert TICKET_ID_PROPERTY not in dms.alarms.get(first_alarm.id).properties
    assert dms.alarms.get(second_alarm.id).properties[TICKET_ID_PROPERTY] == "MO-000002"
    assert_all_released(suite)


def test_a_forced_unlock_between_commands_makes_the_flows_next_command_fail_not_act_for_the_new_holder(dms, dmemu_clock, tmp_path, osb):
    osb.processing_delay = 60  # the second flow waits for its create when the first one wakes up
    suite = make_suite(dms, tmp_path, osb, clients=1, routers=2, settings=FlowSettings(retry_interval=30))
    client = suite.clients[0]
    osb.faults.add(Fault(api="osb", kind="nack", operation="SearchTicketRequest", requests={1}))
    dms.element("Router 1").set("Signal Loss", 40)  # its search is refused: it sleeps 30 s before the next
    [first_alarm] = dms.alarms.active("Router 1")
    first = last_run(dms)
    first_guid = client.get("LockGuidId")
    dmemu_clock.advance(5)
    client.set("Lock Status", UNLOCKED)  # forced free, as the help page says
    dms.element("Router 2").set("Signal Loss", 40)  # another flow takes the client
    second = dms.automation.runs(SCRIPT_NAME)[-1]
    second_guid = client.get("LockGuidId")
    assert second_guid not in ("", first_guid)
    searches = client.table("Communication - Response Table").row_count()
    first.wait(timeout=60)
    assert first.state is ScriptState.FAILED
    assert first.error == (
        f"TicketFlowError: search through {client.name!r} failed: stale GUID {first_guid}: the lock is held by flow {second_guid}"
    )
    assert dms.alarms.get(first_alarm.id).properties[TICKET_ERROR_PROPERTY].startswith("search through")
    assert client.get("LockGuidId") == second_guid  # the refused flow's release did not free the new holder's client
    assert client.table("Communication - Response Table").row_count() == searches  # nothing searched on its behalf
    second.wait(timeout=120)
    assert (second.state, second.result["action"]) == (ScriptState.SUCCEEDED, "created"), second.error
    assert [ticket.network_element for ticket in osb.tickets()] == ["Router 2"]
    assert_all_released(suite)


def test_a_flow_waits_for_a_client_when_all_are_locked(dms, dmemu_clock, tmp_path, osb):
    suite = make_suite(dms, tmp_path, osb, clients=2)
    for client in suite.clients:
        client.set("Lock Request", lock_message("lock", f"other-{client.name}"))
    dms.element("Router 1").set("Signal Loss", 40)
    run = last_run(dms)
    dmemu_clock.advance(30)
    assert not run.done and osb.tickets() == []
    suite.clients[1].set("Lock Request", lock_message("release", f"other-{suite.clients[1].name}"))
    run.wait(timeout=60)
    assert run.state is ScriptState.SUCCEEDED and run.result["client"] == suite.clients[1].name
    assert suite.clients[0].get("Lock Status") == LOCKED  # still the other flow's


def test_a_release_wakes_one_waiting_flow_not_all_of_them(dms, tmp_path, osb, monkeypatch):
    from dmemu.dms import ScriptContext

    waits = []
    wait_for = ScriptContext.wait_for

    async def counted(self, element, parameter, predicate=None, *, timeout=None):
        if parameter == "Lock Status":
            waits.append(self.run.id)
        return await wait_for(self, element, parameter, predicate, timeout=timeout)

    monkeypatch.setattr(ScriptContext, "wait_for", counted)
    suite = make_suite(dms, tmp_path, osb, clients=1, routers=6, settings=FlowSettings(lock_poll_interval=600))
    granted = []
    suite.clients[0].add_change_listener(lambda element, change: granted.append(json.loads(change.value)),
                                         ids=(suite.clients[0].protocol.model.resolve("Lock Reply"),))  # fmt: skip
    for number in range(1, 7):
        dms.element(f"Router {number}").set("Signal Loss", 40)
    runs = finish(dms)
    assert all(run.state is ScriptState.SUCCEEDED for run in runs)
    flow_order = [reply["guid"] for reply in granted if reply["granted"] and reply["action"] == "lock"]
    assert len(flow_order) == 6
    assert sorted(waits) == [2, 3, 4, 5, 6]  # each waiting flow waited once: woken at its turn only


def test_only_the_head_of_a_line_listens_to_its_client_and_looks_at_every_client_now_and_then(dms, dmemu_clock, tmp_path, osb, monkeypatch):
    from dmemu.dms import ScriptContext

    listening, most_listening, waits = set(), [0], []
    wait_for = ScriptContext.wait_for

    async def counted(self, element, parameter, predicate=None, *, timeout=None):
        if parameter != "Lock Status":
            return await wait_for(self, element, parameter, predicate, timeout=timeout)
        waits.append(self.run.id)
        listening.add(self.run.id)
        most_listening[0] = max(most_listening[0], len(listening))
        try:
            return await wait_for(self, element, parameter, predicate, timeout=timeout)
        finally:
            listening.discard(self.run.id)

    monkeypatch.setattr(ScriptContext, "wait_for", counted)
    suite = make_suite(dms, tmp_path, osb, clients=1, routers=5, settings=FlowSettings(lock_poll_interval=30))
    client = suite.clients[0]
    client.set("Lock Expiry Time", 10_000)
    client.set("Lock Request", lock_message("lock", "other"))
    for number in range(1, 6):
        dms.element(f"Router {number}").set("Signal Loss", 40)
    dmemu_clock.advance(300)
    assert most_listening[0] == 1
    assert set(waits) == {1} and len(waits) <= 300 / 30 + 1  # the head, once per look at every client
    client.set("Lock Request", lock_message("release", "other"))
    runs = finish(dms)
    assert [run.state for run in runs] == [ScriptState.SUCCEEDED] * 5, [run.error for run in runs]
    assert most_listening[0] == 1


@pytest.mark.parametrize("head_leaves", ["gives up", "killed"])
def test_the_flow_behind_a_head_that_leaves_is_woken_by_the_next_release(dms, dmemu_clock, tmp_path, osb, head_leaves):
    suite = make_suite(dms, tmp_path, osb, clients=1, routers=2, settings=FlowSettings(lock_wait_limit=100, lock_poll_interval=600))
    client = suite.clients[0]
    client.set("Lock Expiry Time", 10_000)
    client.set("Lock Request", lock_message("lock", "other"))
    dms.element("Router 1").set("Signal Loss", 40)
    head = last_run(dms)
    dmemu_clock.advance(50)
    dms.element("Router 2").set("Signal Loss", 40)  # waits behind the head
    behind = last_run(dms)
    if head_leaves == "killed":
        head.kill("killed while waiting by the test")
    dmemu_clock.advance(60)  # the head gave up at 100 s
    assert head.state is ScriptState.FAILED and not behind.done
    client.set("Lock Request", lock_message("release", "other"))
    dmemu_clock.advance(1)
    assert client.get("Lock Status") == LOCKED  # taken at the release, not when the flow's own limit comes (150 s)
    behind.wait(timeout=60)
    assert (behind.state, behind.result["action"]) == (ScriptState.SUCCEEDED, "created"), behind.error
    assert_all_released(suite)


@pytest.mark.parametrize("gone", ["deleted", "stopped"])
def test_the_line_of_a_client_deleted_or_stopped_moves_on_to_another_client(dms, dmemu_clock, tmp_path, osb, gone):
    suite = make_suite(dms, tmp_path, osb, clients=2, routers=4, settings=FlowSettings(lock_wait_limit=300, lock_poll_interval=30))
    for client in suite.clients:
        client.set("Lock Expiry Time", 10_000)
        client.set("Lock Request", lock_message("lock", "other"))
    for number in range(1, 5):  # two flows in the line of each client
        dms.element(f"Router {number}").set("Signal Loss", 40)
    started = dmemu_clock.now()
    dmemu_clock.advance(5)
    lost, kept = suite.clients
    if gone == "deleted":
        dms.delete_element(lost.name)
    else:
        lost.stop()
    kept.set("Lock Request", lock_message("release", "other"))
    runs = finish(dms)
    assert [run.state for run in runs] == [ScriptState.SUCCEEDED] * 4, [run.error for run in runs]
    assert {run.result["client"] for run in runs} == {kept.name}
    assert max(run.finished for run in runs) - started < 120  # none left waiting until its limit (300 s)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"attempts": 0}, "FlowSettings.attempts is a whole number from 1 (the first attempt counts), not 0"),
        ({"attempts": 2.5}, "FlowSettings.attempts is a whole number from 1 (the first attempt counts), not 2.5"),
        ({"reply_timeout": 0}, "FlowSettings.reply_timeout is a number of seconds above 0, not 0"),
        ({"gateway_timeout": -1}, "FlowSettings.gateway_timeout is a number of seconds above 0, not -1"),
        ({"lock_poll_interval": float("nan")}, "FlowSettings.lock_poll_interval is a number of seconds above 0, not nan"),
        ({"lock_wait_limit": -5}, "FlowSettings.lock_wait_limit is a number of seconds from 0, not -5"),
        ({"retry_interval": "10"}, "FlowSettings.retry_interval is a number of seconds from 0, not '10'"),
        ({"ticket_type": ""}, "FlowSettings.ticket_type is a non-empty text, not ''"),
        ({"clients": []}, "FlowSettings.clients is empty: a flow needs a Ticket Client (None: all of them)"),
        ({"clients": "Client 1"}, "FlowSettings.clients is a list of Ticket Client element names (or None: all of them), not 'Client 1'"),
        ({"clients": ["Client 1", 2]}, "FlowSettings.clients holds 2, not a Ticket Client element name"),
    ],
)
def test_flow_settings_a_flow_cannot_work_with_are_refused_naming_the_field(settings, message):
    with pytest.raises(ValueError) as raised:
        FlowSettings(**settings)
    assert str(raised.value) == message


def test_flow_settings_at_their_bounds_are_taken():
    settings = FlowSettings(clients=("Client 1",), attempts=1, lock_wait_limit=0, retry_interval=0, reply_timeout=0.5)
    assert (settings.clients, settings.attempts) == (("Client 1",), 1)


def test_a_refused_lock_whose_reply_was_overwritten_does_not_wait_for_the_reply_timeout(dms, dmemu_clock, tmp_path, osb):
    osb.processing_delay = 10_000  # the holder's create stays pending at the Gateway
    suite = make_suite(dms, tmp_path, osb, clients=1, settings=FlowSettings(lock_wait_limit=20, reply_timeout=60))
    client = suite.clients[0]
    client.set("Lock Expiry Time", 10)
    client.set("Lock Request", lock_message("lock", "holder"))
    fields = {"alarm_id": "x", "network_element": "Router 9", "severity": "Major", "path_details": "", "description": ""}
    client.set("Client Command", command_message("holder", "h1", "ticket", operation="create", ticket_type="MO", fields=fields))
    dmemu_clock.advance(15)  # quiet for longer than Lock Expiry Time, but waiting for the Gateway: the client keeps the lock
    assert client.get("Pending Gateway Request") and client.get("LockGuidId") == "holder"

    def overwrite(element, change):  # another lock request answered right after the flow's refusal
        reply = json.loads(change.value)
        if not reply["granted"] and reply["guid"] not in ("holder", "third"):
            element.set("Lock Request", lock_message("lock", "third"), wait=False)

    client.add_change_listener(overwrite, ids=(client.protocol.model.resolve("Lock Reply"),))
    dms.element("Router 1").set("Signal Loss", 40)
    [run] = finish(dms)
    assert run.error == "TicketFlowError: no Ticket Client came free within 20 s (clients: Telenet Ticket Client 1)"
    assert run.finished - run.started < 60  # never waited for an answer already given
    assert client.get("LockGuidId") == "holder"


def test_a_flow_gives_up_when_no_client_comes_free_in_time(dms, tmp_path, osb):
    suite = make_suite(dms, tmp_path, osb, clients=1, settings=FlowSettings(lock_wait_limit=20))
    suite.clients[0].set("Lock Request", lock_message("lock", "other"))
    dms.element("Router 1").set("Signal Loss", 40)
    [alarm] = dms.alarms.active("Router 1")
    [run] = finish(dms)
    assert run.error == "TicketFlowError: no Ticket Client came free within 20 s (clients: Telenet Ticket Client 1)"
    assert dms.alarms.get(alarm.id).properties[TICKET_ERROR_PROPERTY] == "no Ticket Client came free within 20 s (clients: Telenet Ticket Client 1)"
    assert suite.clients[0].get("LockGuidId") == "other"  # another flow's lock is never touched


def test_a_forced_unlock_while_a_flow_waits_for_the_gateway_fails_that_flow_clearly(dms, dmemu_clock, tmp_path, osb):
    osb.processing_delay = 30  # the create's result comes 30 s after its ACK
    suite = make_suite(dms, tmp_path, osb, clients=1)
    dms.element("Router 1").set("Signal Loss", 40)
    run = last_run(dms)
    dmemu_clock.advance(5)
    client = suite.clients[0]
    assert client.get("Processing IAS Request Busy Status") == 1 and client.get("Lock Status") == LOCKED
    client.set("Lock Status", UNLOCKED)  # forced open by a user
    run.wait(timeout=60)
    assert run.state is ScriptState.FAILED
    assert run.error == "TicketFlowError: create through 'Telenet Ticket Client 1' failed: abandoned: the lock was forced open by a user"
    assert_all_released(suite)
    # The ticket the Gateway was creating is still made upstream; the next flow finds and updates it.
    dmemu_clock.advance(40)
    dms.element("Router 1").set("Signal Loss", 70)
    [run] = finish(dms)
    assert (run.result["action"], run.result["ticket_id"]) == ("updated", "MO-000001")
    assert len(osb.tickets()) == 1
