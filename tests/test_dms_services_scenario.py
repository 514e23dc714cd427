"""The DMS services together: a threshold crossed opens an alarm, the alarm starts a script, the
script opens a ticket, an element subscribed to tickets puts the ticket id on the alarm, the value
comes back and the alarm clears; after a restart the tickets and the alarm history are there."""

from __future__ import annotations

import json
from pathlib import Path

from dmemu.dms import (
    AlarmEvent,
    AlarmEventKind,
    AlarmRule,
    AlarmTemplate,
    DataMinerSystem,
    ScriptState,
    Severity,
    Thresholds,
    TicketField,
    TicketState,
    TicketType,
)
from dmemu.protocol import Number, Parameter, Protocol, QAction, QActionProtocol, String, VirtualClock

INCIDENT = TicketType("Incident", (TicketField("Title", "string", required=True), TicketField("Value", "number")))


class Sensor(Protocol):
    name = "Scenario Sensor"
    parameters = (Parameter(10, "Temperature", Number(-50, 150, "deg C"), write=True, default=20, save=True),)


def subscribe_to_incidents(protocol: QActionProtocol) -> None:
    protocol.tickets.define_type(INCIDENT)
    protocol.tickets.subscribe_element(protocol.element, "Ticket Event", ticket_type="Incident")


def on_ticket_event(protocol: QActionProtocol) -> None:
    """A new incident: note it and give its alarms the ticket id, as SES puts SNOW ids on alarms."""
    event = json.loads(protocol.get_parameter("Ticket Event"))
    if event["kind"] != "created":
        return
    for alarm_id in event["ticket"]["alarms"]:
        protocol.set_alarm_property(alarm_id, "Ticket ID", event["ticket"]["id"])
    protocol.set_parameter("Tickets Seen", protocol.get_parameter("Tickets Seen") + 1)


class TicketDesk(Protocol):
    name = "Scenario Ticket Desk"
    parameters = (
        Parameter(20, "Ticket Event", String(), write=True, default=""),
        Parameter(21, "Tickets Seen", Number(0), default=0, save=True),
    )
    qactions = (
        QAction(1, subscribe_to_incidents, after_startup=True),
        QAction(2, on_ticket_event, triggers=(20,)),
    )


async def open_incident(ctx, event):  # type: ignore[no-untyped-def]
    """Started by the alarm rule with the alarm event: one incident, then wait for the desk."""
    alarm = event.alarm
    ticket = ctx.dms.tickets.create(
        "Incident",
        {"Title": f"{alarm.element_name}: {alarm.parameter_name} {alarm.severity.label}", "Value": alarm.value},
        alarms=[alarm.id],
        elements=[alarm.element_ids],
    )
    await ctx.wait_for("Ticket Desk", "Tickets Seen", lambda seen: seen >= 1, timeout=600)
    return ticket.id


def open_dms(state: Path, clock: VirtualClock) -> DataMinerSystem:
    dms = DataMinerSystem(state, clock, protocols=(Sensor, TicketDesk))
    dms.automation.register("open incident", open_incident)
    dms.automation.on_alarm(AlarmRule(protocol="Scenario Sensor", min_severity="Critical"), "open incident")
    return dms


def test_an_alarm_runs_a_script_that_opens_a_ticket_which_comes_back_on_the_alarm(dmemu_state_dir: Path, dmemu_clock: VirtualClock) -> None:
    dms = open_dms(dmemu_state_dir, dmemu_clock)
    heard: list[AlarmEvent] = []
    dms.alarms.subscribe(heard.append)  # after the alarm rule: hears the opening after the script ran
    sensor = dms.create_element(Sensor, "Sensor")
    desk = dms.create_element(TicketDesk, "Ticket Desk")
    dms.alarms.assign_template(sensor, AlarmTemplate("Temperature", {"Temperature": Thresholds(high={Severity.MAJOR: 80, Severity.CRITICAL: 100})}))

    sensor.set("Temperature", 90)  # Major: the rule wants Critical, so no script yet
    assert [alarm.severity for alarm in dms.alarms.active(sensor)] == [Severity.MAJOR]
    assert dms.automation.runs() == []
    dmemu_clock.advance(60)
    sensor.set("Temperature", 105)  # the open alarm escalates to Critical: not a new alarm
    (alarm,) = dms.alarms.active(sensor)
    assert alarm.severity is Severity.CRITICAL and [r.severity for r in alarm.records] == [Severity.MAJOR, Severity.CRITICAL]
    assert dms.automation.runs() == []  # the rule starts scripts on newly opened alarms only
    sensor.set("Temperature", 20)
    dmemu_clock.advance(60)
    sensor.set("Temperature", 120)  # a new Critical alarm: the rule starts the script

    (run,) = dms.automation.runs()
    assert run.state is ScriptState.SUCCEEDED, run.error
    ticket = dms.tickets.get(run.result)
    assert ticket.state is TicketState.NEW and ticket.fields["Title"] == "Sensor: Temperature Critical"
    assert ticket.fields["Value"] == 120 and ticket.elements == (sensor.ids,)
    (alarm,) = dms.alarms.active(sensor)
    assert ticket.alarms == (alarm.id,)
    assert alarm.properties == {"Ticket ID": ticket.id}  # set back by the desk, subscribed to tickets
    assert desk.get("Tickets Seen") == 1
    assert [(e.kind, e.alarm.id) for e in heard if e.alarm.id == alarm.id] == [
        (AlarmEventKind.OPENED, alarm.id),
        (AlarmEventKind.PROPERTY_SET, alarm.id),
    ]  # in the order they happened, though the property was set while the opening was delivered

    dmemu_clock.advance(300)
    sensor.set("Temperature", 25)  # back to normal: the alarm clears
    assert dms.alarms.active() == []
    cleared = dms.alarms.get(alarm.id)
    assert cleared.cleared == dmemu_clock.now() and [r.severity for r in cleared.records] == [Severity.CRITICAL, Severity.NORMAL]
    history = dms.alarms.history()
    assert [a.id for a in history] == [1, 2] and history[-1] == cleared
    dms.close()

    again = open_dms(dmemu_state_dir, dmemu_clock)
    try:
        assert again.tickets.get(ticket.id) == ticket
        assert again.tickets.query(state=TicketState.NEW) == [ticket]
        restored = again.alarms.get(alarm.id)
        assert restored == cleared and restored.properties == {"Ticket ID": ticket.id}
        assert again.alarms.history() == history
        assert again.element("Ticket Desk").get("Tickets Seen") == 1
        assert again.alarms.active() == []
    finally:
        again.close()
