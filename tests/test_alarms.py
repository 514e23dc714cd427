"""Alarms: templates checked against the protocol, monitoring after each change, per-row cells,
properties, queries, subscriptions, element lifecycle and state kept across a DMS restart."""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import threading

import attrs
import pytest

from dmemu.dms import (
    AlarmError,
    AlarmEvent,
    AlarmEventKind,
    AlarmRecord,
    AlarmRule,
    AlarmTemplate,
    AlarmTemplateError,
    DataMinerSystem,
    DiscreteSeverities,
    Severity,
    Thresholds,
    TicketField,
    TicketType,
    UnknownAlarmError,
)
from dmemu.dms import alarms as alarms_module
from dmemu.protocol import (
    Column,
    Discrete,
    ElementState,
    LogType,
    Number,
    Parameter,
    Protocol,
    QAction,
    QActionProtocol,
    SetStatus,
    StateFileError,
    String,
    Table,
    VirtualClock,
    expect,
)

WARNING, MINOR, MAJOR, CRITICAL, NORMAL = (
    Severity.WARNING,
    Severity.MINOR,
    Severity.MAJOR,
    Severity.CRITICAL,
    Severity.NORMAL,
)

TAGGED: list[SetStatus] = []


def fill_ports(protocol: QActionProtocol) -> None:
    protocol.fill_array("Ports", json.loads(protocol.get_parameter("Ports Input")))


def delete_port(protocol: QActionProtocol) -> None:
    protocol.delete_row("Ports", protocol.get_parameter("Delete Port"))


def tag_alarms(protocol: QActionProtocol) -> None:
    """What SES does once a ticket exists: the ticket's ids go on the alarm as properties."""
    ticket = protocol.get_parameter("Ticket")
    for alarm in protocol.active_alarms(severity=MAJOR):
        TAGGED.append(protocol.set_alarm_property(alarm.id, "SNOW Ticket", ticket))
    TAGGED.append(protocol.set_alarm_property(123456, "SNOW Ticket", ticket))  # no such alarm


class Switch(Protocol):
    name = "Alarm Test Switch"
    parameters = (
        Parameter(10, "CPU Load", type=Number(0, 100, "%"), write=True, save=True),
        Parameter(11, "Temperature", type=Number(-50, 150), write=True),
        Parameter(12, "Link Status", type=Discrete({0: "Down", 1: "Up", 2: "Degraded"}), write=True, save=True),
        Parameter(13, "Mode", type=String(), write=True),
        Parameter(20, "Ports Input", type=String(), write=True),
        Parameter(21, "Delete Port", type=String(), write=True),
        Parameter(30, "Ticket", type=String(), write=True),
    )
    tables = (
        Table(
            1000,
            "Ports",
            save=True,
            columns=(
                Column(1001, "Port", key=True),
                Column(1002, "Errors", type=Number(), write=True),
                Column(1003, "State", type=Discrete({0: "Down", 1: "Up"})),
            ),
        ),
    )
    qactions = (
        QAction(1, fill_ports, triggers=(20,)),
        QAction(2, delete_port, triggers=(21,)),
        QAction(3, tag_alarms, triggers=(30,)),
    )


class Router(Protocol):
    """A second protocol with a column name that is also a column of another table."""

    name = "Alarm Test Router"
    parameters = (Parameter(10, "CPU Load", type=Number(0, 100), write=True),)
    tables = (
        Table(100, "Links", columns=(Column(101, "ID", key=True), Column(102, "Errors", type=Number()))),
        Table(200, "Lines", columns=(Column(201, "ID", key=True), Column(202, "Errors", type=Number()))),
    )


CPU = Thresholds(high={MAJOR: 80, CRITICAL: 95}, low={WARNING: 5})
SWITCH_TEMPLATE = AlarmTemplate(
    "Switch",
    {
        "CPU Load": CPU,
        12: DiscreteSeverities({"Down": CRITICAL, 2: MINOR}),  # a display name or a stored value
        "Errors": Thresholds(high={MINOR: 10, MAJOR: 100}),
        "State": DiscreteSeverities({"Down": MAJOR}),
    },
)


@pytest.fixture
def switch(dms):
    element = dms.create_element(Switch, "Switch 1")
    dms.alarms.assign_template(element, SWITCH_TEMPLATE)
    return element


def severities(dms, **filters) -> dict[tuple[str, str | None], Severity]:
    return {(a.parameter_name, a.row_key): a.severity for a in dms.alarms.active(**filters)}


def set_ports(element, rows) -> None:
    element.set("Ports Input", json.dumps(rows))


# -- thresholds and discretes ------------------------------------------------------------------


def test_severities_are_ordered_and_named():
    assert NORMAL < WARNING < MINOR < MAJOR < CRITICAL
    assert [s.label for s in Severity] == ["Normal", "Warning", "Minor", "Major", "Critical"]
    assert Severity.from_label("Major") is MAJOR
    with pytest.raises(ValueError, match="'Severe' is not a severity"):
        Severity.from_label("Severe")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (50, NORMAL),
        (80, NORMAL),  # on the limit is still inside it
        (80.5, MAJOR),
        (95, MAJOR),
        (96, CRITICAL),
        (5, NORMAL),
        (4.9, WARNING),
        (0, WARNING),
    ],
)
def test_number_thresholds_judge_both_directions(dms, switch, value, expected):
    switch.set("CPU Load", value)
    assert severities(dms).get(("CPU Load", None), NORMAL) is expected


def test_the_most_severe_low_limit_wins():
    severity = Thresholds(low={WARNING: 10, MINOR: 5, CRITICAL: 1}).severity_function()
    assert [severity(v) for v in (11, 10, 9, 5, 4, 1, 0, None)] == [
        NORMAL, NORMAL, WARNING, WARNING, MINOR, MINOR, CRITICAL, NORMAL
    ]


def test_discrete_values_alarm_by_value_or_display_name(dms, switch):
    switch.set("Link Status", "Down")
    assert severities(dms) == {("Link Status", None): CRITICAL}
    switch.set("Link Status", 2)  # Degraded
    assert severities(dms) == {("Link Status", None): MINOR}
    switch.set("Link Status", "Up")  # not named: normal
    assert severities(dms) == {}


def test_string_parameters_alarm_on_listed_texts(dms, switch):
    dms.alarms.assign_template(switch, AlarmTemplate("Modes", {"Mode": DiscreteSeverities({"maintenance": WARNING})}))
    switch.set("Mode", "maintenance")
    assert severities(dms) == {("Mode", None): WARNING}
    switch.set("Mode", "normal")
    assert severities(dms) == {}


# -- an alarm's life ---------------------------------------------------------------------------


def test_an_alarm_opens_escalates_de_escalates_and_clears_with_its_history(dms, switch, dmemu_clock):
    start = dmemu_clock.now()
    switch.set("CPU Load", 85)
    [alarm] = dms.alarms.active()
    assert (alarm.element_ids, alarm.element_name) == ((1, 1), "Switch 1")
    assert (alarm.parameter_id, alarm.parameter_name, alarm.row_key) == (10, "CPU Load", None)
    assert (alarm.severity, alarm.value, alarm.opened, alarm.last_change, alarm.cleared) == (MAJOR, 85, start, start, None)
    assert alarm.active

    dmemu_clock.advance(60)
    switch.set("CPU Load", 90)  # the same severity: no new record
    dmemu_clock.advance(60)
    switch.set("CPU Load", 99)
    dmemu_clock.advance(60)
    switch.set("CPU Load", 82)
    dmemu_clock.advance(60)
    switch.set("CPU Load", 40)

    assert dms.alarms.active() == []
    cleared = dms.alarms.get(alarm.id)
    assert cleared.records == (
        AlarmRecord(start, MAJOR, 85),
        AlarmRecord(start + 120, CRITICAL, 99),
        AlarmRecord(start + 180, MAJOR, 82),
        AlarmRecord(start + 240, NORMAL, 40),
    )
    assert (cleared.severity, cleared.worst_severity, cleared.value) == (NORMAL, CRITICAL, 40)
    assert (cleared.opened, cleared.last_change, cleared.cleared) == (start, start + 240, start + 240)
    assert not cleared.active
    assert dms.alarms.history() == [cleared]

    switch.set("CPU Load", 1)  # out again: a new alarm
    [again] = dms.alarms.active()
    assert again.id != alarm.id and again.severity is WARNING


def test_alarm_ids_are_unique_across_elements(dms, switch):
    other = dms.create_element(Switch, "Switch 2")
    dms.alarms.assign_template(other, SWITCH_TEMPLATE)
    switch.set("CPU Load", 90)
    other.set("CPU Load", 90)
    switch.set("CPU Load", 50)
    switch.set("CPU Load", 90)
    ids = [a.id for a in dms.alarms.active()] + [a.id for a in dms.alarms.history()]
    assert len(ids) == len(set(ids)) == 3


# -- tables ------------------------------------------------------------------------------------


def test_table_cells_alarm_per_row_key(dms, switch):
    set_ports(switch, [["p1", 0, 1], ["p2", 50, 1], ["p3", 500, 0]])
    assert severities(dms) == {("Errors", "p2"): MINOR, ("Errors", "p3"): MAJOR, ("State", "p3"): MAJOR}
    switch.set_cell("Ports", "p1", "Errors", 20)  # one row changes: the others keep their alarms
    switch.set_cell("Ports", "p2", "Errors", 0)
    assert severities(dms, parameter="Errors") == {("Errors", "p1"): MINOR, ("Errors", "p3"): MAJOR}
    [p2] = dms.alarms.history(parameter=1002)
    assert p2.row_key == "p2" and p2.records[-1].value == 0


def test_deleted_rows_clear_their_alarms(dms, switch):
    set_ports(switch, [["p1", 50, 0], ["p2", 50, 1], ["p3", 50, 1]])
    assert len(dms.alarms.active()) == 4  # p1 has two: Errors and State
    switch.set("Delete Port", "p1")
    assert severities(dms) == {("Errors", "p2"): MINOR, ("Errors", "p3"): MINOR}
    assert {(a.parameter_name, a.row_key, a.records[-1].reason) for a in dms.alarms.history()} == {
        ("Errors", "p1", "row deleted"),
        ("State", "p1", "row deleted"),
    }
    set_ports(switch, [["p3", 50, 1]])  # a fill that drops p2
    assert severities(dms) == {("Errors", "p3"): MINOR}
    assert [a.row_key for a in dms.alarms.history()] == ["p1", "p1", "p2"]


# -- templates ---------------------------------------------------------------------------------


def test_a_template_assigned_at_run_time_judges_current_values_at_once(dms):
    element = dms.create_element(Switch, "Switch 1", parameters={"CPU Load": 97})
    set_ports(element, [["p1", 20, 1]])
    assert dms.alarms.active() == []
    dms.alarms.assign_template(element, SWITCH_TEMPLATE)
    assert severities(dms) == {("CPU Load", None): CRITICAL, ("Errors", "p1"): MINOR}
    assert dms.alarms.template("Switch 1") is SWITCH_TEMPLATE


def test_a_changed_template_changes_alarms_and_clears_what_it_no_longer_monitors(dms, switch, dmemu_clock):
    switch.set("CPU Load", 90)
    switch.set("Link Status", "Down")
    [cpu_alarm] = dms.alarms.active(parameter="CPU Load")
    dmemu_clock.advance(10)
    stricter = AlarmTemplate("Stricter", {"CPU Load": Thresholds(high={MINOR: 50, CRITICAL: 85})})
    dms.alarms.assign_template(switch, stricter)
    [now] = dms.alarms.active()
    assert now.id == cpu_alarm.id and now.severity is CRITICAL and len(now.records) == 2
    [link] = dms.alarms.history()
    assert link.parameter_name == "Link Status" and link.records[-1].reason == "not in the template any more"
    switch.set("Link Status", "Down")  # no longer monitored
    assert severities(dms) == {("CPU Load", None): CRITICAL}


def test_removing_a_template_clears_the_alarms_and_the_listener(dms, switch):
    switch.set("CPU Load", 90)
    set_ports(switch, [["p1", 50, 0]])
    dms.alarms.assign_template(switch, None)
    assert dms.alarms.active() == [] and dms.alarms.template(switch) is None
    assert {a.records[-1].reason for a in dms.alarms.history()} == {"template removed"}
    assert switch._change_listeners == () and switch._value_watchers == {}  # back to paying nothing
    switch.set("CPU Load", 99)
    assert dms.alarms.active() == []


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"Fan Speed": CPU}, "has no parameter or column 'Fan Speed'"),
        ({"Mode": CPU}, "parameter 13 'Mode' holds a string; thresholds need a Number"),
        ({10: DiscreteSeverities({1: MAJOR})}, "parameter 10 'CPU Load' holds a number .*; discrete severities need"),
        ({"Link Status": DiscreteSeverities({"Gone": MAJOR})}, "'Gone' is not one of the allowed values"),
        ({"Ports": CPU}, "'Ports' is a table; a template monitors its columns"),
        ({"Port": DiscreteSeverities({"p1": MAJOR})}, "column 1001 'Port' is the key of table 1000 'Ports'; keys do not alarm"),
        ({10: CPU, "CPU Load": CPU}, "parameter 10 'CPU Load' is named twice"),
    ],
)
def test_a_template_that_does_not_fit_the_protocol_is_refused_naming_the_parameter(dms, switch, parameters, message):
    switch.set("CPU Load", 90)
    with pytest.raises(AlarmTemplateError, match=message):
        dms.alarms.assign_template(switch, AlarmTemplate("Bad", parameters))
    assert dms.alarms.template(switch) is SWITCH_TEMPLATE  # nothing changed
    assert severities(dms) == {("CPU Load", None): MAJOR}


def test_an_ambiguous_column_name_asks_for_the_id(dms):
    router = dms.create_element(Router, "Router")
    with pytest.raises(AlarmTemplateError, match=r"several columns are named 'Errors' \(102 in table 100 'Links', 202 in"):
        dms.alarms.assign_template(router, AlarmTemplate("Router", {"Errors": CPU}))
    dms.alarms.assign_template(router, AlarmTemplate("Router", {202: CPU}))


@pytest.mark.parametrize(
    ("thresholds", "message"),
    [
        (Thresholds(high={MAJOR: 80, CRITICAL: 70}), "Critical high limit 70 must be above Major high limit 80"),
        (Thresholds(low={WARNING: 5, MINOR: 10}), "Minor low limit 10 must be below Warning low limit 5"),
        # Equal limits leave the worse severity unreachable: a value on a limit is inside it.
        (Thresholds(high={MAJOR: 80, CRITICAL: 80}), "Critical high limit 80 must be above Major high limit 80"),
        (Thresholds(low={WARNING: 5, MINOR: 5}), "Minor low limit 5 must be below Warning low limit 5"),
        (Thresholds(high={WARNING: 50}, low={WARNING: 60}), r"low limits \(up to 60\) overlap high limits \(from 50\)"),
        (Thresholds(high={NORMAL: 50}), "high limit key <Severity.NORMAL: 0> is not a severity from Warning to Critical"),
        (Thresholds(high={MAJOR: "80"}), "Major high limit '80' is not a finite number"),
        (Thresholds(high={MAJOR: float("nan")}), "Major high limit nan is not a finite number"),
        (Thresholds(), "thresholds without any limit"),
        (DiscreteSeverities({}), "discrete severities without any value"),
        (DiscreteSeverities({"Down": "Critical"}), "value 'Down' has severity 'Critical', which is not a Severity"),
    ],
)
def test_limits_out_of_order_or_overlapping_are_refused_naming_the_parameter(thresholds, message):
    with pytest.raises(AlarmTemplateError, match=f"alarm template 'T', parameter 'CPU Load': {message}"):
        AlarmTemplate("T", {"CPU Load": thresholds})


# -- properties --------------------------------------------------------------------------------


def test_a_qaction_reads_its_alarms_and_sets_their_properties(dms, switch):
    TAGGED.clear()
    switch.set("CPU Load", 99)
    switch.set("Temperature", 120)  # not monitored
    switch.set("Ticket", "INC0001234")
    assert TAGGED == [SetStatus.OK, SetStatus.FAILED]
    [alarm] = dms.alarms.active()
    assert alarm.properties == {"SNOW Ticket": "INC0001234"}
    expect(switch).logged("set_alarm_property(123456, 'SNOW Ticket') refused: no alarm 123456", LogType.ERROR)


def test_properties_set_from_the_dms_stay_through_changes_and_the_clear(dms, switch):
    switch.set("CPU Load", 85)
    [alarm] = dms.alarms.active()
    updated = dms.alarms.set_property(alarm.id, "Incident Link", "https://snow.example/INC0001234")
    assert updated.properties == {"Incident Link": "https://snow.example/INC0001234"}
    assert alarm.properties == {}  # a snapshot never changes
    switch.set("CPU Load", 99)
    switch.set("CPU Load", 10)
    dms.alarms.set_property(alarm.id, "Incident Number", "INC0001234")  # a cleared alarm still takes them
    assert dms.alarms.get(alarm.id).properties == {
        "Incident Link": "https://snow.example/INC0001234",
        "Incident Number": "INC0001234",
    }
    with pytest.raises(AlarmError, match="property 'Ticket' takes a string, not int 5"):
        dms.alarms.set_property(alarm.id, "Ticket", 5)
    with pytest.raises(AlarmError, match="a property key is a non-empty string"):
        dms.alarms.set_property(alarm.id, "", "x")
    with pytest.raises(UnknownAlarmError, match="no alarm 999"):
        dms.alarms.set_property(999, "Ticket", "x")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        alarm.severity = CRITICAL  # type: ignore[misc]
    with pytest.raises(TypeError):
        alarm.properties["x"] = "y"  # type: ignore[index]


# -- queries -----------------------------------------------------------------------------------


def test_queries_filter_by_element_severity_and_parameter(dms, switch):
    other = dms.create_element(Switch, "Switch 2")
    dms.alarms.assign_template(other, SWITCH_TEMPLATE)
    switch.set("CPU Load", 99)
    switch.set("Link Status", "Degraded")
    other.set("CPU Load", 85)
    set_ports(other, [["p1", 20, 1]])

    assert len(dms.alarms.active()) == 4
    assert severities(dms, element="Switch 1") == {("CPU Load", None): CRITICAL, ("Link Status", None): MINOR}
    assert severities(dms, element=(1, 2)) == severities(dms, element=other)
    assert [a.element_name for a in dms.alarms.active(severity=MAJOR)] == ["Switch 1", "Switch 2"]
    assert [a.element_name for a in dms.alarms.active(parameter=10)] == ["Switch 1", "Switch 2"]
    assert severities(dms, element=other, parameter="Errors") == {("Errors", "p1"): MINOR}
    assert severities(dms, element=switch, severity=CRITICAL, parameter="CPU Load") == {("CPU Load", None): CRITICAL}

    switch.set("CPU Load", 50)  # cleared: history, filtered by the worst severity reached
    other.set("CPU Load", 50)
    assert [a.element_name for a in dms.alarms.history(severity=CRITICAL)] == ["Switch 1"]
    assert [a.element_name for a in dms.alarms.history(element="Switch 2")] == ["Switch 2"]
    with pytest.raises(UnknownAlarmError):
        dms.alarms.get(12345)


def test_the_history_keeps_the_most_recent_cleared_alarms(dms, switch):
    dms.alarms.history_limit = 3
    ids = []
    for _ in range(5):
        switch.set("CPU Load", 90)
        ids.append(dms.alarms.active()[0].id)
        switch.set("CPU Load", 50)
    assert [a.id for a in dms.alarms.history()] == ids[-3:]
    with pytest.raises(UnknownAlarmError, match="cleared longer ago than the last 3"):
        dms.alarms.get(ids[0])


# -- subscriptions -----------------------------------------------------------------------------


def test_subscribers_hear_every_event_with_a_snapshot(dms, switch):
    heard: list[AlarmEvent] = []
    unsubscribe = dms.alarms.subscribe(heard.append)
    switch.set("CPU Load", 90)
    switch.set("CPU Load", 99)
    alarm_id = heard[0].alarm.id
    dms.alarms.set_property(alarm_id, "Ticket", "T-1")
    switch.set("CPU Load", 50)
    assert [(e.kind, e.alarm.severity, e.property) for e in heard] == [
        (AlarmEventKind.OPENED, MAJOR, None),
        (AlarmEventKind.CHANGED, CRITICAL, None),
        (AlarmEventKind.PROPERTY_SET, CRITICAL, "Ticket"),
        (AlarmEventKind.CLEARED, NORMAL, None),
    ]
    assert heard[0].alarm.severity is MAJOR and len(heard[0].alarm.records) == 1  # kept as it was
    unsubscribe()
    switch.set("CPU Load", 90)
    assert len(heard) == 4


def test_a_failing_subscriber_is_logged_and_breaks_nothing(dms, switch, caplog):
    heard: list[AlarmEvent] = []

    def broken(event: AlarmEvent) -> None:
        raise RuntimeError("subscriber bug")

    dms.alarms.subscribe(broken)
    dms.alarms.subscribe(heard.append)
    with caplog.at_level(logging.ERROR, logger="dmemu.alarms"):
        switch.set("CPU Load", 90)
    assert switch.get("CPU Load") == 90 and [e.kind for e in heard] == [AlarmEventKind.OPENED]
    assert "subscriber bug" in caplog.text and "failed on opened of alarm" in caplog.text
    assert switch.logs(LogType.ERROR) == []


def test_a_subscriber_may_call_the_manager_back(dms, switch):
    """Subscribers run outside the manager's lock: automation sets properties from them."""

    def stamp(event: AlarmEvent) -> None:
        if event.kind is AlarmEventKind.OPENED:
            dms.alarms.set_property(event.alarm.id, "Seen", "yes")

    dms.alarms.subscribe(stamp)
    switch.set("CPU Load", 90)
    assert dms.alarms.active()[0].properties == {"Seen": "yes"}


def kinds(events: list[AlarmEvent]) -> list[AlarmEventKind]:
    return [event.kind for event in events]


def test_a_subscriber_clearing_the_alarm_does_not_overtake_the_opening(dms, switch):
    """The clear a subscriber causes is delivered after the opening, to every subscriber."""
    first: list[AlarmEvent] = []
    last: list[AlarmEvent] = []

    def calm_down(event: AlarmEvent) -> None:
        first.append(event)
        if event.kind is AlarmEventKind.OPENED:
            switch.set("CPU Load", 50)
            assert kinds(last) == []  # not delivered in the middle of the opening

    dms.alarms.subscribe(calm_down)
    dms.alarms.subscribe(last.append)
    switch.set("CPU Load", 90)
    assert kinds(first) == kinds(last) == [AlarmEventKind.OPENED, AlarmEventKind.CLEARED]
    assert dms.alarms.active() == []


def test_a_script_started_by_an_alarm_rule_clearing_the_alarm_does_not_overtake_the_opening(dms, switch):
    def calm_down(ctx, event: AlarmEvent) -> None:  # type: ignore[no-untyped-def]
        ctx.set_parameter(event.alarm.element_name, "CPU Load", 50)

    dms.automation.register("calm down", calm_down)
    dms.automation.on_alarm(AlarmRule(parameter="CPU Load"), "calm down")
    heard: list[AlarmEvent] = []
    dms.alarms.subscribe(heard.append)
    switch.set("CPU Load", 90)
    assert [run.error for run in dms.automation.runs()] == [None]
    assert kinds(heard) == [AlarmEventKind.OPENED, AlarmEventKind.CLEARED]


def test_events_from_two_threads_reach_subscribers_in_the_order_of_the_changes(dms, switch):
    """A change on a second thread while the first is still delivering waits its turn."""
    delivering = threading.Event()
    go_on = threading.Event()
    heard: list[AlarmEvent] = []

    def slow(event: AlarmEvent) -> None:
        if event.kind is AlarmEventKind.OPENED:
            delivering.set()
            go_on.wait(10)

    dms.alarms.subscribe(slow)
    dms.alarms.subscribe(heard.append)
    opener = threading.Thread(target=switch.set, args=("CPU Load", 90))
    opener.start()
    try:
        assert delivering.wait(10)
        switch.set("CPU Load", 50)  # the alarm clears while its opening is still being delivered
        assert dms.alarms.active() == [] and heard == []
    finally:
        go_on.set()
        opener.join(10)
    assert kinds(heard) == [AlarmEventKind.OPENED, AlarmEventKind.CLEARED]


# -- element lifecycle -------------------------------------------------------------------------


def test_a_stopped_element_clears_its_alarms_and_a_start_judges_its_values_again(dms, switch):
    switch.set("CPU Load", 90)  # saved: still there after the restart
    switch.set("Temperature", 10)
    dms.alarms.assign_template(switch, AlarmTemplate("Both", {"CPU Load": CPU, "Temperature": Thresholds(high={MAJOR: 0})}))
    [before_cpu, before_temperature] = dms.alarms.active()
    switch.stop()
    assert dms.alarms.active() == []
    assert {a.records[-1].reason for a in dms.alarms.history()} == {"element stopped"}
    switch.start()
    [after] = dms.alarms.active()  # Temperature is not saved: back to its default, no value
    assert after.parameter_name == "CPU Load" and after.id not in (before_cpu.id, before_temperature.id)
    switch.restart()
    assert [a.parameter_name for a in dms.alarms.active()] == ["CPU Load"]


def test_a_paused_element_keeps_its_alarms(dms, switch):
    switch.set("CPU Load", 90)
    [alarm] = dms.alarms.active()
    switch.pause()
    assert dms.alarms.active() == [alarm]
    switch.start()
    assert dms.alarms.active() == [alarm]


def pause_then_calm_down(protocol: QActionProtocol) -> None:
    protocol.element.pause()
    protocol.set_parameter("CPU Load", 50)


class PausingSwitch(Protocol):
    name = "Alarm Test Pausing Switch"
    parameters = (
        Parameter(10, "CPU Load", type=Number(0, 100), write=True),
        Parameter(11, "Calm Down", type=Number(), write=True),
    )
    qactions = (QAction(1, pause_then_calm_down, triggers=(11,)),)


def test_a_qaction_still_running_at_a_pause_does_not_change_alarms_until_the_start(dms):
    element = dms.create_element(PausingSwitch, "Pausing")
    dms.alarms.assign_template(element, AlarmTemplate("Load", {"CPU Load": CPU}))
    element.set("CPU Load", 90)
    [alarm] = dms.alarms.active()
    element.set("Calm Down", 1)  # the QAction pauses the element, then sets a normal value
    assert element.state.value == "Paused" and element.get("CPU Load") == 50
    assert dms.alarms.active() == [alarm]  # frozen with the element
    element.start()
    assert dms.alarms.active() == [] and dms.alarms.get(alarm.id).records[-1].value == 50


def test_a_failing_value_watcher_is_logged_and_breaks_nothing(dms, switch):
    heard: list[object] = []

    def broken(element, pid, value) -> None:  # type: ignore[no-untyped-def]
        raise RuntimeError("watcher bug")

    switch.add_value_watcher(10, broken)
    switch.add_value_watcher(10, lambda element, pid, value: heard.append((element, pid, value)))
    switch.set("CPU Load", 90)
    assert heard == [(switch, 10, 90)] and [a.value for a in dms.alarms.active()] == [90]
    assert "watcher bug" in switch.logs(LogType.ERROR)[0].message
    switch.remove_value_watcher(10, broken)
    switch.set("CPU Load", 50)
    assert len(heard) == 2 and len(switch.logs(LogType.ERROR)) == 1


def test_a_deleted_element_clears_its_alarms_and_drops_its_template(dms, switch):
    switch.set("CPU Load", 90)
    dms.delete_element(switch)
    assert dms.alarms.active() == []
    [cleared] = dms.alarms.history(element=(1, 1))  # by ids: the element is gone
    assert cleared.records[-1].reason == "element deleted"
    again = dms.create_element(Switch, "Switch 1 again", element_id=1)
    assert dms.alarms.template(again) is None
    again.set("CPU Load", 99)
    assert dms.alarms.active() == []


# -- persistence -------------------------------------------------------------------------------


def test_alarm_ids_linked_by_tickets_are_never_given_out_again_after_a_lost_alarm_save(dms, switch, dmemu_clock, tmp_path, monkeypatch):
    dmemu_clock.advance(1)  # the template is saved
    dms.tickets.define_type(TicketType("Incident", (TicketField("Title", "string"),)))
    switch.set("CPU Load", 90)
    [alarm] = dms.alarms.active()
    ticket = dms.tickets.create("Incident", {"Title": "hot"}, alarms=[alarm.id])
    saves: list[str] = []

    def disk_full(records: object) -> None:
        saves.append("alarms")
        raise StateFileError("alarms.json: disk full")

    def save_tickets(records: object, save=dms.tickets._store.save) -> None:  # type: ignore[no-untyped-def]
        saves.append("tickets")
        save(records)

    monkeypatch.setattr(dms.alarms._store, "save_encoded", disk_full)  # where the alarms' records are written
    monkeypatch.setattr(dms.tickets._store, "save", save_tickets)
    [error] = dms.flush()
    assert "disk full" in str(error) and saves == ["alarms", "tickets"]  # tickets link alarms: saved after them
    crashed = tmp_path / "crashed"  # what a crash now leaves: the ticket, not the alarm it links
    shutil.copytree(dms.state_dir, crashed)
    monkeypatch.undo()
    with DataMinerSystem(crashed, VirtualClock(dmemu_clock.now())) as again:
        assert again.tickets.get(ticket.id).alarms == (alarm.id,)
        [reopened] = again.alarms.active()  # the saved value is still Major
        assert reopened.id > alarm.id


def test_alarms_templates_and_the_id_counter_survive_a_dms_restart(dms, switch, dmemu_clock, dmemu_state_dir):
    switch.set("CPU Load", 90)
    switch.set("CPU Load", 99)
    switch.set("Link Status", "Down")
    switch.set("Link Status", "Up")
    set_ports(switch, [["p1", 500, 1]])
    [cpu, port] = dms.alarms.active()
    dms.alarms.set_property(cpu.id, "SNOW Ticket", "INC0001234")
    active, history = dms.alarms.active(), dms.alarms.history()
    dmemu_clock.advance(1)  # the batch at the end of the tick saves it
    dms.close()

    with DataMinerSystem(dmemu_state_dir, dmemu_clock) as again:
        assert again.alarms.active() == [attrs.evolve(cpu, properties={"SNOW Ticket": "INC0001234"}), port]
        assert again.alarms.active() == active and again.alarms.history() == history
        assert again.alarms.template("Switch 1") == SWITCH_TEMPLATE
        element = again.element("Switch 1")
        element.set("CPU Load", 50)  # the template is back on the element
        element.set("Temperature", 1)
        element.set("Link Status", "Down")
        new = again.alarms.active(parameter="Link Status")[0]
        assert new.id > max(a.id for a in [*active, *history])
        assert again.alarms.get(cpu.id).records[-1].severity is NORMAL


def test_a_restart_clears_alarms_of_values_not_saved(dms, switch, dmemu_clock, dmemu_state_dir):
    dms.alarms.assign_template(switch, AlarmTemplate("Temperature", {"Temperature": Thresholds(high={MAJOR: 100})}))
    switch.set("Temperature", 120)
    dms.close()
    with DataMinerSystem(dmemu_state_dir, dmemu_clock) as again:
        assert again.alarms.active() == []
        [cleared] = again.alarms.history()
        assert cleared.records[-1] == AlarmRecord(dmemu_clock.now(), NORMAL, None)


def test_alarms_of_an_element_stopped_before_they_were_saved_clear_at_the_next_start(dms, switch, dmemu_clock, tmp_path):
    switch.set("CPU Load", 90)
    dmemu_clock.advance(1)  # saved active
    switch.stop()  # the registry says Stopped at once; the alarms wait for the next batch
    crashed = tmp_path / "crashed"
    shutil.copytree(dms.state_dir, crashed)
    saved = json.loads((crashed / "alarms.json").read_text())["alarms"].values()
    assert [r["severity"] for r in saved if r["kind"] == "alarm"] == ["Major"]
    with DataMinerSystem(crashed, dmemu_clock) as again:
        assert again.alarms.active() == []
        assert again.alarms.history()[0].records[-1].reason == "element stopped"


def saved_as_json_dumps_writes_it(dms, alarm_record=alarms_module._alarm_record) -> bool:
    """Whether alarms.json holds what encoding the manager's records whole writes (json.dumps)."""
    manager = dms.alarms
    records = [
        {"kind": "counter", "next_id": manager._next_id},
        *(alarms_module._template_record(ids, template) for ids, template in manager._templates.items()),
        *(alarm_record(alarm) for alarm in [*manager.active(), *manager.history()]),
    ]
    document = {"alarms": {str(number): record for number, record in enumerate(records, 1)}}
    return (dms.state_dir / "alarms.json").read_text() == json.dumps(document, separators=(",", ":"), allow_nan=False)


@pytest.mark.parametrize("seed", range(5))
def test_every_save_of_random_alarm_changes_writes_what_json_dumps_writes(dms, switch, seed):
    """Saves encode only the alarms that changed: opened, changed, cleared, given a property,
    dropped from the history, cleared by a stop; the file is still that of every alarm."""
    rng = random.Random(seed)
    dms.alarms.history_limit = 4  # clears drop the oldest cleared alarms
    other = dms.create_element(Switch, "Switch 2")
    dms.alarms.assign_template(other, SWITCH_TEMPLATE)
    for _ in range(60):
        element = rng.choice([e for e in (switch, other) if e.state is ElementState.ACTIVE])  # a stopped one takes no sets
        step = rng.randrange(6)
        if step == 0:
            element.set("CPU Load", rng.choice([2, 50, 85, 99]))
        elif step == 1:
            element.set("Link Status", rng.choice(["Up", "Down", "Degraded"]))
        elif step == 2:
            set_ports(element, [[f"p{n}", rng.choice([0, 20, 500]), rng.randrange(2)] for n in range(rng.randrange(4))])
        elif step == 3 and (alarms := [*dms.alarms.active(), *dms.alarms.history()]):
            dms.alarms.set_property(rng.choice(alarms).id, rng.choice(["SNOW Ticket", "Note"]), rng.choice(["INC1", "é€\"", ""]))
        elif step == 4 and other.state is ElementState.ACTIVE:
            other.stop()  # its alarms clear
        elif step == 4:
            other.start()
        if rng.random() < 0.5:
            assert dms.flush() == []
            assert saved_as_json_dumps_writes_it(dms)
            # The texts kept are those of the alarms kept: none of an alarm dropped from the history.
            assert dms.alarms._encoded._texts.keys() == {a.id for a in [*dms.alarms.active(), *dms.alarms.history()]}
    dms.close()
    with DataMinerSystem(dms.state_dir, VirtualClock(dms.clock.now())) as again:  # alarms loaded, not encoded yet
        again.element("Switch 1").set("CPU Load", rng.choice([2, 50, 85, 99]))
        again.alarms._reserve_ids([again.alarms._next_id])  # a save even when no alarm changed
        assert again.flush() == [] and saved_as_json_dumps_writes_it(again)


def test_a_save_encodes_only_the_alarms_changed_since_the_last_one(dms, switch, monkeypatch):
    switch.set("CPU Load", 90)
    set_ports(switch, [["p1", 20, 0], ["p2", 500, 1], ["p3", 0, 0]])
    dms.flush()
    encoded: list[int] = []

    def counted_record(alarm, record=alarms_module._alarm_record):  # type: ignore[no-untyped-def]
        encoded.append(alarm.id)
        return record(alarm)

    monkeypatch.setattr(alarms_module, "_alarm_record", counted_record)
    dms.alarms.assign_template(dms.create_element(Switch, "Switch 2"), SWITCH_TEMPLATE)  # saved; no alarm changes
    assert dms.alarms.dirty and dms.flush() == []
    assert encoded == [] and saved_as_json_dumps_writes_it(dms)

    cpu, *ports = dms.alarms.active(element=switch)
    dms.alarms.set_property(ports[0].id, "SNOW Ticket", "INC1")
    switch.set("CPU Load", 50)  # cleared
    dms.flush()
    assert sorted(encoded) == sorted([ports[0].id, cpu.id]) and saved_as_json_dumps_writes_it(dms)


def test_alarms_a_failed_save_could_not_encode_are_encoded_by_the_next(dms, switch, monkeypatch):
    switch.set("CPU Load", 90)
    dms.flush()
    [alarm] = dms.alarms.active()
    monkeypatch.setattr(alarms_module, "_alarm_record", lambda alarm: {"value": math.nan})  # JSON has no NaN
    dms.alarms.set_property(alarm.id, "SNOW Ticket", "INC1")
    [error] = dms.flush()
    assert "alarms.json" in str(error)
    monkeypatch.undo()
    assert dms.flush() == [] and saved_as_json_dumps_writes_it(dms)  # with the property


def test_a_saved_template_the_protocol_no_longer_fits_is_logged_and_kept(dms, switch, dmemu_clock, dmemu_state_dir):
    dms.close()
    path = dmemu_state_dir / "alarms.json"
    document = json.loads(path.read_text())
    for record in document["alarms"].values():
        if record["kind"] == "template":
            record["parameters"].append({"parameter": "Fan Speed", "high": {"Major": 1}, "low": {}})
    path.write_text(json.dumps(document))
    with DataMinerSystem(dmemu_state_dir, dmemu_clock) as again:
        element = again.element("Switch 1")
        expect(element).logged("alarm template not applied: alarm template 'Switch' on element 'Switch 1': protocol", LogType.ERROR)
        assert element._change_listeners == () and again.alarms.template(element).name == "Switch"


def test_a_corrupt_alarm_file_is_named(dmemu_state_dir, dmemu_clock):
    (dmemu_state_dir / "alarms.json").write_text("{not json")
    with pytest.raises(StateFileError, match="alarms.json is corrupt"):
        DataMinerSystem(dmemu_state_dir, dmemu_clock)
    (dmemu_state_dir / "alarms.json").write_text(json.dumps({"alarms": {"1": {"kind": "alarm", "id": "one"}}}))
    with pytest.raises(StateFileError, match="alarms.json has an unexpected layout"):
        DataMinerSystem(dmemu_state_dir, dmemu_clock)


# -- threads and cost --------------------------------------------------------------------------


def test_changes_from_many_threads_leave_consistent_alarms(dms):
    elements = [dms.create_element(Switch, f"Switch {n}") for n in range(8)]
    for element in elements:
        dms.alarms.assign_template(element, SWITCH_TEMPLATE)
    events: list[AlarmEvent] = []
    dms.alarms.subscribe(events.append)

    def churn(element) -> None:
        for value in range(200):
            element.set("CPU Load", (value * 7) % 101)
            for alarm in dms.alarms.active(element=element):
                dms.alarms.set_property(alarm.id, "Seen", str(value))

    threads = [threading.Thread(target=churn, args=(element,)) for element in elements]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for element in elements:
        expected = CPU.severity_function()(element.get("CPU Load"))
        assert severities(dms, element=element).get(("CPU Load", None), NORMAL) is expected
    ids = [e.alarm.id for e in events if e.kind is AlarmEventKind.OPENED]
    assert len(ids) == len(set(ids))


def test_monitoring_many_elements_and_an_element_without_template_pays_nothing(dms):
    plain = dms.create_element(Switch, "Plain")
    assert plain._change_listeners == ()
    elements = [dms.create_element(Switch, f"Switch {n}") for n in range(100)]
    for element in elements:
        dms.alarms.assign_template(element, SWITCH_TEMPLATE)
    for value in range(100):
        for element in elements:
            element.set("CPU Load", 90 if value % 50 == 0 else 50)
        plain.set("CPU Load", value)
    assert dms.alarms.active() == []
    assert len(dms.alarms.history()) == 200 and plain._change_listeners == ()
