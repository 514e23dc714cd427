"""One clock per DMS: a virtual clock jumps from due time to due time; cadence never drifts."""

from __future__ import annotations

import datetime as dt
import math
import threading

import pytest
import schedule

from dmemu.protocol import ClockTimeError, DmemuError, RealClock, VirtualClock
from dmemu.protocol.clock import TimerScheduler

START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def test_virtual_clock_starts_where_told_and_only_moves_forward() -> None:
    clock = VirtualClock(START)
    assert clock.now() == START.timestamp()
    assert clock.datetime() == START
    clock.advance(90)
    assert clock.datetime() == START + dt.timedelta(seconds=90)
    with pytest.raises(ValueError, match="does not go back"):
        clock.advance(-1)


def test_a_clock_knows_whether_its_start_was_chosen_and_skips_forward_only() -> None:
    default = VirtualClock()
    assert not default.start_given and default.datetime() == START
    assert VirtualClock(START).start_given and VirtualClock(0).start_given
    fired: list[float] = []
    default.every(10, lambda: fired.append(default.now()))
    default.skip_to(START.timestamp() + 3600)  # fires nothing on the way
    assert fired == [] and default.now() == START.timestamp() + 3600
    default.skip_to(START.timestamp())  # never back
    assert default.now() == START.timestamp() + 3600
    default.advance(5)
    assert fired == [START.timestamp() + 3600]  # the timer long due fires once, then keeps its cadence


def test_timers_fire_in_time_order_at_their_due_times() -> None:
    clock = VirtualClock(0)
    fired: list[tuple[float, str]] = []
    clock.every(30, lambda: fired.append((clock.now(), "fast")))
    clock.every(70, lambda: fired.append((clock.now(), "slow")))
    assert clock.advance(150) == 7
    assert fired == [(30, "fast"), (60, "fast"), (70, "slow"), (90, "fast"), (120, "fast"), (140, "slow"), (150, "fast")]
    assert clock.now() == 150


def test_ten_years_of_a_daily_timer_fire_3650_times_the_last_at_the_end() -> None:
    clock = VirtualClock(0)
    fired = []
    clock.every(86400, lambda: fired.append(clock.now()))
    ten_years = 10 * 365 * 86400
    # A per-second loop would need 315 million steps here; jumping needs 3650.
    assert clock.advance(ten_years) == 3650
    assert fired[-1] == ten_years


def test_tick_listeners_run_once_after_each_instant() -> None:
    clock = VirtualClock(0)
    log: list[str] = []
    clock.every(10, lambda: log.append("a"))
    clock.every(10, lambda: log.append("b"))
    clock.add_tick_listener(lambda: log.append("tick"))
    clock.advance(20)
    assert log == ["a", "b", "tick", "a", "b", "tick"]


def test_a_tick_listener_with_a_gap_skips_ticks_and_runs_when_the_clock_call_returns() -> None:
    clock = VirtualClock(0)
    log: list[str] = []
    clock.every(10, lambda: log.append(f"timer {clock.now():g}"))
    clock.add_tick_listener(lambda: log.append(f"batch {clock.now():g}"), min_gap=3600)  # real seconds: longer than the test
    clock.advance(30)
    assert log == ["timer 10", "batch 10", "timer 20", "timer 30", "batch 30"]
    log.clear()
    clock.run_until(lambda: clock.now() >= 50)
    assert log == ["timer 40", "timer 50", "batch 50"]
    log.clear()
    clock.advance(5)  # nothing fired, but time passed: what users changed meanwhile is batched
    assert log == ["batch 55"]
    log.clear()
    with pytest.raises(TimeoutError):
        clock.run_until(lambda: False, timeout=5)
    assert log == ["timer 60", "batch 60"]  # a run that fails returns too


def test_a_tick_listener_gap_is_a_number_of_seconds() -> None:
    for gap in (-1, math.nan, math.inf):
        with pytest.raises(ValueError, match="min_gap"):
            VirtualClock(0).add_tick_listener(lambda: None, min_gap=gap)


def test_run_until_a_time_or_a_condition() -> None:
    clock = VirtualClock(START)
    count = []
    clock.every(60, lambda: count.append(1))
    clock.run_until(START + dt.timedelta(minutes=10))
    assert len(count) == 10
    clock.run_until(lambda: len(count) >= 15)
    assert len(count) == 15
    assert clock.datetime() == START + dt.timedelta(minutes=15)
    with pytest.raises(TimeoutError, match="within 120 virtual seconds"):
        clock.run_until(lambda: False, timeout=120)


def test_a_timer_cancelled_never_fires_again() -> None:
    clock = VirtualClock(0)
    fired = []
    job = clock.every(10, lambda: fired.append(clock.now()))
    clock.advance(25)
    clock.cancel(job)
    clock.advance(100)
    assert fired == [10, 20]


def test_call_later_fires_once_unless_cancelled() -> None:
    clock = VirtualClock(0)
    fired: list[tuple[float, str]] = []
    clock.call_later(30, lambda: fired.append((clock.now(), "once")))
    clock.cancel(clock.call_later(20, lambda: fired.append((clock.now(), "called off"))))
    assert clock.advance(300) == 1
    assert fired == [(30, "once")]
    assert clock.scheduler.next_due is None
    with pytest.raises(ValueError, match="a timer delay must be a positive number of seconds, not 0"):
        clock.call_later(0, lambda: None)


def test_a_call_later_job_is_tagged_and_leaves_the_scheduler_as_it_fires() -> None:
    clock = VirtualClock(0)
    scheduler = clock.scheduler
    fired: list[float] = []

    def fail() -> None:
        fired.append(clock.now())
        raise RuntimeError("the callback fails")

    job = clock.call_later(5, fail, tag="mine")
    assert scheduler.get_jobs("mine") == [job] and "Every 5 seconds do fail()" in repr(job)
    with pytest.raises(RuntimeError, match="the callback fails"):
        clock.advance(10)
    assert fired == [5]
    assert scheduler.get_jobs() == [] and scheduler._dues == []  # nothing filed for a next firing
    clock.cancel(job)  # called off after it fired: nothing to do
    assert clock.advance(100) == 0 and fired == [5]


def test_fixed_cadence_skips_missed_firings_without_drift() -> None:
    """A late scheduler (a busy real clock) keeps the grid: due times stay multiples of the interval."""
    clock = VirtualClock(0)
    job = clock.every(10, lambda: None)
    jobs = clock.scheduler.pop_due(37.5)  # woke up late: 10, 20, 30 were due
    assert jobs == [job]
    assert job.due == 40
    assert clock.scheduler.pop_due(40) == [job]
    assert job.due == 50


def test_the_scheduler_is_a_schedule_scheduler_on_the_injected_clock() -> None:
    clock = VirtualClock(START)
    scheduler = clock.scheduler
    assert isinstance(scheduler, schedule.Scheduler)
    calls = []
    job = scheduler.every(2).minutes.do(calls.append, "ran")
    assert scheduler.get_jobs() == [job]
    assert scheduler.idle_seconds == 120
    assert scheduler.next_run == dt.datetime.fromtimestamp(START.timestamp() + 120)
    clock.advance(240)
    assert calls == ["ran", "ran"]
    scheduler.clear()
    assert scheduler.next_due is None
    with pytest.raises(schedule.ScheduleValueError, match="plain intervals"):
        scheduler.every().day.at("10:00").do(calls.append, "never")


def test_a_scheduler_without_jobs_is_idle() -> None:
    scheduler = TimerScheduler(VirtualClock(0))
    assert scheduler.next_run is None
    assert scheduler.idle_seconds is None


def test_real_clock_advance_blocks_and_fires_due_timers() -> None:
    clock = RealClock()
    firings = []
    clock.every(0.01, lambda: firings.append(1))
    before = clock.now()
    # A loaded machine may skip missed firings (fixed cadence), so at least one is all that is sure.
    assert clock.advance(0.05) == len(firings) >= 1
    assert clock.now() - before >= 0.05


# -- issue 15: late wake-ups on the schedule, real-clock cadence, the cost of a jump ----------


def test_a_late_wake_up_landing_on_the_next_due_time_fires_once() -> None:
    """A busy real clock wakes at 20 for a timer due at 10: the firing due at 20 is the same
    one, not a second (pop_due's late branch takes `due <= now`)."""
    clock = VirtualClock(0)
    job = clock.every(10, lambda: None)
    assert clock.scheduler.pop_due(20) == [job]
    assert job.due == 30
    assert clock.scheduler.pop_due(29.9) == []


def test_a_late_wake_up_landing_on_a_later_due_time_fires_once() -> None:
    """Woken at 30 for a timer due at 10: 20 and 30 were both missed, and 30 is not fired
    again (advance_due skips every due time up to and including `now`)."""
    clock = VirtualClock(0)
    job = clock.every(10, lambda: None)
    assert clock.scheduler.pop_due(30) == [job]
    assert job.due == 40
    assert clock.scheduler.pop_due(39.9) == []


def test_real_clock_fires_on_a_fixed_cadence() -> None:
    """The real clock's firings keep the 0.02 s grid: a busy machine makes a firing late (and
    skips missed ones), never early, and the due times stay multiples of the interval."""
    clock = RealClock()
    firings: list[float] = []
    done = threading.Event()

    def fire() -> None:
        firings.append(clock.now())
        if len(firings) == 3:
            done.set()

    before = clock.now()
    job = clock.every(0.02, fire)
    after = clock.now()
    first_due = job.due
    assert before + 0.02 <= first_due <= after + 0.02
    clock.start()
    try:
        assert done.wait(5), "the real clock did not fire its timer"
    finally:
        clock.stop()
    for index, fired in enumerate(firings):  # the n-th firing is for the n-th due time or a later one
        assert fired >= first_due + index * 0.02 - 1e-6
    intervals = (job.due - first_due) / 0.02  # where the next firing is due, in intervals
    assert intervals == pytest.approx(round(intervals), abs=1e-3)
    assert round(intervals) >= len(firings)


def test_a_virtual_jump_takes_one_step_per_firing_whatever_the_time_elapsed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cost: the clock's steps (one pop of due timers each) follow the firings, not the time
    that passes: ten years of a daily timer are 3650 steps, ten years of nothing none."""
    clock = VirtualClock(0)
    steps = []
    pop_due = clock.scheduler.pop_due

    def counted_pop_due(now: float) -> list:
        steps.append(now)
        return pop_due(now)

    monkeypatch.setattr(clock.scheduler, "pop_due", counted_pop_due)
    ten_years = 10 * 365 * 86400
    clock.advance(ten_years)
    assert steps == []  # nothing scheduled: no step at all, however long
    job = clock.every(86400, lambda: None)
    assert clock.advance(ten_years) == 3650
    assert len(steps) == 3650  # a per-second loop would take 315 million
    clock.cancel(job)
    clock.every(30 * 86400, lambda: None)
    clock.advance(ten_years)
    assert len(steps) == 3650 + 121  # a monthly timer: about 12 steps a year


@pytest.mark.parametrize("seconds", [float("nan"), float("inf"), float("-inf")])
def test_advance_by_a_time_that_is_no_finite_number_is_refused_at_once(seconds: float) -> None:
    clock = VirtualClock(0)
    clock.every(60, lambda: None)  # with a timer, nan and inf used to loop for ever
    with pytest.raises(ClockTimeError, match=r"advance\(seconds\) must be a finite number of seconds, not (nan|inf|-inf)"):
        clock.advance(seconds)
    assert clock.now() == 0


@pytest.mark.parametrize("until", [float("nan"), float("inf")])
def test_run_until_a_time_that_is_no_finite_number_is_refused_at_once(until: float) -> None:
    clock = VirtualClock(0)
    clock.every(60, lambda: None)
    with pytest.raises(ClockTimeError, match=r"run_until\(until\) must be a finite number of seconds, not (nan|inf)"):
        clock.run_until(until)
    assert clock.now() == 0


@pytest.mark.parametrize("timeout", [float("nan"), float("inf"), -1])
def test_run_until_a_condition_needs_a_finite_timeout(timeout: float) -> None:
    clock = VirtualClock(0)
    clock.every(60, lambda: None)
    with pytest.raises(ClockTimeError, match="timeout must be"):
        clock.run_until(lambda: False, timeout=timeout)
    assert clock.now() == 0


def test_clock_times_of_the_wrong_kind_say_what_is_allowed() -> None:
    clock = VirtualClock(0)
    with pytest.raises(ClockTimeError, match=r"advance\(seconds\) must be a number of seconds, not '10' \(str\)"):
        clock.advance("10")  # type: ignore[arg-type]
    with pytest.raises(ClockTimeError, match=r"run_until\(until\) must be a datetime, epoch seconds or a condition"):
        clock.run_until("2026-01-02")  # type: ignore[arg-type]
    with pytest.raises(ClockTimeError, match=r"VirtualClock\(start\) must be a datetime or epoch seconds, not '2026-01-01'"):
        VirtualClock("2026-01-01")  # type: ignore[arg-type]
    with pytest.raises(ClockTimeError, match=r"VirtualClock\(start\) must be a finite number of seconds, not nan"):
        VirtualClock(float("nan"))
    with pytest.raises(ClockTimeError, match=r"advance\(seconds\) must be a number of seconds, not True"):
        clock.advance(True)  # type: ignore[arg-type]
    assert isinstance(ClockTimeError("x"), (DmemuError, ValueError))


def test_run_until_a_time_already_passed_fires_nothing_and_keeps_the_time() -> None:
    """Unlike `advance(-1)` (a refused step back), a target already reached is simply met."""
    clock = VirtualClock(START)
    fired = []
    clock.every(60, lambda: fired.append(clock.now()))
    clock.advance(300)
    assert clock.run_until(START) == 0
    assert clock.run_until(START.timestamp() + 10) == 0
    assert clock.datetime() == START + dt.timedelta(seconds=300)
    assert len(fired) == 5


def test_real_clock_advance_refuses_a_time_that_is_no_finite_number() -> None:
    clock = RealClock()
    with pytest.raises(ClockTimeError, match=r"advance\(seconds\) must be a finite number of seconds, not inf"):
        clock.advance(float("inf"))
    with pytest.raises(ClockTimeError, match="does not go back"):
        clock.advance(-1)


def test_timers_due_at_one_instant_fire_in_the_order_they_were_scheduled() -> None:
    """Jobs of one due time are filed as they are rescheduled (here B at 30, A at 40, for 60);
    they still fire in the order they were scheduled, as a heap of (due, sequence) would."""
    clock = VirtualClock(0)
    fired: list[tuple[float, str]] = []
    clock.every(20, lambda: fired.append((clock.now(), "A")))
    job_b = clock.every(30, lambda: fired.append((clock.now(), "B")))
    clock.every(60, lambda: fired.append((clock.now(), "C")))
    clock.advance(60)
    assert fired == [(20, "A"), (30, "B"), (40, "A"), (60, "A"), (60, "B"), (60, "C")]
    clock.cancel(job_b)  # first of its instant (90) and alone there: that instant goes
    assert clock.scheduler.next_due == 80
    fired.clear()
    clock.advance(60)
    assert fired == [(80, "A"), (100, "A"), (120, "A"), (120, "C")]
