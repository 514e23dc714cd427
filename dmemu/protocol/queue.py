"""One queue per element: work items run one at a time, in order, on whichever thread arrives.

There is no thread per element. A caller that finds the queue idle runs its item at once (and
then whatever that item queued); a caller that finds it busy appends and returns, and the
thread that is draining runs the item. So QActions of one element never overlap, and a QAction
that sets its own element's parameters queues the triggered QActions behind itself.

A caller may wait for its item. It then waits for the item's whole *chain*: the item and
everything it queued on this queue, transitively (the QActions its set triggered). A thread
that is itself running some queue's items never waits, so elements that set each other's
parameters from their QActions cannot deadlock.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

T = TypeVar("T")
_get_ident = threading.get_ident
_worker = threading.local()  # `depth`: how many queues this thread is running items of


def _running_any_queue() -> bool:
    return getattr(_worker, "depth", 0) > 0


class _Chain:
    """What a waiting caller waits for; only the draining thread counts it down."""

    __slots__ = ("outstanding", "done", "error")

    def __init__(self) -> None:
        self.outstanding = 1
        self.done = threading.Event()
        self.error: BaseException | None = None


class WorkQueue:
    def __init__(self, on_error: Callable[[Exception], None]) -> None:
        self.pending: deque[tuple[_Chain | None, Callable[[], Any]]] = deque()
        self.lock = threading.Lock()  # held while an item runs
        self._owner = 0  # thread id of the drainer, 0 when idle
        self._chain: _Chain | None = None  # the chain of the item running now
        self._on_error = on_error  # for a queued item's exception that no caller waits for
        self._cancel_error: Exception | None = None  # set by `cancel` while an item runs

    @property
    def in_worker(self) -> bool:
        """True when called from the thread that is running this queue's items."""
        return self._owner == _get_ident()

    def try_store(self, mapping: dict[Any, Any], key: Any, value: Any) -> bool:
        """``mapping[key] = value`` at once, as a queue item would, if nothing runs or waits;
        False (nothing stored) otherwise. The fast path of a set that triggers nothing."""
        lock = self.lock
        if self.pending or not lock.acquire(False):
            return False
        mapping[key] = value
        lock.release()
        if self.pending:
            self.drain()  # work other threads queued while we held the lock
        return True

    def run(self, function: Callable[..., Any], *args: Any, wait: bool = False) -> None:
        """Run ``function(*args)`` on the queue: now when idle, otherwise after the queued items.

        An item that runs at once returns after its chain ran, and its exception reaches the
        caller. With `wait`, a caller that had to queue blocks until its chain ran and gets the
        item's exception too; without, a queued item's exception goes to `on_error`.
        """
        pending = self.pending
        if not pending and self.lock.acquire(False):
            self._enter()
            try:
                function(*args)
            finally:
                try:
                    self._run_pending()
                finally:
                    self._leave()
            if pending:
                self.drain()
            return
        item = partial(function, *args) if args else function
        if self.in_worker:
            chain = self._chain  # queued by the running item: part of its chain
            if chain is not None:
                chain.outstanding += 1
            pending.append((chain, item))
            return
        if wait and not _running_any_queue():
            chain = _Chain()
            pending.append((chain, item))
            self.drain()
            chain.done.wait()
            if chain.error is not None:
                raise chain.error
            return
        pending.append((None, item))
        self.drain()

    def run_exclusive(self, function: Callable[[], T]) -> T:
        """Run `function` while no item runs (waiting for the current one), and return its result."""
        if self.in_worker:
            return function()
        self.lock.acquire()
        self._enter()
        try:
            result = function()
        finally:
            self._leave()
        self.drain()  # items queued while we held the lock
        return result

    def cancel(self, error: Exception) -> None:
        """Drop every queued item, waiting for the running one; callers waiting get `error`."""
        self._cancel_error = error  # a drainer stops at its next item
        self.run_exclusive(lambda: self._discard_pending(error))

    def _discard_pending(self, error: Exception) -> None:
        self._cancel_error = None
        while self.pending:
            chain, _ = self.pending.popleft()
            if chain is not None and not chain.done.is_set():
                chain.error = chain.error or error
                chain.done.set()

    def drain(self) -> None:
        """Run queued items unless another thread is already doing so."""
        pending = self.pending
        while pending and self._cancel_error is None:
            if not self.lock.acquire(False):
                return  # the owner sees our items before it lets go
            self._enter()
            try:
                self._run_pending()
            finally:
                self._leave()

    def _enter(self) -> None:
        self._owner = _get_ident()
        _worker.depth = getattr(_worker, "depth", 0) + 1

    def _leave(self) -> None:
        _worker.depth -= 1
        self._owner = 0
        self.lock.release()

    def _run_pending(self) -> None:
        pending = self.pending
        while pending:
            if self._cancel_error is not None:
                return  # `cancel` is waiting for the lock to drop the rest
            chain, item = pending.popleft()
            self._chain = chain
            try:
                item()
            except Exception as error:  # an item failing must not strand the ones behind it
                if chain is not None and chain.error is None:
                    chain.error = error
                else:
                    self._on_error(error)
            finally:
                self._chain = None
                if chain is not None:
                    chain.outstanding -= 1
                    if chain.outstanding <= 0:
                        chain.done.set()
