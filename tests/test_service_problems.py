"""SES and TM Forum Service Problem Management end to end: DMS tickets and the simulator's
TMF656 service problems, over loopback, on a virtual clock.

Expected values are written from the TMF656 spec and REFERENCE §3 (what travels where), never
computed with the connectors' own mapping functions.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from dmemu.dms import DataMinerSystem, TicketState
from dmemu.elements.ses_service_problems import SesServiceProblemManagement
from dmemu.elements.tm_forum_service_problems import (
    ORBITAL_NETWORKS,
    CustomerProfile,
    CustomerProfileError,
    TmForumServiceProblemManagement,
    tm_forum_protocol,
)
from dmemu.protocol import BYPASS_PROXY, Connection, InvalidValueError, LogType, Protocol, TableChange, VirtualClock
from dmemu.simulators import Fault, InventorySpec, ProblemActivity, Simulators

LOGIN = ("snow", "s3cret")
SMALL = InventorySpec(services=5, carriers=1, resources=5)
FREQUENCY = 60


@attrs.frozen
class Connector:
    protocol: type[Protocol]
    ticket_type: str
    ses: bool


SES = Connector(SesServiceProblemManagement, "SES Service Problem", ses=True)
TM_FORUM = Connector(TmForumServiceProblemManagement, "Orbital Networks Service Problem", ses=False)


@pytest.fixture(params=[SES, TM_FORUM], ids=["ses", "tm-forum"])
def connector(request: pytest.FixtureRequest) -> Connector:
    return request.param


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def sim(clock: VirtualClock) -> Iterator[Simulators]:
    with Simulators(SMALL, credentials={"tmf656": LOGIN}, now=clock.now) as simulators:
        yield simulators


@pytest.fixture
def dms(tmp_path: Path, clock: VirtualClock) -> Iterator[DataMinerSystem]:
    system = DataMinerSystem(tmp_path / "dms", clock)
    yield system
    system.close()


def create_element(dms: DataMinerSystem, connector: Connector, sim: Simulators, **parameters: Any) -> Any:
    return dms.create_element(
        connector.protocol, "Problems",
        connection=Connection(port=sim.port, bus_address=BYPASS_PROXY),
        parameters={"Username": LOGIN[0], "Password": LOGIN[1], **parameters},
    )  # fmt: skip


def problems(sim: Simulators) -> list[dict[str, Any]]:
    return sim.problems.all()


def problem_of(sim: Simulators, ticket_id: str) -> dict[str, Any]:
    """The one problem carrying `ticket_id` (asserting there is exactly one)."""
    found = [p for p in problems(sim) if any(e.get("id") == ticket_id for e in p.get("externalIdentifier", []))]
    assert len(found) == 1, f"{len(found)} problems carry ticket {ticket_id}"
    return found[0]


def cycle(clock: VirtualClock) -> None:
    clock.advance(FREQUENCY + 1)


def api_requests(sim: Simulators, method: str | None = None) -> list[Any]:
    return [r for r in sim.requests() if r.api == "tmf656" and (method is None or r.method == method)]


# -- set-up, initialisation, licence ----------------------------------------------------------


def test_nothing_goes_on_the_network_until_initialised(dms: DataMinerSystem, sim: Simulators, clock: VirtualClock, connector: Connector) -> None:
    element = dms.create_element(connector.protocol, "Problems", connection=Connection(port=sim.port, bus_address=BYPASS_PROXY))
    dms.tickets.create(connector.ticket_type, {"Description": "waiting"})
    cycle(clock)
    assert api_requests(sim) == []
    assert element.get("Synchronization Status") == "Not initialised: fill in Username, Password on the Configuration page"
    element.set("Username", LOGIN[0])
    element.set("Password", LOGIN[1])
    assert element.get("Password") == "********"  # write-only
    cycle(clock)
    assert len(problems(sim)) == 1 and element.get("Synchronization Status") == "OK"


def test_without_a_ticketing_licence_the_element_says_so_and_syncs_nothing(
    tmp_path: Path, sim: Simulators, clock: VirtualClock, connector: Connector
) -> None:
    with DataMinerSystem(tmp_path, clock, licences=()) as dms:
        element = create_element(dms, connector, sim)
        cycle(clock)
        assert element.get("Synchronization Status") == "No DataMiner Ticketing licence: nothing is synchronised"
        assert api_requests(sim) == [] and dms.tickets.types == []
        assert any("Ticketing licence" in entry.message for entry in element.logs(LogType.ERROR))


def test_the_frequency_has_a_range_and_the_sync_can_be_disabled(
    dms: DataMinerSystem, sim: Simulators, clock: VirtualClock, connector: Connector
) -> None:
    element = create_element(dms, connector, sim, **{"Ticket Synchronization State": 0})
    for bad in (5, 86401, "often"):
        with pytest.raises(InvalidValueError, match="Ticket Synchronization Frequency"):
            element.set("Ticket Synchronization Frequency", bad)
    assert element.get("Ticket Synchronization Frequency") == 60
    dms.tickets.create(connector.ticket_type, {"Description": "held back"})
    cycle(clock)
    assert api_requests(sim) == [] and element.get("Synchronization Status") == "Disabled"
    element.set("Ticket Synchronization State", 1)
    element.set("Synchronize Now", 1)
    assert len(problems(sim)) == 1


def test_the_ticket_type_holds_what_a_service_problem_carries(dms: DataMinerSystem, sim: Simulators, connector: Connector) -> None:
    create_element(dms, connector, sim)
    names = {field.name for field in dms.tickets.get_type(connector.ticket_type).fields}
    assert {
        "Category", "Priority", "Description", "Reason", "Affected Service", "Affected Resource", "Originator",
        "Responsible Party", "Notes", "Status", "Service Problem ID", "Incident Number", "Incident Link",
    } <= names  # fmt: skip


# -- outbound ---------------------------------------------------------------------------------


def test_a_new_ticket_is_created_upstream_once_with_its_fields(
    dms: DataMinerSystem, sim: Simulators, clock: VirtualClock, connector: Connector
) -> None:
    element = create_element(dms, connector, sim)
    ticket = dms.tickets.create(
        connector.ticket_type,
        {"Description": "Carrier lost at teleport Betzdorf", "Priority": "2", "Category": "carrier outage",
         "Reason": "alarm Carrier Lock = Unlocked", "Affected Service": "SVC-1, SVC-2", "Affected Resource": "RES-9"},
    )  # fmt: skip
    row = element.table("Managed Tickets").row(ticket.id)
    assert row["Creation Status"] == 0  # None: waiting for the next cycle
    cycle(clock)
    problem = problem_of(sim, ticket.id)
    assert (problem["description"], problem["priority"], problem["category"], problem["reason"]) == (
        "Carrier lost at teleport Betzdorf", 2, "carrier outage", "alarm Carrier Lock = Unlocked"
    )
    assert [s["id"] for s in problem["affectedService"]] == ["SVC-1", "SVC-2"]
    assert [r["id"] for r in problem["affectedResource"]] == ["RES-9"]
    assert problem["originatorParty"]["name"] == "DataMiner" and problem["originatingSystem"] == "dataminer"
    row = element.table("Managed Tickets").row(ticket.id)
    assert (row["Service Problem ID"], row["Creation Status"], row["Upstream Status"]) == (problem["id"], 2, "acknowledged")
    fields = dms.tickets.get(ticket.id).fields
    assert (fields["Service Problem ID"], fields["Status"]) == (problem["id"], "acknowledged")
    if connector.ses:  # ServiceNow's incident number and link
        incident = next(e["id"] for e in problem["externalIdentifier"] if e["externalIdentifierType"] == "incidentNumber")
        assert incident.startswith("INC") and row["Incident Number"] == incident == fields["Incident Number"]
        assert row["Incident Link"].endswith(incident)
    posts = api_requests(sim, "POST")
    cycle(clock)
    cycle(clock)
    assert api_requests(sim, "POST") == posts and len(problems(sim)) == 1  # created once
    assert api_requests(sim, "PATCH") == []  # the problem id written back is no change to send


def test_a_create_marks_its_row_buffered_and_writes_its_baseline_once_with_the_outcome(
    dms: DataMinerSystem, sim: Simulators, clock: VirtualClock, connector: Connector
) -> None:
    element = create_element(dms, connector, sim)
    ticket = dms.tickets.create(connector.ticket_type, {"Description": "carrier unlocked"})
    written: list[tuple[int, str]] = []  # (table id, creation status then) per write of the ticket's rows

    def heard(source: Any, change: Any) -> None:
        if isinstance(change, TableChange) and change.keys and ticket.id in change.keys:
            written.append((change.table, source.table("Managed Tickets").row(ticket.id)["Creation Status"]))

    element.add_change_listener(heard, ids=(1000, 1100))
    cycle(clock)
    # Buffered before the POST; the baseline, unchanged until the answer, is written once with it.
    assert written == [(1000, 1), (1000, 2), (1100, 2)]
    baseline = element.table("Sync Baseline").row(ticket.id)
    assert json.loads(baseline["Agreed Fields"])["Description"] == "carrier unlocked" and baseline["Agreed Status"] == "acknowledged"


def test_creates_go_five_at_a_time_and_every_ticket_gets_one_problem(
    dms: DataMinerSystem, sim: Simulators, clock: VirtualClock, connector: Connector
) -> None:
    element = create_element(dms, connector, sim)
    created = [dms.tickets.create(connector.ticket_type, {"Description": f"problem {n}"}) for n in range(23)]
    cycle(clock)
    assert element.get("Tickets Created Upstream") == 23
    for ticket in created:
        problem_of(sim, ticket.id)
    assert len(problems(sim)) == 23


def test_a_change_is_merge_patched_and_a_resolve_or_close_resolves_the_problem(
    dms: DataMinerSystem, sim: Simulators, clock: VirtualClock, connector: Connector
) -> None:
    element = create_element(dms, connector, sim)
    first = dms.tickets.create(connector.ticket_type, {"Description": "one"})
    second = dms.tickets.create(connector.ticket_type, {"Description": "two"})
    cycle(clock)
    dms.tickets.update(first.id, {"Description": "one, more precisely", "Responsible Party": "NOC Tier 2"}, state="In Progress")
    cycle(clock)
    patches = api_requests(sim, "PATCH")
    assert len(patches) == 1 and patches[0].headers["Content-Type"] == "application/merge-patch+json"
    assert json.loads(patches[0].body) == {
        "description": "one, more precisely", "responsibleParty": {"id": "NOC Tier 2", "name": "NOC Tier 2", "@referredType": "Organization"},
        "status": "inProgress",
    }  # fmt: skip
    dms.tickets.update(first.id, state="Resolved")
    dms.tickets.update(second.id, state="Closed")
    cycle(clock)
    assert problem_of(sim, first.id)["status"] == problem_of(sim, second.id)["status"] == "resolved"
    assert element.get("Tickets Closed Upstream") == 2
    assert dms.tickets.get(second.id).state is TicketState.CLOSED


# -- inbound ----------------------------------------------------------------------------------


def test_upstream_changes_reach_the_ticket_and_are_not_sent_back(
    dms: DataMinerSystem, sim: Simulators, clock: VirtualClock, connector: Connector
) -> None:
    element = create_element(dms, connector, sim)
    ticket = dms.tickets.create(connector.ticket_type, {"Description": "fibre cut"})
    cycle(clock)
    problem = problem_of(sim, ticket.id)
    note = {"author": "jane.operator", "date": "2026-01-01T00:01:30Z", "text": "crew dispatched"}
    sim.problems.patch(problem["id"], {"status": "inProgress", "priority": 1, "note": [note]})
    patches = len(api_requests(sim, "PATCH"))
    cycle(clock)
    now = dms.tickets.get(ticket.id)
    assert now.state is TicketState.IN_PROGRESS
    assert (now.fields["Priority"], now.fields["Status"], now.fields["Notes"]) == ("1", "inProgress", [note])
    cycle(clock)
    assert len(api_requests(sim, "PATCH")) == patches  # no echo of what came from upstream
    sim.problems.patch(problem["id"], {"status": "resolved"})
    cycle(clock)
    assert dms.tickets.get(ticket.id).state is TicketState.RESOLVED
    sim.problems.patch(problem["id"], {"status": "closed"})
    cycle(clock)
    assert dms.tickets.get(ticket.id).state is TicketState.CLOSED
    row = element.table("Managed Tickets").row(ticket.id)
    assert (row["DataMiner State"], row["Upstream Status"]) == ("Closed", "closed")


def test_the_poll_asks_for_changes_since_the_watermark_with_greater_or_equal(
    dms: DataMinerSystem, sim: Simulators, clock: VirtualClock, connector: Connector
) -> None:
    create_element(dms, connector, sim)
    ticket = dms.tickets.create(connector.ticket_type, {"Description": "watermark"})
    cycle(clock)
    problem_of(sim, ticket.id)
    cycle(clock)  # polls from the start: the watermark comes from what a poll brought
    cycle(clock)
    last_get = api_requests(sim, "GET")[-1]
    stamp = problem_of(sim, ticket.id)["lastUpdate"][:19]  # second precision
    if connector.ses:
        assert last_get.query["sysparm_query"].split("^") == [
            "u_source=dataminer", f"sys_updated_on>={stamp.replace('T', ' ')}", "ORDERBYsys_updated_on"
        ]
    else:
        assert last_get.query["lastUpdate.gte"] == stamp + "Z"


def test_records_of_the_watermarks_own_second_are_never_skipped(
    dms: DataMinerSystem, sim: Simulators, clock: VirtualClock, connector: Connector
) -> None:
    element = create_element(dms, connector, sim)
    first = dms.tickets.create(connector.ticket_type, {"Description": "first"})
    second = dms.tickets.create(connector.ticket_type, {"Description": "second"})
    cycle(clock)
    clock.advance(0.2)
    sim.problems.patch(problem_of(sim, first.id)["id"], {"priority": 3})
    element.set("Synchronize Now", 1)  # the watermark is now this very second
    clock.advance(0.3)  # still the same second
    sim.problems.patch(problem_of(sim, second.id)["id"], {"priority": 4})
    element.set("Synchronize Now", 1)
    assert dms.tickets.get(first.id).fields["Priority"] == "3"
    assert dms.tickets.get(second.id).fields["Priority"] == "4"


def test_when_both_sides_changed_a_field_its_owner_wins(
    dms: DataMinerSystem, sim: Simulators, clock: VirtualClock, connector: Connector
) -> None:
    create_element(dms, connector, sim)
    ticket = dms.tickets.create(connector.ticket_type, {"Description": "as detected", "Priority": "5"})
    cycle(clock)
    problem_id = problem_of(sim, ticket.id)["id"]
    mine = {"author": "DataMiner", "date": "2026-01-01T00:02:00Z", "text": "alarm cleared once"}
    theirs = {"author": "jane.operator", "date": "2026-01-01T00:02:10Z", "text": "customer called"}
    sim.problems.patch(problem_id, {"description": "as typed in ServiceNow", "priority": 2, "note": [theirs]})
    dms.tickets.update(ticket.id, {"Description": "as DataMiner knows it", "Priority": "4", "Notes": [mine]})
    cycle(clock)
    after, problem = dms.tickets.get(ticket.id), problem_of(sim, ticket.id)
    assert after.fields["Description"] == problem["description"] == "as DataMiner knows it"  # DataMiner owns it
    assert after.fields["Priority"] == "2" and problem["priority"] == 2  # ServiceNow owns it
    assert after.fields["Notes"] == sorted([mine, theirs], key=lambda n: n["date"])  # merged
    assert sorted(problem["note"], key=lambda n: n["date"]) == after.fields["Notes"]


def test_a_dms_resolution_wins_over_an_upstream_working_state(
    dms: DataMinerSystem, sim: Simulators, clock: VirtualClock, connector: Connector
) -> None:
    create_element(dms, connector, sim)
    ticket = dms.tickets.create(connector.ticket_type, {"Description": "cleared meanwhile"})
    cycle(clock)
    sim.problems.patch(problem_of(sim, ticket.id)["id"], {"status": "held"})
    dms.tickets.update(ticket.id, state="Resolved")
    cycle(clock)
    assert dms.tickets.get(ticket.id).state is TicketState.RESOLVED
    assert problem_of(sim, ticket.id)["status"] == "resolved"


def test_a_problem_reopened_upstream_reopens_the_ticket_dataminer_closed(
    dms: DataMinerSystem, sim: Simulators, clock: VirtualClock, connector: Connector
) -> None:
    create_element(dms, connector, sim)
    ticket = dms.tickets.create(connector.ticket_type, {"Description": "came back"})
    cycle(clock)
    dms.tickets.update(ticket.id, state="Closed")
    cycle(clock)
    assert problem_of(sim, ticket.id)["status"] == "resolved"
    sim.problems.patch(problem_of(sim, ticket.id)["id"], {"status": "inProgress"})  # an operator reopens it
    cycle(clock)
    assert dms.tickets.get(ticket.id).state is TicketState.IN_PROGRESS


# -- faults: no duplicates, nothing lost ----------------------------------------------------


FAULTS = {  # request 1 is the start-up poll, 2 the next cycle's poll, 3 to 8 its creates
    "lost": Fault(api="tmf656", kind="lost", method="POST", requests={3, 5}),
    "drop": Fault(api="tmf656", kind="drop", method="POST", requests={3, 5}),
    "500": Fault(api="tmf656", status=500, method="POST", requests={3, 5}),
    "429": Fault(api="tmf656", status=429, retry_after=30, method="POST", requests={3}),
}


@pytest.mark.parametrize("fault", list(FAULTS), ids=list(FAULTS))
def test_a_failed_create_never_makes_a_second_problem(
    dms: DataMinerSystem, sim: Simulators, clock: VirtualClock, connector: Connector, fault: str
) -> None:
    element = create_element(dms, connector, sim)
    sim.faults.add(FAULTS[fault])
    created = [dms.tickets.create(connector.ticket_type, {"Description": f"problem {n}"}) for n in range(6)]
    for _ in range(4):
        cycle(clock)
    counts = Counter(e["id"] for p in problems(sim) for e in p.get("externalIdentifier", []) if e["externalIdentifierType"] == "DataMinerTicketId")
    assert counts == Counter({ticket.id: 1 for ticket in created})
    assert all(row["Creation Status"] == 2 for row in element.table("Managed Tickets").rows())
    if fault == "429":
        assert any(r.status == 429 for r in api_requests(sim, "POST"))


def test_a_create_whose_answer_was_lost_is_looked_up_even_when_the_poll_fails(
    dms: DataMinerSystem, sim: Simulators, clock: VirtualClock, connector: Connector
) -> None:
    create_element(dms, connector, sim)
    sim.faults.add(Fault(api="tmf656", kind="lost", method="POST", requests={3}))
    ticket = dms.tickets.create(connector.ticket_type, {"Description": "lost answer"})
    cycle(clock)
    assert len(problems(sim)) == 1  # created, though its answer never came
    # The polls fail from now on, so only a look-up by the ticket id can find it again.
    sim.faults.add(Fault(api="tmf656", status=503, method="GET", query={"limit": "100"}))
    cycle(clock)
    problem_of(sim, ticket.id)
    assert len(problems(sim)) == 1


def test_after_a_429_nothing_is_sent_until_its_retry_after_has_passed(
    dms: DataMinerSystem, sim: Simulators, clock: VirtualClock, connector: Connector
) -> None:
    element = create_element(dms, connector, sim)
    sim.faults.add(Fault(api="tmf656", status=429, retry_after=300, method="POST", requests={3}))
    ticket = dms.tickets.create(connector.ticket_type, {"Description": "rate limited"})
    cycle(clock)
    refused_at = element.get("Last Synchronization Cycle")  # the virtual clock stands still within a cycle
    assert element.get("Retry Not Before") == refused_at + 300 and element.get("API Communication Status") == 7  # Rate Limited
    sent = len(api_requests(sim))
    element.set("Synchronize Now", 1)
    clock.advance(240)
    assert len(api_requests(sim)) == sent and problems(sim) == []
    clock.advance(120)
    problem_of(sim, ticket.id)


def test_a_429_among_parallel_creates_holds_every_request_for_its_retry_after(
    dms: DataMinerSystem, sim: Simulators, clock: VirtualClock, connector: Connector
) -> None:
    """The creates still waiting when one is refused are "not sent"; they must not bring the
    time to wait back to now (they used to, leaving Retry Not Before at the cycle's time)."""
    element = create_element(dms, connector, sim)
    sim.faults.add(Fault(api="tmf656", status=429, retry_after=300, method="POST", requests={3}))
    tickets = [dms.tickets.create(connector.ticket_type, {"Description": f"rate limited {n}"}) for n in range(12)]
    cycle(clock)
    refused_at = element.get("Last Synchronization Cycle")
    assert element.get("Retry Not Before") == refused_at + 300
    assert len(problems(sim)) < len(tickets)  # the refusal stopped the cycle's creates
    sent = len(api_requests(sim))
    clock.advance(240)
    assert len(api_requests(sim)) == sent  # nothing before the Retry-After has passed
    clock.advance(120)
    for ticket in tickets:
        problem_of(sim, ticket.id)


def test_a_timeout_on_create_never_makes_a_second_problem(
    dms: DataMinerSystem, sim: Simulators, clock: VirtualClock, connector: Connector
) -> None:
    element = create_element(dms, connector, sim)
    element.http.timeout = 0.5
    sim.faults.add(Fault(api="tmf656", kind="latency", latency=1.0, method="POST", requests={3}))
    ticket = dms.tickets.create(connector.ticket_type, {"Description": "slow server"})
    cycle(clock)
    assert element.get("API Communication Status") == 3  # Timeout
    cycle(clock)
    problem_of(sim, ticket.id)
    assert len(problems(sim)) == 1


def test_buffered_tickets_survive_a_restart_and_are_looked_up_first(
    tmp_path: Path, sim: Simulators, clock: VirtualClock, connector: Connector
) -> None:
    state = tmp_path / "dms"
    with DataMinerSystem(state, clock) as dms:
        element = create_element(dms, connector, sim)
        sim.faults.add(Fault(api="tmf656", kind="lost", method="POST"))  # every create's answer is lost
        ticket = dms.tickets.create(connector.ticket_type, {"Description": "across a restart"})
        cycle(clock)
        assert element.table("Managed Tickets").row(ticket.id)["Creation Status"] == 0
    sim.faults.clear()
    with DataMinerSystem(state, clock) as dms:
        cycle(clock)
        row = dms.element("Problems").table("Managed Tickets").row(ticket.id)
        assert row["Creation Status"] == 2 and row["Service Problem ID"] == problem_of(sim, ticket.id)["id"]
        assert len(problems(sim)) == 1


def test_an_outage_ends_converged(dms: DataMinerSystem, sim: Simulators, clock: VirtualClock, connector: Connector) -> None:
    element = create_element(dms, connector, sim)
    before = [dms.tickets.create(connector.ticket_type, {"Description": f"before {n}"}) for n in range(3)]
    cycle(clock)
    sim.stop()
    during = [dms.tickets.create(connector.ticket_type, {"Description": f"during {n}"}) for n in range(3)]
    dms.tickets.update(before[0].id, state="Resolved")
    cycle(clock)
    assert element.get("API Communication Status") == 4  # Connection Failed
    assert all(element.table("Managed Tickets").row(t.id)["Creation Status"] == 0 for t in during)
    sim.start()
    cycle(clock)
    cycle(clock)
    for ticket in [*before, *during]:
        problem = problem_of(sim, ticket.id)
        state = dms.tickets.get(ticket.id).state.value
        assert {"Resolved": "resolved", "New": "acknowledged"}[state] == problem["status"]
    assert len(problems(sim)) == 6


def test_a_day_of_servicenow_activity_ends_converged_with_no_duplicates(tmp_path: Path, connector: Connector) -> None:
    clock = VirtualClock()
    activity = ProblemActivity(acknowledge=3, progress=2, note=3, priority=2, resolve=1, close=1, create=1, bursts=1, seed=7)
    with Simulators(SMALL, credentials={"tmf656": LOGIN}, now=clock.now, activity=activity) as sim, \
            DataMinerSystem(tmp_path, clock) as dms:  # fmt: skip
        element = create_element(dms, connector, sim, **{"Ticket Synchronization Frequency": 600})
        for hour in range(24):
            if hour % 3 == 0:
                dms.tickets.create(connector.ticket_type, {"Description": f"alarm at hour {hour}"})
            clock.advance(3600)
        element.set("Synchronize Now", 1)  # the last of the day's changes come down; nothing new is due upstream in between
        rows = element.table("Managed Tickets").rows()
        ours = [p for p in problems(sim) if p.get("originatingSystem") == "dataminer"]
        assert len(ours) == 8 and all(row["Creation Status"] == 2 for row in rows)
        counts = Counter(e["id"] for p in problems(sim) for e in p.get("externalIdentifier", []) if e["externalIdentifierType"] == "DataMinerTicketId")
        assert set(counts.values()) == {1}
        synced = {row["Service Problem ID"]: row["DataMiner Ticket ID"] for row in rows}
        for problem in problems(sim):
            if problem["id"] not in synced:
                assert problem.get("originatingSystem") == "servicenow" and connector.ses  # only SES leaves them alone
                continue
            ticket = dms.tickets.get(synced[problem["id"]])
            state_of = {"acknowledged": {"New", "Assigned"}, "inProgress": {"In Progress"}, "pending": {"On Hold"}, "held": {"On Hold"},
                        "resolved": {"Resolved", "Closed"}, "closed": {"Closed"}, "cancelled": {"Closed"}, "rejected": {"Closed"}}
            assert ticket.state.value in state_of[problem["status"]], (problem["id"], problem["status"], ticket.state)
            assert ticket.fields["Priority"] == str(problem["priority"])
            assert sorted((n["date"], n["author"], n["text"]) for n in ticket.fields.get("Notes") or []) == sorted(
                (n["date"], n["author"], n["text"]) for n in problem.get("note", [])
            )


# -- TM Forum branch: imports and custom attributes -------------------------------------------


def snow_user_problem(**extra: Any) -> dict[str, Any]:
    return {
        "category": "customer complaint", "priority": 3, "description": "slow internet on vessel Aurora",
        "reason": "customer call", "originatorParty": {"id": "jane", "name": "jane.operator", "@referredType": "Individual"},
        **extra,
    }  # fmt: skip


def test_tm_forum_imports_problems_servicenow_users_create_and_ses_does_not(
    dms: DataMinerSystem, sim: Simulators, clock: VirtualClock, connector: Connector
) -> None:
    element = create_element(dms, connector, sim)
    upstream = sim.problems.create(snow_user_problem(originatingSystem="servicenow"))
    cycle(clock)
    imported = dms.tickets.query(type=connector.ticket_type)
    if connector.ses:
        assert imported == [] and element.get("Problems Imported") == 0
        return
    assert len(imported) == 1 and element.get("Problems Imported") == 1
    ticket = imported[0]
    assert (ticket.fields["Description"], ticket.fields["Priority"], ticket.fields["Originator"]) == (
        "slow internet on vessel Aurora", "3", "jane.operator"
    )
    assert element.table("Managed Tickets").row(ticket.id)["Service Problem ID"] == upstream["id"]
    cycle(clock)
    assert len(dms.tickets.query(type=connector.ticket_type)) == 1 and len(problems(sim)) == 1  # not sent back as new


def test_custom_attributes_round_trip_as_characteristics_and_extensions(dms: DataMinerSystem, sim: Simulators, clock: VirtualClock) -> None:
    element = create_element(dms, TM_FORUM, sim)
    ticket = dms.tickets.create(
        TM_FORUM.ticket_type,
        {"Description": "rain fade", "Site Category": "gold", "SLA Minutes": 240, "Beam": "B7", "Outage Start": "2026-01-01T00:00:30Z"},
    )
    cycle(clock)
    problem = problem_of(sim, ticket.id)
    assert sorted((c["name"], c["value"]) for c in problem["characteristic"]) == [("siteCategory", "gold"), ("slaMinutes", 240)]
    assert (problem["beamName"], problem["outageStart"], problem["@type"]) == ("B7", "2026-01-01T00:00:30.000Z", "OrbitalServiceProblem")
    sim.problems.patch(problem["id"], {"characteristic": [{"name": "siteCategory", "value": "silver", "valueType": "string"},
                                                          {"name": "slaMinutes", "value": 60, "valueType": "number"}]})
    cycle(clock)
    fields = dms.tickets.get(ticket.id).fields
    assert (fields["Site Category"], fields["SLA Minutes"]) == ("silver", 60)
    row = element.table("Managed Tickets").row(ticket.id)
    assert (row["Site Category"], row["SLA Minutes"], row["Beam"]) == ("silver", 60, "B7")
    dms.tickets.update(ticket.id, {"Beam": "B9", "SLA Minutes": 30})  # changed in DataMiner: patched upstream
    cycle(clock)
    problem = problem_of(sim, ticket.id)
    assert problem["beamName"] == "B9" and sorted((c["name"], c["value"]) for c in problem["characteristic"]) == [
        ("siteCategory", "silver"), ("slaMinutes", 30)
    ]
    assert element.table("Managed Tickets").row(ticket.id)["Last Error"] == ""


def test_a_bad_upstream_custom_value_is_shown_on_its_row_and_the_ticket_keeps_its_last_good_one(
    dms: DataMinerSystem, sim: Simulators, clock: VirtualClock
) -> None:
    element = create_element(dms, TM_FORUM, sim)
    good = dms.tickets.create(TM_FORUM.ticket_type, {"Description": "good", "Site Category": "gold"})
    other = dms.tickets.create(TM_FORUM.ticket_type, {"Description": "other"})
    cycle(clock)
    sim.problems.patch(problem_of(sim, good.id)["id"], {"priority": 2, "characteristic": [{"name": "siteCategory", "value": "platinum", "valueType": "string"}]})
    sim.problems.patch(problem_of(sim, other.id)["id"], {"priority": 1})
    cycle(clock)
    fields = dms.tickets.get(good.id).fields
    assert (fields["Site Category"], fields["Priority"]) == ("gold", "2")  # the rest of the record still applied
    assert "siteCategory 'platinum' is not one of gold, silver, bronze" in element.table("Managed Tickets").row(good.id)["Last Error"]
    assert dms.tickets.get(other.id).fields["Priority"] == "1"  # the rest of the cycle went on
    assert any("platinum" in entry.message for entry in element.logs(LogType.ERROR))


def test_the_example_profile_loads_from_python_and_from_its_json_file(tmp_path: Path) -> None:
    path = tmp_path / "profile.json"
    path.write_text(json.dumps({
        "customer": "Orbital Networks", "ticket_type": "Orbital Networks Service Problem",
        "attributes": [
            {"name": "siteCategory", "type": "enum", "values": ["gold", "silver", "bronze"], "travels": "characteristic", "field": "Site Category"},
            {"name": "slaMinutes", "type": "number", "field": "SLA Minutes"},
            {"name": "beamName", "type": "string", "travels": "extension", "at_type": "OrbitalServiceProblem", "field": "Beam", "owner": "dataminer"},
            {"name": "outageStart", "type": "date", "travels": "extension", "at_type": "OrbitalServiceProblem", "field": "Outage Start", "owner": "dataminer"},
        ],
    }))  # fmt: skip
    assert CustomerProfile.load(path) == ORBITAL_NETWORKS


@pytest.mark.parametrize(
    ("attribute", "message"),
    [
        ({"name": "tier", "type": "colour"}, "attribute 'tier': type 'colour' is not one of string, number, enum, date"),
        ({"name": "tier", "type": "enum"}, "attribute 'tier': an enum needs 'values'"),
        ({"name": "tier", "type": "string", "travels": "extension"}, "attribute 'tier': an extension attribute needs 'at_type'"),
        ({"name": "tier", "type": "string", "field": "Priority"}, "attribute 'tier': field 'Priority' is a standard field"),
        ({"name": "tier", "type": "string", "owner": "nobody"}, "attribute 'tier': owner 'nobody' is not one of"),
        ({"name": "tier", "type": "string", "colour": "red"}, "attribute 'tier': unknown keys ['colour']"),
        ({"name": "9lives", "type": "string"}, "attribute 1: 'name' '9lives' must be an identifier"),
    ],
)
def test_a_wrong_profile_is_refused_naming_the_attribute(attribute: dict[str, Any], message: str) -> None:
    with pytest.raises(CustomerProfileError, match=message.replace("(", r"\(").replace("[", r"\[")):
        CustomerProfile.from_dict({"customer": "Broken Sat", "attributes": [attribute]})


def test_a_profile_changed_across_a_restart_follows_the_ticket_type_rules(tmp_path: Path, sim: Simulators, clock: VirtualClock) -> None:
    state = tmp_path / "dms"

    def profile(tier_kind: str, *more: dict[str, Any]) -> type[Protocol]:
        attributes = [{"name": "tier", "type": tier_kind, **({"values": ["a", "b"]} if tier_kind == "enum" else {})}, *more]
        return tm_forum_protocol(CustomerProfile.from_dict({"customer": "Changing Sat", "attributes": attributes}))

    first = profile("string")
    with DataMinerSystem(state, clock) as dms:
        dms.create_element(first, "Problems", connection=Connection(port=sim.port, bus_address=BYPASS_PROXY),
                           parameters={"Username": LOGIN[0], "Password": LOGIN[1]})  # fmt: skip
        dms.tickets.create("TM Forum Service Problem", {"Description": "kept", "tier": "a"})
    added = profile("string", {"name": "region", "type": "string"})  # a field added: compatible
    with DataMinerSystem(state, clock) as dms:
        assert dms.element("Problems").get("Ticket Type Status") == "OK"
        assert "region" in {field.name for field in dms.tickets.get_type("TM Forum Service Problem").fields}
    assert added is not first
    profile("number")  # the kind of a field changed: refused
    with DataMinerSystem(state, clock) as dms:
        element = dms.element("Problems")
        assert element.get("Synchronization Status").startswith("Ticket type refused:")
        assert "tier" in element.get("Ticket Type Status")
        cycle(clock)
        assert element.get("Synchronization Status").startswith("Ticket type refused:")


KILLED_CHILD = """
import sys
from dmemu.dms import DataMinerSystem
from dmemu.elements.ses_service_problems import SesServiceProblemManagement
from dmemu.protocol import BYPASS_PROXY, Connection, VirtualClock

state, port = sys.argv[1], int(sys.argv[2])
dms = DataMinerSystem(state, VirtualClock())
element = dms.create_element(
    SesServiceProblemManagement, "Problems", connection=Connection(port=port, bus_address=BYPASS_PROXY),
    parameters={"Username": "snow", "Password": "s3cret"},
)
tickets = [dms.tickets.create("SES Service Problem", {"Description": f"problem {n}"}) for n in range(20)]
dms.flush()
print("ready", flush=True)
element.set("Synchronize Now", 1)  # killed in the middle of its creates
print("finished", flush=True)
"""


def test_a_process_killed_mid_cycle_ends_converged_without_duplicates(tmp_path: Path) -> None:
    state = tmp_path / "dms"
    with Simulators(SMALL, credentials={"tmf656": LOGIN}) as sim:
        sim.faults.add(Fault(api="tmf656", kind="latency", latency=0.3, method="POST"))  # a slow ServiceNow
        child = subprocess.Popen([sys.executable, "-c", KILLED_CHILD, str(state), str(sim.port)], stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None and child.stdout.readline() == "ready\n"
            deadline = time.monotonic() + 60
            while len(api_requests(sim, "POST")) < 6:  # some creates answered, others in flight
                assert time.monotonic() < deadline and child.poll() is None, "the child never got to its creates"
                time.sleep(0.01)
        finally:
            child.kill()
            child.wait()
        sim.faults.clear()
        created_before_restart = len(problems(sim))
        assert 0 < created_before_restart < 20
        # The polls fail after the restart: only looking each ticket up before creating it keeps
        # the ones the killed process sent from being created twice.
        sim.faults.add(Fault(api="tmf656", status=503, method="GET", query={"limit": "100"}))
        with DataMinerSystem(state, VirtualClock()) as dms:
            element = dms.element("Problems")
            element.set("Synchronize Now", 1)
            assert len(problems(sim)) == 20
            sim.faults.clear()
            element.set("Synchronize Now", 1)
            tickets = dms.tickets.query(type="SES Service Problem")
            assert len(tickets) == 20
            for ticket in tickets:
                problem_of(sim, ticket.id)  # exactly one each
            assert all(row["Creation Status"] == 2 for row in element.table("Managed Tickets").rows())
        assert len(problems(sim)) == 20
