"""Element runtime: states, user get/set, triggers, the queue, timers and loop protection."""

from __future__ import annotations

import threading
import time

import pytest

from dmemu.protocol import (
    Button,
    DataMinerSystem,
    Discrete,
    ElementState,
    ElementStateError,
    InvalidValueError,
    LogType,
    Number,
    Page,
    Parameter,
    Protocol,
    QAction,
    ReadOnlyParameterError,
    String,
    Timer,
    UnknownParameterError,
    VirtualClock,
    expect,
)

RUNS: list[tuple[str, object]] = []


def on_startup(protocol):
    RUNS.append(("startup", protocol.trigger_parameter))
    protocol.set_parameter("Status", "Up")


def on_poll(protocol):
    RUNS.append(("poll", protocol.now()))
    protocol.set_parameter("Poll Count", protocol.get_parameter("Poll Count") + 1)


def on_threshold(protocol):
    RUNS.append(("threshold", protocol.get_parameter(21)))


def on_refresh(protocol):
    RUNS.append(("refresh", protocol.trigger_parameter))


def broken(protocol):
    raise RuntimeError("device said no")


class Thermostat(Protocol):
    name = "Thermostat"
    pages = (Page("General"), Page("Configuration"))
    parameters = (
        Parameter(10, "Status", type=Discrete({"Up": "Up", "Down": "Down"}), default="Down", page="General"),
        Parameter(11, "Poll Count", type=Number(0), default=0, page="General"),
        Parameter(20, "Label", type=String(max_length=20), write=True, default="", page="Configuration"),
        Parameter(21, "Threshold", type=Number(0, 100, "%"), write=True, default=50, page="Configuration"),
        Parameter(22, "Mode", type=Discrete({0: "Off", 1: "Auto"}), write=True, default=0),
        Parameter(23, "Refresh", type=Button("Refresh"), write=True),
        Parameter(24, "Break", type=Button(), write=True),
    )
    timers = (Timer(1, seconds=60, qactions=(3,), at_startup=False),)
    qactions = (
        QAction(1, on_startup, after_startup=True),
        QAction(2, on_threshold, triggers=(21,)),
        QAction(3, on_poll),
        QAction(4, on_refresh, triggers=(23,)),
        QAction(5, broken, triggers=(24,)),
    )


@pytest.fixture(autouse=True)
def clear_runs():
    RUNS.clear()


@pytest.fixture
def thermostat(dms):
    return dms.create_element(Thermostat, "Living Room")


class TestLifecycle:
    def test_start_runs_after_startup_qactions_and_schedules_timers(self, thermostat, clock):
        assert thermostat.state is ElementState.ACTIVE
        assert RUNS == [("startup", None)]
        assert thermostat.get("Status") == "Up"
        clock.advance(180)
        assert thermostat.get("Poll Count") == 3

    def test_timers_fire_only_while_active(self, thermostat, clock):
        thermostat.pause()
        clock.advance(600)
        assert thermostat.get("Poll Count") == 0
        thermostat.start()  # resumes: no second start-up
        clock.advance(60)
        assert thermostat.get("Poll Count") == 1
        assert [r for r in RUNS if r[0] == "startup"] == [("startup", None)]
        thermostat.stop()
        clock.advance(600)
        assert thermostat.state is ElementState.STOPPED

    def test_restart_starts_afresh(self, thermostat, clock):
        clock.advance(120)
        thermostat.restart()
        assert [r[0] for r in RUNS].count("startup") == 2
        assert thermostat.get("Poll Count") == 0  # not saved, so back to its default

    def test_an_element_created_stopped_does_nothing_until_started(self, dms, clock):
        element = dms.create_element(Thermostat, "Idle", start=False)
        clock.advance(600)
        assert RUNS == []
        with pytest.raises(ElementStateError, match="'Idle' is Stopped"):
            element.set("Threshold", 10)
        element.start()
        assert RUNS == [("startup", None)]


class TestUserSets:
    def test_get_and_set_by_id_or_name(self, thermostat):
        thermostat.set("Threshold", 75)
        assert thermostat.get(21) == 75
        thermostat.set(21, 80.5)
        assert thermostat.get("Threshold") == 80.5

    def test_a_set_fires_its_qactions_even_when_the_value_is_unchanged(self, thermostat):
        thermostat.set("Threshold", 50)
        thermostat.set("Threshold", 50)
        assert RUNS[1:] == [("threshold", 50), ("threshold", 50)]

    def test_a_discrete_is_set_by_value_or_name(self, thermostat):
        thermostat.set("Mode", "Auto")
        assert thermostat.get("Mode") == 1

    @pytest.mark.parametrize(
        ("ref", "value", "error", "message"),
        [
            ("Threshold", 101, InvalidValueError, "parameter 21 'Threshold': 101 is out of range; allowed: a number from 0 to 100 %"),
            ("Threshold", "high", InvalidValueError, "'high' is a str"),
            ("Mode", 2, InvalidValueError, "allowed values: 0 (Off), 1 (Auto)"),
            ("Label", "x" * 21, InvalidValueError, "too long"),
            ("Poll Count", 3, ReadOnlyParameterError, "parameter 11 'Poll Count' is a read parameter"),
            ("Nope", 3, UnknownParameterError, "no parameter or table 'Nope'"),
            (99, 3, UnknownParameterError, "no parameter or table 99"),
        ],
    )
    def test_bad_sets_raise_naming_the_parameter_and_change_nothing(self, thermostat, ref, value, error, message):
        before = {pid: thermostat.get(pid) for pid in (10, 11, 20, 21, 22)}
        runs_before = list(RUNS)
        with pytest.raises(error) as raised:
            thermostat.set(ref, value)
        assert message in str(raised.value)
        assert {pid: thermostat.get(pid) for pid in (10, 11, 20, 21, 22)} == before
        assert RUNS == runs_before

    def test_a_button_triggers_and_keeps_no_value(self, thermostat):
        thermostat.set("Refresh", "Refresh")
        thermostat.set("Refresh", 1)
        assert RUNS[1:] == [("refresh", 23), ("refresh", 23)]
        assert thermostat.get("Refresh") is None

    def test_a_failing_qaction_is_logged_and_the_element_keeps_running(self, thermostat, clock):
        thermostat.set("Break", 1)
        expect(thermostat).logged("QAction 5 'broken' failed: RuntimeError: device said no", LogType.ERROR)
        expect(thermostat).state(ElementState.ACTIVE)
        clock.advance(60)
        assert thermostat.get("Poll Count") == 1


def ping(protocol):
    protocol.set_parameter("Pong", protocol.get_parameter("Pong") + 1)


def pong(protocol):
    protocol.set_parameter("Ping", protocol.get_parameter("Ping") + 1)


def tick(protocol):
    protocol.set_parameter("Ticks", protocol.get_parameter("Ticks") + 1)


class PingPong(Protocol):
    """Two QActions that trigger each other forever."""

    name = "Ping Pong"
    parameters = (
        Parameter(1, "Ping", type=Number(), write=True, default=0),
        Parameter(2, "Pong", type=Number(), default=0),
        Parameter(3, "Ticks", type=Number(), default=0),
    )
    timers = (Timer(1, seconds=10, qactions=(3,), at_startup=False),)
    qactions = (QAction(1, ping, triggers=(1,)), QAction(2, pong, triggers=(2,)), QAction(3, tick))


def test_an_endless_qaction_chain_is_stopped_with_a_clear_error(dms, clock):
    element = dms.create_element(PingPong, "Loop")
    element.set("Ping", 0)
    expect(element).logged("QAction chain stopped after 200 triggers", LogType.ERROR)
    assert 90 <= element.get("Ping") <= 110
    clock.advance(30)
    assert element.get("Ticks") == 3  # still running
    element.set("Ping", 0)  # and a new chain starts afresh
    assert len(element.logs(LogType.ERROR)) == 2


def value_protocol(name: str, on_value) -> type[Protocol]:
    """A protocol with one write parameter, "Value", whose set runs `on_value`."""
    return type(
        name,
        (Protocol,),
        {
            "name": name,
            "parameters": (Parameter(1, "Value", type=Number(), write=True),),
            "qactions": (QAction(1, on_value, triggers=(1,)),),
        },
    )


class TestQueue:
    def test_qactions_of_one_element_never_overlap_and_run_in_order(self, dms):
        started = threading.Event()
        release = threading.Event()
        order: list[str] = []
        active = []

        def slow(protocol):
            active.append(1)
            assert len(active) == 1, "two QActions of one element ran at once"
            order.append(f"start {protocol.get_parameter('Value')}")
            if protocol.get_parameter("Value") == 1:
                started.set()
                release.wait(5)
            order.append(f"end {protocol.get_parameter('Value')}")
            active.pop()

        element = dms.create_element(value_protocol("Slow", slow), "Slow One")
        worker = threading.Thread(target=element.set, args=("Value", 1))
        worker.start()
        assert started.wait(5)
        element.set("Value", 2, wait=False)  # the queue is busy: this waits its turn
        assert order == ["start 1"]
        release.set()
        worker.join(5)
        assert order == ["start 1", "end 1", "start 2", "end 2"]

    def test_a_user_set_from_another_thread_waits_until_its_qactions_ran(self, dms):
        started = threading.Event()
        release = threading.Event()
        seen = []

        def record(protocol):
            value = protocol.get_parameter("Value")
            if value == 1:
                started.set()
                release.wait(5)
            seen.append(value)

        element = dms.create_element(value_protocol("Waiting", record), "Waiter")
        first = threading.Thread(target=element.set, args=("Value", 1))
        first.start()
        assert started.wait(5)
        second_done = threading.Event()
        second = threading.Thread(target=lambda: (element.set("Value", 2), second_done.set()))
        second.start()
        deadline = time.monotonic() + 5
        while not element._queue.pending and time.monotonic() < deadline:
            pass  # until the second set has queued its work behind the running QAction
        assert element._queue.pending and not second_done.is_set()
        release.set()
        second.join(5)
        first.join(5)
        assert seen == [1, 2]

    def test_a_timer_already_queued_is_not_queued_twice(self, dms, clock):
        started = threading.Event()
        release = threading.Event()

        def hold(protocol):
            started.set()
            release.wait(5)

        protocol = type(
            "Busy",
            (Protocol,),
            {
                "name": "Busy",
                "parameters": (Parameter(1, "Hold", type=Button(), write=True), Parameter(2, "Ticks", type=Number(), default=0)),
                "timers": (Timer(1, seconds=10, qactions=(2,), at_startup=False),),
                "qactions": (QAction(1, hold, triggers=(1,)), QAction(2, tick)),
            },
        )
        element = dms.create_element(protocol, "Busy One")
        worker = threading.Thread(target=element.set, args=("Hold", 1))
        worker.start()
        assert started.wait(5)
        clock.advance(50)  # five firings while the queue is busy
        release.set()
        worker.join(5)
        assert element.get("Ticks") == 1
        clock.advance(10)
        assert element.get("Ticks") == 2


def test_elements_do_not_share_values(dms):
    one = dms.create_element(Thermostat, "One")
    two = dms.create_element(Thermostat, "Two")
    one.set("Threshold", 10)
    assert two.get("Threshold") == 50


def test_each_dms_clock_drives_only_its_elements(tmp_path):
    first_clock, second_clock = VirtualClock(), VirtualClock()
    with DataMinerSystem(tmp_path / "a", first_clock) as first, DataMinerSystem(tmp_path / "b", second_clock) as second:
        a = first.create_element(Thermostat, "A")
        b = second.create_element(Thermostat, "B")
        first_clock.advance(120)
        assert (a.get("Poll Count"), b.get("Poll Count")) == (2, 0)
