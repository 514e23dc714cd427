"""TMF656 notifications: ``/hub`` subscriptions and event delivery by POST to their callbacks.

A client registers ``POST <api root>/hub {"callback": url, "query": ...}`` (201 with the
EventSubscription ``{id, callback, query}``), reads it with ``GET /hub/{id}`` and ends it with
``DELETE /hub/{id}`` (204). The API roots are the v4 one (``/tmf-api/serviceProblemManagement/v4``),
SES's ``.../tmf656`` and the v3 one; a subscription's events carry the problem as that path shows
it (hrefs there, SES's incident number, v3 names).

Events, as the v4 spec's notification definitions have them: ``{eventId, eventTime, eventType,
event: {serviceProblem: {...}}}``, ``eventType`` one of ``ServiceProblemCreateEvent``,
``ServiceProblemStateChangeEvent`` and ``ServiceProblemAttributeValueChangeEvent`` (with a
``fieldPath`` naming the attributes changed, comma-separated); ``eventTime`` is the simulated
time of the change. A change of status and other attributes at once sends both. Every create
and change is published, the clients' and the upstream activity's alike.

``query`` narrows what a subscription hears, as a query string: ``eventType=A,B`` and TMF filters
on the problem (``status=resolved``, ``originatingSystem=servicenow``; an ``event.serviceProblem.``
prefix may be written). 400 for an unknown event type.

Delivery: each subscription has its own queue and thread, so events reach a callback in the
order they happened. A POST answered 2xx is delivered; anything else (an error status, a refused
or dropped connection, a timeout) is retried after each of `retry_delays` (wall-clock seconds,
by default 3 retries with backoff), then the event is given up. Every attempt is in the delivery
log (`Delivery`). `stop` ends the threads (an event being retried stays first in its queue);
`start` resumes them, as `Simulators.stop`/`start` do.
"""

from __future__ import annotations

import collections
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import attrs

from .clock import iso_utc
from .problems import ATTRIBUTE_CHANGE_EVENT, CREATE_EVENT, STATE_CHANGE_EVENT
from .tmf import Filter, bad_request, not_found, parse_list_query

EVENT_TYPES = (CREATE_EVENT, STATE_CHANGE_EVENT, ATTRIBUTE_CHANGE_EVENT)
RETRY_DELAYS = (0.5, 1.0, 2.0)  # seconds before each retry of a failed delivery
DELIVERY_TIMEOUT = 5.0  # seconds a callback has to answer
DELIVERY_LOG_LIMIT = 100_000  # attempts the log keeps, the newest
_PROBLEM_PREFIX = "event.serviceProblem."

# Shows a problem as a family of paths has it ("tmf", "ses", "v3"): hrefs, incident, v3 names.
Presenter = Callable[[str, dict[str, Any]], dict[str, Any]]


@attrs.frozen
class Delivery:
    """One attempt to deliver an event."""

    subscription: str
    event_id: str
    event_type: str
    problem: str  # the problem's id
    attempt: int  # 1 for the first POST, then the retries
    status: int  # the callback's HTTP status, 0 when it gave none (refused, dropped, timed out)
    error: str | None  # why it failed; None when delivered
    time: float  # epoch seconds (wall clock) of the attempt

    @property
    def delivered(self) -> bool:
        return self.error is None


class _Subscription:
    def __init__(self, subscription_id: str, callback: str, query: str | None, family: str) -> None:
        self.id = subscription_id
        self.callback = callback
        self.query = query
        self.family = family
        self.event_types, self.filters = _parse_query(query)
        self.queue: collections.deque[dict[str, Any]] = collections.deque()
        self.thread: threading.Thread | None = None
        self.ended = False  # deleted: its thread finishes

    def wants(self, event_type: str, problem: dict[str, Any]) -> bool:
        return (self.event_types is None or event_type in self.event_types) and all(f.matches(problem) for f in self.filters)

    def answer(self) -> dict[str, Any]:
        answer = {"id": self.id, "callback": self.callback}
        if self.query is not None:
            answer["query"] = self.query
        return answer


def _parse_query(query: str | None) -> tuple[frozenset[str] | None, tuple[Filter, ...]]:
    if not query:
        return None, ()
    event_types: frozenset[str] | None = None
    terms = []
    for name, value in parse_qsl(query.lstrip("?"), keep_blank_values=True):
        name = name.strip()
        if name == "eventType":
            event_types = frozenset(value.split(","))
            unknown = sorted(event_types - set(EVENT_TYPES))
            if unknown:
                raise bad_request(f"query: eventType {', '.join(unknown)} is not one of {', '.join(EVENT_TYPES)}")
        else:
            terms.append((name.removeprefix(_PROBLEM_PREFIX), value.strip()))
    list_query, _ = parse_list_query(terms)
    if list_query.fields is not None or list_query.limit is not None or list_query.offset:
        raise bad_request("query: fields, offset and limit do not apply to notifications")
    return event_types, list_query.filters


class NotificationHub:
    """Subscriptions and their delivery threads; `publish` is a `problems.Listener`."""

    def __init__(
        self,
        present: Presenter,
        *,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
        timeout: float = DELIVERY_TIMEOUT,
        log_limit: int = DELIVERY_LOG_LIMIT,
    ) -> None:
        self._present = present
        self.retry_delays = tuple(retry_delays)
        self.timeout = timeout
        self._subscriptions: dict[str, _Subscription] = {}
        self._last_id = 0
        self._events = 0
        self._log: collections.deque[Delivery] = collections.deque(maxlen=log_limit)
        self._condition = threading.Condition()
        self._running = False

    # -- subscriptions ----------------------------------------------------------------------

    def subscribe(self, body: Any, family: str) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request("a subscription is a JSON object")
        callback, query = body.get("callback"), body.get("query")
        if not isinstance(callback, str) or urlsplit(callback).scheme not in ("http", "https") or not urlsplit(callback).netloc:
            raise bad_request(f"callback {callback!r} is not an http(s) URL")
        if query is not None and not isinstance(query, str):
            raise bad_request(f"query {query!r} must be a string")
        with self._condition:
            self._last_id += 1
            subscription = _Subscription(str(self._last_id), callback, query, family)
            self._subscriptions[subscription.id] = subscription
            if self._running:
                self._start_thread(subscription)
            return subscription.answer()

    def get(self, subscription_id: str) -> dict[str, Any]:
        with self._condition:
            return self._find(subscription_id).answer()

    def delete(self, subscription_id: str) -> None:
        with self._condition:
            subscription = self._find(subscription_id)
            del self._subscriptions[subscription_id]
            subscription.ended = True
            subscription.queue.clear()
            self._condition.notify_all()

    def _find(self, subscription_id: str) -> _Subscription:
        subscription = self._subscriptions.get(subscription_id)
        if subscription is None:
            raise not_found("hub subscription", subscription_id)
        return subscription

    # -- events -----------------------------------------------------------------------------

    def publish(self, event_type: str, problem: dict[str, Any], moment: float, changed: tuple[str, ...]) -> None:
        """Queue an event for every subscription that wants it (called in the order of the changes)."""
        if not self._subscriptions:
            return
        with self._condition:
            self._events += 1
            event_id = f"EV-{self._events:07d}"
            for subscription in self._subscriptions.values():
                shown = self._present(subscription.family, problem)
                if not subscription.wants(event_type, shown):
                    continue
                event: dict[str, Any] = {"eventId": event_id, "eventTime": iso_utc(moment), "eventType": event_type}
                if event_type == ATTRIBUTE_CHANGE_EVENT:
                    event["fieldPath"] = ",".join(changed)
                event["event"] = {"serviceProblem": shown}
                subscription.queue.append(event)
            self._condition.notify_all()

    def deliveries(self) -> list[Delivery]:
        with self._condition:
            return list(self._log)

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every queued event is delivered or given up (and logged); False on timeout or
        while stopped with events waiting."""
        with self._condition:
            return self._condition.wait_for(
                lambda: not any(s.queue for s in self._subscriptions.values()) or not self._running, timeout=timeout
            ) and not any(s.queue for s in self._subscriptions.values())

    # -- threads ----------------------------------------------------------------------------

    def start(self) -> None:
        with self._condition:
            self._running = True
            for subscription in self._subscriptions.values():
                self._start_thread(subscription)

    def stop(self) -> None:
        with self._condition:
            self._running = False
            threads = [s.thread for s in self._subscriptions.values() if s.thread is not None]
            self._condition.notify_all()
        for thread in threads:
            thread.join()
        with self._condition:
            for subscription in self._subscriptions.values():
                subscription.thread = None

    def _start_thread(self, subscription: _Subscription) -> None:
        if subscription.thread is None:
            subscription.thread = threading.Thread(
                target=self._deliver_all, args=(subscription,), name=f"dmemu-hub-{subscription.id}", daemon=True
            )
            subscription.thread.start()

    def _going(self, subscription: _Subscription) -> bool:
        return self._running and not subscription.ended

    def _deliver_all(self, subscription: _Subscription) -> None:
        while True:
            with self._condition:
                while self._going(subscription) and not subscription.queue:
                    self._condition.wait()
                if not self._going(subscription):
                    return
                event = subscription.queue[0]
            if self._deliver(subscription, event):
                with self._condition:
                    if subscription.queue and subscription.queue[0] is event:
                        subscription.queue.popleft()
                    self._condition.notify_all()  # for `drain`

    def _deliver(self, subscription: _Subscription, event: dict[str, Any]) -> bool:
        """Whether the event is done with (delivered or given up); False when stopped mid-retry."""
        data = json.dumps(event, separators=(",", ":")).encode()
        for attempt in range(1, len(self.retry_delays) + 2):
            status, error = self._post(subscription.callback, data)
            with self._condition:
                self._log.append(
                    Delivery(
                        subscription.id, event["eventId"], event["eventType"], event["event"]["serviceProblem"]["id"],
                        attempt, status, error, time.time(),
                    )
                )  # fmt: skip
                if error is None:
                    return True
                if attempt > len(self.retry_delays):
                    return True  # given up
                delay = self.retry_delays[attempt - 1]
                # Woken early by stop or delete: the event stays queued for a later start.
                self._condition.wait_for(lambda: not self._going(subscription), timeout=delay)
                if not self._going(subscription):
                    return False
        return True

    def _post(self, callback: str, data: bytes) -> tuple[int, str | None]:
        request = urllib.request.Request(callback, data=data, method="POST", headers={"Content-Type": "application/json"})
        # No proxies: callbacks are on the harness's own machine, whatever the environment says.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=self.timeout) as answer:
                answer.read()
                return answer.status, None
        except urllib.error.HTTPError as error:
            return error.code, f"HTTP {error.code}"
        except (OSError, ValueError) as error:  # refused, reset, timed out, a bad URL
            return 0, f"{type(error).__name__}: {error}"
