"""What ServiceNow users do to service problems over simulated time: `ProblemActivity`.

Operators acknowledge problems (acknowledged -> inProgress, naming themselves the responsible
party), move them along (inProgress, pending, held), add notes, change priorities, resolve and
close them, and raise problems of their own (``originatingSystem`` "servicenow", with an
incident number). Bursts update several open problems in the same second, as ServiceNow's
business rules and bulk edits do (REFERENCE §3: what a strict ``>`` watermark skips).

Rates are per simulated hour. Each hour's events are a function of (seed, hour) alone: their
count per kind is the rate rounded up or down at random in proportion, their times whole
seconds within the hour (ServiceNow's times are second precision). Which problem an event
touches is drawn when it is applied, among the problems it can apply to then (an event that
finds none does nothing), so the same seed and the same client requests at the same simulated
times give the same history. `problems.ServiceProblems` applies the events lazily, up to the
simulator's ``now`` whenever the problems are read or written.
"""

from __future__ import annotations

import math
import random
from typing import Any, NamedTuple

import attrs

from .words import _batch_size

HOUR = 3600

# The kinds of event, in the order events of one second are applied; "burst" is several at once.
KINDS: tuple[str, ...] = ("create", "acknowledge", "progress", "note", "priority", "resolve", "close", "burst")
OPEN_STATUSES = ("acknowledged", "inProgress", "pending", "held")  # what an operator still works on
WORKING_STATUSES = ("inProgress", "pending", "held")  # what "progress" moves among
NOTED_STATUSES = (*OPEN_STATUSES, "resolved")  # what takes a note
ELIGIBLE: dict[str, tuple[str, ...]] = {  # the statuses each kind of event applies to
    "acknowledge": ("acknowledged",),
    "progress": WORKING_STATUSES,
    "note": NOTED_STATUSES,
    "priority": OPEN_STATUSES,
    "resolve": OPEN_STATUSES,
    "close": ("resolved",),
    "burst": OPEN_STATUSES,
}
SOURCE = "servicenow"  # the originatingSystem of problems ServiceNow users raise

_CATEGORIES = ("network", "service", "hardware", "software", "power")
_REASONS = ("loss of signal", "high error rate", "customer complaint", "planned work overran", "unknown")
_SYMPTOMS = ("no picture", "frozen video", "audio dropouts", "link down", "packet loss", "slow response")
_NOTES = (
    "Called the customer, waiting for feedback.",
    "Field engineer dispatched.",
    "Escalated to the network operations team.",
    "Monitoring after a restart of the encoder.",
    "Vendor case opened.",
    "Issue reproduced in the lab.",
)


def _rate(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"ProblemActivity.{attribute.name} must be a finite number from 0 (events per simulated hour), not {value!r}")


def _whole_from(low: int) -> Any:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if type(value) is not int or value < low:
            raise ValueError(f"ProblemActivity.{attribute.name} must be a whole number from {low}, not {value!r}")

    return check


def _optional_time(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (type(value) not in (int, float) or not math.isfinite(value)):
        raise ValueError(f"ProblemActivity.start must be epoch seconds or None, not {value!r}")


@attrs.frozen
class ProblemActivity:
    """How often ServiceNow users do each thing, per simulated hour; all 0 (nothing) by default.

    `bursts` an hour, `burst_size` open problems get a note or a new priority in one second.
    `start` is when the activity begins (epoch seconds; None: when the simulators are made)."""

    acknowledge: float = attrs.field(default=0.0, validator=_rate)  # acknowledged -> inProgress
    progress: float = attrs.field(default=0.0, validator=_rate)  # among inProgress, pending, held
    note: float = attrs.field(default=0.0, validator=_rate)  # a note on an open or resolved problem
    priority: float = attrs.field(default=0.0, validator=_rate)  # an open problem's priority changed
    resolve: float = attrs.field(default=0.0, validator=_rate)  # an open problem resolved
    close: float = attrs.field(default=0.0, validator=_rate)  # a resolved problem closed
    create: float = attrs.field(default=0.0, validator=_rate)  # a problem raised by a ServiceNow user
    bursts: float = attrs.field(default=0.0, validator=_rate)
    burst_size: int = attrs.field(default=5, validator=_whole_from(1))
    seed: int = attrs.field(default=1, validator=_whole_from(0))
    start: float | None = attrs.field(default=None, validator=_optional_time)

    @property
    def active(self) -> bool:
        return any(getattr(self, kind) for kind in KINDS[:-1]) or bool(self.bursts)

    def rate(self, kind: str) -> float:
        return self.bursts if kind == "burst" else float(getattr(self, kind))


class ActivityEvent(NamedTuple):
    time: int  # epoch second
    kind: str  # one of KINDS
    draw: int  # seeds what the event picks and writes, when applied


def hour_events(activity: ProblemActivity, start: int, hour: int) -> list[ActivityEvent]:
    """The events of the `hour`-th hour from `start`, in the order they apply."""
    rng = random.Random(f"problem-activity:{activity.seed}:{hour}")
    first = start + hour * HOUR
    events = []
    for kind in KINDS:
        for _ in range(_batch_size(activity.rate(kind), rng)):
            events.append(ActivityEvent(first + rng.randrange(HOUR), kind, rng.getrandbits(64)))
    events.sort(key=lambda event: (event.time, KINDS.index(event.kind)))  # stable: drawing order breaks ties
    return events


def operator(rng: random.Random) -> dict[str, str]:
    """A ServiceNow operator, as a TMF RelatedParty."""
    number = rng.randrange(1, 13)
    return {"id": f"snow-op-{number:02d}", "name": f"Operator {number:02d}", "role": "assignee", "@referredType": "Individual"}


def raised_problem(rng: random.Random) -> dict[str, Any]:
    """The body of a problem a ServiceNow user raises."""
    user = rng.randrange(1, 40)
    symptom = rng.choice(_SYMPTOMS)
    return {
        "category": rng.choice(_CATEGORIES),
        "priority": rng.randrange(1, 6),
        "description": f"Customer reports {symptom}",
        "reason": rng.choice(_REASONS),
        "name": symptom.capitalize(),
        "originatingSystem": SOURCE,
        "originatorParty": {"id": f"snow-user-{user:03d}", "name": f"ServiceNow user {user:03d}", "@referredType": "Individual"},
    }


def change_for(kind: str, problem: dict[str, Any], rng: random.Random, stamp: str) -> dict[str, Any]:
    """The merge patch an event of `kind` makes to `problem` (one whose status `ELIGIBLE` lists)."""
    if kind == "burst":
        kind = rng.choice(("note", "priority"))
    if kind == "acknowledge":
        return {"status": "inProgress", "responsibleParty": operator(rng)}
    if kind == "progress":
        return {"status": rng.choice([status for status in WORKING_STATUSES if status != problem["status"]])}
    if kind == "note":
        author = operator(rng)["name"]
        notes = problem.get("note") or []
        note = {"id": str(len(notes) + 1), "author": author, "date": stamp, "text": rng.choice(_NOTES), "@type": "Note"}
        return {"note": [*notes, note]}
    if kind == "priority":
        current = problem.get("priority")
        return {"priority": rng.choice([value for value in range(1, 6) if value != current])}
    if kind == "resolve":
        return {"status": "resolved", "statusChangeReason": "Resolved by the service desk"}
    if kind == "close":
        return {"status": "closed"}
    raise ValueError(f"unknown activity kind {kind!r}")
