"""TMF656 service problems held by the simulator: create, merge-patch, delete, lifecycle.

The lifecycle (REFERENCE §2) begins at "submitted", but the v4 schema's status enum has no such
value, so a created problem is ``acknowledged`` (answers must validate) and then moves along

    acknowledged -> rejected, inProgress, pending, held, resolved, cancelled
    inProgress   -> pending, held, resolved, cancelled
    pending      -> inProgress, held, resolved, cancelled
    held         -> inProgress, pending, resolved, cancelled
    resolved     -> closed, inProgress          (reopened)
    rejected, cancelled, closed: final

Any open problem may go straight to ``resolved``: the SES connector closes a problem by
patching it to resolved, whatever state ServiceNow had it in (REFERENCE §3).

Every change stamps ``lastUpdate``; a status change also ``statusChangeDate`` (and the v3
names ``timeChanged``/``timeRaised`` that older clients read), and ``resolved`` stamps
``resolutionDate``.

Creates and merge patches are checked against the v4 definitions (`schema`): the required
attributes, the types of the known ones down through every definition they refer to, and
(patches) only what ``ServiceProblem_Update`` lists, plus the v3 ``timeChanged`` that v3
clients still send. A patch is merged into a copy and checked whole before it is stored, so a
refused one changes nothing.

Correlation (what the connectors rely on): a client names its own record in
``externalIdentifier`` as ``{"id": <its id>, "externalIdentifierType": "DataMinerTicketId",
"owner": "DataMiner"}``; the v4 filter ``externalIdentifier.id=<id>`` and the SES query term
``correlation_id=<id>`` (ServiceNow's correlation_id field: `correlation_ids`) find it.

Incident numbers: ServiceNow numbers every record, ``INC`` and the seven digits of the
problem's id (SP-0000042 is INC0000042: `incident_number`). Problems created at the SES path
and those ServiceNow users raise (`activity`) store it, with the incident link, in
``externalIdentifier`` (types ``incidentNumber`` and ``incidentLink``, owner ServiceNow).
Problems created at the TMF v4 (or v3) path store only what the client sent, as a plain TMF656
server does; the SES path shows them with the number and link added (`with_incident`), so every
SES answer carries one and ``number=`` finds every problem.

Upstream activity (`activity.ProblemActivity`) is applied lazily: every read or write first
applies the events due up to ``now()``, from where the last one stopped, so a read costs nothing
more when none is due. A clock that goes back applies nothing until it passes the last event
applied. `listener` hears every create and change, the clients' and the activity's alike, in the
order they happen (the hub's notifications: `hub`).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

from .activity import ELIGIBLE, HOUR, ActivityEvent, ProblemActivity, change_for, hour_events, raised_problem
from .clock import iso_utc
from .schema import CREATE_REQUIRED, DEFINITIONS, PATCHABLE, check_attribute_types, check_item
from .tmf import TmfError, bad_request, copied, homed, item_href, merge_patch, not_found

TRANSITIONS: dict[str, frozenset[str]] = {
    "acknowledged": frozenset({"rejected", "inProgress", "pending", "held", "resolved", "cancelled"}),
    "inProgress": frozenset({"pending", "held", "resolved", "cancelled"}),
    "pending": frozenset({"inProgress", "held", "resolved", "cancelled"}),
    "held": frozenset({"inProgress", "pending", "resolved", "cancelled"}),
    "resolved": frozenset({"closed", "inProgress"}),
    "rejected": frozenset(),
    "cancelled": frozenset(),
    "closed": frozenset(),
}
INITIAL_STATUS = "acknowledged"
REQUIRED = CREATE_REQUIRED["tmf656"]
PATCHABLE_PROBLEM = PATCHABLE["tmf656"] | {"timeChanged"}
V4_MEMBERS = frozenset(DEFINITIONS["tmf656"]["ServiceProblem"].members) | {"id", "href", "@type", "@baseType", "@schemaLocation"}
CORRELATION_TYPE = "DataMinerTicketId"  # the externalIdentifierType a client's own record id travels as
SERVER_STAMPS = frozenset({"lastUpdate", "statusChangeDate", "timeChanged", "resolutionDate"})  # not "changes" in events

CREATE_EVENT = "ServiceProblemCreateEvent"
STATE_CHANGE_EVENT = "ServiceProblemStateChangeEvent"
ATTRIBUTE_CHANGE_EVENT = "ServiceProblemAttributeValueChangeEvent"

# Hears (event type, the problem as stored now, simulated time, the attributes changed); called
# with the store's lock held, so calls come in the order of the changes: it must only queue.
Listener = Callable[[str, dict[str, Any], float, tuple[str, ...]], None]


def correlation_ids(problem: dict[str, Any]) -> list[str]:
    """The client record ids a problem carries (its DataMinerTicketId external identifiers)."""
    return [
        entry.get("id")
        for entry in problem.get("externalIdentifier") or ()
        if isinstance(entry, dict) and entry.get("externalIdentifierType") == CORRELATION_TYPE
    ]


def incident_number(problem: dict[str, Any]) -> str:
    """The problem's ServiceNow incident number: the stored one, or the one its id gives."""
    for entry in problem.get("externalIdentifier") or ():
        if isinstance(entry, dict) and entry.get("externalIdentifierType") == "incidentNumber":
            return str(entry.get("id"))
    return "INC" + problem["id"].removeprefix("SP-")


def incident_identifiers(number: str) -> list[dict[str, str]]:
    """The externalIdentifier entries of an incident number and its link."""
    link = f"https://snow.example/nav_to.do?uri=incident.do?sysparm_query=number={number}"
    return [
        {"id": number, "externalIdentifierType": "incidentNumber", "owner": "ServiceNow"},
        {"id": link, "externalIdentifierType": "incidentLink", "owner": "ServiceNow"},
    ]


def with_incident(problem: dict[str, Any]) -> dict[str, Any]:
    """`problem` (an answer's copy) as the SES path shows it: with its incident number and link."""
    identifiers = problem.get("externalIdentifier") or []
    if any(isinstance(e, dict) and e.get("externalIdentifierType") == "incidentNumber" for e in identifiers):
        return problem
    return {**problem, "externalIdentifier": [*identifiers, *incident_identifiers(incident_number(problem))]}


class _Picker:
    """Ids with O(1) add, remove and pick-by-index (a list and each id's place in it)."""

    def __init__(self) -> None:
        self._ids: list[str] = []
        self._places: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, item_id: str) -> None:
        if item_id not in self._places:
            self._places[item_id] = len(self._ids)
            self._ids.append(item_id)

    def discard(self, item_id: str) -> None:
        place = self._places.pop(item_id, None)
        if place is None:
            return
        last = self._ids.pop()
        if place < len(self._ids):  # the last one fills the gap
            self._ids[place] = last
            self._places[last] = place

    def __getitem__(self, index: int) -> str:
        return self._ids[index]


class ServiceProblems:
    """The problems one simulator holds, in creation order; safe to use from many threads.

    `activity` makes ServiceNow users work on them over simulated time; `listener` hears every
    create and change (see the module's doc)."""

    def __init__(
        self,
        now: Callable[[], float],
        collection_url: str = "",
        *,
        activity: ProblemActivity | None = None,
        listener: Listener | None = None,
    ) -> None:
        self._now = now
        self.collection_url = collection_url.rstrip("/")  # where stored problems' hrefs point
        self.listener = listener
        self._problems: dict[str, dict[str, Any]] = {}
        self._last_number = 0
        self._lock = threading.RLock()
        self._by_status: dict[str, _Picker] = {status: _Picker() for status in TRANSITIONS}
        self.activity = activity if activity is not None and activity.active else None
        self._activity_start = int(now() if activity is None or activity.start is None else activity.start)
        self._activity_hour = 0  # the next hour whose events are made
        self._pending: list[ActivityEvent] = []  # the current hour's events not applied yet, latest first
        self.activity_applied = 0  # events applied so far (those that found a problem to apply to)

    def __len__(self) -> int:
        with self._lock:
            self._catch_up()
            return len(self._problems)

    def all(self, collection_url: str | None = None) -> list[dict[str, Any]]:
        """Every problem (copies), in creation order; hrefs under `collection_url` when given."""
        with self._lock:
            self._catch_up()
            return [homed(problem, collection_url) for problem in self._problems.values()]

    def get(self, problem_id: str, collection_url: str | None = None) -> dict[str, Any]:
        with self._lock:
            self._catch_up()
            problem = self._problems.get(problem_id)
            if problem is None:
                raise not_found("service problem", problem_id)
            return homed(problem, collection_url)

    def catch_up(self) -> None:
        """Apply the activity due up to now (every read and write does this first)."""
        with self._lock:
            self._catch_up()

    def create(self, body: Any, *, collection_url: str | None = None, incident: bool = False) -> dict[str, Any]:
        """A new problem; with `incident` (SES), ServiceNow's incident number and link stored too.

        The answer's href is under `collection_url` when given (the stored one under this store's)."""
        _check_create(body)
        status = body.get("status", INITIAL_STATUS)
        if status != INITIAL_STATUS:
            raise bad_request(f"status {status!r}: a new service problem is {INITIAL_STATUS!r}")
        with self._lock:
            self._catch_up()
            moment = self._now()
            problem = self._store_new(body, iso_utc(moment), incident=incident)
            self._tell(CREATE_EVENT, problem, moment, ())
            return homed(problem, collection_url)

    def _store_new(self, body: dict[str, Any], stamp: str, *, incident: bool) -> dict[str, Any]:
        self._last_number += 1
        problem_id = f"SP-{self._last_number:07d}"
        problem = {
            **body,
            "id": problem_id,
            "href": item_href(self.collection_url, problem_id),
            "status": INITIAL_STATUS,
            "creationDate": stamp,
            "lastUpdate": stamp,
            "statusChangeDate": stamp,
            "timeRaised": stamp,
            "timeChanged": stamp,
            "@type": body.get("@type", "ServiceProblem"),
        }
        if incident:
            number = f"INC{self._last_number:07d}"
            problem["externalIdentifier"] = [*body.get("externalIdentifier", []), *incident_identifiers(number)]
        self._problems[problem_id] = problem
        self._by_status[INITIAL_STATUS].add(problem_id)
        return problem

    def patch(self, problem_id: str, changes: Any, collection_url: str | None = None) -> dict[str, Any]:
        if not isinstance(changes, dict):
            raise bad_request("a merge patch is a JSON object")
        forbidden = changes.keys() - PATCHABLE_PROBLEM
        # TMF polymorphism: a problem created with an @type of its own (an extension of
        # ServiceProblem) carries attributes the v4 definition does not know; those may change.
        extension = forbidden - V4_MEMBERS
        forbidden = sorted(forbidden - extension)
        if forbidden:
            raise bad_request(f"{', '.join(forbidden)} cannot be patched")
        if "status" in changes and changes["status"] is None:
            raise bad_request("status cannot be removed")  # a problem is always in some state
        check_attribute_types("tmf656", changes, merge_patch=True)
        if changes.get("priority") is not None and not _is_priority(changes["priority"]):
            raise bad_request(f"priority {changes['priority']!r} must be an integer from 1 to 10")
        with self._lock:
            self._catch_up()
            problem = self._problems.get(problem_id)
            if problem is None:
                raise not_found("service problem", problem_id)
            if extension and problem.get("@type", "ServiceProblem") == "ServiceProblem":
                raise bad_request(f"{', '.join(sorted(extension))} cannot be patched: the problem's @type is ServiceProblem, which has no such attributes")
            return homed(self._change(problem, changes, self._now()), collection_url)

    def _change(self, problem: dict[str, Any], changes: dict[str, Any], moment: float) -> dict[str, Any]:
        """Merge `changes` into a copy of `problem`, check, stamp and store it; tell the listener."""
        old_status = problem["status"]
        new_status = changes.get("status", old_status)
        status_changed = new_status != old_status
        if status_changed:
            allowed = TRANSITIONS[old_status]  # the schema check let only the v4 statuses through
            if new_status not in allowed:
                raise TmfError(
                    409, "Conflict",
                    f"status cannot go from {old_status!r} to {new_status!r}; allowed: {sorted(allowed) or 'none (final)'}",
                )  # fmt: skip
        merged = copied(problem)
        merge_patch(merged, changes)
        check_item("tmf656", merged)  # what a merged object lacks shows only in the result
        # Stamped after the merge: the server's times win over any a client sent.
        stamp = iso_utc(moment)
        if status_changed:
            merged["statusChangeDate"] = merged["timeChanged"] = stamp
            if new_status == "resolved":
                merged["resolutionDate"] = stamp
        merged["lastUpdate"] = stamp
        self._problems[problem["id"]] = merged  # replaced, never changed in place: listeners keep the old
        if status_changed:
            self._by_status[old_status].discard(problem["id"])
            self._by_status[new_status].add(problem["id"])
            self._tell(STATE_CHANGE_EVENT, merged, moment, ("status",))
        changed = tuple(sorted(name for name in changes.keys() - SERVER_STAMPS - {"status"} if merged.get(name) != problem.get(name)))
        if changed:
            self._tell(ATTRIBUTE_CHANGE_EVENT, merged, moment, changed)
        return merged

    def delete(self, problem_id: str) -> None:
        with self._lock:
            self._catch_up()
            problem = self._problems.pop(problem_id, None)
            if problem is None:
                raise not_found("service problem", problem_id)
            self._by_status[problem["status"]].discard(problem_id)

    def _tell(self, event_type: str, problem: dict[str, Any], moment: float, changed: tuple[str, ...]) -> None:
        if self.listener is not None:
            self.listener(event_type, problem, moment, changed)

    # -- upstream activity ------------------------------------------------------------------

    def _catch_up(self) -> None:
        """Apply every activity event due up to now, an hour's batch at a time (lock held)."""
        if self.activity is None:
            return
        now = self._now()
        while True:
            while self._pending:
                if self._pending[-1].time > now:
                    return
                self._apply(self._pending.pop())
            if self._activity_start + self._activity_hour * HOUR > now:
                return
            self._pending = hour_events(self.activity, self._activity_start, self._activity_hour)[::-1]
            self._activity_hour += 1

    def _apply(self, event: ActivityEvent) -> None:
        assert self.activity is not None
        rng = random.Random(event.draw)
        stamp = iso_utc(event.time)
        if event.kind == "create":
            problem = self._store_new(raised_problem(rng), stamp, incident=True)
            self._tell(CREATE_EVENT, problem, event.time, ())
            self.activity_applied += 1
            return
        count = self.activity.burst_size if event.kind == "burst" else 1
        pickers = [self._by_status[status] for status in ELIGIBLE[event.kind]]
        eligible = sum(map(len, pickers))
        # Distinct problems: drawn by index among the eligible ones, in a fixed order of statuses.
        for index in rng.sample(range(eligible), min(count, eligible)):
            for picker in pickers:
                if index < len(picker):
                    break
                index -= len(picker)
            problem = self._problems[picker[index]]
            try:
                self._change(problem, change_for(event.kind, problem, rng, stamp), event.time)
            except TmfError:  # a client's body the activity's change cannot live with: that event does nothing
                continue
            self.activity_applied += 1


def _is_priority(value: Any) -> bool:
    return type(value) is int and 1 <= value <= 10


def _check_create(body: Any) -> None:
    if not isinstance(body, dict):
        raise bad_request("a service problem is a JSON object")
    missing = [name for name in REQUIRED if name not in body]
    if missing:
        raise bad_request(f"missing required attributes: {', '.join(missing)}")
    check_attribute_types("tmf656", body)
    if not _is_priority(body["priority"]):
        raise bad_request(f"priority {body['priority']!r} must be an integer from 1 (highest) to 10")
    forbidden = sorted({"id", "href"} & body.keys())
    if forbidden:
        raise bad_request(f"{', '.join(forbidden)} are set by the server")
