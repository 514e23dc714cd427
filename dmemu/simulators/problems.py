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
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

from .clock import iso_utc
from .schema import CREATE_REQUIRED, PATCHABLE, check_attribute_types, check_item
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


class ServiceProblems:
    """The problems one simulator holds, in creation order; safe to use from many threads."""

    def __init__(self, now: Callable[[], float], collection_url: str = "") -> None:
        self._now = now
        self.collection_url = collection_url.rstrip("/")  # where stored problems' hrefs point
        self._problems: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._problems)

    def all(self, collection_url: str | None = None) -> list[dict[str, Any]]:
        """Every problem (copies), in creation order; hrefs under `collection_url` when given."""
        with self._lock:
            return [homed(problem, collection_url) for problem in self._problems.values()]

    def get(self, problem_id: str, collection_url: str | None = None) -> dict[str, Any]:
        with self._lock:
            problem = self._problems.get(problem_id)
            if problem is None:
                raise not_found("service problem", problem_id)
            return homed(problem, collection_url)

    def create(self, body: Any, *, collection_url: str | None = None, incident: bool = False) -> dict[str, Any]:
        """A new problem; with `incident` (SES), ServiceNow's incident number and link too.

        The answer's href is under `collection_url` when given (the stored one under this store's)."""
        _check_create(body)
        status = body.get("status", INITIAL_STATUS)
        if status != INITIAL_STATUS:
            raise bad_request(f"status {status!r}: a new service problem is {INITIAL_STATUS!r}")
        stamp = iso_utc(self._now())
        with self._lock:
            number = next(self._ids)
            problem_id = f"SP-{number:07d}"
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
                incident = f"INC{number:07d}"
                problem["externalIdentifier"] = [
                    *body.get("externalIdentifier", []),
                    {"id": incident, "externalIdentifierType": "incidentNumber", "owner": "ServiceNow"},
                    {
                        "id": f"https://snow.example/nav_to.do?uri=incident.do?sysparm_query=number={incident}",
                        "externalIdentifierType": "incidentLink",
                        "owner": "ServiceNow",
                    },
                ]
            self._problems[problem_id] = problem
            return homed(problem, collection_url)

    def patch(self, problem_id: str, changes: Any, collection_url: str | None = None) -> dict[str, Any]:
        if not isinstance(changes, dict):
            raise bad_request("a merge patch is a JSON object")
        forbidden = sorted(changes.keys() - PATCHABLE_PROBLEM)
        if forbidden:
            raise bad_request(f"{', '.join(forbidden)} cannot be patched")
        if "status" in changes and changes["status"] is None:
            raise bad_request("status cannot be removed")  # a problem is always in some state
        check_attribute_types("tmf656", changes, merge_patch=True)
        if changes.get("priority") is not None and not _is_priority(changes["priority"]):
            raise bad_request(f"priority {changes['priority']!r} must be an integer from 1 to 10")
        stamp = iso_utc(self._now())
        with self._lock:
            problem = self._problems.get(problem_id)
            if problem is None:
                raise not_found("service problem", problem_id)
            new_status = changes.get("status", problem["status"])
            status_changed = new_status != problem["status"]
            if status_changed:
                allowed = TRANSITIONS[problem["status"]]  # the schema check let only the v4 statuses through
                if new_status not in allowed:
                    raise TmfError(
                        409, "Conflict",
                        f"status cannot go from {problem['status']!r} to {new_status!r}; allowed: {sorted(allowed) or 'none (final)'}",
                    )
            merged = copied(problem)
            merge_patch(merged, changes)
            check_item("tmf656", merged)  # what a merged object lacks shows only in the result
            # Stamped after the merge: the server's times win over any a client sent.
            if status_changed:
                merged["statusChangeDate"] = merged["timeChanged"] = stamp
                if new_status == "resolved":
                    merged["resolutionDate"] = stamp
            merged["lastUpdate"] = stamp
            self._problems[problem_id] = merged
            return homed(merged, collection_url)

    def delete(self, problem_id: str) -> None:
        with self._lock:
            if self._problems.pop(problem_id, None) is None:
                raise not_found("service problem", problem_id)


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
