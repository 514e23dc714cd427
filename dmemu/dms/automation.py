"""Automation: scripts registered in the DMS, started by hand, by elements and by alarm rules.

A script is a Python callable ``script(ctx, input)``. A plain function runs to its end in one
go; an ``async def`` coroutine may also ``await ctx.sleep(seconds)``,
``await ctx.wait_for(element, parameter, ...)``, ``await ctx.wait_run(run)`` (a run it
started) and ``await ctx.wait_signal(signal)`` (a `Signal` someone sets). Its return value is
the run's result, its exception the run's error.

There is no thread per script and no asyncio loop: the DMS drives each coroutine itself. A wait
puts a change listener on the element (or a timer on the DMS clock) and suspends the coroutine;
the change or the timer resumes it. Each run has a queue of its own (`WorkQueue`), so its steps
never overlap, and a start or a resumption is handed off the way queued element work is: never
inside the QAction, set or alarm that caused it but once that is done; on a virtual clock on the
same thread at once (runs interleave in one order, nothing sleeps), on the real clock on the
clock's workers.

A run can be killed (`ScriptRun.kill`, `Automation.kill`): it ends at once as failed, its
waits called off and its ``finally`` blocks run, what it holds elsewhere left as a crash leaves
it. Runs are kept in memory only, the last `history_limit` finished ones plus those still running, as
element logs are: a run's coroutine cannot outlive the process, its input and result are any
Python objects (an alarm event, a ticket), and registrations are code, registered again by
whoever creates the DMS. Closing the DMS ends the runs still waiting, as failed.
"""

from __future__ import annotations

import enum
import inspect
import itertools
import logging
import reprlib
import threading
import traceback
from collections import deque
from collections.abc import Callable, Coroutine, Generator, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any

import attrs

from ..protocol.changes import Change, ParameterChange
from ..protocol.clock import VirtualClock
from ..protocol.errors import DmemuError, ElementNotFoundError, ParameterError, UnknownParameterError
from ..protocol.logs import LogEntry, LogLevel, LogType
from ..protocol.queue import WorkQueue, _running_any_queue
from .alarms import AlarmEvent, AlarmEventKind, Severity
from .errors import ScriptKilledError, UnknownScriptError, WaitTimeoutError

if TYPE_CHECKING:
    from ..protocol.element import Element, ElementRef
    from .system import DataMinerSystem

_logger = logging.getLogger("dmemu.automation")

ScriptFunction = Callable[["ScriptContext", Any], Any]
"""``script(ctx, input)``: a plain function, or an ``async def`` that may sleep and wait."""

MAX_LOG_ENTRIES = 5000
MAX_FINISHED_RUNS = 1000
"""Finished runs kept for `Automation.runs`, the most recent ones (`Automation.history_limit`)."""
VIRTUAL_WAIT_DEFAULT = 600.0
"""How far `ScriptRun.wait()` without a timeout moves a virtual clock at most (virtual seconds):
every element timer fires on the way, so a run that never ends must not cost a year of them."""

_short = reprlib.Repr()  # inputs in log lines: an alarm or a ticket, not a whole table
_short.maxstring = _short.maxother = 200


def _shown(value: Any) -> str:
    """`value` for a log line, short; a broken ``__repr__`` must not stop a run from ending."""
    try:
        return _short.repr(value)
    except Exception:
        return f"<{type(value).__name__} that cannot be shown>"


class ScriptState(enum.Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class ScriptRun:
    """One run of a script: its input, state, result or error, and times on the DMS clock.

    `id` counts up from 1 in this DMS. `error` is the exception as a traceback's last line says
    it, with the bare class name (``"ValueError: no such port"``). `wait()` blocks until the run
    is done (not from a QAction or a script: a script awaits ``ctx.wait_run(run)``); `kill()`
    ends it.
    """

    def __init__(self, automation: Automation, run_id: int, script: str, function: ScriptFunction, input: Any) -> None:
        clock = automation.dms.clock
        self.id = run_id
        self.script = script
        self.input = input
        self.state = ScriptState.RUNNING
        self.result: Any = None
        self.error: str | None = None
        self.started: float = clock.now()
        self.finished: float | None = None
        self.log_entries: deque[LogEntry] = deque(maxlen=MAX_LOG_ENTRIES)
        self._automation = automation
        self._function = function
        self._coroutine: Coroutine[Any, Any, Any] | None = None
        self._wakeup: _Wakeup | None = None
        self._done = threading.Event()
        self._done_lock = threading.Lock()  # `_when_done` callbacks are neither lost nor called twice
        self._done_callbacks: list[Callable[[], None]] = []
        self._queue = WorkQueue(dispatch=clock.dispatch, on_error=self._step_failed)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def logs(self, type: LogType | None = None) -> list[LogEntry]:
        """What the script logged (`ctx.log`) and how it ended, optionally of one type."""
        return [entry for entry in list(self.log_entries) if type is None or entry.type is type]

    def wait(self, timeout: float | None = None) -> ScriptRun:
        """Block until the run is done and answer it; `TimeoutError` after `timeout` seconds.

        On a virtual clock nothing else moves time, so this does: due timers fire in order
        (the run's sleeps and timeouts among them, and every element's timers) until the run is
        done, and no further; at most `timeout` virtual seconds, `VIRTUAL_WAIT_DEFAULT` (600)
        when None, where the clock then stays. A run waiting for a parameter nobody sets then
        times out; set it first, or advance the clock yourself. On the real clock None waits
        as long as the run takes.

        Called from a QAction, a script or any other work on an element's or a run's queue, it
        raises `DmemuError`: a run starts only once the work that started it is done, so it
        could never end while that work waits. A script awaits ``ctx.wait_run(run)`` instead.
        """
        if _running_any_queue():
            raise DmemuError(
                f"{self!r}: wait() cannot be called from a QAction or a script step: runs start only once "
                "that work is done, so it would wait forever; a script awaits ctx.wait_run(run) instead"
            )
        clock = self._automation.dms.clock
        if isinstance(clock, VirtualClock):
            limit = VIRTUAL_WAIT_DEFAULT if timeout is None else timeout
            try:
                clock.run_until(lambda: self.done, timeout=limit)
            except TimeoutError:
                raise TimeoutError(f"{self!r} is still running after {limit:g} virtual seconds") from None
        elif not self._done.wait(timeout):
            raise TimeoutError(f"{self!r} is still running after {timeout} seconds")
        return self

    def kill(self, reason: str = "killed by a user") -> bool:
        """End the run now, as failed, its error ``ScriptKilledError: <reason>``; answers whether
        it was still running (a run that is done is left as it is).

        Its waits are called off (their listeners and timers removed, so nothing resumes it) and
        its coroutine is closed: its ``finally`` blocks run, nothing else of it does. What it
        holds outside itself (a lock on an element, a request sent) is not given back, as after
        a crash: whatever guards such things (a lock's expiry) has to. Called while the run's
        step is running on another thread, it ends the run between two steps; called from a
        QAction or another run's step while this run's step runs, it ends the run right after
        that step (and answers True). A script ends its own run by returning or raising, not
        by killing it: that raises `DmemuError`.
        """
        if self._queue.in_worker:
            raise DmemuError(f"{self!r} cannot kill itself: a script ends its run by returning or raising")
        if self.done:
            return False
        error = ScriptKilledError(reason)
        self._queue.run_exclusive(partial(self._abandon, reason, error))
        return True

    def __repr__(self) -> str:
        return f"<ScriptRun {self.id} {self.script!r} {self.state.value}>"

    # -- driving the script, one step at a time on the run's queue ----------------------------

    def _start(self) -> None:
        if self.done:
            return  # the DMS closed before the run's turn came
        context = ScriptContext(self._automation.dms, self)
        try:
            outcome = self._function(context, self.input)
        except Exception as error:
            self._finish(error=error)
            return
        if inspect.iscoroutine(outcome):
            self._coroutine = outcome
            self._advance(None, None)
        else:
            self._finish(result=outcome)

    def _advance(self, value: Any, error: BaseException | None) -> None:
        """Resume the coroutine with what it waited for (or the error), up to its next wait."""
        coroutine = self._coroutine
        if coroutine is None:
            return  # ended meanwhile (the DMS closed)
        self._wakeup = None
        while True:
            try:
                awaited = coroutine.send(value) if error is None else coroutine.throw(error)
            except StopIteration as stop:
                self._finish(result=stop.value)
                return
            except Exception as failure:
                self._finish(error=failure)
                return
            if isinstance(awaited, _Suspend):
                break
            # Only the DMS drives scripts: an asyncio future or sleep would never be resumed.
            value, error = None, TypeError(
                f"a script awaits ctx.sleep, ctx.wait_for, ctx.wait_run and ctx.wait_signal only, not {awaited!r} (no asyncio loop runs scripts)"
            )
        wakeup = self._wakeup = _Wakeup(self)
        try:
            awaited.arm(wakeup)
        except Exception as failure:
            wakeup.wake(error=failure)

    def _finish(self, *, result: Any = None, error: BaseException | None = None) -> None:
        self.finished = self._automation.dms.clock.now()
        self._coroutine = None
        if error is None:
            self.result = result
            self.state = ScriptState.SUCCEEDED
        else:
            self.error = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            self.state = ScriptState.FAILED
            self._log(f"failed on input {_shown(self.input)}: {self.error} ({self._where(error)})", LogType.ERROR)
        self._automation._finished(self)
        with self._done_lock:
            self._done.set()
            callbacks, self._done_callbacks = self._done_callbacks, []
        for callback in callbacks:
            callback()

    def _when_done(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` once the run is done (at once if it is); answers what forgets it."""
        with self._done_lock:
            if not self._done.is_set():
                self._done_callbacks.append(callback)
                return partial(self._forget_done_callback, callback)
        callback()
        return lambda: None

    def _forget_done_callback(self, callback: Callable[[], None]) -> None:
        with self._done_lock:
            if callback in self._done_callbacks:
                self._done_callbacks.remove(callback)

    def _where(self, error: BaseException) -> str:
        """The line of the script's own code that raised (else the innermost one)."""
        frames = traceback.extract_tb(error.__traceback__)
        own_file = getattr(getattr(self._function, "__code__", None), "co_filename", None)
        own = [frame for frame in frames if frame.filename == own_file] or list(frames)
        return f"{own[-1].filename}:{own[-1].lineno}" if own else "no traceback"

    def _step_failed(self, error: Exception) -> None:
        # Steps catch what scripts raise; this is a bug of the driver itself, said loudly.
        _logger.error("%r: a step failed", self, exc_info=error)

    def _abandon(self, reason: str, error: BaseException | None = None) -> None:
        """End a run that is still going (killed, or the DMS closes): its waits are called off;
        it fails with `error` (by default a `DmemuError` saying `reason`)."""
        if self.done:
            return
        if self._wakeup is not None:
            self._wakeup.call_off()
        if self._coroutine is not None:
            try:
                self._coroutine.close()  # the script's `finally` blocks run
            except Exception as failure:
                self._log(f"ignored while closing: {type(failure).__name__}: {failure}", LogType.ERROR)
        self._finish(error=error or DmemuError(reason))

    def _log(self, message: str, type: LogType = LogType.INFORMATION) -> None:
        entry = LogEntry(self._automation.dms.clock.now(), type, LogLevel.NO_LOGGING, message)
        self.log_entries.append(entry)
        self._automation._log(f"script {self.script!r} run {self.id}: {message}", type)


class _Wakeup:
    """Ends one suspension of a run: the first of its triggers (a change, a timer) resumes it,
    and what the others put in place (listeners, timers) is undone."""

    def __init__(self, run: ScriptRun) -> None:
        self._run = run
        self._lock = threading.Lock()  # triggers may fire on several threads at once
        self._woken = False
        self._undo: list[Callable[[], Any]] = []

    def on_wake(self, undo: Callable[[], Any]) -> None:
        """Call `undo` when the wait ends (at once if it already has)."""
        with self._lock:
            if not self._woken:
                self._undo.append(undo)
                return
        undo()

    def wake(self, value: Any = None, error: BaseException | None = None) -> None:
        if self.call_off():
            self._run._queue.run_soon(partial(self._run._advance, value, error))

    def call_off(self) -> bool:
        """End the wait without resuming; False when it had already ended."""
        with self._lock:
            if self._woken:
                return False
            self._woken = True
            undo, self._undo = self._undo, []
        for step in undo:
            step()
        return True


def _nothing() -> None:
    pass


class Signal:
    """A flag set once, by anyone on any thread, that scripts wait for with
    ``await ctx.wait_signal(signal)``: a hand-over between runs (a turn in a line) that puts no
    listener on an element and no timer on the clock."""

    __slots__ = ("_lock", "_set", "_callbacks")

    def __init__(self) -> None:
        self._lock = threading.Lock()  # set on one thread while a wait is armed on another
        self._set = False
        self._callbacks: dict[Callable[[], None], None] = {}  # a dict: a wait is forgotten in one step

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        """Set it and wake the runs waiting for it; setting it again does nothing."""
        with self._lock:
            if self._set:
                return
            self._set = True
            callbacks, self._callbacks = self._callbacks, {}
        for callback in callbacks:
            callback()

    def _when_set(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` once it is set (at once if it is); answers what forgets it."""
        with self._lock:
            if not self._set:
                self._callbacks[callback] = None
                return partial(self._forget, callback)
        callback()
        return _nothing

    def _forget(self, callback: Callable[[], None]) -> None:
        with self._lock:
            self._callbacks.pop(callback, None)

    def __repr__(self) -> str:
        return f"<Signal {'set' if self._set else 'not set'}>"


class _ParameterWaits:
    """The change listener of every script waiting for one parameter of one element
    (`ScriptContext.wait_for`): hundreds of flows may wait for one client's lock, and one
    listener trying their predicates in a loop costs less than one listener each, to call and
    to add and remove. Waits are tried in the order they began."""

    __slots__ = ("pid", "waits")

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.waits: dict[_Wakeup, Callable[[Any], bool] | None] = {}  # wakeup -> predicate

    def __call__(self, _: Element, change: Change) -> None:
        if type(change) is not ParameterChange or change.parameter != self.pid:
            return
        value = change.value
        for wakeup, predicate in list(self.waits.items()):  # a copy: waits end and begin meanwhile
            if predicate is not None:
                try:
                    if not predicate(value):
                        continue
                except Exception as error:  # ends that wait only, with the predicate's error
                    wakeup.wake(error=error)
                    continue
            wakeup.wake(value)

    def __repr__(self) -> str:
        return f"<script waits for parameter {self.pid}: {len(self.waits)}>"


class _Suspend:
    """What `ctx.sleep`, `ctx.wait_for`, `ctx.wait_run` and `ctx.wait_signal` await: the driver gets it, `arm`s it with the run's
    wakeup, and sends the coroutine the value the wakeup brings."""

    def __init__(self, arm: Callable[[_Wakeup], None]) -> None:
        self.arm = arm

    def __await__(self) -> Generator[_Suspend, Any, Any]:
        return (yield self)


class ScriptContext:
    """What a running script gets as `ctx`: the elements of the DMS, time, waits and a log.

    ``ctx.run`` is this run (``ctx.run.id``, ``ctx.input``); ``ctx.dms`` is the whole DataMiner
    System, for its alarms and tickets. Elements are named by name or (agent id, element id),
    parameters by id or name. Sets go through the element's queue like `DataMinerSystem.set_parameter`
    (its QActions run there) and raise what a user's set raises.
    """

    def __init__(self, dms: DataMinerSystem, run: ScriptRun) -> None:
        self.dms = dms
        self.run = run

    @property
    def input(self) -> Any:
        return self.run.input

    def now(self) -> float:
        """The DMS clock, in epoch seconds."""
        return self.dms.clock.now()

    def element(self, ref: ElementRef) -> Element:
        return self.dms.element(ref)

    def get_parameter(self, element: ElementRef, parameter: int | str) -> Any:
        return self.dms.get_parameter(element, parameter)

    def set_parameter(self, element: ElementRef, parameter: int | str, value: Any) -> None:
        self.dms.set_parameter(element, parameter, value)

    def log(self, message: str, type: LogType = LogType.INFORMATION) -> None:
        """Kept on the run (`ScriptRun.logs`) and in the automation log (`Automation.logs`)."""
        self.run._log(message, type)

    async def sleep(self, seconds: float) -> None:
        """Let `seconds` pass on the DMS clock (virtual seconds in tests: nothing sleeps)."""
        if seconds <= 0:
            return
        clock = self.dms.clock

        def arm(wakeup: _Wakeup) -> None:
            wakeup.on_wake(partial(clock.cancel, clock.call_later(seconds, wakeup.wake)))

        await _Suspend(arm)

    async def wait_for(
        self,
        element: ElementRef,
        parameter: int | str,
        predicate: Callable[[Any], bool] | None = None,
        *,
        timeout: float | None = None,
    ) -> Any:
        """Wait until the parameter is set to a value `predicate` accepts, and answer that value.

        Without a predicate, the next set of the parameter ends the wait. With one, a current
        value it accepts ends it at once: an answer that came back before the wait began (a
        QAction that replied inside the script's own set) is not missed. After `timeout`
        seconds on the DMS clock (None: no limit) `WaitTimeoutError` is raised instead; a
        predicate that raises ends the wait with its exception. A password is compared, and
        answered, as set, not masked.

        Deleting the element ends the wait with `ElementNotFoundError`: nothing can set the
        parameter any more. Stopping or pausing it does not: the element may be started again
        and then set it (give a timeout to bound the wait). A momentary parameter (a button)
        holds no value, so waiting for one raises `ParameterError`.
        """
        target = self.dms.element(element)
        model = target.protocol.model
        pid = model.resolve(parameter)
        if pid in model.tables:
            raise UnknownParameterError(f"{model.tables[pid].table.label} is a table; scripts wait for parameters")
        if pid in model.momentary_parameters:
            raise ParameterError(f"{model.parameters[pid].label} is a momentary parameter (a button): it holds no value, so it cannot be waited for")
        if timeout is not None and not timeout >= 0:
            raise ValueError(f"a wait's timeout is a number of seconds from 0 up, not {timeout!r}")
        clock = self.dms.clock
        automation = self.dms.automation

        def what() -> str:  # for the errors only: not worked out for every wait
            return f"element {target.name!r} {model.parameters[pid].label}"

        def arm(wakeup: _Wakeup) -> None:
            def time_out() -> None:
                wakeup.wake(error=WaitTimeoutError(f"script {self.run.script!r} run {self.run.id}: {what()} did not get the awaited value within {timeout:g} s"))

            def deleted() -> None:
                wakeup.wake(error=ElementNotFoundError(f"script {self.run.script!r} run {self.run.id}: {what()} will never be set: the element was deleted"))

            # Listen first, then look: a set (or a deletion) between the two is heard, not lost.
            automation._wait_on(target, pid, wakeup, predicate, deleted)
            wakeup.on_wake(partial(automation._stop_waiting, target, pid, wakeup, deleted))  # run at once if woken meanwhile
            if self.dms.find(target) is not target:
                deleted()
                return
            if predicate is not None:
                current = target._values[pid]  # the real value: a password reads masked
                if predicate(current):
                    wakeup.wake(current)
                    return
            if timeout == 0:
                time_out()
            elif timeout is not None:
                wakeup.on_wake(partial(clock.cancel, clock.call_later(timeout, time_out)))

        return await _Suspend(arm)

    async def wait_run(self, run: ScriptRun, *, timeout: float | None = None) -> ScriptRun:
        """Wait until another run (one this script started, say) is done, and answer it; its
        `state`, `result` and `error` say how it ended. `ScriptRun.wait()` cannot be used in a
        script: the run it waits for would only start once the script's step is done. After
        `timeout` seconds on the DMS clock (None: no limit) `WaitTimeoutError` is raised."""
        if run is self.run:
            raise ValueError(f"{run!r} cannot wait for itself")
        if timeout is not None and not timeout >= 0:
            raise ValueError(f"a wait's timeout is a number of seconds from 0 up, not {timeout!r}")
        clock = self.dms.clock

        def arm(wakeup: _Wakeup) -> None:
            def time_out() -> None:
                wakeup.wake(error=WaitTimeoutError(f"script {self.run.script!r} run {self.run.id}: {run!r} was not done within {timeout:g} s"))

            wakeup.on_wake(run._when_done(partial(wakeup.wake, run)))
            if timeout is None or run.done:
                return
            if timeout == 0:  # no timer of 0 s: a run not done yet times out at once
                time_out()
            else:
                wakeup.on_wake(partial(clock.cancel, clock.call_later(timeout, time_out)))

        return await _Suspend(arm)

    async def wait_signal(self, signal: Signal, *, timeout: float | None = None) -> None:
        """Wait until `signal` is set (no wait when it is). After `timeout` seconds on the DMS
        clock (None: no limit) `WaitTimeoutError` is raised."""
        if not isinstance(signal, Signal):
            raise TypeError(f"ctx.wait_signal waits for a Signal, not {signal!r}")
        if timeout is not None and not timeout >= 0:
            raise ValueError(f"a wait's timeout is a number of seconds from 0 up, not {timeout!r}")
        clock = self.dms.clock

        def arm(wakeup: _Wakeup) -> None:
            def time_out() -> None:
                wakeup.wake(error=WaitTimeoutError(f"script {self.run.script!r} run {self.run.id}: {signal!r} was not set within {timeout:g} s"))

            wakeup.on_wake(signal._when_set(wakeup.wake))
            if timeout is None or signal._set:
                return
            if timeout == 0:
                time_out()
            else:
                wakeup.on_wake(partial(clock.cancel, clock.call_later(timeout, time_out)))

        await _Suspend(arm)


def _event_kinds(kinds: AlarmEventKind | str | Iterable[AlarmEventKind | str]) -> frozenset[AlarmEventKind]:
    if isinstance(kinds, (str, AlarmEventKind)):
        kinds = (kinds,)
    return frozenset(AlarmEventKind(kind) for kind in kinds)  # "opened" or AlarmEventKind.OPENED


def _severity(severity: Severity | str | None) -> Severity | None:
    return severity if severity is None or isinstance(severity, Severity) else Severity.from_label(severity)


def _element_ref(ref: str | Iterable[int] | None) -> str | tuple[int, int] | None:
    if ref is None or isinstance(ref, str):
        return ref
    agent_id, element_id = ref
    return (int(agent_id), int(element_id))


@attrs.frozen
class AlarmRule:
    """Which alarm events start a script (`Automation.on_alarm`); a criterion left None matches any.

    ``AlarmRule(protocol="Telenet Ticket Client", min_severity="Critical")`` is "a new Critical
    alarm on any element of that protocol". `element` is a name or (agent id, element id);
    `parameter` a parameter or column id or name; `min_severity` is compared with the alarm's
    severity, for a cleared alarm with the worst it reached; `kinds` are the event kinds that
    count (names or `AlarmEventKind`), by default only a newly opened alarm.
    """

    protocol: str | None = None
    element: str | tuple[int, int] | None = attrs.field(default=None, converter=_element_ref)
    parameter: int | str | None = None
    min_severity: Severity | None = attrs.field(default=None, converter=_severity)
    kinds: frozenset[AlarmEventKind] = attrs.field(default=frozenset({AlarmEventKind.OPENED}), converter=_event_kinds)

    def matches(self, event: AlarmEvent, dms: DataMinerSystem) -> bool:
        alarm = event.alarm
        if event.kind not in self.kinds:
            return False
        if self.element is not None and self.element != (alarm.element_name if isinstance(self.element, str) else alarm.element_ids):
            return False
        if self.parameter is not None and self.parameter != (alarm.parameter_name if isinstance(self.parameter, str) else alarm.parameter_id):
            return False
        if self.min_severity is not None and (alarm.severity if alarm.active else alarm.worst_severity) < self.min_severity:
            return False
        if self.protocol is not None:
            element = dms.find(alarm.element_ids)
            return element is not None and element.protocol.name == self.protocol
        return True


class Automation:
    """The scripts of a DMS (`dms.automation`): registered by name, run by hand, by elements
    (``protocol.run_script``) and by alarm rules (`on_alarm`); a bounded history of runs."""

    def __init__(self, dms: DataMinerSystem, *, history_limit: int = MAX_FINISHED_RUNS) -> None:
        self.dms = dms
        self.log_entries: deque[LogEntry] = deque(maxlen=MAX_LOG_ENTRIES)
        self._scripts: dict[str, ScriptFunction] = {}
        self._running: dict[int, ScriptRun] = {}
        self._history: deque[ScriptRun] = deque(maxlen=history_limit)  # finished runs, oldest first
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._deletion_watchers: dict[Element, dict[Callable[[], None], None]] = {}  # waits on each element, in order
        self._parameter_waits: dict[tuple[Element, int], _ParameterWaits] = {}
        self._waits_lock = threading.Lock()  # guards both

    # -- scripts ------------------------------------------------------------------------------

    def register(self, name: str, function: ScriptFunction, *, replace: bool = False) -> None:
        """Make `function` runnable as `name`; a taken name needs ``replace=True``."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"a script name must be a non-empty string, not {name!r}")
        if not callable(function):
            raise TypeError(f"script {name!r} must be a callable taking (ctx, input), not {function!r}")
        if name in self._scripts and not replace:
            raise ValueError(f"a script named {name!r} is already registered; pass replace=True to replace it")
        self._scripts[name] = function

    def unregister(self, name: str) -> None:
        """Forget a script; its runs under way go on."""
        self._function(name)
        del self._scripts[name]

    @property
    def scripts(self) -> list[str]:
        return list(self._scripts)

    def _function(self, name: str) -> ScriptFunction:
        function = self._scripts.get(name)
        if function is None:
            known = ", ".join(repr(n) for n in self._scripts) or "none"
            raise UnknownScriptError(f"no automation script {name!r}; registered: {known}")
        return function

    # -- runs ---------------------------------------------------------------------------------

    def run(self, name: str, input: Any = None) -> ScriptRun:
        """Start script `name` with `input` and answer its run.

        From a QAction, a set or an alarm it starts once that work is done; otherwise at once
        on a virtual clock (up to its first wait), on a worker on the real clock."""
        self.dms._check_open()
        function = self._function(name)
        with self._lock:
            run = ScriptRun(self, next(self._ids), name, function, input)
            self._running[run.id] = run
        run._queue.run_soon(run._start)
        return run

    def kill(self, run: ScriptRun, reason: str = "killed by a user") -> bool:
        """Kill a run still going (`ScriptRun.kill`); answers whether it was."""
        if not isinstance(run, ScriptRun) or run._automation is not self:
            raise ValueError(f"{run!r} is not a run of this DataMiner System's automation")
        return run.kill(reason)

    def runs(self, script: str | None = None, state: ScriptState | str | None = None) -> list[ScriptRun]:
        """Runs kept (the last `history_limit` finished ones and those running), oldest first."""
        wanted = None if state is None else ScriptState(state)
        with self._lock:
            if wanted is ScriptState.RUNNING:  # kept in id order: the history is not looked at
                everything = list(self._running.values())
            else:
                everything = sorted((*self._history, *self._running.values()), key=lambda run: run.id)
        return [run for run in everything if (script is None or run.script == script) and (wanted is None or run.state is wanted)]

    @property
    def history_limit(self) -> int:
        """How many finished runs are kept (the most recent ones)."""
        return self._history.maxlen or 0

    @history_limit.setter
    def history_limit(self, limit: int) -> None:
        if type(limit) is not int or limit < 0:
            raise ValueError(f"the run history limit is a number of runs from 0 up, not {limit!r}")
        with self._lock:
            self._history = deque(self._history, maxlen=limit)

    def _finished(self, run: ScriptRun) -> None:
        with self._lock:
            self._running.pop(run.id, None)
            self._history.append(run)

    # -- alarm rules --------------------------------------------------------------------------

    def on_alarm(self, rule: AlarmRule, script: str) -> Callable[[], None]:
        """Start `script` with the `AlarmEvent` as its input on every alarm event `rule` matches
        (once the change that raised the alarm is done); answers the function that removes the rule."""
        if not isinstance(rule, AlarmRule):
            raise TypeError(f"an alarm rule is an AlarmRule, not {rule!r}")
        self._function(script)  # a misspelt name fails here, not at the first alarm

        def start(event: AlarmEvent) -> None:
            if rule.matches(event, self.dms):
                try:
                    self.run(script, event)
                except DmemuError as error:  # unregistered since, or the DMS is closing
                    self._log(f"alarm {event.alarm.id} {event.kind.value} matches {rule!r} but script {script!r} did not start: {error}", LogType.ERROR)

        return self.dms.alarms.subscribe(start)

    # -- log ----------------------------------------------------------------------------------

    def logs(self, type: LogType | None = None) -> list[LogEntry]:
        """What every run logged and how failed runs ended, optionally of one type."""
        return [entry for entry in list(self.log_entries) if type is None or entry.type is type]

    def _log(self, message: str, type: LogType) -> None:
        self.log_entries.append(LogEntry(self.dms.clock.now(), type, LogLevel.NO_LOGGING, message))
        _logger.log(logging.ERROR if type is LogType.ERROR else logging.INFO, "%s", message)

    # -- waits for parameters, and the elements they are on deleted ----------------------------

    def _wait_on(self, element: Element, pid: int, wakeup: _Wakeup, predicate: Callable[[Any], bool] | None, deleted: Callable[[], None]) -> None:
        """Have `wakeup` tried on every set of `element`'s parameter `pid` (`_ParameterWaits`),
        and `deleted` called when the element is deleted (`_element_deleted`), until `_stop_waiting`."""
        # Held across the element's (un)registration, so no wait counts as listening before its
        # listener is there, nor is one left over; the element's lock first, as its own
        # (un)registration and its stop (which may run queued work, waits ending) take it.
        with element._lifecycle_lock, self._waits_lock:
            waits = self._parameter_waits.get((element, pid))
            if waits is None:
                waits = self._parameter_waits[element, pid] = _ParameterWaits(pid)
                element.add_change_listener(waits, ids=(pid,))
            waits.waits[wakeup] = predicate
            callbacks = self._deletion_watchers.get(element)
            if callbacks is None:
                callbacks = self._deletion_watchers[element] = {}
            callbacks[deleted] = None  # a dict: forgotten in one step, however many waits there are

    def _stop_waiting(self, element: Element, pid: int, wakeup: _Wakeup, deleted: Callable[[], None]) -> None:
        with element._lifecycle_lock, self._waits_lock:
            waits = self._parameter_waits.get((element, pid))
            if waits is not None and waits.waits.pop(wakeup, False) is not False and not waits.waits:
                del self._parameter_waits[element, pid]
                element.remove_change_listener(waits)
            callbacks = self._deletion_watchers.get(element)
            if callbacks is not None and callbacks.pop(deleted, False) is None and not callbacks:
                del self._deletion_watchers[element]

    def _element_deleted(self, element: Element) -> None:
        """The DMS deleted `element`: waits for its parameters end, as they never can otherwise."""
        with self._waits_lock:
            callbacks = self._deletion_watchers.pop(element, {})
        for callback in callbacks:
            callback()

    # -- the DMS closes -----------------------------------------------------------------------

    def _close(self) -> None:
        """End the runs still going, as failed: nothing resumes them once the DMS is closed."""
        with self._lock:
            running = list(self._running.values())
        for run in running:
            run._queue.run_exclusive(partial(run._abandon, "the DataMiner System closed while the script was running"))
