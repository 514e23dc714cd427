"""Live updates for the API's clients (`/api/events`, server-sent events), coalesced.

Changes happen on the elements' threads, many a second; a client wants each thing's latest
state, not every step. So a change only marks what changed (a parameter, a table, an alarm, a
ticket) and wakes the server's event loop; the loop sends each marked thing's state as it is
then, at most once per `interval` (give or take the millisecond the loop's timer counts in). A
thousand sets a second of one parameter become one event per interval, and the last value
always arrives: it is what the last send reads.

Element states (and elements created or deleted) are looked at every `poll_seconds`; the DMS
tells no one of those. Nothing is listened to while no client is connected.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections.abc import Iterable
from typing import Any

import attrs

from ..dms import AlarmEvent, DataMinerSystem, TicketEvent
from ..protocol import Element, ParameterChange, TableChange
from ..protocol.changes import Change
from ..protocol.errors import DmemuError
from .shapes import alarm_event_json, element_json, element_ref, parameter_content, parameter_json, ticket_event_json

DEFAULT_INTERVAL = 0.002
"""Seconds between two sends: what a burst of changes is coalesced into."""
TIMER_RESOLUTION = 0.001
"""The event loop's timers count whole milliseconds and round a wait up (epoll's timeout is in
milliseconds, and so is libuv's)."""
KEEP_ALIVE_SECONDS = 15.0
MAX_KEYS = 100
"""Changed (or removed) row keys listed in one table event; more say ``null``: reload the rows."""
MAX_QUEUED_BATCHES = 1000
"""A client that lets this many sends pile up is dropped (it reconnects and reloads)."""
EVENT_TYPES = frozenset({"parameter", "table", "alarm", "ticket", "element"})


@attrs.frozen
class Event:
    type: str
    data: dict[str, Any]
    element: str | None = None  # the AGENT/ELEMENT it concerns, for a client's element filter

    def text(self) -> str:
        return f"event: {self.type}\ndata: {json.dumps(self.data, ensure_ascii=False, default=str)}\n\n"


class Subscription:
    """One client's stream: batches of events in a queue read by its response."""

    def __init__(self, loop: asyncio.AbstractEventLoop, element: str | None, types: frozenset[str]) -> None:
        self.loop = loop
        self.element = element
        self.types = types
        self.queue: asyncio.Queue[list[Event] | None] = asyncio.Queue()

    def wants(self, event: Event) -> bool:
        if event.type not in self.types:
            return False
        return self.element is None or event.element is None or event.element == self.element


class EventHub:
    """Listens to a DMS while clients are connected and hands them coalesced events."""

    def __init__(self, dms: DataMinerSystem, *, interval: float = DEFAULT_INTERVAL, poll_seconds: float = 0.2) -> None:
        self._dms = dms
        self._interval = interval
        self._poll_seconds = poll_seconds
        self._lock = threading.Lock()
        self._subscriptions: list[Subscription] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        # What changed since the last send, marked by the elements' threads under `_lock`.
        self._parameters: dict[tuple[tuple[int, int], int], None] = {}
        self._tables: dict[tuple[tuple[int, int], int], tuple[set[str] | None, set[str] | None]] = {}
        self._alarms: dict[int, AlarmEvent] = {}
        self._tickets: dict[str, TicketEvent] = {}
        self._wake_pending = False
        self._last_send = 0.0
        self._listened: dict[tuple[int, int], Element] = {}
        self._states: dict[tuple[int, int], dict[str, Any]] = {}
        self._unsubscribe: list[Any] = []
        self._poller: asyncio.Task[None] | None = None
        self._closed = False

    # -- clients ------------------------------------------------------------------------------

    def subscribe(self, element: str | None = None, types: Iterable[str] = EVENT_TYPES) -> Subscription:
        """A new client's subscription (on the server's event loop); the first one starts the listening."""
        loop = asyncio.get_running_loop()
        subscription = Subscription(loop, element, frozenset(types))
        with self._lock:
            if self._closed:
                raise DmemuError("the web server is stopping")
            first = not self._subscriptions
            self._subscriptions.append(subscription)
            self._loop = loop
        if first:
            self._listen()
            self._poller = loop.create_task(self._poll_elements())
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            if subscription in self._subscriptions:
                self._subscriptions.remove(subscription)
            last = not self._subscriptions
        if last:
            self._stop_listening()

    def close(self) -> None:
        """End every client's stream (from any thread): the server is stopping."""
        with self._lock:
            self._closed = True
            subscriptions, self._subscriptions = self._subscriptions, []
        for subscription in subscriptions:
            try:
                subscription.loop.call_soon_threadsafe(subscription.queue.put_nowait, None)
            except RuntimeError:  # its loop is already closed
                pass
        self._stop_listening()

    # -- listening ----------------------------------------------------------------------------

    def _listen(self) -> None:
        self._unsubscribe = [self._dms.alarms.subscribe(self._on_alarm), self._dms.tickets.subscribe(self._on_ticket)]
        self._states = {element.ids: self._state_of(element) for element in self._dms.elements}
        for element in self._dms.elements:
            self._listen_to(element)

    def _listen_to(self, element: Element) -> None:
        element.add_change_listener(self._on_change)
        self._listened[element.ids] = element

    def _stop_listening(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        for element in list(self._listened.values()):
            element.remove_change_listener(self._on_change)
        self._listened = {}
        if self._poller is not None:
            poller, self._poller = self._poller, None
            try:
                poller.get_loop().call_soon_threadsafe(poller.cancel)
            except RuntimeError:
                pass

    def _on_change(self, element: Element, change: Change) -> None:
        ids = element.ids
        with self._lock:
            if type(change) is ParameterChange:
                self._parameters[ids, change.parameter] = None
            elif type(change) is TableChange:
                keys, removed = self._tables.get((ids, change.table)) or (set(), set())
                keys = _joined(keys, change.keys)
                removed = _joined(removed, change.removed)
                self._tables[ids, change.table] = (keys, removed)
            self._wake_locked()

    def _on_alarm(self, event: AlarmEvent) -> None:
        with self._lock:
            self._alarms[event.alarm.id] = event
            self._wake_locked()

    def _on_ticket(self, event: TicketEvent) -> None:
        with self._lock:
            self._tickets[event.ticket.id] = event
            self._wake_locked()

    def _wake_locked(self) -> None:
        """Called holding `_lock`: one wake-up per send, however many changes come meanwhile."""
        if self._wake_pending or self._loop is None:
            return
        self._wake_pending = True
        try:
            self._loop.call_soon_threadsafe(self._woken)
        except RuntimeError:  # the loop is closed: the server stopped
            self._wake_pending = False

    def _woken(self) -> None:
        wait = timer_wait(self._last_send + self._interval - time.monotonic())
        if wait > 0:
            asyncio.get_running_loop().call_later(wait, self._send)
        else:
            self._send()

    # -- sending ------------------------------------------------------------------------------

    def _send(self) -> None:
        with self._lock:
            self._wake_pending = False
            parameters, self._parameters = self._parameters, {}
            tables, self._tables = self._tables, {}
            alarms, self._alarms = self._alarms, {}
            tickets, self._tickets = self._tickets, {}
        self._last_send = time.monotonic()
        events = [*self._parameter_events(parameters), *self._table_events(tables)]
        events += [
            Event("alarm", alarm_event_json(event, self._dms.find(event.alarm.element_ids)), element_ref(event.alarm.element_ids))
            for event in alarms.values()
        ]
        events += [Event("ticket", ticket_event_json(event)) for event in tickets.values()]
        self._deliver(events)

    def _parameter_events(self, changed: dict[tuple[tuple[int, int], int], None]) -> list[Event]:
        events = []
        for ids, pid in changed:
            element = self._dms.find(ids)
            parameter = None if element is None else element.protocol.model.parameters.get(pid)
            if element is None or parameter is None:
                continue
            data = {"element": element_ref(element), **parameter_json(parameter_content(element, parameter))}
            events.append(Event("parameter", data, data["element"]))
        return events

    def _table_events(self, changed: dict[tuple[tuple[int, int], int], tuple[set[str] | None, set[str] | None]]) -> list[Event]:
        events = []
        for (ids, tid), (keys, removed) in changed.items():
            element = self._dms.find(ids)
            if element is None:
                continue
            view = element.table(tid)
            ref = element_ref(element)
            if keys is None or removed is None:  # one of them too many to list: both null, reload the whole table
                keys = removed = None
            data = {
                "element": ref,
                "id": tid,
                "name": view.name,
                "row_count": len(view),
                "keys": None if keys is None else sorted(keys),  # None: too many to list, reload
                "removed": None if removed is None else sorted(removed),
            }
            events.append(Event("table", data, ref))
        return events

    def _deliver(self, events: list[Event]) -> None:
        if not events:
            return
        with self._lock:
            subscriptions = list(self._subscriptions)
        for subscription in subscriptions:
            wanted = [event for event in events if subscription.wants(event)]
            if not wanted:
                continue
            if subscription.queue.qsize() >= MAX_QUEUED_BATCHES:
                subscription.queue.put_nowait(None)  # too slow: its stream ends, it reconnects
                self.unsubscribe(subscription)
            else:
                subscription.queue.put_nowait(wanted)

    async def _poll_elements(self) -> None:
        """Element states, and elements created or deleted, every `poll_seconds`."""
        while True:
            await asyncio.sleep(self._poll_seconds)
            if not self._subscriptions:  # the last client went (or the server stops): listen to nothing more
                return
            events = []
            current = {element.ids: element for element in self._dms.elements}
            for ids, element in current.items():
                listened = self._listened.get(ids)
                if listened is not None and listened is not element:
                    # Deleted and created again with the same ids between two looks: a new object
                    # to listen to, and both changes told.
                    listened.remove_change_listener(self._on_change)
                    del self._listened[ids]
                    old = self._states.pop(ids)
                    events.append(Event("element", {"change": "deleted", "element": old}, old["ref"]))
                state = self._state_of(element)
                if self._states.get(ids) != state:
                    change = "created" if ids not in self._states else "state"
                    events.append(Event("element", {"change": change, "element": state}, state["ref"]))
                    self._states[ids] = state
                if ids not in self._listened:
                    self._listen_to(element)
            for ids in list(self._states):
                if ids not in current:
                    old = self._states.pop(ids)
                    self._listened.pop(ids, None)
                    events.append(Event("element", {"change": "deleted", "element": old}, old["ref"]))
            self._deliver(events)

    @staticmethod
    def _state_of(element: Element) -> dict[str, Any]:
        return element_json(element)


def timer_wait(remaining: float) -> float:
    """The wait to ask the loop's timer for when a send is due in `remaining` seconds: whole
    milliseconds, rounded down, so the send comes under a millisecond early rather than late (a
    wait of 1.1 ms rounded up to 2 ms by the timer would add most of a millisecond to each
    update's delay); 0: send now."""
    return max(0.0, math.floor(remaining / TIMER_RESOLUTION) * TIMER_RESOLUTION)


def _joined(keys: set[str] | None, more: frozenset[str] | None) -> set[str] | None:
    """Row keys changed since the last send; None once they are too many to list (or unknown):
    the client reloads the rows it shows."""
    if keys is None or more is None or len(keys) + len(more) > MAX_KEYS:
        return None
    return keys | more


async def stream(hub: EventHub, subscription: Subscription) -> Any:
    """The text of a client's server-sent events, until it goes or the server stops."""
    try:
        # Said first, so a client knows from when on it hears changes.
        yield "retry: 1000\nevent: ready\ndata: {}\n\n"
        while True:
            try:
                batch = await asyncio.wait_for(subscription.queue.get(), KEEP_ALIVE_SECONDS)
            except asyncio.TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if batch is None:
                return
            yield "".join(event.text() for event in batch)
    finally:
        hub.unsubscribe(subscription)
