"""Generic Dynamic Heartbeat Receiver: rows created by beats, Missing sources and their alarms, on a virtual clock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dmemu.dms import DataMinerSystem, Severity
from dmemu.elements.heartbeat_receiver import (
    HEARTBEAT_ALARMS,
    MISSING,
    OK,
    GenericDynamicHeartbeatReceiver,
    heartbeat_text,
)
from dmemu.protocol import (
    Element,
    LogType,
    Number,
    Parameter,
    Protocol,
    QAction,
    QActionProtocol,
    String,
    Timer,
    VirtualClock,
    expect,
)

RECEIVER = "Heartbeat Receiver"


def send_heartbeat(protocol: QActionProtocol) -> None:
    """What a sending element does on its heartbeat timer."""
    text = heartbeat_text(protocol.element_name, protocol.get_parameter("Heartbeat Interval"), protocol.now())
    protocol.set_element_parameter(protocol.get_parameter("Heartbeat Receiver"), "Heartbeat", text)


class Sender(Protocol):
    name = "Heartbeat Test Sender"
    parameters = (
        Parameter(10, "Heartbeat Receiver", String(), write=True, default=RECEIVER),
        Parameter(11, "Heartbeat Interval", Number(1), write=True, default=30),
    )
    timers = (Timer(1, seconds=30, qactions=(1,)),)
    qactions = (QAction(1, send_heartbeat),)


@pytest.fixture
def receiver(dms: DataMinerSystem) -> Element:
    element = dms.create_element(GenericDynamicHeartbeatReceiver, RECEIVER)
    dms.alarms.assign_template(element, HEARTBEAT_ALARMS)
    return element


def beat(element: Element, source: str, interval: float = 60) -> None:
    element.set("Heartbeat", heartbeat_text(source, interval, element.dms.clock.now()))


def row(element: Element, source: str) -> dict:
    return element.table("Heartbeats").row(source)


def alarms(dms: DataMinerSystem) -> dict[str | None, Severity]:
    return {alarm.row_key: alarm.severity for alarm in dms.alarms.active(RECEIVER)}


class TestBeats:
    def test_the_first_beat_creates_the_row(self, dms: DataMinerSystem, receiver: Element, dmemu_clock: VirtualClock) -> None:
        sent = dmemu_clock.now() - 2
        receiver.set("Heartbeat", json.dumps({"source": "Ticket Client 1", "interval": 60, "time": sent}))
        assert row(receiver, "Ticket Client 1") == {
            "Source": "Ticket Client 1", "Last Beat": dmemu_clock.now(), "Expected Interval": 60, "Beats Received": 1,
            "Missed Beats": 0, "Status": OK, "Sender Time": sent, "Delete": None,
        }  # fmt: skip
        assert receiver.get("Sources") == 1 and receiver.get("Missing Sources") == 0
        dmemu_clock.advance(60)
        beat(receiver, "Ticket Client 1", interval=30)
        assert row(receiver, "Ticket Client 1")["Beats Received"] == 2
        assert row(receiver, "Ticket Client 1")["Expected Interval"] == 30  # as the last beat says
        assert row(receiver, "Ticket Client 1")["Last Beat"] == dmemu_clock.now()
        assert alarms(dms) == {}
        expect(receiver).no_errors()

    def test_beats_late_within_the_tolerance_stay_ok(self, dms: DataMinerSystem, receiver: Element, dmemu_clock: VirtualClock) -> None:
        beat(receiver, "A")
        dmemu_clock.advance(150)  # 2.5 x 60: still within
        assert row(receiver, "A")["Status"] == OK
        beat(receiver, "A")
        dmemu_clock.advance(150)
        assert row(receiver, "A")["Status"] == OK and row(receiver, "A")["Missed Beats"] == 0
        assert alarms(dms) == {}


class TestMissing:
    def test_a_silent_source_goes_missing_with_an_alarm_that_clears_when_beats_return(
        self, dms: DataMinerSystem, receiver: Element, dmemu_clock: VirtualClock
    ) -> None:
        beat(receiver, "A")
        beat(receiver, "B", interval=600)
        dmemu_clock.advance(160)  # A silent for 160 s > 150 s; the check every 10 s sees it
        assert row(receiver, "A")["Status"] == MISSING and row(receiver, "B")["Status"] == OK
        assert row(receiver, "A")["Missed Beats"] == 2  # 160 s of silence: two whole intervals
        assert alarms(dms) == {"A": Severity.MAJOR}
        assert receiver.get("Missing Sources") == 1
        expect(receiver).logged("no heartbeat from 'A' for 160 s (expected every 60 s): Missing")
        dmemu_clock.advance(140)  # 300 s of silence
        assert row(receiver, "A")["Missed Beats"] == 5
        beat(receiver, "A")
        assert row(receiver, "A")["Status"] == OK and row(receiver, "A")["Missed Beats"] == 5  # the count stays
        assert alarms(dms).get("A") is None
        cleared = dms.alarms.history(RECEIVER)
        assert [(alarm.row_key, alarm.worst_severity) for alarm in cleared] == [("A", Severity.MAJOR)]
        assert receiver.get("Missing Sources") == 0
        dmemu_clock.advance(160)  # missing again: the next silence adds its own intervals
        assert row(receiver, "A")["Missed Beats"] == 7 and alarms(dms) == {"A": Severity.MAJOR}

    def test_a_check_that_finds_nothing_new_writes_no_row(self, receiver: Element, dmemu_clock: VirtualClock) -> None:
        beat(receiver, "A")
        dmemu_clock.advance(160)  # Missing, 2 beats missed
        changes: list[object] = []
        receiver.add_change_listener(lambda element, change: changes.append(change), ids=(1000,))
        dmemu_clock.advance(10)  # 170 s: still 2 whole intervals
        assert changes == [] and row(receiver, "A")["Missed Beats"] == 2
        dmemu_clock.advance(10)  # 180 s: the third
        assert len(changes) == 1 and row(receiver, "A")["Missed Beats"] == 3

    def test_the_tolerance_is_configurable(self, dms: DataMinerSystem, receiver: Element, dmemu_clock: VirtualClock) -> None:
        receiver.set("Missing Tolerance", 1.5)
        beat(receiver, "A")
        dmemu_clock.advance(100)  # > 90 s
        assert row(receiver, "A")["Status"] == MISSING
        with pytest.raises(Exception, match="Missing Tolerance"):
            receiver.set("Missing Tolerance", 0.5)

    def test_a_deleted_source_takes_its_alarm_with_it(self, dms: DataMinerSystem, receiver: Element, dmemu_clock: VirtualClock) -> None:
        beat(receiver, "Gone")
        beat(receiver, "Stays", interval=600)
        dmemu_clock.advance(200)
        assert alarms(dms) == {"Gone": Severity.MAJOR}
        receiver.set_cell("Heartbeats", "Gone", "Delete", 1)
        assert receiver.table("Heartbeats").keys() == ["Stays"]
        assert alarms(dms) == {} and receiver.get("Sources") == 1 and receiver.get("Missing Sources") == 0
        expect(receiver).logged("source 'Gone' deleted")


MALFORMED = [
    ("not json", "not JSON"),
    ("[1, 2]", "a heartbeat is a JSON object, not list"),
    ('{"source": "A", "interval": 60}', "'time' missing"),
    ('{"source": "", "interval": 60, "time": 1}', "'source' must be a non-empty string"),
    ('{"source": 7, "interval": 60, "time": 1}', "'source' must be a non-empty string, not 7"),
    ('{"source": "A", "interval": "60", "time": 1}', "'interval' must be a number"),
    ('{"source": "A", "interval": true, "time": 1}', "'interval' must be a number"),
    ('{"source": "A", "interval": 0, "time": 1}', "'interval' 0 is out of range"),
    ('{"source": "A", "interval": -5, "time": 1}', "'interval' -5 is out of range"),
    ('{"source": "A", "interval": 60, "time": 1e300}', "'time' 1e+300 is not a moment"),
    ('{"source": "A", "interval": 60, "time": NaN}', "'time' must be a number"),
    ('{"source": "A", "interval": 1' + "0" * 400 + ', "time": 1}', "'interval' 1000000000000000000000000000000000000... is out of range"),
    ('{"source": "A", "interval": 60, "time": -1' + "0" * 400 + "}", "'time' -100000000000000000000000000000000000... is not a moment"),
    ('{"source": "' + "x" * 300 + '", "interval": 60, "time": 1}', "'source' is 300 characters long"),
]


class TestRefused:
    @pytest.mark.parametrize(("text", "reason"), MALFORMED, ids=[reason[:40] for _, reason in MALFORMED])
    def test_a_malformed_heartbeat_changes_nothing(
        self, dms: DataMinerSystem, receiver: Element, dmemu_clock: VirtualClock, text: str, reason: str
    ) -> None:
        beat(receiver, "A")
        dmemu_clock.advance(30)
        before = receiver.table("Heartbeats").rows()
        receiver.set("Heartbeat", text)
        assert receiver.table("Heartbeats").rows() == before
        assert receiver.get("Heartbeats Refused") == 1 and receiver.get("Last Refusal").startswith(reason)
        errors = [entry.message for entry in receiver.logs(LogType.ERROR)]
        assert len(errors) == 1 and errors[0].startswith(f"heartbeat refused: {reason}")
        assert alarms(dms) == {}


class TestBetweenElements:
    def test_senders_beat_from_their_qactions_and_a_stopped_one_raises_an_alarm(
        self, dms: DataMinerSystem, receiver: Element, dmemu_clock: VirtualClock
    ) -> None:
        senders = [dms.create_element(Sender, f"Ticket Client {n}") for n in (1, 2)]
        dmemu_clock.advance(300)
        for sender in senders:
            assert row(receiver, sender.name)["Beats Received"] == 11  # at start and every 30 s
            assert row(receiver, sender.name)["Status"] == OK
        senders[0].stop()
        dmemu_clock.advance(80)  # more than 2.5 x 30 s without a beat
        assert row(receiver, "Ticket Client 1")["Status"] == MISSING
        assert alarms(dms) == {"Ticket Client 1": Severity.MAJOR}
        senders[0].start()
        assert row(receiver, "Ticket Client 1")["Status"] == OK and alarms(dms) == {}
        expect(senders[0]).no_errors()


class TestRestart:
    def test_rows_survive_and_silence_counts_from_the_restart(self, dmemu_state_dir: Path, dmemu_clock: VirtualClock) -> None:
        with DataMinerSystem(dmemu_state_dir, dmemu_clock) as dms:
            receiver = dms.create_element(GenericDynamicHeartbeatReceiver, RECEIVER)
            beat(receiver, "A")
            beat(receiver, "A")
        dmemu_clock.advance(3600)  # the DMS was down: no beat could arrive
        with DataMinerSystem(dmemu_state_dir, dmemu_clock) as dms:
            receiver = dms.element(RECEIVER)
            assert row(receiver, "A")["Beats Received"] == 2 and row(receiver, "A")["Status"] == OK
            dmemu_clock.advance(140)
            assert row(receiver, "A")["Status"] == OK  # 140 s since the restart: within 150 s
            dmemu_clock.advance(20)
            assert row(receiver, "A")["Status"] == MISSING and row(receiver, "A")["Missed Beats"] == 2
