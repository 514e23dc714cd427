"""DataMiner System services benchmarks: each figure is a service's time over a baseline timed in
the same run, so the ratios hold on shared, noisy machines where absolute times do not.

Figures (lower is better):

``alarm monitoring``
    10,000 parameter changes (``element.set``) spread over 100 elements whose protocol has a
    monitored parameter, with an alarm template assigned to every element, against the same
    changes on the same elements without templates. The gap is the alarm manager's change
    listener: judging each new value and, for the few that cross a threshold, opening, changing
    or clearing an alarm. One change in `CROSSING_EVERY` crosses a threshold (and the element's
    next change crosses back), the rest stay inside the limits, as values of a healthy system do.
    The ``#`` line also times the same changes on elements with a change listener that does
    nothing: what the engine's change notification costs before the alarm manager does anything.
``ticket query by state``
    ``dms.tickets.query(state=...)`` on 10,000 tickets spread over the states (each moved from
    New by an update, so the state index has been reshuffled), against a list comprehension
    over just the matching records (``[t for t in matching if t.state is state]``): the query
    should cost what copying its answer costs, not a scan of every ticket. A scan of all the
    tickets is printed on the ``#`` line for comparison.

Each measurement alternates the sides ``--repeat`` times and keeps each side's best time, with
the garbage collector off while timing (`engine.Stopwatch`).

Run: ``python benchmarks/dms_services.py [--scale 0.1] [--repeat 5]``
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from engine import Stopwatch, round_times, scaled

from dmemu.dms import AlarmTemplate, DataMinerSystem, Severity, Thresholds, TicketField, TicketState, TicketType
from dmemu.protocol import Change, Element, Number, Parameter, Protocol, VirtualClock

TARGETS = {"alarm monitoring": 2.0, "ticket query by state": 2.0}


def report(figure: str, what: str, baseline_name: str, baseline_seconds: float, measured_name: str, measured_seconds: float) -> None:
    """Absolute times on a ``#`` line, then the figure's ratio line (as `engine.report` prints them)."""
    print(f"# {figure}: {what}; {baseline_name} {baseline_seconds:.4f} s, {measured_name} {measured_seconds:.4f} s (best)")
    ratio = measured_seconds / baseline_seconds
    print(f"{figure}: ratio {ratio:.2f} (target <= {TARGETS[figure]:g})", flush=True)


# -- figure: alarm monitoring -------------------------------------------------------------------

CHANGE_COUNT = 10_000
ELEMENT_COUNT = 100
CROSSING_EVERY = 50
LOAD_PID = 10

LOAD_TEMPLATE = AlarmTemplate(
    "Load",
    {LOAD_PID: Thresholds(high={Severity.MAJOR: 80, Severity.CRITICAL: 95}, low={Severity.WARNING: 5})},
)


class MonitoredBenchmark(Protocol):
    name = "Benchmark Monitored"
    parameters = (Parameter(LOAD_PID, "Load", type=Number(0, 100), write=True),)


def load_values(count: int, element_count: int) -> list[int]:
    """The value of each change, the elements taking turns: inside the limits (10..69), but each
    element goes to Major (90) on one of every `CROSSING_EVERY` of its changes, the elements
    staggered so that the crossings are spread evenly."""
    values = []
    for position in range(count):
        element, turn = position % element_count, position // element_count
        values.append(90 if (turn + element) % CROSSING_EVERY == 0 else 10 + position % 60)
    return values


def ignore_change(element: Element, change: Change) -> None:
    """A change listener that does nothing: the engine's own cost of telling listeners."""


def time_changes(elements: Sequence[Element], values: Sequence[int]) -> float:
    """Seconds to set the values, element after element in turn (a change each)."""
    count = len(elements)
    with Stopwatch() as watch:
        for position, value in enumerate(values):
            elements[position % count].set(LOAD_PID, value)
    return watch.seconds


def bench_alarm_monitoring(directory: Path, scale: float, repeat: int) -> None:
    change_count = scaled(CHANGE_COUNT, scale)
    element_count = min(change_count, scaled(ELEMENT_COUNT, scale))
    values = load_values(change_count, element_count)
    with DataMinerSystem(directory / "plain", VirtualClock()) as plain_dms, DataMinerSystem(directory / "monitored", VirtualClock()) as monitored_dms:
        plain = [plain_dms.create_element(MonitoredBenchmark, f"plain {n}") for n in range(element_count)]
        listened = [plain_dms.create_element(MonitoredBenchmark, f"listened {n}") for n in range(element_count)]
        for element in listened:
            element.add_change_listener(ignore_change)
        monitored = [monitored_dms.create_element(MonitoredBenchmark, f"monitored {n}") for n in range(element_count)]
        for element in monitored:
            monitored_dms.alarms.assign_template(element, LOAD_TEMPLATE)
        opened: list[object] = []
        monitored_dms.alarms.subscribe(opened.append)
        baseline, listening, measured = (min(times) for times in round_times(
            [lambda: time_changes(plain, values), lambda: time_changes(listened, values), lambda: time_changes(monitored, values)],
            repeat,
        ))
        if not opened or plain_dms.alarms.active() or plain_dms.alarms.history():
            raise RuntimeError("the monitored elements raised no alarm, or the plain ones did")
    print(
        f"# alarm monitoring: per change, no templates {baseline * 1e6 / len(values):.2f} us, a change listener doing "
        f"nothing {listening * 1e6 / len(values):.2f} us (ratio {listening / baseline:.2f}), templates {measured * 1e6 / len(values):.2f} us"
    )
    crossings = sum(value > 80 for value in values)
    what = f"{len(values):,} changes over {element_count} elements, {crossings} of them to Major and back"
    report("alarm monitoring", what, "no templates", baseline, "templates", measured)


# -- figure: ticket query by state --------------------------------------------------------------

TICKET_COUNT = 10_000
QUERIES_PER_MEASUREMENT = 200
QUERIED_STATE = TicketState.IN_PROGRESS

PROBLEM_TYPE = TicketType(
    "Benchmark Service Problem",
    (
        TicketField("Ticket Info", "json", required=True),
        TicketField("Incident Number", "string"),
        TicketField("Priority", "number", default=3),
    ),
)


def time_queries(query: Callable[[], list[object]], count: int) -> float:
    """Seconds for `count` calls of `query` (one call is too short to time alone)."""
    with Stopwatch() as watch:
        for _ in range(count):
            query()
    return watch.seconds


def bench_ticket_query(directory: Path, scale: float, repeat: int) -> None:
    count = scaled(TICKET_COUNT, scale)
    states = list(TicketState)
    with DataMinerSystem(directory, VirtualClock()) as dms:
        tickets = dms.tickets
        tickets.define_type(PROBLEM_TYPE)
        with Stopwatch() as watch:
            for number in range(count):
                ticket = tickets.create(PROBLEM_TYPE.name, {"Ticket Info": {"sp": number}, "Incident Number": f"INC{number:07d}"})
                state = states[number * 7 % len(states)]  # interleaved, so moves reorder the indexes
                if state is not TicketState.NEW:
                    tickets.update(ticket.id, state=state)
        print(f"# ticket query by state: creating and moving {count:,} tickets took {watch.seconds:.2f} s (not part of the figure)")
        everything = tickets.query()
        matching = [ticket for ticket in everything if ticket.state is QUERIED_STATE]
        if tickets.query(state=QUERIED_STATE) != matching:
            raise RuntimeError("the query by state does not answer the matching tickets in creation order")
        baseline, scan, measured = (min(times) for times in round_times(
            [
                lambda: time_queries(lambda: [t for t in matching if t.state is QUERIED_STATE], QUERIES_PER_MEASUREMENT),
                lambda: time_queries(lambda: [t for t in everything if t.state is QUERIED_STATE], QUERIES_PER_MEASUREMENT),
                lambda: time_queries(lambda: tickets.query(state=QUERIED_STATE), QUERIES_PER_MEASUREMENT),
            ],
            repeat,
        ))
    per_query = 1e6 / QUERIES_PER_MEASUREMENT
    print(
        f"# ticket query by state: per query, the query {measured * per_query:.0f} us, the comprehension over the matching "
        f"records {baseline * per_query:.0f} us, a comprehension over all {count:,} tickets {scan * per_query:.0f} us"
    )
    what = f"{QUERIES_PER_MEASUREMENT} queries, each answering the {len(matching):,} of {count:,} tickets {QUERIED_STATE.value}"
    report("ticket query by state", what, "comprehension over the matching records", baseline, "query", measured)


# -- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply sizes (changes, elements) by this")
    parser.add_argument("--repeat", type=int, default=5, help="measurements per side; the best one counts")
    args = parser.parse_args()
    if args.scale <= 0:
        parser.error("--scale must be positive")
    repeat = max(1, args.repeat)
    for bench in (bench_alarm_monitoring, bench_ticket_query):
        with tempfile.TemporaryDirectory(prefix="dmemu-bench-") as directory:
            bench(Path(directory), args.scale, repeat)


if __name__ == "__main__":
    main()
