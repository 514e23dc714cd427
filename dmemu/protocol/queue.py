"""One queue per element: work items run one at a time, in order, on whichever thread arrives.

There is no thread per element. A caller that finds the queue idle runs its item at once (and
then whatever that item queued); a caller that finds it busy appends and returns, and the
thread that is draining runs the item. So QActions of one element never overlap, a QAction
that sets its own element's parameters queues the triggered QActions behind itself, and two
elements setting each other's parameters cannot deadlock.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

T = TypeVar("T")
_get_ident = threading.get_ident


class WorkQueue:
    def __init__(self) -> None:
        self.pending: deque[Callable[[], Any]] = deque()
        self.lock = threading.Lock()  # held while an item runs; a caller may hold it for a plain store
        self._owner = 0  # thread id of the drainer, 0 when idle

    @property
    def in_worker(self) -> bool:
        """True when called from the thread that is running this queue's items."""
        return self._owner == _get_ident()

    def run(self, function: Callable[..., Any], *args: Any, wait: bool = False) -> None:
        """Run ``function(*args)`` on the queue: now when idle, otherwise after the queued items.

        With `wait`, a caller on another thread blocks until the item has run. Exceptions from
        an item that runs at once propagate to the caller; queued items handle their own.
        """
        pending = self.pending
        if not pending and self.lock.acquire(False):
            self._owner = _get_ident()
            try:
                function(*args)
                if pending:
                    self._run_pending()
            finally:
                self._owner = 0
                self.lock.release()
            if pending:
                self.drain()
            return
        if wait and not self.in_worker:
            done = threading.Event()

            def item() -> None:
                try:
                    function(*args)
                finally:
                    done.set()

            self.pending.append(item)
            self.drain()
            done.wait()
            return
        self.pending.append(partial(function, *args) if args else function)
        self.drain()

    def run_exclusive(self, function: Callable[[], T]) -> T:
        """Run `function` while no item runs (waiting for the current one), and return its result."""
        if self.in_worker:
            return function()
        with self.lock:
            self._owner = _get_ident()
            try:
                result = function()
            finally:
                self._owner = 0
        self.drain()  # items queued while we held the lock
        return result

    def drain(self) -> None:
        """Run queued items unless another thread is already doing so."""
        pending = self.pending
        while pending:
            if not self.lock.acquire(blocking=False):
                return  # the owner sees our items before it lets go
            self._owner = _get_ident()
            try:
                self._run_pending()
            finally:
                self._owner = 0
                self.lock.release()

    def _run_pending(self) -> None:
        pending = self.pending
        while pending:
            pending.popleft()()
