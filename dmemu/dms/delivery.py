"""Serial delivery of a service's events to its subscribers (alarm events, ...)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

Event = TypeVar("Event")


class SerialDelivery(Generic[Event]):
    """Events handed to `deliver` one at a time, in the order they were queued, whichever thread
    queued them.

    The owner queues an event under the lock that guards the change it tells of, so the queue
    holds events in the order of the changes, then calls `run` once that lock is released. A
    thread finding another one delivering leaves its events to it: that one checks the queue
    again after letting go, so no event is stranded, and a change made while an event is handed
    out (by a subscriber, on this thread or on another one it waits for) is delivered after it,
    not in the middle of it."""

    def __init__(self, deliver: Callable[[Event], None]) -> None:
        self._deliver = deliver  # must not raise: it logs what its subscribers raise
        self._events: deque[Event] = deque()
        self._delivering = threading.Lock()  # held by the one thread handing events out

    def queue(self, event: Event) -> None:
        self._events.append(event)

    def run(self) -> None:
        events = self._events
        while events:
            if not self._delivering.acquire(blocking=False):
                return
            try:
                while events:
                    self._deliver(events.popleft())
            finally:
                self._delivering.release()
