"""Time for a DataMiner System: one clock, real or virtual, driving one timer scheduler.

The scheduler is built on `schedule` (its fluent ``every(n).seconds.do(fn)`` jobs, tags and
cancellation), bridged where `schedule` cannot give what a DMS needs:

* `schedule` reads ``datetime.now()`` itself: here every job asks the injected clock.
* `schedule` times the next run from when a job *ends*, so a slow job drifts: here the next
  due time is the previous due time plus the interval (missed firings are skipped, once).
* `schedule` scans every job on each ``run_pending``: here jobs sit in lists by due time under
  a heap of those times, so a virtual clock jumps from one due time to the next at a cost that
  grows with firings only (and the many jobs of one instant share one heap step).

Callbacks due at the same instant form a *tick*; on a virtual clock, tick listeners (the DMS's
batched save) run after each tick, and once more when `advance` has moved time past the last.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import logging
import math
import numbers
import operator
import selectors
import socket
import threading
import time
import typing
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import schedule

from .errors import ClockTimeError

heappop, heappush = heapq.heappop, heapq.heappush
_scheduled_order = operator.attrgetter("sequence")
_logger = logging.getLogger("dmemu.clock")

_UNIT_SECONDS = {"seconds": 1.0, "minutes": 60.0, "hours": 3600.0, "days": 86400.0, "weeks": 604800.0}
DEFAULT_VIRTUAL_START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def _checked_seconds(value: object, what: str) -> float:
    """`value` as float seconds; `ClockTimeError` naming `what` when it is no finite number
    (nan and inf would keep a clock stepping for ever)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ClockTimeError(f"{what} must be a number of seconds, not {value!r} ({type(value).__name__})")
    seconds = float(value)
    if not math.isfinite(seconds):
        raise ClockTimeError(f"{what} must be a finite number of seconds, not {value!r}")
    return seconds


def _checked_step(value: object) -> float:
    """The seconds of an `advance`: finite and not negative."""
    seconds = _checked_seconds(value, "advance(seconds)")
    if seconds < 0:
        raise ClockTimeError(f"cannot advance a clock by {value!r} seconds: time does not go back")
    return seconds


class _JobFunction(partial):  # type: ignore[type-arg]
    """A job's callback kept as `schedule` keeps it (a partial: its repr shows the arguments),
    named after the function when asked rather than by `functools.update_wrapper` per job."""

    __slots__ = ()

    @property
    def __name__(self) -> str:
        return getattr(self.func, "__name__", repr(self.func))


class TimerJob(schedule.Job):
    """A `schedule.Job` whose time comes from the scheduler's clock, on a fixed cadence."""

    scheduler: TimerScheduler
    once = False  # a `call_later` job: it leaves the scheduler as it fires (`do_once`)

    def __init__(self, interval: float, scheduler: TimerScheduler) -> None:
        self.due = 0.0  # epoch seconds of the next firing
        self.cadence = 0.0  # seconds between firings, fixed when the job is scheduled
        self.cancelled = False
        self.sequence = 0  # orders the jobs of one due time: set when the job is scheduled
        super().__init__(interval, scheduler)  # type: ignore[arg-type]

    @property
    def period(self) -> float:
        return float(self.interval) * _UNIT_SECONDS[self.unit or "seconds"]

    # `schedule` keeps next_run as a naive local datetime; it is derived from `due` here.
    @property  # type: ignore[override]
    def next_run(self) -> dt.datetime | None:
        if not self.due:
            return None
        return dt.datetime.fromtimestamp(self.due)

    @next_run.setter
    def next_run(self, value: dt.datetime | None) -> None:
        if value is not None:
            self.due = value.timestamp()

    @property
    def should_run(self) -> bool:
        return not self.cancelled and self.scheduler.clock.now() >= self.due

    def _schedule_next_run(self) -> None:
        if self.at_time is not None or self.start_day is not None or self.latest is not None:
            raise schedule.ScheduleValueError("DMS timers are plain intervals: no at(), to() or weekdays")
        self.due = self.scheduler.clock.now() + self.period

    def do(self, job_func: Callable[..., Any], *args: Any, **kwargs: Any) -> TimerJob:
        self.cadence = self.period  # fixed from here on; read on every firing
        super().do(job_func, *args, **kwargs)
        self.scheduler.push(self)
        return self

    def do_once(self, callback: Callable[[], Any]) -> TimerJob:
        """Fire `callback` once, one interval from now (`Clock.call_later`). Cheaper than `do`
        (scripts arm one per timed wait): no wrapper that cancels the job from inside, and
        `pop_due` files no next due time; it takes the job out of the scheduler as it fires."""
        self.once = True
        self.cadence = self.period
        self.job_func = _JobFunction(callback)
        scheduler = self.scheduler
        self.due = scheduler.clock.now() + self.cadence
        scheduler.jobs.append(self)
        scheduler.push(self)
        return self

    def advance_due(self, now: float) -> None:
        """Next firing on the fixed cadence; firings already missed are skipped."""
        cadence = self.cadence
        due = self.due + cadence
        if due <= now:
            due += cadence * (int((now - due) // cadence) + 1)
        self.due = due


class _JobList:
    """`schedule`'s list of jobs, keeping its order, with O(1) removal: a scheduler holds a job
    per pending wait and timeout (thousands when many scripts wait), and `list.remove` made each
    cancellation cost a scan of them all."""

    __slots__ = ("_jobs",)

    def __init__(self) -> None:
        self._jobs: dict[schedule.Job, None] = {}  # jobs hash by identity; a dict keeps their order

    def append(self, job: schedule.Job) -> None:
        self._jobs[job] = None

    def remove(self, job: schedule.Job) -> None:
        try:
            del self._jobs[job]
        except KeyError:
            raise ValueError(f"{job!r} is not scheduled") from None

    def discard(self, job: schedule.Job) -> None:
        self._jobs.pop(job, None)

    def __iter__(self) -> Iterator[schedule.Job]:
        return iter(list(self._jobs))

    def __len__(self) -> int:
        return len(self._jobs)

    def __contains__(self, job: object) -> bool:
        return job in self._jobs

    def __getitem__(self, index: Any) -> Any:
        return list(self._jobs)[index]


class TimerScheduler(schedule.Scheduler):
    """A `schedule.Scheduler` ordered by a heap of due times on an injected clock."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.jobs: _JobList = _JobList()  # type: ignore[assignment]
        self.clock = clock
        # Jobs by due time, and a heap of those due times: the jobs of one instant (a tick, often
        # thousands when elements start together) cost one heap step, not one each per firing.
        self._jobs_due: dict[float, list[TimerJob]] = {}
        self._dues: list[float] = []
        self._sequence = itertools.count()
        self._lock = threading.Lock()

    def every(self, interval: float = 1) -> TimerJob:  # type: ignore[override]
        return TimerJob(interval, self)

    def push(self, job: TimerJob) -> None:
        with self._lock:
            job.sequence = next(self._sequence)
            jobs = self._jobs_due.get(job.due)
            if jobs is None:
                self._jobs_due[job.due] = [job]
                heappush(self._dues, job.due)
            else:
                jobs.append(job)
        self.clock.wake()

    def cancel_job(self, job: schedule.Job) -> None:
        if isinstance(job, TimerJob):
            job.cancelled = True  # dropped lazily when it reaches the top of the heap
        # Not `schedule`'s own: it formats the job for a debug line on every call.
        self.jobs.discard(job)

    def clear(self, tag: Any = None) -> None:
        for job in self.get_jobs(tag):
            self.cancel_job(job)

    @property
    def next_due(self) -> float | None:
        """Epoch seconds of the earliest live job, or None when nothing is scheduled."""
        dues, jobs_due = self._dues, self._jobs_due
        with self._lock:
            while dues:
                due = dues[0]
                jobs = jobs_due[due]
                if not jobs[0].cancelled:
                    return due
                jobs[:] = [job for job in jobs if not job.cancelled]  # cancelled jobs go lazily
                if jobs:
                    return due
                del jobs_due[heappop(dues)]
            return None

    def get_next_run(self, tag: Any = None) -> dt.datetime | None:
        if tag is not None:
            return super().get_next_run(tag)
        due = self.next_due
        return None if due is None else dt.datetime.fromtimestamp(due)

    next_run = property(get_next_run)

    @property
    def idle_seconds(self) -> float | None:
        due = self.next_due
        return None if due is None else due - self.clock.now()

    def pop_due(self, now: float) -> list[TimerJob]:
        """Remove and return the jobs due at or before `now` in the order they are due (then
        scheduled), rescheduled on their cadence."""
        dues, jobs_due = self._dues, self._jobs_due
        fired: list[TimerJob] = []
        with self._lock:
            while dues and dues[0] <= now:
                jobs = jobs_due.pop(heappop(dues))
                jobs.sort(key=_scheduled_order)  # filed as they were rescheduled: a few sorted runs
                # Where the previous job went: often this one's place too (one float hash saved).
                later_due: float | None = None
                later: list[TimerJob] = []
                for job in jobs:
                    if job.cancelled:
                        continue
                    fired.append(job)
                    if job.once:  # fired: out of the scheduler now, so a cancel changes nothing
                        job.cancelled = True
                        self.jobs.discard(job)
                        continue
                    due = job.due + job.cadence
                    if due <= now:  # late (a real clock that was busy): skip missed firings
                        job.due = due
                        job.advance_due(now)
                        due = job.due
                    job.due = due
                    if due != later_due:
                        later_due = due
                        filed = jobs_due.get(due)
                        if filed is None:
                            filed = jobs_due[due] = []
                            heappush(dues, due)
                        later = filed
                    later.append(job)
        return fired

    def run_pending(self) -> None:
        for job in self.pop_due(self.clock.now()):
            self.clock.dispatch(job.job_func)


class _EndedFlag(typing.Protocol):
    """What a started exchange's `done` offers of a `threading.Event`."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class StartedExchange(typing.Protocol):
    """An exchange a serial port started (`serial._StartedExchange`), as the clock that runs it
    sees it (`Clock.start_exchange`, `wait_exchange`, `forget_exchange`: the port's runner)."""

    deadline: float  # time.monotonic() by when its answer must be complete
    done: _EndedFlag  # set once it ended and its port moved on
    sent: bool  # begun (its command went out, or failed to)
    socket: socket.socket | None  # while its answer is awaited

    def run_blocking(self) -> None: ...

    def begin(self) -> socket.socket | None: ...

    def readable(self) -> None: ...

    def expire(self) -> None: ...

    def read_blocking(self) -> None: ...


class Clock:
    """The time of one DataMiner System and the scheduler its timers run on."""

    answers_awaited: bool
    """True while this clock watches started serial exchanges for their answers (`settle`
    waits for them): a virtual clock's, between sending and the answers' work. An instance
    attribute: every user's set reads it."""

    ticks_end_in_one_place: bool = True
    """True when tick listeners run after the tick's work is done (batched saves can hang on
    them); a clock handing work to threads has no such moment and needs a save timer."""

    def __init__(self) -> None:
        self.scheduler = TimerScheduler(self)
        self._tick_listeners: list[_TickListener] = []
        self.answers_awaited = False

    def now(self) -> float:
        """Seconds since the epoch."""
        raise NotImplementedError

    def datetime(self) -> dt.datetime:
        """The current time as an aware UTC datetime."""
        return dt.datetime.fromtimestamp(self.now(), dt.timezone.utc)

    def every(self, seconds: float, callback: Callable[[], Any], *, tag: Any = None) -> TimerJob:
        """Call `callback` every `seconds`, the first time one interval from now."""
        return self._timer(seconds, tag, "interval").do(callback)

    def call_later(self, seconds: float, callback: Callable[[], Any], *, tag: Any = None) -> TimerJob:
        """Call `callback` once, `seconds` from now; `cancel` the job to call it off."""
        return self._timer(seconds, tag, "delay").do_once(callback)

    def _timer(self, seconds: float, tag: Any, what: str) -> TimerJob:
        """A job of `seconds`, not scheduled yet (its ``do`` does that)."""
        if not seconds > 0:
            raise ValueError(f"a timer {what} must be a positive number of seconds, not {seconds!r}")
        job = self.scheduler.every(seconds).seconds
        if tag is not None:
            job.tag(tag)
        return job

    def cancel(self, job: TimerJob) -> None:
        self.scheduler.cancel_job(job)

    def add_tick_listener(self, listener: Callable[[], None], *, min_gap: float = 0.0) -> None:
        """Run `listener` after every tick (the timers due at one instant); with `min_gap`, after
        a tick only once `min_gap` seconds of real time passed since it last ran. A tick it let
        pass is made up for when the clock's call (`advance`, `run_until`) returns, so what the
        listener batches never waits for a tick that may not come."""
        if not (min_gap >= 0 and math.isfinite(min_gap)):
            raise ValueError(f"min_gap is 0 or more seconds, not {min_gap!r}")
        self._tick_listeners.append(_TickListener(listener, min_gap))

    def remove_tick_listener(self, listener: Callable[[], None]) -> None:
        self._tick_listeners = [entry for entry in self._tick_listeners if entry.listener != listener]

    def _end_tick(self) -> None:
        now = time.monotonic()
        for entry in tuple(self._tick_listeners):
            entry.tick_ended(now)

    def _end_run(self) -> None:
        """The clock's call returns to its caller: listeners that let a tick pass run now."""
        for entry in tuple(self._tick_listeners):
            if entry.passed:
                entry.run(time.monotonic())

    def dispatch(self, callback: Callable[[], Any]) -> None:
        """Run a due callback (inline here; a real clock may hand it to a worker)."""
        callback()

    def sleep(self, seconds: float) -> None:
        """Wait inside a QAction (e.g. between HTTP retries)."""
        raise NotImplementedError

    def wake(self) -> None:
        """A job was added: a clock waiting for the next due time should look again."""

    # -- exchanges started on serial ports (`SerialPort.start_exchange`): this clock runs them --

    def start_exchange(self, started: StartedExchange) -> None:
        """Send `started` and read its answer: here, on this thread (see the subclasses)."""
        started.run_blocking()

    def wait_exchange(self, started: StartedExchange) -> None:
        """Return once `started` has ended."""
        started.done.wait()

    def forget_exchange(self, started: StartedExchange, sock: socket.socket) -> None:
        """`started` no longer waits on `sock`."""

    def settle(self) -> None:
        """Return once the exchanges in flight that this clock waits for have ended (nothing
        to do here: they end before `start_exchange` returns)."""


class VirtualClock(Clock):
    """Simulated time: `advance` fires every due timer in time order without sleeping."""

    def __init__(self, start: dt.datetime | float | None = None) -> None:
        super().__init__()
        self._selector: selectors.BaseSelector | None = None  # sockets of exchanges in flight
        # Those exchanges, with their sockets: read on every loop of `settle`, where the
        # selector's own map would be walked key by key.
        self._awaited: dict[StartedExchange, socket.socket] = {}
        self._io_lock = threading.Lock()  # held while the selector changes, never while waiting
        self._settle_lock = threading.Lock()  # one thread at a time waits for answers
        self._settler: int | None = None  # that thread
        self.start_given = start is not None
        """False when the clock starts at `DEFAULT_VIRTUAL_START` because nobody chose a start:
        a DMS reopening a state directory saved later then moves it there (`skip_to`)."""
        if start is None:
            start = DEFAULT_VIRTUAL_START
        if isinstance(start, dt.datetime):
            self._now = start.timestamp()
        elif isinstance(start, numbers.Real) and not isinstance(start, bool):
            self._now = _checked_seconds(start, "VirtualClock(start)")
        else:
            raise ClockTimeError(
                f"VirtualClock(start) must be a datetime or epoch seconds, not {start!r} ({type(start).__name__}); "
                "e.g. VirtualClock(datetime(2026, 1, 1, tzinfo=timezone.utc))"
            )

    def now(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        """No wall time passes: virtual time only moves between ticks, never inside a QAction."""

    # An exchange started on a virtual clock ends at the instant it started: its socket is
    # watched here, by the thread driving the clock, and time moves on (and the tick's batch
    # save runs) only once every exchange in flight has its answer or failure. Meanwhile the
    # clock runs the work that answers start, so exchanges on several ports overlap. Another
    # thread's set (a web request's, while a paced clock runs) may start exchanges too: the
    # selector is changed under `_io_lock`, and one thread at a time settles.

    def start_exchange(self, started: StartedExchange) -> None:
        sock = started.begin()
        if sock is not None:
            with self._io_lock:
                if started.socket is not sock:
                    return  # ended meanwhile (its port closed on another thread)
                if self._selector is None:
                    self._selector = selectors.DefaultSelector()
                    self.answers_awaited = True
                self._selector.register(sock, selectors.EVENT_READ, started)
                self._awaited[started] = sock

    def wait_exchange(self, started: StartedExchange) -> None:
        sock = self._watched_socket(started)
        if sock is not None:
            self.forget_exchange(started, sock)
            started.read_blocking()
        elif not started.sent:
            started.run_blocking()  # not sent yet: its turn is now
        else:
            started.done.wait()  # another thread waits for its answer

    def forget_exchange(self, started: StartedExchange, sock: socket.socket) -> None:
        with self._io_lock:
            if self._awaited.pop(started, None) is sock:
                self._selector.unregister(sock)  # type: ignore[union-attr]

    def settle(self) -> None:
        """Wait for the answers of every exchange in flight, running the work each starts."""
        if self._selector is None:
            return  # nothing in flight
        me = threading.get_ident()
        if self._settler == me:
            return  # already waiting, further up this thread's stack
        with self._settle_lock:
            self._settler = me
            try:
                while True:
                    with self._io_lock:
                        selector = self._selector
                        if not self._awaited:
                            if selector is not None:
                                selector.close()  # no descriptor is held between exchanges
                                self._selector = None
                                self.answers_awaited = False
                            return
                        waiting = list(self._awaited)
                    self._wait_for_answers(selector, waiting)  # type: ignore[arg-type]
            finally:
                self._settler = None

    @staticmethod
    def _wait_for_answers(selector: selectors.BaseSelector, waiting: list[StartedExchange]) -> None:
        soonest = min(started.deadline for started in waiting)
        for key, _ in selector.select(max(0.0, soonest - time.monotonic())):
            key.data.readable()
        now = time.monotonic()
        for started in waiting:
            if started.deadline <= now and not started.done.is_set():
                started.expire()

    def _watched_socket(self, started: StartedExchange) -> socket.socket | None:
        with self._io_lock:
            return self._awaited.get(started)

    def skip_to(self, when: float) -> None:
        """Jump forward to `when` (epoch seconds) firing nothing on the way: timers already due
        fire once at the next `advance`. A clock that does not go back stays where it is."""
        self._now = max(self._now, float(when))

    def advance(self, seconds: float) -> int:
        """Move time forward by `seconds`, firing what falls due; returns the number of firings."""
        try:
            return self._run_to(self._now + _checked_step(seconds))
        finally:
            self._end_run()

    def run_until(
        self,
        until: dt.datetime | float | Callable[[], bool],
        *,
        timeout: float = 365 * 86400.0,
    ) -> int:
        """Advance to a time (datetime or epoch seconds), or until a predicate holds.

        With a predicate, time moves one due time at a time and stops as soon as it is true;
        `timeout` (virtual seconds) bounds the search and raises TimeoutError if reached.
        A time already reached is met at once: nothing fires and time stays.
        """
        try:
            return self._run_until(until, timeout)
        finally:
            self._end_run()

    def _run_until(self, until: dt.datetime | float | Callable[[], bool], timeout: float) -> int:
        if isinstance(until, dt.datetime):
            return self._run_to(max(until.timestamp(), self._now))
        if not callable(until):
            if not isinstance(until, numbers.Real) or isinstance(until, bool):
                raise ClockTimeError(
                    f"run_until(until) must be a datetime, epoch seconds or a condition (a callable), "
                    f"not {until!r} ({type(until).__name__})"
                )
            return self._run_to(max(_checked_seconds(until, "run_until(until)"), self._now))
        if _checked_seconds(timeout, "run_until timeout") < 0:
            raise ClockTimeError(f"run_until timeout must be 0 or more virtual seconds, not {timeout!r}")
        deadline = self._now + timeout
        fired = 0
        self.settle()
        while not until():
            due = self.scheduler.next_due
            if due is None or due > deadline:
                self._now = max(self._now, deadline)
                raise TimeoutError(f"condition not met within {timeout:g} virtual seconds")
            fired += self._run_to(due)
        return fired

    def _run_to(self, target: float) -> int:
        fired = 0
        scheduler = self.scheduler
        self.settle()  # exchanges started between ticks end where they started
        while True:
            due = scheduler.next_due
            if due is None or due > target:
                break
            if due > self._now:
                self._now = due
            jobs = scheduler.pop_due(self._now)
            for job in jobs:
                job.job_func()
            fired += len(jobs)
            self.settle()
            self._end_tick()
        if self._now < target:
            self._now = target
            self._end_tick()  # time passed: what users changed since the last tick is batched too
        return fired


class _TickListener:
    """A tick listener, and when it last ran (`Clock.add_tick_listener`)."""

    __slots__ = ("listener", "min_gap", "last_run", "passed")

    def __init__(self, listener: Callable[[], None], min_gap: float) -> None:
        self.listener = listener
        self.min_gap = min_gap
        self.last_run = -math.inf  # time.monotonic()
        self.passed = False  # a tick ended without it since it last ran

    def tick_ended(self, now: float) -> None:
        if now - self.last_run < self.min_gap:
            self.passed = True
        else:
            self.run(now)

    def run(self, now: float) -> None:
        self.last_run, self.passed = now, False
        self.listener()


def _logging_failures(callback: Callable[[], Any]) -> None:
    # A worker pool keeps exceptions in futures nobody reads: say them.
    try:
        callback()
    except Exception:
        _logger.exception("a timer callback failed")


EXCHANGE_THREADS = 32
"""Started serial exchanges a real clock waits for at once (more wait for a free thread)."""


class RealClock(Clock):
    """Wall-clock time; `start()` runs due timers on a background thread, handing each to a
    small worker pool so one slow element cannot hold up the others."""

    ticks_end_in_one_place = False

    def __init__(self, workers: int = 8) -> None:
        super().__init__()
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._exchange_pool: ThreadPoolExecutor | None = None  # started serial exchanges waiting for their answers
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._changed = threading.Condition()
        self._woken = False  # a job was added since the loop last looked at the schedule

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def start_exchange(self, started: StartedExchange) -> None:
        """A thread of its own sends it and waits for its answer (not one of the timers'
        workers: exchanges waiting for slow devices must not hold up other elements' timers);
        the answer's work is queued from there."""
        pool = self._exchange_pool
        if pool is not None:
            try:
                pool.submit(_logging_failures, started.run_blocking)
                return
            except RuntimeError:  # the pool is shutting down: run it here
                pass
        started.run_blocking()

    def dispatch(self, callback: Callable[[], Any]) -> None:
        pool = self._pool
        if pool is not None:
            try:
                pool.submit(_logging_failures, callback)
                return
            except RuntimeError:  # the pool is shutting down: run it here
                pass
        _logging_failures(callback)

    def wake(self) -> None:
        with self._changed:
            self._woken = True
            self._changed.notify_all()

    def _wait_for_work(self, deadline: float | None = None) -> None:
        """Sleep until the next due time (or `deadline`), unless a job was added meanwhile."""
        with self._changed:
            if not self._woken and not self._stopping.is_set():
                due = self.scheduler.next_due
                if deadline is not None:
                    due = deadline if due is None else min(due, deadline)
                self._changed.wait(None if due is None else max(0.0, due - time.time()))
            self._woken = False

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        """Fire timers in the background until `stop()`.

        Due callbacks go to worker threads, so there is no single end of a tick here: batched
        work such as saving runs on its own timer instead of as a tick listener.
        """
        if self._thread is not None:
            return
        self._stopping.clear()
        self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="dmemu-element")
        self._exchange_pool = ThreadPoolExecutor(max_workers=EXCHANGE_THREADS, thread_name_prefix="dmemu-exchange")
        self._thread = threading.Thread(target=self._loop, name="dmemu-clock", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        thread, pool, exchanges = self._thread, self._pool, self._exchange_pool
        if thread is None:
            return
        self._stopping.set()
        self.wake()
        thread.join()
        if pool is not None:
            pool.shutdown(wait=True)
        if exchanges is not None:
            exchanges.shutdown(wait=True)  # each ends within its timeout (closing its port ends it at once)
        self._thread = self._pool = self._exchange_pool = None

    def advance(self, seconds: float) -> int:
        """Block for `seconds` of wall-clock time, running due timers on this thread."""
        deadline = time.time() + _checked_step(seconds)
        fired = 0
        try:
            while True:
                jobs = self.scheduler.pop_due(time.time())
                for job in jobs:
                    job.job_func()
                if jobs:
                    fired += len(jobs)
                    self._end_tick()
                if time.time() >= deadline:
                    return fired
                self._wait_for_work(deadline)
        finally:
            self._end_run()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                for job in self.scheduler.pop_due(time.time()):
                    self.dispatch(job.job_func)
            except Exception:  # the loop must outlive any one bad job
                _logger.exception("the clock could not run due timers")
            self._wait_for_work()
