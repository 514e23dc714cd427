"""Automation scripts: registered by name, started by hand, by elements and by alarm rules; they
get and set parameters, wait for changes and timeouts on the DMS clock, and end with a result
or an error that never takes an element down."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from dmemu.dms import (
    AlarmEvent,
    AlarmEventKind,
    AlarmRule,
    AlarmTemplate,
    DataMinerSystem,
    ScriptRun,
    ScriptState,
    Severity,
    Signal,
    Thresholds,
    UnknownScriptError,
    WaitTimeoutError,
)
from dmemu.dms.automation import VIRTUAL_WAIT_DEFAULT
from dmemu.protocol import (
    Button,
    Column,
    DmemuError,
    ElementNotFoundError,
    LogType,
    Number,
    Parameter,
    Protocol,
    QAction,
    String,
    Table,
    Timer,
    UnknownParameterError,
    expect,
)

EVENTS: list[str] = []


def start_flow(protocol):
    EVENTS.append("qaction begins")
    run = protocol.run_script("flow", {"from": protocol.element_name, "ticket": protocol.get_parameter("Command")})
    protocol.set_parameter("Flow Run", run.id)
    EVENTS.append(f"qaction ends, run {run.id} {run.state.value}")


def execute_command(protocol):
    protocol.set_parameter("Status", f"done: {protocol.get_parameter('Command')}")


class Device(Protocol):
    name = "Automation Test Device"
    parameters = (
        Parameter(10, "Level", type=Number(), write=True, default=0),
        Parameter(11, "Command", type=String(), write=True, default=""),
        Parameter(12, "Status", type=String(), default=""),
        Parameter(13, "Start Flow", type=Number(), write=True, default=0),
        Parameter(14, "Flow Run", type=Number(), default=0),
    )
    tables = (Table(100, "Ports", columns=(Column(101, "Port", key=True), Column(102, "Speed", type=Number()))),)
    qactions = (QAction(1, execute_command, triggers=(11,)), QAction(2, start_flow, triggers=(13,)))


@pytest.fixture(autouse=True)
def clear_events():
    EVENTS.clear()


@pytest.fixture
def device(dms):
    return dms.create_element(Device, "Device 1")


# -- started by hand ------------------------------------------------------------------------------


def test_a_script_run_by_hand_gets_and_sets_parameters_and_ends_with_its_result(dms, device, dmemu_clock):
    def check_device(ctx, input):
        ctx.set_parameter("Device 1", "Command", f"reset {input['port']}")  # its QAction runs at once
        return {"level": ctx.get_parameter((1, 1), 10), "status": ctx.get_parameter("Device 1", "Status")}

    dms.automation.register("check device", check_device)
    dmemu_clock.advance(5)
    run = dms.automation.run("check device", {"port": "A1"})
    assert (run.id, run.script, run.input, run.state) == (1, "check device", {"port": "A1"}, ScriptState.SUCCEEDED)
    assert run.result == {"level": 0, "status": "done: reset A1"}
    assert run.error is None
    assert run.started == run.finished == dmemu_clock.now()
    assert run.wait() is run
    assert dms.automation.scripts == ["check device"]


def test_sets_from_a_script_are_checked_like_a_users(dms, device):
    def set_badly(ctx, input):
        ctx.set_parameter("Device 1", "Level", "high")

    dms.automation.register("bad set", set_badly)
    run = dms.automation.run("bad set")
    assert run.state is ScriptState.FAILED
    assert run.error.startswith("InvalidValueError: parameter 10 'Level': 'high' is a str")


def test_an_unknown_script_is_named_with_those_registered(dms):
    dms.automation.register("one", lambda ctx, input: None)
    with pytest.raises(UnknownScriptError, match="no automation script 'two'; registered: 'one'"):
        dms.automation.run("two")
    with pytest.raises(ValueError, match="'one' is already registered"):
        dms.automation.register("one", lambda ctx, input: 1)
    dms.automation.register("one", lambda ctx, input: 1, replace=True)
    assert dms.automation.run("one").result == 1
    dms.automation.unregister("one")
    assert dms.automation.scripts == []


# -- started by an element ------------------------------------------------------------------------


def test_an_element_starts_a_script_that_runs_once_its_qaction_is_done(dms, device):
    def flow(ctx, input):
        EVENTS.append(f"script runs with {input}, sees run {ctx.get_parameter('Device 1', 'Flow Run')}")
        return "flow done"

    dms.automation.register("flow", flow)
    device.set("Command", "MO-1")
    device.set("Start Flow", 1)
    assert EVENTS == [
        "qaction begins",
        "qaction ends, run 1 running",  # not run inside the QAction
        "script runs with {'from': 'Device 1', 'ticket': 'MO-1'}, sees run 1",
    ]
    assert dms.automation.runs()[0].result == "flow done"


def test_a_qaction_starting_an_unknown_script_fails_and_the_element_runs_on(dms, device):
    device.set("Start Flow", 1)
    expect(device).logged("UnknownScriptError: no automation script 'flow'", LogType.ERROR)
    device.set("Command", "still here")
    expect(device).parameter("Status").equals("done: still here")


# -- waiting ------------------------------------------------------------------------------------


def test_wait_for_resumes_when_the_parameter_changes(dms, device, dmemu_clock):
    async def wait_for_level(ctx, input):
        level = await ctx.wait_for("Device 1", "Level")
        return f"level {level} at {ctx.now() - ctx.run.started:g} s"

    dms.automation.register("wait", wait_for_level)
    run = dms.automation.run("wait")
    assert run.state is ScriptState.RUNNING
    dmemu_clock.advance(42)
    device.set("Level", 7)
    assert (run.state, run.result, run.finished - run.started) == (ScriptState.SUCCEEDED, "level 7 at 42 s", 42)


def test_wait_for_with_a_predicate_skips_values_it_does_not_accept(dms, device):
    async def wait_for_high_level(ctx, input):
        return await ctx.wait_for("Device 1", 10, lambda level: level > 50, timeout=60)

    dms.automation.register("wait", wait_for_high_level)
    run = dms.automation.run("wait")
    device.set("Level", 20)
    assert run.state is ScriptState.RUNNING
    device.set("Level", 80)
    assert run.result == 80


def test_wait_for_with_a_predicate_sees_an_answer_that_came_before_the_wait(dms, device):
    async def command_and_wait(ctx, input):
        ctx.set_parameter("Device 1", "Command", "reboot")  # the QAction answers inside this set
        return await ctx.wait_for("Device 1", "Status", lambda status: status == "done: reboot", timeout=10)

    dms.automation.register("command", command_and_wait)
    assert dms.automation.run("command").result == "done: reboot"


def test_wait_for_times_out_on_the_dms_clock(dms, device, dmemu_clock):
    async def wait_in_vain(ctx, input):
        try:
            await ctx.wait_for("Device 1", "Level", lambda level: level > 50, timeout=30)
        except WaitTimeoutError as error:
            return f"gave up: {error}"

    dms.automation.register("wait", wait_in_vain)
    run = dms.automation.run("wait")
    dmemu_clock.advance(29)
    device.set("Level", 10)
    assert run.state is ScriptState.RUNNING
    dmemu_clock.advance(1)
    assert run.result == "gave up: script 'wait' run 1: element 'Device 1' parameter 10 'Level' did not get the awaited value within 30 s"
    assert run.finished - run.started == 30
    assert device._change_listeners == ()  # the wait's listener went with it
    device.set("Level", 99)  # too late: nothing happens
    assert run.result.startswith("gave up")


def test_a_wait_that_times_out_unhandled_fails_the_run(dms, device, dmemu_clock):
    async def wait_in_vain(ctx, input):
        await ctx.wait_for("Device 1", "Level", timeout=5)

    dms.automation.register("wait", wait_in_vain)
    run = dms.automation.run("wait")
    dmemu_clock.advance(5)
    assert run.state is ScriptState.FAILED
    assert run.error.startswith("WaitTimeoutError: script 'wait' run 1: element 'Device 1' parameter 10 'Level'")


def test_a_timeout_of_zero_only_looks_at_the_current_value(dms, device):
    async def look(ctx, input):
        return await ctx.wait_for("Device 1", "Level", lambda level: level == 0, timeout=0)

    async def look_in_vain(ctx, input):
        await ctx.wait_for("Device 1", "Level", lambda level: level == 1, timeout=0)

    dms.automation.register("look", look)
    dms.automation.register("look in vain", look_in_vain)
    assert dms.automation.run("look").result == 0
    assert dms.automation.run("look in vain").error.startswith("WaitTimeoutError")


@pytest.mark.parametrize(
    ("element", "parameter", "error"),
    [
        ("Nobody", "Level", ElementNotFoundError),
        ("Device 1", "Nope", UnknownParameterError),
        ("Device 1", "Ports", UnknownParameterError),
    ],
)
def test_a_wait_for_something_that_does_not_exist_fails_the_run(dms, device, element, parameter, error):
    async def wait(ctx, input):
        await ctx.wait_for(element, parameter, timeout=5)

    dms.automation.register("wait", wait)
    assert dms.automation.run("wait").error.startswith(error.__name__)


def test_a_predicate_that_raises_fails_the_run_not_the_set(dms, device):
    async def wait(ctx, input):
        await ctx.wait_for("Device 1", "Level", lambda level: 1 / level > 0)

    dms.automation.register("wait", wait)
    run = dms.automation.run("wait")
    device.set("Level", 0)
    assert run.error == "ZeroDivisionError: division by zero"
    assert device.get("Level") == 0
    assert device.logs(LogType.ERROR) == []


def test_sleep_passes_virtual_time_only(dms, dmemu_clock):
    async def nap(ctx, input):
        before = ctx.now()
        await ctx.sleep(3600)
        await ctx.sleep(0)  # no wait at all
        return ctx.now() - before

    dms.automation.register("nap", nap)
    began = time.monotonic()
    run = dms.automation.run("nap")
    dmemu_clock.advance(3599)
    assert run.state is ScriptState.RUNNING
    dmemu_clock.advance(1)
    assert run.result == 3600
    assert time.monotonic() - began < 1


def test_wait_moves_a_virtual_clock_until_the_run_is_done(dms, dmemu_clock):
    async def nap(ctx, input):
        await ctx.sleep(90)
        return "rested"

    dms.automation.register("nap", nap)
    start = dmemu_clock.now()
    assert dms.automation.run("nap").wait().result == "rested"
    assert dmemu_clock.now() - start == 90
    with pytest.raises(TimeoutError, match="still running after 10 virtual seconds"):
        dms.automation.run("nap").wait(timeout=10)


def test_awaiting_anything_but_the_context_fails_the_run(dms):
    async def uses_asyncio(ctx, input):
        await asyncio.sleep(0)  # without a running loop it yields to whoever drives the coroutine

    dms.automation.register("asyncio", uses_asyncio)
    run = dms.automation.run("asyncio")
    assert run.error.startswith("TypeError: a script awaits ctx.sleep, ctx.wait_for, ctx.wait_run and ctx.wait_signal only")


# -- several runs ---------------------------------------------------------------------------------


def test_concurrent_runs_interleave_in_one_deterministic_order(dms, device, dmemu_clock):
    async def ticker(ctx, input):
        for _ in range(3):
            await ctx.sleep(input)
            ctx.log(f"tick every {input}")
            EVENTS.append(f"{input}s ticker at {ctx.now() - start:g}")
        return input

    async def watcher(ctx, input):
        level = await ctx.wait_for("Device 1", "Level", lambda level: level >= 3)
        EVENTS.append(f"watcher saw {level} at {ctx.now() - start:g}")
        ctx.set_parameter("Device 1", "Command", "level reached")

    start = dmemu_clock.now()
    dms.automation.register("ticker", ticker)
    dms.automation.register("watcher", watcher)
    runs = [dms.automation.run("ticker", 10), dms.automation.run("ticker", 15), dms.automation.run("watcher")]
    for level in range(1, 5):
        dmemu_clock.advance(10)
        device.set("Level", level)
    dmemu_clock.advance(10)
    assert EVENTS == [
        "10s ticker at 10",
        "15s ticker at 15",
        "10s ticker at 20",
        "15s ticker at 30",  # due at the same time: the wait that began first ends first
        "10s ticker at 30",
        "watcher saw 3 at 30",
        "15s ticker at 45",
    ]
    assert [run.state for run in runs] == [ScriptState.SUCCEEDED] * 3
    assert device.get("Status") == "done: level reached"
    assert [entry.message for entry in runs[0].logs()] == ["tick every 10"] * 3
    assert len(dms.automation.logs()) == 6


def test_a_script_started_from_a_script_runs_after_the_step_that_started_it(dms):
    def parent(ctx, input):
        child = ctx.dms.automation.run("child")
        EVENTS.append(f"parent started child {child.id}: {child.state.value}")

    def child(ctx, input):
        EVENTS.append("child runs")

    dms.automation.register("parent", parent)
    dms.automation.register("child", child)
    dms.automation.run("parent")
    assert EVENTS == ["parent started child 2: running", "child runs"]


# -- failures -------------------------------------------------------------------------------------


def test_a_script_that_raises_is_logged_with_its_input_and_the_element_runs_on(dms, device, caplog):
    async def fragile(ctx, input):
        await ctx.wait_for("Device 1", "Level")
        raise RuntimeError(f"cannot handle {input['ticket']}")

    dms.automation.register("fragile", fragile)
    run = dms.automation.run("fragile", {"ticket": "MO-7"})
    device.set("Level", 1)  # resumes the script, which raises
    assert run.state is ScriptState.FAILED
    assert run.error == "RuntimeError: cannot handle MO-7"
    assert run.result is None
    (entry,) = dms.automation.logs(LogType.ERROR)
    assert entry.message.startswith("script 'fragile' run 1: failed on input {'ticket': 'MO-7'}: RuntimeError: cannot handle MO-7 (")
    assert entry.message.endswith(f"{__file__}:{fragile.__code__.co_firstlineno + 2})")
    assert [e.message for e in run.logs(LogType.ERROR)] == [entry.message.removeprefix("script 'fragile' run 1: ")]
    assert "script 'fragile' run 1: failed on input" in caplog.text
    # The element is untouched and goes on working, and so do other scripts.
    assert device.logs(LogType.ERROR) == []
    device.set("Command", "next")
    expect(device).parameter("Status").equals("done: next")
    dms.automation.register("fine", lambda ctx, input: "ok")
    assert dms.automation.run("fine").result == "ok"


def test_a_long_input_is_shortened_in_the_log(dms):
    def fail(ctx, input):
        raise ValueError("bad")

    dms.automation.register("fail", fail)
    dms.automation.run("fail", "x" * 10_000)
    assert len(dms.automation.logs(LogType.ERROR)[0].message) < 400


# -- started by alarm rules -------------------------------------------------------------------------

LEVEL_TEMPLATE = AlarmTemplate("Level", {"Level": Thresholds(high={Severity.MAJOR: 50, Severity.CRITICAL: 80})})


class OtherDevice(Device):
    name = "Automation Test Other Device"


@pytest.fixture
def monitored(dms):
    """Two devices of one protocol and one of another, all with the level template."""
    elements = [dms.create_element(Device, "Device 1"), dms.create_element(Device, "Device 2"), dms.create_element(OtherDevice, "Other 1")]
    for element in elements:
        dms.alarms.assign_template(element, LEVEL_TEMPLATE)
    return elements


async def handle_alarm(ctx, event: AlarmEvent):
    """Record the alarm on it, then wait for the level to come back, as a ticketing flow would."""
    alarm = event.alarm
    EVENTS.append(f"{ctx.run.id}: {event.kind.value} {alarm.severity.label} on {alarm.element_name}")
    ctx.dms.alarms.set_property(alarm.id, "Ticket", f"T-{ctx.run.id}")
    return await ctx.wait_for(alarm.element_ids, alarm.parameter_id, lambda level: level <= 50, timeout=3600)


def test_a_new_critical_alarm_on_elements_of_a_protocol_starts_a_script_with_the_alarm(dms, monitored, dmemu_clock):
    device_1, device_2, other = monitored
    dms.automation.register("handle alarm", handle_alarm)
    dms.automation.on_alarm(AlarmRule(protocol=Device.name, min_severity=Severity.CRITICAL), "handle alarm")
    device_1.set("Level", 60)  # Major: not critical
    device_1.set("Level", 90)  # Critical now, but not a new alarm
    other.set("Level", 90)  # another protocol
    assert dms.automation.runs() == []
    device_2.set("Level", 95)
    (run,) = dms.automation.runs()
    assert EVENTS == ["1: opened Critical on Device 2"]
    assert isinstance(run.input, AlarmEvent) and run.input.alarm.element_ids == device_2.ids
    (alarm,) = dms.alarms.active(element="Device 2")
    assert alarm.properties == {"Ticket": "T-1"}  # the script's property is on the alarm
    dmemu_clock.advance(600)
    device_2.set("Level", 10)  # back to normal: the alarm clears and the script ends
    assert (run.state, run.result, run.finished - run.started) == (ScriptState.SUCCEEDED, 10, 600)
    assert dms.alarms.active(element="Device 2") == []


def test_rules_match_by_element_parameter_and_event_kind(dms, monitored):
    device_1, device_2, _ = monitored
    dms.automation.register("handle alarm", handle_alarm)
    dms.automation.on_alarm(AlarmRule(element=(1, 2), parameter="Level", kinds=("opened", AlarmEventKind.CHANGED)), "handle alarm")
    dms.automation.on_alarm(AlarmRule(element="Device 1", parameter=10, min_severity="Major", kinds="cleared"), "handle alarm")
    device_2.set("Level", 60)
    device_2.set("Level", 90)
    device_1.set("Level", 60)
    device_1.set("Level", 0)  # cleared: the worst it reached (Major) counts
    assert EVENTS == [
        "1: opened Major on Device 2",
        "2: changed Critical on Device 2",
        "3: cleared Normal on Device 1",
    ]


def test_a_script_started_by_an_alarm_runs_after_the_qaction_that_raised_it(dms):
    def raise_level(protocol):
        protocol.set_parameter("Level", 99)  # the alarm opens here
        EVENTS.append("qaction goes on")
        protocol.set_parameter("Status", "set after the alarm")

    def record(ctx, event):
        EVENTS.append(f"script sees {ctx.get_parameter(event.alarm.element_ids, 'Status')!r}")

    raiser = type("Raiser", (Device,), {"name": "Raiser", "qactions": (QAction(1, raise_level, triggers=(13,)),)})
    element = dms.create_element(raiser, "Raiser 1")
    dms.alarms.assign_template(element, LEVEL_TEMPLATE)
    dms.automation.register("record", record)
    dms.automation.on_alarm(AlarmRule(), "record")
    element.set("Start Flow", 1)
    assert EVENTS == ["qaction goes on", "script sees 'set after the alarm'"]


def test_removing_a_rule_and_its_script(dms, monitored):
    device_1 = monitored[0]
    dms.automation.register("handle alarm", handle_alarm)
    remove = dms.automation.on_alarm(AlarmRule(), "handle alarm")
    with pytest.raises(UnknownScriptError, match="'missing'"):
        dms.automation.on_alarm(AlarmRule(), "missing")
    with pytest.raises(ValueError, match="'Huge' is not a severity"):
        AlarmRule(min_severity="Huge")
    dms.automation.unregister("handle alarm")
    device_1.set("Level", 60)
    (entry,) = dms.automation.logs(LogType.ERROR)
    assert entry.message.startswith("alarm 1 opened matches AlarmRule(")
    assert entry.message.endswith("but script 'handle alarm' did not start: no automation script 'handle alarm'; registered: none")
    remove()
    device_1.set("Level", 0)
    assert len(dms.automation.logs(LogType.ERROR)) == 1
    assert dms.automation.runs() == []


def test_a_script_started_by_an_alarm_that_raises_leaves_the_element_alone(dms, monitored):
    def fail(ctx, event):
        raise RuntimeError(f"no ticket for alarm {event.alarm.id}")

    dms.automation.register("fail", fail)
    dms.automation.on_alarm(AlarmRule(), "fail")
    monitored[0].set("Level", 60)
    assert dms.automation.runs()[0].error == "RuntimeError: no ticket for alarm 1"
    assert monitored[0].logs(LogType.ERROR) == []
    assert [alarm.severity for alarm in dms.alarms.active()] == [Severity.MAJOR]


# -- history --------------------------------------------------------------------------------------


def test_runs_are_kept_in_a_bounded_history_with_the_running_ones(dms, device):
    async def wait(ctx, input):
        return await ctx.wait_for("Device 1", "Level")

    def fail(ctx, input):
        raise ValueError(input)

    dms.automation.register("wait", wait)
    dms.automation.register("fail", fail)
    dms.automation.register("echo", lambda ctx, input: input)
    dms.automation.history_limit = 3
    waiting = dms.automation.run("wait")
    for n in range(4):
        dms.automation.run("echo", n)
    dms.automation.run("fail", "x")
    assert [(run.id, run.script) for run in dms.automation.runs()] == [(1, "wait"), (4, "echo"), (5, "echo"), (6, "fail")]
    assert [run.id for run in dms.automation.runs(state="failed")] == [6]
    assert [run.id for run in dms.automation.runs(script="echo", state=ScriptState.SUCCEEDED)] == [4, 5]
    assert dms.automation.runs(state=ScriptState.RUNNING) == [waiting]
    device.set("Level", 3)
    assert [run.id for run in dms.automation.runs()] == [1, 5, 6]  # in start order; 4 made way for 1
    assert isinstance(waiting, ScriptRun) and repr(waiting) == "<ScriptRun 1 'wait' succeeded>"
    with pytest.raises(ValueError, match="from 0 up"):
        dms.automation.history_limit = -1


def test_a_killed_run_ends_at_once_as_failed_with_the_reason_and_is_never_resumed(dms, device, dmemu_clock):
    async def wait(ctx, input):
        try:
            await ctx.wait_for("Device 1", "Level", lambda level: level > 5, timeout=60)
            EVENTS.append("resumed")
        finally:
            EVENTS.append("cleaned up")

    async def watch(ctx, run):
        watched = await ctx.wait_run(run)
        return (watched.state.value, watched.error)

    dms.automation.register("wait", wait)
    dms.automation.register("watch", watch)
    run = dms.automation.run("wait")
    watcher = dms.automation.run("watch", run)
    dmemu_clock.advance(10)
    listeners = len(device._change_listeners)
    assert run.kill("the operator stopped it") is True
    assert (run.state, run.error, run.done, run.finished) == (ScriptState.FAILED, "ScriptKilledError: the operator stopped it", True, dmemu_clock.now())
    assert EVENTS == ["cleaned up"]  # its finally ran, nothing else
    assert len(device._change_listeners) == listeners - 1  # its wait was called off
    assert any("ScriptKilledError: the operator stopped it" in entry.message for entry in run.logs(LogType.ERROR))
    assert watcher.done and watcher.result == ("failed", "ScriptKilledError: the operator stopped it")  # a run waiting for it hears
    device.set("Level", 10)
    dmemu_clock.advance(120)  # neither the set nor the timeout resumes it
    assert EVENTS == ["cleaned up"] and run.error == "ScriptKilledError: the operator stopped it"
    assert run.kill() is False and dms.automation.kill(run) is False  # done already: left as it is
    assert dms.automation.runs(state=ScriptState.RUNNING) == []


def test_automation_kills_its_own_runs_and_a_script_cannot_kill_its_own(dms, device, dmemu_clock, tmp_path):
    async def sleeper(ctx, input):
        await ctx.sleep(3600)

    async def suicidal(ctx, input):
        ctx.run.kill()

    dms.automation.register("sleeper", sleeper)
    dms.automation.register("suicidal", suicidal)
    run = dms.automation.run("sleeper")
    assert dms.automation.kill(run) is True
    assert run.error == "ScriptKilledError: killed by a user"
    own = dms.automation.run("suicidal")
    assert own.state is ScriptState.FAILED and own.error.startswith("DmemuError: <ScriptRun 2 'suicidal' running> cannot kill itself")
    with DataMinerSystem(tmp_path / "other", dmemu_clock) as other:
        with pytest.raises(ValueError, match="is not a run of this DataMiner System"):
            other.automation.kill(run)


def test_closing_the_dms_ends_waiting_runs_as_failed(dms, device, dmemu_state_dir, dmemu_clock):
    async def wait(ctx, input):
        try:
            await ctx.wait_for("Device 1", "Level", timeout=3600)
        finally:
            EVENTS.append("cleaned up")

    dms.automation.register("wait", wait)
    run = dms.automation.run("wait")
    dms.close()
    assert run.state is ScriptState.FAILED
    assert run.error == "DmemuError: the DataMiner System closed while the script was running"
    assert EVENTS == ["cleaned up"]
    with pytest.raises(DmemuError, match="closed"):
        dms.automation.run("wait")
    with DataMinerSystem(dmemu_state_dir, dmemu_clock) as again:
        assert again.automation.runs() == [] and again.automation.scripts == []  # registrations are code


# -- the real clock -------------------------------------------------------------------------------


def test_on_the_real_clock_runs_are_resumed_by_other_threads(dmemu_state_dir):
    # Each step waits for a condition, never for a length of wall time: a busy machine makes it slower, not wrong.
    listening = threading.Semaphore(0)  # released by each run once it waits for the level

    def level_set(level):
        if level <= 0:
            listening.release()  # it looked at the current level after listening: only a set ends its wait
        return level > 0

    async def flow(ctx, input):
        await ctx.sleep(0.05)  # resumed by the clock's worker thread
        level = await ctx.wait_for("Device 1", "Level", level_set, timeout=60)  # resumed by the setter's thread
        ctx.set_parameter("Device 1", "Command", f"level {level}")
        return level

    with DataMinerSystem(dmemu_state_dir) as dms:
        device = dms.create_element(Device, "Device 1")
        status_done = threading.Event()

        def on_status(_, change):
            if change.value == "done: level 4":
                status_done.set()

        device.add_change_listener(on_status, ids=(12,))
        dms.automation.register("flow", flow)
        runs = [dms.automation.run("flow") for _ in range(5)]
        for run in runs:
            assert listening.acquire(timeout=30), f"{run!r} never got to its wait for the level"
        device.set("Level", 4)
        assert [run.wait(timeout=30).result for run in runs] == [4] * 5
        assert status_done.wait(30)  # the QAction of the runs' set, on the element's own queue
        assert device.get("Status") == "done: level 4"

        device.set("Level", 0)
        late = dms.automation.run("flow")
        assert listening.acquire(timeout=30)  # it waits for a level nobody has set yet
        with pytest.raises(TimeoutError, match="still running after 0.05 seconds"):
            late.wait(timeout=0.05)
        device.set("Level", 7)
        assert late.wait(timeout=30).result == 7


# -- waiting for runs -----------------------------------------------------------------------------


def test_run_wait_inside_a_qaction_is_refused_at_once(dms, device, dmemu_clock):
    def start_and_wait(protocol):
        protocol.run_script("flow").wait()  # the run starts only after this QAction: never

    dms.automation.register("flow", lambda ctx, input: "done")
    waiter = type("Waiter", (Device,), {"name": "Waiter", "qactions": (QAction(1, start_and_wait, triggers=(13,)),)})
    element = dms.create_element(waiter, "Waiter")
    before = dmemu_clock.now()
    element.set("Start Flow", 1)
    expect(element).logged("DmemuError: <ScriptRun 1 'flow' running>: wait() cannot be called from a QAction or a script step", LogType.ERROR)
    assert dmemu_clock.now() == before  # no timers were driven from inside the QAction
    assert dms.automation.runs()[0].result == "done"  # the run itself went ahead after the QAction


def test_a_script_waits_for_the_run_it_started_with_wait_run(dms, dmemu_clock):
    async def child(ctx, input):
        await ctx.sleep(30)
        return input * 2

    def blocking_parent(ctx, input):
        return ctx.dms.automation.run("child", 1).wait()

    async def parent(ctx, input):
        run = ctx.dms.automation.run("child", input)
        done = await ctx.wait_run(run)
        return (done is run, done.state.value, done.result, ctx.now() - ctx.run.started)

    async def impatient_parent(ctx, input):
        await ctx.wait_run(ctx.dms.automation.run("child", 1), timeout=10)

    for name, script in (("child", child), ("parent", parent), ("blocking", blocking_parent), ("impatient", impatient_parent)):
        dms.automation.register(name, script)
    assert dms.automation.run("parent", 21).wait().result == (True, "succeeded", 42, 30)
    assert dms.automation.run("blocking").error.startswith("DmemuError: <ScriptRun 4 'child' running>: wait() cannot be called")
    assert dms.automation.run("impatient").wait().error.startswith("WaitTimeoutError: script 'impatient' run 5: <ScriptRun 6 'child' running> was not done within 10 s")


def test_wait_run_of_a_run_already_done_answers_at_once_and_of_itself_fails(dms):
    async def parent(ctx, input):
        run = ctx.dms.automation.run("child")
        await ctx.sleep(1)
        return (await ctx.wait_run(run)).result

    async def selfish(ctx, input):
        await ctx.wait_run(ctx.run)

    dms.automation.register("child", lambda ctx, input: "child done")
    dms.automation.register("parent", parent)
    dms.automation.register("selfish", selfish)
    assert dms.automation.run("parent").wait().result == "child done"
    assert dms.automation.run("selfish").error == "ValueError: <ScriptRun 3 'selfish' running> cannot wait for itself"


def test_wait_run_with_a_timeout_of_0_times_out_at_once_unless_the_run_is_done(dms, dmemu_clock):
    async def child(ctx, input):
        await ctx.sleep(30)

    async def parent(ctx, input):
        await ctx.wait_run(ctx.dms.automation.run("child"), timeout=0)

    async def late_parent(ctx, input):
        run = ctx.dms.automation.run("child")
        await ctx.sleep(60)
        return (await ctx.wait_run(run, timeout=0)).state.value

    for name, script in (("child", child), ("parent", parent), ("late parent", late_parent)):
        dms.automation.register(name, script)
    started = dmemu_clock.now()
    assert dms.automation.run("parent").wait().error == "WaitTimeoutError: script 'parent' run 1: <ScriptRun 2 'child' running> was not done within 0 s"
    assert dmemu_clock.now() == started  # at once: no timer ran out
    assert dms.automation.run("late parent").wait().result == "succeeded"


def test_a_script_waits_for_a_signal_set_by_anyone(dms, dmemu_clock):
    signal = Signal()
    assert not signal.is_set() and repr(signal) == "<Signal not set>"

    async def waiter(ctx, input):
        started = ctx.now()
        await ctx.wait_signal(signal, timeout=60)
        return ctx.now() - started

    dms.automation.register("waiter", waiter)
    run = dms.automation.run("waiter")
    dmemu_clock.advance(10)
    assert not run.done
    signal.set()
    signal.set()  # once is all it takes; again does nothing
    assert run.wait().result == 10
    assert signal.is_set() and repr(signal) == "<Signal set>"
    assert dms.automation.run("waiter").wait().result == 0  # already set: no wait
    assert not signal._callbacks  # nothing kept after the wake


def test_a_wait_for_a_signal_times_out_and_is_forgotten_when_it_ends(dms, dmemu_clock):
    signal = Signal()

    async def waiter(ctx, timeout):
        await ctx.wait_signal(signal, timeout=timeout)

    async def wrong(ctx, input):
        await ctx.wait_signal(input)

    dms.automation.register("waiter", waiter)
    dms.automation.register("wrong", wrong)
    started = dmemu_clock.now()
    assert dms.automation.run("waiter", 30).wait().error == "WaitTimeoutError: script 'waiter' run 1: <Signal not set> was not set within 30 s"
    assert dmemu_clock.now() - started == 30
    assert dms.automation.run("waiter", 0).wait().error.startswith("WaitTimeoutError: script 'waiter' run 2: <Signal not set> was not set within 0 s")
    assert dmemu_clock.now() - started == 30  # a timeout of 0 ends the wait at once
    killed = dms.automation.run("waiter", None)
    assert len(signal._callbacks) == 1
    assert killed.kill()
    assert not signal._callbacks  # a killed run's wait is forgotten
    assert dms.automation.run("waiter", -1).wait().error == "ValueError: a wait's timeout is a number of seconds from 0 up, not -1"
    assert dms.automation.run("wrong", "flag").wait().error == "TypeError: ctx.wait_signal waits for a Signal, not 'flag'"
    assert dms.clock.scheduler.next_due is None  # no timer left behind


def test_a_signal_set_on_another_thread_wakes_a_script_on_the_real_clock(dmemu_state_dir):
    signal = Signal()

    async def waiter(ctx, input):
        await ctx.wait_signal(signal, timeout=30)
        return "woken"

    with DataMinerSystem(dmemu_state_dir) as dms:
        dms.automation.register("waiter", waiter)
        run = dms.automation.run("waiter")
        setter = threading.Thread(target=signal.set)
        setter.start()
        setter.join()
        assert run.wait(timeout=10).result == "woken"


TIMER_FIRINGS: list[float] = []


class Polled(Protocol):
    name = "Automation Test Polled"
    parameters = (Parameter(10, "Level", type=Number(), write=True, default=0),)
    qactions = (QAction(1, lambda protocol: TIMER_FIRINGS.append(protocol.now())),)
    timers = (Timer(1, 3600, (1,), at_startup=False),)


def test_a_failed_wait_on_a_virtual_clock_moves_it_only_to_its_limit(dms, dmemu_clock):
    async def wait_in_vain(ctx, input):
        await ctx.wait_for("Polled", "Level")

    TIMER_FIRINGS.clear()
    dms.create_element(Polled, "Polled")
    dms.automation.register("wait", wait_in_vain)
    start = dmemu_clock.now()
    with pytest.raises(TimeoutError, match=f"still running after {VIRTUAL_WAIT_DEFAULT:g} virtual seconds"):
        dms.automation.run("wait").wait()
    assert dmemu_clock.now() - start == VIRTUAL_WAIT_DEFAULT == 600  # not a year of element timers
    assert TIMER_FIRINGS == []
    with pytest.raises(TimeoutError, match="still running after 7200 virtual seconds"):
        dms.automation.run("wait").wait(timeout=7200)
    assert dmemu_clock.now() - start == 600 + 7200  # stopped at the timeout, past the timers due
    assert len(TIMER_FIRINGS) == 2


def test_a_successful_wait_stops_the_virtual_clock_when_the_run_is_done(dms, dmemu_clock):
    async def nap(ctx, input):
        await ctx.sleep(5000)
        return "rested"

    TIMER_FIRINGS.clear()
    dms.create_element(Polled, "Polled")
    dms.automation.register("nap", nap)
    start = dmemu_clock.now()
    assert dms.automation.run("nap").wait(timeout=86400).result == "rested"
    assert dmemu_clock.now() - start == 5000
    assert len(TIMER_FIRINGS) == 1


# -- waiting for parameters: deleted and stopped elements, buttons, passwords ---------------------


class Console(Protocol):
    name = "Automation Test Console"
    parameters = (
        Parameter(10, "Level", type=Number(), write=True, default=0),
        Parameter(11, "Reset", type=Button(), write=True),
        Parameter(12, "Password", type=String(secret=True), write=True, default=""),
    )


def test_a_wait_for_a_deleted_element_ends_with_an_error_and_a_stop_does_not_end_it(dms):
    async def wait(ctx, input):
        return await ctx.wait_for("Console", "Level", timeout=input)

    console = dms.create_element(Console, "Console")
    dms.automation.register("wait", wait)
    survivor, victim = dms.automation.run("wait", 3600), dms.automation.run("wait", None)
    console.stop()  # it may start again and then be set
    console.start()
    console.set("Level", 3)
    assert (survivor.state, survivor.result) == (ScriptState.SUCCEEDED, 3)
    assert victim.result == 3
    waiting = dms.automation.run("wait", None)
    dms.delete_element("Console")
    assert waiting.state is ScriptState.FAILED
    assert waiting.error == "ElementNotFoundError: script 'wait' run 3: element 'Console' parameter 10 'Level' will never be set: the element was deleted"
    assert dms.automation._deletion_watchers == {}


def test_a_wait_for_a_button_is_refused_and_a_password_is_compared_as_set(dms):
    async def wait_for_button(ctx, input):
        await ctx.wait_for("Console", "Reset", timeout=60)

    async def wait_for_password(ctx, input):
        return await ctx.wait_for("Console", "Password", lambda password: password == input, timeout=60)

    console = dms.create_element(Console, "Console")
    dms.automation.register("button", wait_for_button)
    dms.automation.register("password", wait_for_password)
    assert dms.automation.run("button").error == (
        "ParameterError: parameter 11 'Reset' is a momentary parameter (a button): it holds no value, so it cannot be waited for"
    )
    console.set("Password", "hunter2")
    assert console.get("Password") == "********"
    assert dms.automation.run("password", "hunter2").result == "hunter2"  # already set: seen at once
