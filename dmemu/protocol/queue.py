"""One queue per element: work items run one at a time, in order, on whichever thread arrives.

There is no thread per element. A caller that finds the queue idle runs its item at once, and
the work that item queued (its *chain*: the QActions its set triggered, transitively), then
hands whatever else is queued to the clock's workers. A caller that finds the queue busy
appends its item and, if it asked to, waits for the item's chain. So QActions of one element
never overlap, a QAction that sets its own element's parameters queues the triggered QActions
behind itself, and no caller is kept running other callers' work.

A thread that is running some queue's items never blocks on another queue: its waits are
skipped and exclusive work it asks for is put first in line instead. So elements that act on
each other from their QActions cannot deadlock.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

T = TypeVar("T")
_get_ident = threading.get_ident


class _WorkerState:
    """What one thread is doing with queues."""

    __slots__ = ("depth", "handing_off", "deferred")

    def __init__(self) -> None:
        self.depth = 0  # how many queues this thread is running items of (nested: A's item sets B)
        self.handing_off = False  # this thread is handing off the queues below
        # Queues with work to hand off once this thread's outermost item is done: handing off
        # from inside an item could run that work nested (a virtual clock runs it at once).
        self.deferred: list[WorkQueue] = []


# Each thread's state sits in one plain object: an attribute of a threading.local costs several
# times a plain one, and the inline run of every timer firing reads and writes it.
_thread_local = threading.local()
_MAX_INLINE_NESTING = 16  # deeper element-to-element hops are queued, not run nested


def _this_worker() -> _WorkerState:
    try:
        return _thread_local.worker  # type: ignore[no-any-return]
    except AttributeError:
        worker = _thread_local.worker = _WorkerState()
        return worker


def _running_any_queue() -> bool:
    return _this_worker().depth > 0


def _left_a_queue() -> None:
    """Bookkeeping when this thread stops running a queue's item."""
    worker = _this_worker()
    worker.depth -= 1
    if worker.depth == 0 and worker.deferred:
        _hand_off_deferred(worker)


def _hand_off_deferred(worker: _WorkerState) -> None:
    """This thread's outermost item is done: hand off what items queued elsewhere meanwhile."""
    if not worker.handing_off:
        worker.handing_off = True
        try:
            while worker.deferred:
                worker.deferred.pop(0).hand_off()
        finally:
            worker.handing_off = False


class _Chain:
    """An item and the items it queued; only the thread running them counts it down.

    `error` is what ends the chain for its waiter (an item raised, or a stop dropped its work);
    `failure` is the first failure an item reported without raising (`WorkQueue.report_failure`:
    a QAction's, which the element logs and runs on after)."""

    __slots__ = ("outstanding", "done", "error", "failure")

    def __init__(self, waited: bool) -> None:
        self.outstanding = 1
        self.done = threading.Event() if waited else None
        self.error: BaseException | None = None
        self.failure: BaseException | None = None

    def fail(self, error: BaseException) -> None:
        self.error = self.error or error
        self.outstanding = 0
        if self.done is not None:
            self.done.set()


Entry = tuple[int, "_Chain | None", Callable[[], Any]]


class CancellableItem:
    """A queue item that is told when a `WorkQueue.cancel` drops it before it ran, so whoever
    queued it without waiting still hears (a request's caller gets an error reply)."""

    def __call__(self) -> None:
        raise NotImplementedError

    def cancelled(self, error: Exception) -> None:
        raise NotImplementedError


class _ExclusiveTurn:
    """Work that asked for the queue to itself (`WorkQueue.run_exclusive`), waiting first in line:
    a stop's cancel does not drop it (it is the stop's own work, or a save that must still land)."""

    __slots__ = ("function", "result")

    def __init__(self, function: Callable[[], Any]) -> None:
        self.function = function
        self.result: Any = None

    def __call__(self) -> None:
        self.result = self.function()


class WorkQueue:
    """The queue of one element.

    `dispatch` hands a callable to another thread (the clock's workers; a virtual clock runs it
    at once); `on_error` hears what a queued item raised when no caller waits for it.
    """

    # Slots: a DMS holds thousands of queues and every firing reads one; compact ones stay in cache.
    __slots__ = (
        "pending",
        "lock",
        "_owner",
        "_chain",
        "_sequence",
        "_cancel_fence",
        "_cancel_error",
        "_dispatch",
        "_on_error",
        "_inline_chain",
    )

    def __init__(self, dispatch: Callable[[Callable[[], Any]], None], on_error: Callable[[Exception], None]) -> None:
        self.pending: deque[Entry] = deque()
        self.lock = threading.Lock()  # held while an item runs
        self._owner = 0  # thread id of the drainer, 0 when idle
        self._chain: _Chain | None = None  # the chain of the item running now
        self._sequence = itertools.count(1)
        self._cancel_fence = 0  # items numbered below it were cancelled
        self._cancel_error: Exception = RuntimeError("cancelled")
        self._dispatch = dispatch
        self._on_error = on_error
        self._inline_chain = _Chain(waited=False)

    @property
    def in_worker(self) -> bool:
        """True when called from the thread that is running this queue's items."""
        return self._owner == _get_ident()

    def run(self, function: Callable[..., Any], *args: Any, wait: bool = False, raise_failure: bool = False) -> None:
        """Run ``function(*args)`` on the queue: now when idle, otherwise after the queued items.

        An item that runs at once returns after its chain ran, and its exception reaches the
        caller. With `wait`, a caller that had to queue blocks until its chain ran and gets the
        item's exception too (a caller inside some queue's item never blocks); otherwise a
        queued item's exception goes to `on_error`. With `raise_failure`, a caller that saw its
        chain run also gets the first failure an item of the chain reported (`report_failure`).
        """
        in_worker = self._owner == _get_ident()  # the running item queues work (a QAction's set): never idle
        if not in_worker and self.run_if_idle(function, *args, own_chain=raise_failure):
            return
        pending = self.pending
        item = partial(function, *args) if args else function
        if in_worker:
            chain = self._chain  # queued by the running item: part of its chain
            if chain is not None:
                chain.outstanding += 1
            pending.append((next(self._sequence), chain, item))
            return
        if wait and not _running_any_queue():
            chain = _Chain(waited=True)
            pending.append((next(self._sequence), chain, item))
            self._drain(until=chain)
            assert chain.done is not None
            chain.done.wait()
            if chain.error is not None:
                raise chain.error
            if raise_failure and chain.failure is not None:
                raise chain.failure
            return
        pending.append((next(self._sequence), None, item))
        self.hand_off()

    def run_if_idle(self, function: Callable[..., Any], *args: Any, own_chain: bool = False) -> bool:
        """Run ``function(*args)`` and the work it queues now if the queue is idle, as `run`
        does, and answer True; answer False (nothing run) when items run or wait. With
        `own_chain`, the first failure an item of the chain reported is raised.

        Every timer firing takes this path, so `_enter`/`_leave` are spelled out here.
        """
        pending = self.pending
        try:
            worker = _thread_local.worker  # `_this_worker()` spelled out
        except AttributeError:
            worker = _this_worker()
        depth = worker.depth
        if pending or depth >= _MAX_INLINE_NESTING or not self.lock.acquire(False):
            return False
        # One inline run at a time per queue: its chain is reused, not allocated, and left at
        # rest (one outstanding, no error) by every run, so a run that queued nothing skips it;
        # a caller that asks for failures gets a chain of its own, so no earlier run's shows.
        chain = _Chain(waited=False) if own_chain else self._inline_chain
        dropped: BaseException | None = None
        self._owner, self._chain = _get_ident(), chain
        worker.depth = depth + 1
        try:
            function(*args)
        finally:
            try:
                if pending:  # the item queued work (its chain), or others queued theirs meanwhile
                    dropped = self._finish_inline_chain(chain)
            finally:
                self._owner, self._chain = 0, None
                self.lock.release()
                worker.depth = depth
                if not depth and worker.deferred:
                    _hand_off_deferred(worker)
                if pending:
                    self.hand_off()  # even when the item raised: nothing may be stranded
        if dropped is not None:  # work of this chain was dropped by a stop
            raise dropped
        if own_chain and chain.failure is not None:
            raise chain.failure
        return True

    def report_failure(self, error: BaseException) -> None:
        """Called by the running item: it failed without raising (it logged the failure and the
        queue runs on). Kept on the item's chain for a caller that asked for it (`run`'s
        ``raise_failure``); the first failure of a chain is the one kept."""
        chain = self._chain
        if chain is not None and chain is not self._inline_chain and chain.failure is None:
            chain.failure = error

    def _finish_inline_chain(self, chain: _Chain) -> BaseException | None:
        """Run the rest of the inline item's chain and put the chain back at rest; answers the
        error that dropped some of it, if any."""
        chain.outstanding -= 1  # the item itself is done
        try:
            self._run_pending(until=chain)
        finally:
            error = chain.error
            chain.outstanding, chain.error = 1, None
        return error

    def run_soon(self, function: Callable[[], Any]) -> None:
        """Queue `function` behind the queued items and have them run as handed-off work does:
        through `dispatch` (a virtual clock runs it at once, a real one on a worker), and, when
        this thread is running some queue's item, only once its outermost item is done. So the
        caller's own work (a QAction, a set) is never interrupted by it."""
        self.pending.append((next(self._sequence), None, function))
        self.hand_off()

    def run_exclusive(self, function: Callable[[], T], *, or_first: bool = True, wait: bool = True) -> T | None:
        """Run `function` while no item runs and return its result: at once when the queue is
        idle, otherwise between items, first in line after the one running now.

        A busy queue is never waited for until it empties (a timer firing faster than its QAction
        runs keeps it busy for good): `function` takes the next turn, on the thread running the
        items. From inside another queue's item the caller cannot wait, nor can it when not
        `wait`: on a busy queue `function` is then put first in line (``or_first``) or skipped,
        and None is returned.
        """
        if self.in_worker:
            return function()
        if self.lock.acquire(False):
            self._enter()
            try:
                return function()
            finally:
                self._leave()
                if self.pending:
                    self.hand_off()  # items queued while we held the lock
        turn = _ExclusiveTurn(function)
        if not wait or _running_any_queue():
            if or_first:
                self.pending.appendleft((next(self._sequence), None, turn))
                self.hand_off()  # in case the holder let go before we queued
            return None
        chain = _Chain(waited=True)
        self.pending.appendleft((next(self._sequence), chain, turn))
        self.hand_off()  # in case the holder let go before we queued
        assert chain.done is not None
        chain.done.wait()
        if chain.error is not None:
            raise chain.error
        return turn.result

    def cancel(self, error: Exception) -> int:
        """Drop every item queued so far (the running one finishes); callers waiting for one get
        `error`. Answers how many dropped items nobody was waiting for."""
        self._cancel_error = error
        self._cancel_fence = next(self._sequence)
        unwaited = sum(
            1
            for sequence, chain, item in list(self.pending)
            if chain is None and sequence < self._cancel_fence and type(item) is not _ExclusiveTurn
        )
        if self.pending:
            self.hand_off()  # whoever drains next drops them and answers their waiters
        return unwaited

    def hand_off(self) -> None:
        """Have queued items run on a worker (unless someone is already running them)."""
        if self.lock.locked():
            return  # the owner sees the items before it lets go
        worker = _this_worker()
        if worker.depth > 0:
            if self not in worker.deferred:
                worker.deferred.append(self)
        else:
            self._dispatch(self._drain)

    def _drain(self, until: _Chain | None = None) -> None:
        """Run queued items unless another thread is already doing so; with `until`, only
        until that chain is done, handing the rest off."""
        pending = self.pending
        lock = self.lock
        while pending and (until is None or until.outstanding > 0):
            if not lock.acquire(False):
                return  # the owner sees our items before it lets go
            self._enter()
            try:
                self._run_pending(until)
            finally:
                self._leave()
                if pending and until is not None:
                    self.hand_off()

    def _enter(self) -> None:
        self._owner = _get_ident()
        _this_worker().depth += 1

    def _leave(self) -> None:
        self._owner = 0
        self._chain = None
        self.lock.release()
        _left_a_queue()

    def _run_pending(self, until: _Chain | None = None) -> None:
        pending = self.pending
        while pending and (until is None or until.outstanding > 0):
            sequence, chain, item = pending.popleft()
            if sequence < self._cancel_fence and type(item) is not _ExclusiveTurn:
                if chain is not None:
                    chain.fail(self._cancel_error)
                if isinstance(item, CancellableItem):
                    try:
                        item.cancelled(self._cancel_error)
                    except Exception as error:  # its bug must not strand the items behind it
                        self._on_error(error)
                continue
            self._chain = chain
            try:
                item()
            except Exception as error:  # an item failing must not strand the ones behind it
                if chain is not None and chain.done is not None and chain.error is None:
                    chain.error = error
                else:
                    self._on_error(error)
            finally:
                self._chain = None
                if chain is not None:  # one item of its chain done; its waiter hears when the last is
                    chain.outstanding -= 1
                    if chain.outstanding <= 0 and chain.done is not None:
                        chain.done.set()
