"""Engine benchmarks: each figure is the engine's time over a plain-Python baseline timed in
the same run, so the ratios hold on shared, noisy machines where absolute times do not.

Figures (ratio = engine time / baseline time; lower is better):

``set``
    ``element.set(pid, value)`` on a write parameter that triggers no QAction, against
    ``d[key] = value`` in the same Python loop. The gap is the engine's per-set overhead:
    finding the parameter, checking the value, running the store on the element's queue.
``fill_array``
    A QAction started by a button set (the public way) calling ``protocol.fill_array`` with
    100,000 prepared rows of 10 columns, against building the same rows as a dict of lists.
    The gap is the bulk validation of every row and cell.
``save``
    ``element.save()`` of a ``save=True`` table of 100,000 rows (changed by a QAction just
    before, untimed), against ``json.dump`` of the same rows to a file and an fsync. The gap is
    the tinydb document layout and the atomic write (temporary file, rename, directory fsync).
``save vs json.dumps``
    The same save against the stricter baseline: json's C encoder (``json.dumps``), one write,
    fsync. ``json.dump`` streams through the pure-Python encoder, which the engine avoids, so
    the first figure alone could hardly fail.
``virtual clock``
    ``clock.advance(86400)`` with 1,000 elements of 3 timers each (60 s, 300 s, 3600 s, each
    running a QAction that does nothing), against a bare ``heapq`` loop doing the same
    firings. The gap is the scheduler, the element queue and the QAction call.

Each measurement alternates the sides ``--repeat`` times (rounds) and keeps each side's best
time, with the garbage collector off while timing (as `timeit` does). A figure's line ends
with the lowest and highest ratio of a single round, so a reader sees the noise the best times
smooth out. ``--scale`` shrinks the sizes
for a quick run.

Each group of figures (set; fill_array and the saves; virtual clock) runs in a process of its
own, so one group's leftovers in the allocator do not slow the next.

Run: ``python benchmarks/engine.py [--scale 0.1] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import gc
import heapq
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from dmemu.dms import DataMinerSystem
from dmemu.protocol import (
    Button,
    Column,
    Element,
    LogType,
    Number,
    Parameter,
    Protocol,
    QAction,
    QActionProtocol,
    Table,
    Timer,
    VirtualClock,
)

SET_COUNT = 1_000_000
ROW_COUNT = 100_000
ELEMENT_COUNT = 1_000
TIMER_SECONDS = (60, 300, 3600)
VIRTUAL_DAY = 86_400.0

TARGETS = {"set": 25.0, "fill_array": 3.0, "save": 1.5, "save vs json.dumps": 1.5, "virtual clock": 3.0}

# -- protocols under test ----------------------------------------------------------------------

VALUE_PID = 10
FILL_BUTTON_PID = 20
ROWS_TABLE_ID = 1000
IDLE_QACTION_ID = 100
FILL_QACTION_ID = 101

ROWS_TO_FILL: list[list[Any]] = []
"""The rows the fill QAction puts in its table, prepared (untimed) by the benchmark."""


def fill_rows(protocol: QActionProtocol) -> None:
    """QAction: the table becomes the prepared rows."""
    protocol.fill_array(ROWS_TABLE_ID, ROWS_TO_FILL)


def idle(protocol: QActionProtocol) -> None:
    """QAction: does nothing, so a timer firing costs only the engine's own work."""


class SetBenchmark(Protocol):
    name = "Benchmark Set"
    parameters = (Parameter(VALUE_PID, "Value", type=Number(), write=True),)


class TableBenchmark(Protocol):
    name = "Benchmark Table"
    parameters = (Parameter(FILL_BUTTON_PID, "Fill", type=Button(), write=True),)
    tables = (
        Table(
            ROWS_TABLE_ID,
            "Rows",
            save=True,
            columns=(
                Column(1001, "ID", key=True),
                Column(1002, "Name"),
                *(Column(1003 + i, f"Count {i}", type=Number()) for i in range(4)),
                *(Column(1007 + i, f"Ratio {i}", type=Number()) for i in range(4)),
            ),
        ),
    )
    qactions = (QAction(FILL_QACTION_ID, fill_rows, triggers=(FILL_BUTTON_PID,)),)


class TimerBenchmark(Protocol):
    name = "Benchmark Timers"
    timers = tuple(
        Timer(number, seconds, qactions=(IDLE_QACTION_ID,), at_startup=False)
        for number, seconds in enumerate(TIMER_SECONDS, start=1)
    )
    qactions = (QAction(IDLE_QACTION_ID, idle),)


# -- measuring ---------------------------------------------------------------------------------


class Stopwatch:
    """``with Stopwatch() as watch: ...`` then ``watch.seconds``.

    As in `timeit`, the garbage collector is off while timing: a full collection walks every
    live object (100,000-row tables here), so whichever side it happened to hit would pay for
    the whole process. Garbage is collected before each measurement instead.
    """

    seconds = 0.0

    def __enter__(self) -> Stopwatch:
        gc.collect()
        gc.disable()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.seconds = time.perf_counter() - self._start
        gc.enable()


def round_times(sides: Sequence[Callable[[], float]], repeat: int) -> list[list[float]]:
    """Seconds of each side in each round; the sides take turns for `repeat` rounds."""
    times: list[list[float]] = [[] for _ in sides]
    for _ in range(repeat):
        for side, side_times in zip(sides, times):
            side_times.append(side())
    return times


def report(figure: str, what: str, baseline_name: str, baseline_times: list[float], engine_times: list[float]) -> None:
    """Best absolute times on a ``#`` line, then the figure's ratio line: the ratio of the best
    times, and in brackets the lowest and highest ratio of one round's two times, so a reader
    sees how noisy the machine was."""
    baseline_seconds, engine_seconds = min(baseline_times), min(engine_times)
    print(f"# {figure}: {what}; {baseline_name} {baseline_seconds:.4f} s, engine {engine_seconds:.4f} s (best)")
    ratio = engine_seconds / baseline_seconds
    round_ratios = [engine / baseline for baseline, engine in zip(baseline_times, engine_times)]
    spread = f"[round ratios {min(round_ratios):.2f}-{max(round_ratios):.2f} over {len(round_ratios)} rounds]"
    print(f"{figure}: ratio {ratio:.2f} (target <= {TARGETS[figure]:g}) {spread}", flush=True)


@contextmanager
def temporary_dms(directory: Path, clock: VirtualClock) -> Iterator[DataMinerSystem]:
    """A DataMinerSystem keeping its state in `directory`; a virtual clock only moves when told."""
    dms = DataMinerSystem(directory, clock)
    try:
        yield dms
    finally:
        dms.close()


def check_no_errors(element: Element) -> None:
    """A failing QAction is only logged: make sure a fast time is not a failure."""
    errors = element.logs(LogType.ERROR)
    if errors:
        raise RuntimeError(f"element {element.name!r} logged an error: {errors[0].message}")


def scaled(size: int, scale: float) -> int:
    return max(1, round(size * scale))


# -- figure 1: set -----------------------------------------------------------------------------


def time_dict_sets(values: Sequence[int]) -> float:
    target: dict[int, int] = {}
    with Stopwatch() as watch:
        for value in values:
            target[VALUE_PID] = value
    return watch.seconds


def time_element_sets(element: Element, values: Sequence[int]) -> float:
    with Stopwatch() as watch:
        for value in values:
            element.set(VALUE_PID, value)
    return watch.seconds


def bench_set(directory: Path, scale: float, repeat: int) -> None:
    values = list(range(scaled(SET_COUNT, scale)))
    with temporary_dms(directory, VirtualClock()) as dms:
        element = dms.create_element(SetBenchmark, "set")
        sides = [lambda: time_dict_sets(values), lambda: time_element_sets(element, values)]
        baseline, engine = round_times(sides, repeat)
        if element.get(VALUE_PID) != values[-1]:
            raise RuntimeError("the sets did not reach the element")
    report("set", f"{len(values):,} sets", "dict", baseline, engine)


# -- figures 2 and 3: fill_array and save ------------------------------------------------------


def make_rows(count: int) -> list[list[Any]]:
    """Rows of the benchmark table: key, name, four integers, four floats."""
    return [[f"row-{i}", f"item {i}", i, i + 1, i + 2, i + 3, i / 2, i / 3, i / 4, i / 5] for i in range(count)]


def time_dict_of_lists(rows: Sequence[Sequence[Any]]) -> float:
    with Stopwatch() as watch:
        {row[0]: list(row) for row in rows}
    return watch.seconds


def press_fill(element: Element) -> None:
    """Set the Fill button: its QAction fills the table with `ROWS_TO_FILL`."""
    element.set(FILL_BUTTON_PID, 1)
    check_no_errors(element)
    if len(element.table(ROWS_TABLE_ID)) != len(ROWS_TO_FILL):
        raise RuntimeError("the fill QAction did not fill the table")


def time_fill(element: Element) -> float:
    with Stopwatch() as watch:
        press_fill(element)
    return watch.seconds


def json_dump(rows: Any, file: TextIO) -> None:
    """The figure's baseline. `json.dump` streams through json's pure-Python encoder."""
    json.dump(rows, file)


def json_dumps_write(rows: Any, file: TextIO) -> None:
    """A stricter baseline, informational only: json's C encoder, then one write."""
    file.write(json.dumps(rows))


def time_json_file(dump: Callable[[Any, TextIO], None], rows: Sequence[Sequence[Any]], path: Path) -> float:
    """Seconds to write `rows` to `path` with `dump`, flush and fsync."""
    with Stopwatch() as watch, path.open("w") as file:
        dump(rows, file)
        file.flush()
        os.fsync(file.fileno())
    return watch.seconds


def time_save(element: Element) -> float:
    press_fill(element)  # a change made by a QAction, so that there is something to save
    with Stopwatch() as watch:
        element.save()
    return watch.seconds


def bench_table(directory: Path, scale: float, repeat: int) -> None:
    ROWS_TO_FILL[:] = make_rows(scaled(ROW_COUNT, scale))
    what = f"{len(ROWS_TO_FILL):,} rows x {len(ROWS_TO_FILL[0])} columns"
    path = directory / "baseline.json"
    with temporary_dms(directory / "dms", VirtualClock()) as dms:
        element = dms.create_element(TableBenchmark, "table")
        baseline, engine = round_times([lambda: time_dict_of_lists(ROWS_TO_FILL), lambda: time_fill(element)], repeat)
        report("fill_array", what, "dict of lists", baseline, engine)
        baseline, strict_baseline, engine = round_times(
            [
                lambda: time_json_file(json_dump, ROWS_TO_FILL, path),
                lambda: time_json_file(json_dumps_write, ROWS_TO_FILL, path),
                lambda: time_save(element),
            ],
            repeat,
        )
        report("save", what, "json.dump + fsync", baseline, engine)
        report("save vs json.dumps", what, "json.dumps + write + fsync", strict_baseline, engine)
    ROWS_TO_FILL.clear()


# -- figure 4: virtual clock -------------------------------------------------------------------


def no_op() -> None:
    """The baseline's timer callback."""


def run_heap(intervals: Sequence[float], duration: float) -> int:
    """Fire timers of these intervals for `duration` seconds; answers the number of firings."""
    heap = [(interval, sequence, interval, no_op) for sequence, interval in enumerate(intervals)]
    heapq.heapify(heap)
    fired = 0
    while heap[0][0] <= duration:
        due, sequence, interval, callback = heapq.heappop(heap)
        callback()
        heapq.heappush(heap, (due + interval, sequence, interval, callback))
        fired += 1
    return fired


class FiringCounter:
    """One side of the clock figure: times a run and keeps the number of firings it answered."""

    def __init__(self, run: Callable[[], int]) -> None:
        self._run = run
        self.firings: set[int] = set()

    def __call__(self) -> float:
        with Stopwatch() as watch:
            self.firings.add(self._run())
        return watch.seconds


def create_timer_elements(dms: DataMinerSystem, count: int) -> None:
    with Stopwatch() as watch:
        for number in range(count):
            dms.create_element(TimerBenchmark, f"timers {number}")
    print(f"# virtual clock: creating {count:,} elements took {watch.seconds:.2f} s (not part of the figure)")


def bench_clock(directory: Path, scale: float, repeat: int) -> None:
    element_count = scaled(ELEMENT_COUNT, scale)
    clock = VirtualClock()
    with temporary_dms(directory, clock) as dms:
        create_timer_elements(dms, element_count)
        intervals = [*TIMER_SECONDS * element_count]
        baseline = FiringCounter(lambda: run_heap(intervals, VIRTUAL_DAY))
        engine = FiringCounter(lambda: clock.advance(VIRTUAL_DAY))
        baseline_times, engine_times = round_times([baseline, engine], repeat)
        for element in dms.elements:
            check_no_errors(element)
    if len(baseline.firings | engine.firings) != 1:
        raise RuntimeError(f"firings differ: heapq {sorted(baseline.firings)}, engine {sorted(engine.firings)}")
    firings = engine.firings.pop()
    what = f"{element_count:,} elements x {len(TIMER_SECONDS)} timers over 24 virtual hours, {firings:,} firings"
    report("virtual clock", what, "heapq", baseline_times, engine_times)


# -- main --------------------------------------------------------------------------------------

BENCHES: dict[str, Callable[[Path, float, int], None]] = {"set": bench_set, "table": bench_table, "clock": bench_clock}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply sizes (sets, rows, elements) by this")
    parser.add_argument("--repeat", type=int, default=3, help="measurements per side; the best one counts")
    parser.add_argument("--only", choices=sorted(BENCHES), help="run one group of figures, in this process")
    args = parser.parse_args()
    if args.scale <= 0:
        parser.error("--scale must be positive")
    if args.only is not None:
        with tempfile.TemporaryDirectory(prefix="dmemu-bench-") as directory:
            BENCHES[args.only](Path(directory), args.scale, max(1, args.repeat))
        return
    # Each group in a fresh process: what one group leaves in the allocator (100,000-row tables)
    # slowed the next one's figures by a third, which says nothing about the engine.
    for name in BENCHES:
        command = [sys.executable, __file__, "--only", name, "--scale", str(args.scale), "--repeat", str(args.repeat)]
        subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
