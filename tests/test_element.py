"""Element runtime: states, user get/set, triggers, the queue, timers and loop protection."""

from __future__ import annotations

import threading
import time
from collections import deque
from functools import partial

import pytest

from dmemu.dms import DataMinerSystem
from dmemu.protocol import (
    Button,
    Column,
    Discrete,
    ElementState,
    ElementStateError,
    InvalidValueError,
    LogType,
    Number,
    Page,
    Parameter,
    ParameterChange,
    Protocol,
    QAction,
    QActionFailedError,
    ReadOnlyParameterError,
    String,
    Table,
    TableChange,
    Timer,
    UnknownParameterError,
    UnknownRowError,
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
    def test_start_runs_after_startup_qactions_and_schedules_timers(self, thermostat, dmemu_clock):
        assert thermostat.state is ElementState.ACTIVE
        assert RUNS == [("startup", None)]
        assert thermostat.get("Status") == "Up"
        dmemu_clock.advance(180)
        assert thermostat.get("Poll Count") == 3

    def test_timers_fire_only_while_active(self, thermostat, dmemu_clock):
        thermostat.pause()
        dmemu_clock.advance(600)
        assert thermostat.get("Poll Count") == 0
        thermostat.start()  # resumes: no second start-up
        dmemu_clock.advance(60)
        assert thermostat.get("Poll Count") == 1
        assert [r for r in RUNS if r[0] == "startup"] == [("startup", None)]
        thermostat.stop()
        dmemu_clock.advance(600)
        assert thermostat.state is ElementState.STOPPED

    def test_restart_starts_afresh(self, thermostat, dmemu_clock):
        dmemu_clock.advance(120)
        thermostat.restart()
        assert [r[0] for r in RUNS].count("startup") == 2
        assert thermostat.get("Poll Count") == 0  # not saved, so back to its default

    def test_an_element_created_stopped_does_nothing_until_started(self, dms, dmemu_clock):
        element = dms.create_element(Thermostat, "Idle", start=False)
        dmemu_clock.advance(600)
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

    def test_a_failing_qaction_is_logged_and_the_element_keeps_running(self, thermostat, dmemu_clock):
        thermostat.set("Break", 1)
        expect(thermostat).logged("QAction 5 'broken' failed: RuntimeError: device said no", LogType.ERROR)
        expect(thermostat).state(ElementState.ACTIVE)
        dmemu_clock.advance(60)
        assert thermostat.get("Poll Count") == 1

    def test_a_set_can_raise_when_its_qaction_fails(self, thermostat):
        with pytest.raises(QActionFailedError, match="element 'Living Room': QAction 5 'broken' failed: RuntimeError: device said no") as raised:
            thermostat.set("Break", 1, raise_on_failure=True)
        assert raised.value.qaction == "QAction 5 'broken'" and raised.value.element == "Living Room"
        assert isinstance(raised.value.__cause__, RuntimeError)
        expect(thermostat).logged("QAction 5 'broken' failed", LogType.ERROR)  # logged all the same
        expect(thermostat).state(ElementState.ACTIVE)

    def test_an_element_can_raise_on_every_failing_set_and_a_call_can_say_otherwise(self, thermostat):
        thermostat.raise_on_failure = True
        with pytest.raises(QActionFailedError, match="QAction 5 'broken'"):
            thermostat.set("Break", 1)
        thermostat.set("Break", 1, raise_on_failure=False)
        thermostat.set("Break", 1, wait=False)  # a set that does not wait cannot raise
        assert len(thermostat.logs(LogType.ERROR)) == 3

    def test_a_failure_deeper_in_the_sets_own_chain_raises(self, dms):
        def relay(protocol):  # sets a parameter of its own element: its QAction is in the chain
            protocol.set_parameter("Relayed", protocol.get_parameter("Value"))

        class Relay(Protocol):
            name = "Relay"
            parameters = (Parameter(1, "Value", type=Number(), write=True), Parameter(2, "Relayed", type=Number()))
            qactions = (QAction(1, relay, triggers=(1,)), QAction(2, broken, triggers=(2,)))

        element = dms.create_element(Relay, "Relay")
        with pytest.raises(QActionFailedError, match="QAction 2 'broken'"):
            element.set("Value", 1, raise_on_failure=True)

    def test_failures_of_other_work_do_not_raise_in_a_set(self, dms, dmemu_clock):
        def fail_on_timer(protocol):
            raise RuntimeError("timer work failed")

        class Flaky(Protocol):
            name = "Flaky Timer"
            parameters = (Parameter(1, "Value", type=Number(), write=True), Parameter(2, "Break", type=Button(), write=True))
            timers = (Timer(1, seconds=10, qactions=(1,), at_startup=False),)
            qactions = (QAction(1, fail_on_timer), QAction(2, on_refresh, triggers=(1,)), QAction(3, broken, triggers=(2,)))

        element = dms.create_element(Flaky, "Flaky")
        dmemu_clock.advance(30)
        element.set("Break", 1)  # failed, not asked to raise
        element.set("Value", 1, raise_on_failure=True)  # its own chain ran fine
        assert len(element.logs(LogType.ERROR)) == 4

    def test_a_failing_cell_set_can_raise(self, dms):
        def fill(protocol):
            protocol.fill_array("Rows", [["a", 1]])

        class Cells(Protocol):
            name = "Failing Cells"
            tables = (Table(100, "Rows", columns=(Column(101, "Key", key=True), Column(102, "Level", type=Number(), write=True))),)
            qactions = (QAction(1, broken, triggers=(102,)), QAction(2, fill, after_startup=True))

        element = dms.create_element(Cells, "Cells")
        with pytest.raises(QActionFailedError, match="QAction 1 'broken'"):
            element.set_cell("Rows", "a", "Level", 2, raise_on_failure=True)


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


def test_an_endless_qaction_chain_is_stopped_with_a_clear_error(dms, dmemu_clock):
    element = dms.create_element(PingPong, "Loop")
    element.set("Ping", 0)
    expect(element).logged("QAction chain stopped after 200 triggers", LogType.ERROR)
    assert 90 <= element.get("Ping") <= 110
    dmemu_clock.advance(30)
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


QUEUE_LOG: list[tuple[str, object]] = []
HOLD_STARTED = threading.Event()
HOLD_RELEASE = threading.Event()
RUNNING: list[str] = []  # QActions running now; more than one is an overlap
OVERLAPS: list[list[str]] = []


def tracked(name):
    """Wrap a QAction so the test can see whether two of one element ever run at once."""

    def run(protocol):
        RUNNING.append(name)
        if len(RUNNING) > 1:
            OVERLAPS.append(list(RUNNING))
        try:
            globals()[name](protocol)
        finally:
            RUNNING.remove(name)

    run.__name__ = name
    return run


def hold(protocol):
    HOLD_STARTED.set()
    HOLD_RELEASE.wait(5)
    QUEUE_LOG.append(("hold done", None))
    protocol.delete_row("Slots", "doomed")


def record_value(protocol):
    value = protocol.get_parameter("Value")
    QUEUE_LOG.append(("value", value))
    protocol.set_parameter("Echo", value)


def echo(protocol):
    QUEUE_LOG.append(("echo", protocol.get_parameter("Echo")))


def setup_slots(protocol):
    protocol.fill_array("Slots", [["doomed", 0], ["kept", 0]])


class QueueProbe(Protocol):
    name = "Queue Probe"
    parameters = (
        Parameter(1, "Hold", type=Button(), write=True),
        Parameter(2, "Value", type=Number(), write=True),
        Parameter(3, "Echo", type=Number()),
        Parameter(4, "Setup", type=Button(), write=True),
        Parameter(5, "Plain", type=Number(), write=True),
    )
    tables = (Table(100, "Slots", columns=(Column(101, "Slot", key=True), Column(102, "State", type=Number(), write=True))),)
    qactions = (
        QAction(1, tracked("hold"), triggers=(1,)),
        QAction(2, tracked("record_value"), triggers=(2,)),
        QAction(3, tracked("echo"), triggers=(3,)),
        QAction(4, setup_slots, triggers=(4,)),
    )


class HeldQueue:
    """Keeps an element's queue busy (a QAction blocked on an event in another thread)."""

    def __init__(self, element):
        HOLD_STARTED.clear()
        HOLD_RELEASE.clear()
        self.thread = threading.Thread(target=element.set, args=("Hold", 1))
        self.thread.start()
        assert HOLD_STARTED.wait(5), "the holding QAction did not start"
        self.element = element

    def queued(self, count):
        """Wait (busily, no sleeping) until `count` items are queued behind the held QAction."""
        deadline = time.monotonic() + 5
        while len(self.element._queue.pending) < count and time.monotonic() < deadline:
            pass
        assert len(self.element._queue.pending) >= count

    def release(self):
        HOLD_RELEASE.set()
        self.thread.join(5)
        assert not self.thread.is_alive()


def in_thread(function, *args):
    """Start `function(*args)` in a thread; answers (thread, outcome list filled when it returns)."""
    outcome: list = []

    def run():
        try:
            function(*args)
            outcome.append(("returned", list(QUEUE_LOG)))
        except Exception as error:  # the outcome is asserted by the test
            outcome.append(("raised", error))

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


class TestQueue:
    @pytest.fixture
    def probe(self, dms):
        QUEUE_LOG.clear()
        OVERLAPS.clear()
        element = dms.create_element(QueueProbe, "Probe")
        element.set("Setup", 1)
        return element

    def test_qactions_of_one_element_never_overlap_and_run_in_order(self, probe):
        held = HeldQueue(probe)
        probe.set("Value", 1, wait=False)  # the queue is busy: this waits its turn
        probe.set("Value", 2, wait=False)
        assert QUEUE_LOG == []
        held.release()
        # Both sets are stored before the QActions they trigger run, and a QAction reads the
        # parameter when it runs: each QAction of the chain runs once per set, in order.
        assert QUEUE_LOG == [("hold done", None), ("value", 2), ("value", 2), ("echo", 2), ("echo", 2)]
        assert OVERLAPS == []

    def test_a_waiting_set_returns_after_its_whole_chain_ran(self, probe):
        held = HeldQueue(probe)
        thread, outcome = in_thread(probe.set, "Value", 7)
        held.queued(1)
        assert outcome == []  # blocked behind the running QAction
        held.release()
        thread.join(5)
        assert outcome == [("returned", [("hold done", None), ("value", 7), ("echo", 7)])]

    def test_a_queued_set_that_fails_raises_in_its_own_caller_and_the_queue_goes_on(self, probe):
        held = HeldQueue(probe)
        failing, failed = in_thread(probe.set_cell, "Slots", "doomed", "State", 1)
        held.queued(1)
        behind, went_on = in_thread(probe.set, "Value", 3)
        held.queued(2)
        held.release()  # the held QAction deletes row 'doomed' before the queued cell set runs
        failing.join(5)
        behind.join(5)
        assert failed[0][0] == "raised" and isinstance(failed[0][1], UnknownRowError)
        assert went_on[0][0] == "returned" and ("echo", 3) in went_on[0][1]
        assert probe.table("Slots").keys() == ["kept"]

    def test_a_queued_failure_nobody_waits_for_is_logged(self, probe):
        held = HeldQueue(probe)
        probe.set_cell("Slots", "doomed", "State", 1, wait=False)
        probe.set("Value", 4, wait=False)
        held.release()
        expect(probe).logged("queued work failed: UnknownRowError", LogType.ERROR)
        assert ("echo", 4) in QUEUE_LOG

    def test_stop_drops_queued_work_and_answers_its_waiters(self, probe):
        held = HeldQueue(probe)
        probe.set("Value", 5, wait=False)
        waiting, outcome = in_thread(probe.set, "Value", 6)
        held.queued(2)
        stopper = threading.Thread(target=probe.stop)
        stopper.start()  # waits for the running QAction, then drops what is queued
        held.release()
        stopper.join(5)
        waiting.join(5)
        assert outcome[0][0] == "raised" and "stopped before this work ran" in str(outcome[0][1])
        assert QUEUE_LOG == [("hold done", None)]
        expect(probe).logged("stopped with 1 queued sets or QActions not run", LogType.ERROR)

    def test_a_queued_set_raises_the_failure_of_its_own_chain_only(self, dms):
        started, release = threading.Event(), threading.Event()

        def on_value(protocol):
            value = protocol.trigger_value
            if value == 1:  # the work ahead of the waiting sets, failing too
                started.set()
                release.wait(5)
                raise RuntimeError("the holder failed")
            if value == 2:
                raise ValueError("two is refused")

        element = dms.create_element(value_protocol("Refuses Two", on_value), "Refuser")
        holder = threading.Thread(target=element.set, args=("Value", 1))
        holder.start()
        assert started.wait(5)
        fine, fine_outcome = in_thread(partial(element.set, raise_on_failure=True), "Value", 3)
        failing, failing_outcome = in_thread(partial(element.set, raise_on_failure=True), "Value", 2)
        deadline = time.monotonic() + 5
        while len(element._queue.pending) < 2 and time.monotonic() < deadline:
            pass
        release.set()
        for thread in (holder, fine, failing):
            thread.join(5)
        assert fine_outcome[0][0] == "returned"  # the holder's failure is not its own
        kind, error = failing_outcome[0]
        assert kind == "raised" and isinstance(error, QActionFailedError) and isinstance(error.__cause__, ValueError)

    def test_a_plain_set_while_busy_waits_its_turn(self, probe):
        held = HeldQueue(probe)
        thread, outcome = in_thread(probe.set, "Plain", 9)
        held.queued(1)
        assert probe.get("Plain") is None
        held.release()
        thread.join(5)
        assert probe.get("Plain") == 9

    @staticmethod
    def run_left_and_right_at_once(dms, name, act_on_other):
        """Elements Left and Right, whose QActions run at once on two threads and each call
        `act_on_other(the other element)`; fails if they deadlock."""
        both_running = threading.Barrier(2, timeout=5)

        def qaction(protocol):
            if protocol.get_parameter("Value") == 1:
                both_running.wait()
                other = "Right" if protocol.element_name == "Left" else "Left"
                act_on_other(protocol.element.dms.element(other))

        left = dms.create_element(value_protocol(name, qaction), "Left")
        right = dms.create_element(value_protocol(name, qaction), "Right")
        threads = [threading.Thread(target=element.set, args=("Value", 1)) for element in (left, right)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(5)
        assert not any(thread.is_alive() for thread in threads), "deadlock"
        return left, right

    def test_elements_setting_each_other_from_qactions_on_two_threads_do_not_deadlock(self, dms):
        # the public API, which waits by default: the other is busy, so this one cannot wait
        left, right = self.run_left_and_right_at_once(dms, "Poker", lambda other: other.set("Value", 2))
        assert (left.get("Value"), right.get("Value")) == (2, 2)

    def test_elements_stopping_each_other_from_qactions_on_two_threads_do_not_deadlock(self, dms):
        left, right = self.run_left_and_right_at_once(dms, "Stopper", lambda other: other.stop())
        assert (left.state, right.state) == (ElementState.STOPPED, ElementState.STOPPED)
        assert left._queue.pending == deque() and right._queue.pending == deque()

    def test_a_caller_runs_only_its_own_chain_and_hands_the_rest_to_the_clock(self, dmemu_state_dir):
        """On the wall clock, start() runs the at-startup timer here, but not timer work that
        piles up meanwhile: that goes to the clock's workers, so start() returns."""
        first_run = threading.Event()
        release = threading.Event()
        later_runs: list[int] = []
        later_ran = threading.Event()

        def poll(protocol):
            if not first_run.is_set():
                first_run.set()
                release.wait(5)
            else:
                later_runs.append(threading.get_ident())
                later_ran.set()

        protocol = type(
            "Piling",
            (Protocol,),
            {"name": "Piling", "timers": (Timer(1, seconds=0.01, qactions=(1,)),), "qactions": (QAction(1, poll),)},
        )
        dms = DataMinerSystem(dmemu_state_dir)
        seen: dict[str, bool] = {}  # what the helper saw, asserted on this thread (an assert there fails nothing)

        def release_once_work_piles_up():
            try:
                seen["first run"] = first_run.wait(5)
                if seen["first run"]:
                    element = dms.element("Piling One")
                    deadline = time.monotonic() + 5
                    while not element._queue.pending and time.monotonic() < deadline:
                        pass  # a timer firing queued more work behind the running poll
                    seen["work piled up"] = bool(element._queue.pending)
            finally:
                release.set()  # whatever happened, the poll on the main thread goes on

        try:
            helper = threading.Thread(target=release_once_work_piles_up)
            helper.start()
            dms.create_element(protocol, "Piling One")  # runs the at-startup poll on this thread
            helper.join(5)
            assert seen == {"first run": True, "work piled up": True}
            assert later_ran.wait(5)
            assert threading.get_ident() not in later_runs
        finally:
            dms.close()

    def test_a_timer_already_queued_is_not_queued_twice(self, dms, dmemu_clock):
        def count(protocol):
            protocol.set_parameter("Echo", (protocol.get_parameter("Echo") or 0) + 1)

        protocol = type(
            "Busy",
            (QueueProbe,),
            {
                "name": "Busy",
                "timers": (Timer(1, seconds=10, qactions=(9,), at_startup=False),),
                "qactions": (*QueueProbe.qactions[:1], QAction(9, count)),
            },
        )
        element = dms.create_element(protocol, "Busy One")
        held = HeldQueue(element)
        dmemu_clock.advance(50)  # five firings while the queue is busy
        held.release()
        assert element.get("Echo") == 1
        dmemu_clock.advance(10)
        assert element.get("Echo") == 2


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


def test_a_table_view_counts_its_rows_as_the_qaction_api_does(dms):
    counted: list[int] = []

    def fill(protocol):
        protocol.fill_array("Rows", [[f"r{n}"] for n in range(protocol.get_parameter("Value"))])
        counted.append(protocol.row_count("Rows"))

    protocol = type(
        "Counted",
        (Protocol,),
        {
            "name": "Counted Rows",
            "parameters": (Parameter(1, "Value", type=Number(), write=True),),
            "tables": (Table(10, "Rows", columns=(Column(11, "Key", key=True),)),),
            "qactions": (QAction(1, fill, triggers=(1,)),),
        },
    )
    element = dms.create_element(protocol, "Counted")
    rows = element.table("Rows")
    assert rows.row_count() == 0
    element.set("Value", 3)
    assert rows.row_count() == counted[-1] == len(rows) == 3
    expect(element).table("Rows").row_count(rows.row_count())


def test_a_table_view_stays_live_across_a_restart(dms):
    def fill(protocol):
        protocol.fill_array("Rows", [[f"r{protocol.get_parameter('Value')}"]])

    protocol = type(
        "LiveView",
        (Protocol,),
        {
            "name": "Live View",
            "parameters": (Parameter(1, "Value", type=Number(), write=True),),
            "tables": (Table(10, "Rows", columns=(Column(11, "Key", key=True),)),),
            "qactions": (QAction(1, fill, triggers=(1,)),),
        },
    )
    element = dms.create_element(protocol, "Live")
    rows = element.table("Rows")
    element.set("Value", 1)
    assert rows.keys() == ["r1"]
    element.restart()
    assert rows.keys() == []  # not saved: empty after the restart, as the element shows
    element.set("Value", 2)
    assert rows.keys() == ["r2"]


def test_a_chain_through_many_elements_is_not_limited_by_python_recursion(dms):
    """Each element's QAction sets the next element: hops run nested only so deep, then queue."""
    count = 190  # under the loop limit (200 hops), well past where nesting hit the recursion limit

    def pass_on(protocol):
        number = int(protocol.element_name.split()[-1])
        if number + 1 < count:
            protocol.set_element_parameter(f"Relay {number + 1}", "Value", protocol.get_parameter("Value"))

    relays = [dms.create_element(value_protocol("Relay", pass_on), f"Relay {n}") for n in range(count)]
    relays[0].set("Value", 42)
    assert [relay.get("Value") for relay in relays] == [42] * count
    assert not [entry for relay in relays for entry in relay.logs(LogType.ERROR)]


def test_an_inline_item_that_raises_strands_nothing():
    from dmemu.protocol.queue import WorkQueue

    ran: list[str] = []
    queue = WorkQueue(dispatch=lambda work: work(), on_error=lambda error: ran.append(f"error {error}"))
    other_thread_item_queued = threading.Event()

    def failing_item():
        worker = threading.Thread(target=lambda: queue.run(ran.append, "other caller's item"))
        worker.start()
        worker.join(5)  # the queue is busy: the other caller's item waits in line
        other_thread_item_queued.set()
        raise RuntimeError("inline item failed")

    with pytest.raises(RuntimeError, match="inline item failed"):
        queue.run(failing_item)
    assert other_thread_item_queued.is_set()
    assert ran == ["other caller's item"] and not queue.pending


class Ledger(Protocol):
    """Every way a value or a table can change, to watch through change listeners."""

    name = "Ledger Test"
    parameters = (
        Parameter(1, "Plain", type=Number(), write=True),
        Parameter(2, "Triggering", type=Number(), write=True),
        Parameter(3, "Press", type=Button(), write=True),
        Parameter(4, "Copy", type=Number()),
        Parameter(5, "Clear", type=Button(), write=True),
    )
    tables = (Table(100, "Rows", columns=(Column(101, "Key", key=True), Column(102, "Value", type=Number(), write=True))),)

    @staticmethod
    def edit_rows(protocol):
        protocol.set_parameter("Copy", protocol.get_parameter("Triggering"))
        protocol.fill_array("Rows", [["a", 1], ["b", 2], ["c", 3]])
        protocol.add_row("Rows", ["d", 4])
        protocol.set_row("Rows", "a", [None, 10])
        protocol.fill_array_no_delete("Rows", [["b", 20], ["e", 5]])
        protocol.delete_row("Rows", ["c", "nope"])
        protocol.fill_array("Rows", [["a", 1]])

    qactions = (
        QAction(1, edit_rows, triggers=(2,)),
        QAction(2, lambda protocol: protocol.clear_table("Rows"), triggers=(5,)),
    )


def test_change_listeners_hear_every_value_and_table_change(dms):
    element = dms.create_element(Ledger, "Ledger")
    heard: list[object] = []
    element.add_change_listener(lambda source, change: heard.append(change) if source is element else None)
    element.set("Plain", 7)  # the fast path: nothing to trigger
    element.set("Press", 1)  # a button holds no value: nothing to hear
    element.set("Triggering", 3)
    element.set_cell("Rows", "a", "Value", 5)
    element.set("Clear", 1)
    assert heard == [
        ParameterChange(1, 7),
        ParameterChange(2, 3),
        ParameterChange(4, 3),
        TableChange(100, None, frozenset()),
        TableChange(100, frozenset({"d"})),
        TableChange(100, frozenset({"a"})),
        TableChange(100, frozenset({"b", "e"})),
        TableChange(100, frozenset(), frozenset({"c"})),
        TableChange(100, None, frozenset({"b", "d", "e"})),
        TableChange(100, frozenset({"a"})),
        TableChange(100, frozenset(), frozenset({"a"})),
    ]


def test_a_failing_listener_is_logged_and_breaks_nothing(dms):
    element = dms.create_element(Ledger, "Ledger")
    heard = []

    def broken(source, change):
        raise RuntimeError("listener bug")

    element.add_change_listener(broken)
    element.add_change_listener(lambda source, change: heard.append(change))
    element.set("Plain", 1)
    assert element.get("Plain") == 1 and heard == [ParameterChange(1, 1)]
    expect(element).logged("listener bug", LogType.ERROR)
    element.remove_change_listener(broken)
    element.set("Plain", 2)
    assert heard[-1] == ParameterChange(1, 2) and len(element.logs(LogType.ERROR)) == 1


def test_a_stop_tells_the_listeners_of_a_table_its_rows_are_new(dms):
    element = dms.create_element(Ledger, "Ledger")
    element.set("Triggering", 1)  # rows in a table not saved: a stop empties it
    heard = []
    element.add_change_listener(lambda source, change: heard.append(change), ids=(100,))
    element.stop()
    assert len(element.table("Rows")) == 0 and heard == [TableChange(100, None, frozenset())]


def test_a_listener_for_some_ids_hears_only_those(dms):
    element = dms.create_element(Ledger, "Ledger")
    plain_only, everything = [], []
    element.add_change_listener(lambda source, change: plain_only.append(change), ids=(1,))
    element.add_change_listener(lambda source, change: everything.append(change))
    element.set("Plain", 1)
    element.set("Triggering", 2)
    assert plain_only == [ParameterChange(1, 1)]
    assert everything[:2] == [ParameterChange(1, 1), ParameterChange(2, 2)] and TableChange(100, None) in everything


def test_listeners_of_some_ids_come_and_go_keeping_their_order_before_those_of_everything(dms):
    element = dms.create_element(Ledger, "Ledger")
    heard = []

    def listener(name):
        return lambda source, change: heard.append((name, change.parameter))

    first, everything, second, both, third = listener("first"), listener("everything"), listener("second"), listener("both"), listener("third")
    element.add_change_listener(first, ids=(1,))
    element.add_change_listener(everything)
    element.add_change_listener(second, ids=(1,))
    element.add_change_listener(both, ids=(1, 2))
    element.set("Plain", 1)
    assert [name for name, _ in heard] == ["first", "second", "both", "everything"]
    heard.clear()
    element.remove_change_listener(second)
    element.add_change_listener(third, ids=(1,))
    element.set("Plain", 2)
    element.set("Triggering", 3)
    assert [entry for entry in heard if entry[1] in (1, 2)] == [
        ("first", 1), ("both", 1), ("third", 1), ("everything", 1), ("both", 2), ("everything", 2),
    ]
    heard.clear()
    for known in (first, both, third):
        element.remove_change_listener(known)
    element.remove_change_listener(third)  # twice: nothing happens
    element.set("Plain", 4)
    assert heard == [("everything", 1)]
