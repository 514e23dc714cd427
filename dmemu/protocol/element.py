"""An element: a running instance of a protocol, with its values, tables, timers and queue."""

from __future__ import annotations

import enum
import logging
import re
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import partial
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .changes import Change, ParameterChange, TableChange
from .clock import TimerJob
from .definitions import Protocol, ProtocolModel, QAction, SerialConnection, TableModel, Timer
from .errors import (
    ElementNotFoundError,
    ElementStateError,
    InvalidValueError,
    QActionFailedError,
    QActionLoopError,
    ReadOnlyParameterError,
    StateFileError,
)
from .http import Connection, ElementSession, build_session
from .logs import LogEntry, LogLevel, LogType
from .qaction import QActionProtocol
from .queue import WorkQueue, _running_any_queue
from .serial import SerialPort
from .storage import ElementSnapshot, ElementStore, HandedWrite, deferred_writes
from .tables import RowChanges, TableData

if TYPE_CHECKING:
    from .host import ElementHost

_logger = logging.getLogger("dmemu.element")

MAX_CHAIN_DEPTH = 200
"""QActions triggering QActions deeper than this are a loop: the chain is stopped and logged."""

MAX_LOG_ENTRIES = 5000


class ElementState(enum.Enum):
    ACTIVE = "Active"
    PAUSED = "Paused"
    STOPPED = "Stopped"


_ACTIVE = ElementState.ACTIVE  # a module constant: enum attribute lookups are slow in hot paths


ChangeListener = Callable[["Element", Change], None]
ValueWatcher = Callable[["Element", int, Any], None]


class ReadableElement:
    """What an element is and holds, read the same way whether it runs (`Element`) or was read
    from a state directory (`SavedElement`): its identity, `get` and `table`.

    Subclasses set the attributes below; the values and tables are filled by `_reset_volatile`
    and `_restore`, so a saved element holds exactly what a stopped live one would.
    """

    name: str
    agent_id: int
    element_id: int
    protocol: type[Protocol]
    connection: Connection
    _model: ProtocolModel
    _state: ElementState
    _values: dict[int, Any]
    _tables: dict[int, TableData]
    live: ClassVar[bool] = True
    """False for an element read from saved state: its state is what was saved, nothing runs it here."""

    @property
    def ids(self) -> tuple[int, int]:
        """(DataMiner agent id, element id)."""
        return (self.agent_id, self.element_id)

    @property
    def state(self) -> ElementState:
        return self._state

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.agent_id}/{self.element_id} {self.protocol.name!r} {self._state.value}>"

    def get(self, ref: int | str) -> Any:
        """The value of a parameter by id or name (a table gives its `TableView`).

        Passwords are write-only: they read as ``"********"`` once set (QActions see the value)."""
        pid = self._model.plain_value_ids.get(ref)
        if pid is not None:
            return self._values[pid]
        pid = self._model.resolve(ref)
        if pid in self._tables:
            return TableView(self, self._tables[pid])
        if pid in self._model.secret_parameters:
            return self._model.parameters[pid].type.display(self._values[pid])
        return self._values[pid]

    def display(self, ref: int | str) -> str:
        """A parameter's value as its page shows it: a discrete's name, a date and time, a number
        with its units, a password as ``********``."""
        pid = self._model.resolve(ref)
        return self._model.parameters[pid].type.display(self.get(pid))

    def table(self, ref: int | str) -> TableView:
        """A live, read-only view of a table by id or name."""
        return TableView(self, self._table(ref))

    def _table(self, ref: int | str) -> TableData:
        tid = self._model.table_ids.get(ref)
        if tid is None:
            tid = self._model.table(ref).table.id  # raises for a ref that names no table
        return self._tables[tid]

    def _reset_volatile(self, saved: ElementSnapshot) -> None:
        """Defaults everywhere, then the saved values: what a stopped element holds.

        The value dict and table objects are kept (only their contents change), so work that
        looked them up before the reset still writes into the live element.
        """
        self._values.clear()
        self._values.update(self._model.defaults)
        self._values.update(saved.parameters)
        for tid, model in self._model.tables.items():
            if tid not in self._tables:
                self._tables[tid] = TableData(model)
            self._tables[tid].rows = {}
        for tid, rows in saved.tables.items():
            self._tables[tid].restore(rows)

    def _restore(self, snapshot: ElementSnapshot, source: Path) -> list[tuple[str, dict[str, Any]]]:
        """Values from a state file, each checked against the current protocol definition.

        What the protocol no longer accepts is left out, no more: a refused value keeps its
        default, a refused row is dropped while the table's other rows stay. Answers each
        (message, record of what was left out); the caller decides how to report and keep them.
        """
        model = self._model
        ignored: list[tuple[str, dict[str, Any]]] = []
        for pid, value in snapshot.parameters.items():
            if pid not in model.saved_parameters:
                continue  # the protocol no longer saves it
            try:
                self._values[pid] = value if value is None else model.checkers[pid](value)
            except InvalidValueError as error:
                ignored.append(
                    (f"{source}: saved value ignored, default kept: {error}", {"parameter": pid, "value": value, "reason": str(error)})
                )
        for tid, rows in snapshot.tables.items():
            if tid not in model.saved_tables:
                continue
            data = self._tables[tid]
            try:
                data.restore(rows)
            except InvalidValueError:
                kept = []
                for row in rows:  # the slow path, only when some row is refused: find which
                    try:
                        data.bulk_rows([row])
                    except InvalidValueError as error:
                        reason = str(error)
                        ignored.append(
                            (f"{source}: saved row ignored (the protocol no longer accepts it): {reason}", {"table": tid, "row": row, "reason": reason})
                        )
                    else:
                        kept.append(row)
                data.restore(kept)
        return ignored

    def _mask_secrets(self, message: str) -> str:
        secrets = [self._values.get(pid) for pid in self._model.secret_parameters]
        secrets.append(self.connection.password)
        for secret in secrets:
            if isinstance(secret, str) and secret:
                message = message.replace(secret, "********")
        return message


_ELEMENT_IDS = re.compile(r"([0-9]+)/([0-9]+)")


def element_ids(ref: object) -> tuple[int, int] | None:
    """The (agent id, element id) that `ref` names by ids: a pair of ints, or an ``AGENT/ELEMENT``
    string such as ``"1/12"`` (as the CLI and error messages write them). None for any other
    string, which is a name; anything else raises `TypeError` naming it and the forms accepted.
    A system that has an element named like ids (``"1/12"``) finds it by that name first."""
    if isinstance(ref, str):
        match = _ELEMENT_IDS.fullmatch(ref.strip())
        return (int(match[1]), int(match[2])) if match else None
    if isinstance(ref, tuple) and len(ref) == 2:
        agent_id, element_id = ref  # spelled out, no generator: every reply's address is a pair
        if isinstance(agent_id, int) and isinstance(element_id, int) and not isinstance(agent_id, bool) and not isinstance(element_id, bool):
            return (int(agent_id), int(element_id))
    raise TypeError(
        f"an element is named by its name, by \"AGENT/ELEMENT\" ids such as \"1/12\", or by an "
        f"(agent id, element id) pair of ints such as (1, 12); not by {ref!r}"
    )


def element_not_found(ref: object, elements: Iterable[ReadableElement], where: str) -> ElementNotFoundError:
    """The error for an element `ref` that is not among `elements`, listing those that are."""
    known = ", ".join(f"{e.name!r} ({e.agent_id}/{e.element_id})" for e in elements) or "none"
    return ElementNotFoundError(f"no element {ref!r} in {where}; elements: {known}")


class Element(ReadableElement):
    """An instance of a protocol in a DataMiner System. Create it with `DataMinerSystem.create_element`."""

    raise_on_failure: bool = False
    """Whether `set` and `set_cell` raise `QActionFailedError` when a QAction they triggered
    fails (each call may say otherwise); off by default, as in DataMiner, where a failing QAction
    is only logged. Set it on an element (``element.raise_on_failure = True``) in a test."""

    def __init__(
        self,
        dms: ElementHost,
        protocol: type[Protocol],
        name: str,
        agent_id: int,
        element_id: int,
        connection: Connection,
        store: ElementStore,
        *,
        loaded: bool = False,
    ) -> None:
        """`loaded`: the element comes from its DMS's registry, so its state file must exist."""
        self.dms = dms
        self.protocol = protocol
        self.name = name
        self.agent_id = agent_id
        self.element_id = element_id
        self.connection = connection
        self.log_level = LogLevel.NO_LOGGING
        self.log_entries: deque[LogEntry] = deque(maxlen=MAX_LOG_ENTRIES)
        self._model = protocol.model
        self._write_targets = protocol.model.write_targets
        self._store = store
        self._state = ElementState.STOPPED
        self._queue = WorkQueue(dispatch=dms.clock.dispatch, on_error=self._log_queued_error)
        self._clock = dms.clock
        self._lifecycle_lock = threading.RLock()  # start/pause/stop: state and timer jobs together
        self._jobs: list[TimerJob] = []
        self._queued_timers: set[int] = set()
        self._session: ElementSession | None = None
        self._serial: SerialPort | None = None
        self._held_answers: list[tuple[int, Callable[..., None], object]] = []  # came while paused: handled on resuming
        self._runs = 0  # stops so far: answers of exchanges started before the last stop are dropped
        self._session_lock = threading.Lock()
        self._save_done = threading.Condition()  # held while writing; notified after each write
        self._snapshots_unwritten = 0
        self._snapshot_generation = 0
        self._saved_generation = 0
        self._save_queued = False  # a batch save waits for its turn on the queue
        self._deleted = False
        self._dirty = False
        self._needs_startup = False
        self._volatile_to_forget = False
        self._values: dict[int, Any] = {}
        self._tables: dict[int, TableData] = {}
        self._reset_volatile(ElementSnapshot())
        self._facade = QActionProtocol(self)
        self._load_saved(loaded)
        # Replaced whole on each (un)registration, so the change paths read them without a lock:
        # every listener, the listeners of each id that has some, and those that hear everything.
        self._change_listeners: tuple[ChangeListener, ...] = ()
        self._listeners_of: dict[int, tuple[ChangeListener, ...]] = {}
        self._listeners_of_all: tuple[ChangeListener, ...] = ()
        self._listener_ids: dict[ChangeListener, frozenset[int] | None] = {}
        # Watchers of single parameters, by parameter id; replaced whole like the listeners.
        self._value_watchers: dict[int, tuple[ValueWatcher, ...]] = {}

    def _load_saved(self, loaded: bool) -> None:
        """The saved state, checked; what is left out is logged and kept beside the file."""
        snapshot = self._store.load()
        self._saved_at = snapshot.saved_at  # read by the DMS: its clock must not start before it
        if loaded and snapshot.missing:
            self.log(f"{self._store.path}: {snapshot.missing}; the element starts from its defaults", LogType.ERROR)
            self._mark_dirty()  # written again with the next batch, so this is said once
        ignored = self._restore(snapshot, self._store.path)
        for problem, _ in ignored:
            self.log(problem, LogType.ERROR)
        if ignored:
            when = self.dms.clock.now()
            try:
                self._store.set_aside({**record, "set_aside_at": when} for _, record in ignored)
            except (OSError, StateFileError) as error:
                self.log(f"what was left out could not be kept in {self._store.set_aside_path}: {error}", LogType.ERROR)
            else:
                self.log(f"what was left out is kept in {self._store.set_aside_path}", LogType.ERROR)

    # -- user API: values (reading them is `ReadableElement`'s) ------------------------------

    def set(
        self, ref: int | str, value: Any, *, wait: bool = True, raise_on_failure: bool | None = None, _depth: int = 0
    ) -> None:
        """Set a write parameter as a user would, then run the QActions it triggers.

        A wrong type, an out-of-range value or an unknown discrete raises `InvalidValueError`
        naming the parameter and what it allows; nothing changes then. The set goes through the
        element's queue: with `wait` (the default) it returns once the QActions it triggered
        have run; called from inside a QAction it never waits (it is queued behind it).

        A QAction that fails is logged and the set returns normally, unless `raise_on_failure`
        (by default the element's `raise_on_failure`): then, once the QActions the set triggered
        (directly or through their own sets on this element) have run, the first failure among
        them raises `QActionFailedError`, its cause the QAction's exception. Failures of other
        work (timers, other users' sets) never raise here; a set that does not wait cannot raise.

        On a virtual clock a waiting set (outside a QAction) also waits for the answers of the
        serial exchanges in flight (`SerialPort.start_exchange`), running their handlers here.
        """
        target = self._write_targets.get(ref)
        if target is None:
            raise self._not_settable(ref)
        parameter, check, plain, saved = target
        value = check(value)
        if self._state is not _ACTIVE:
            raise ElementStateError(f"element {self.name!r} is {self._state.value}: start it before setting {parameter.label}")
        pid = parameter.id
        queue = self._queue
        # Nothing to trigger and the queue idle: stored at once, as a queue item would store it
        # (the queue's lock held, nothing waiting), spelled out here since this is every set's path.
        if plain and not queue.pending and queue.lock.acquire(False):
            self._values[pid] = value
            queue.lock.release()
            if queue.pending:  # queued by another thread while we held the lock
                queue.hand_off()
            if saved:
                self._mark_dirty()
            if self._value_watchers or self._change_listeners:
                self._announce(pid, value)
                if self._clock.answers_awaited and wait and not _running_any_queue():
                    self._clock.settle()  # the work watchers and listeners started, exchanges included
            return
        raise_failure = wait and (self.raise_on_failure if raise_on_failure is None else raise_on_failure)
        self._queue.run(self._apply_user_set, pid, value, _depth, wait=wait, raise_failure=raise_failure)
        if wait and self._clock.answers_awaited and not _running_any_queue():
            self._clock.settle()  # a virtual clock: the exchanges the set started have answered

    def set_cell(
        self, table: int | str, key: str, column: int | str, value: Any, *, wait: bool = True, raise_on_failure: bool | None = None
    ) -> None:
        """Set a cell of a write column as a user would, then run the QActions it triggers
        (a failing one raises as for `set`)."""
        data = self._table(table)
        index = data.model.column_position(column)
        spec = data.model.table.columns[index]
        if not spec.write:
            raise ReadOnlyParameterError(f"{data.label} column {spec.id} {spec.name!r} is read-only; users set write columns only")
        if value is not None:
            value = data.model.checkers[index](value)
        data.get(key)  # an unknown row raises before anything is queued
        if self._state is not _ACTIVE:
            raise ElementStateError(f"element {self.name!r} is {self._state.value}: start it before setting {spec.name!r}")
        raise_failure = wait and (self.raise_on_failure if raise_on_failure is None else raise_on_failure)
        self._queue.run(self._apply_user_cell, data, key, index, value, 0, wait=wait, raise_failure=raise_failure)
        if wait and self._clock.answers_awaited and not _running_any_queue():
            self._clock.settle()

    def logs(self, type: LogType | None = None) -> list[LogEntry]:
        """Log entries kept for this element, optionally of one type."""
        return [entry for entry in self.log_entries if type is None or entry.type is type]

    @property
    def http(self) -> ElementSession:
        """The element's HTTP connection, built from its connection settings on first use."""
        with self._session_lock:  # a user's thread and a QAction may ask at the same time
            if self._session is None:
                connection_spec = self.protocol.connection
                self._session = build_session(
                    self.connection,
                    default_port=connection_spec.default_port if connection_spec else 443,
                    sleep=self.dms.clock.sleep,
                )
            return self._session

    @property
    def serial(self) -> SerialPort:
        """The element's serial (TCP stream) connection, built from its connection settings on
        first use; it connects on its first exchange."""
        with self._session_lock:
            if self._serial is None:
                spec = self.protocol.connection
                if not isinstance(spec, SerialConnection):
                    spec = SerialConnection()  # its default port, and framings given per exchange
                # A port serves one run of the element: its answers are dropped once the element
                # stopped, even if it started again before a worker got to them.
                deliver = partial(self._deliver_answer, self._runs)
                self._serial = SerialPort(self.connection, default_port=spec.default_port, framing=spec.framing, runner=self.dms.clock, deliver=deliver)
            return self._serial

    def _deliver_answer(self, run: int, then: Callable[..., None], outcome: object) -> None:
        """An exchange started on the serial port ended: `then(protocol, outcome)` runs on the
        queue, as a QAction does (not at all once the element stopped)."""
        self._queue.run_soon(partial(self._run_answer, run, then, outcome))

    def _run_answer(self, run: int, then: Callable[..., None], outcome: object) -> None:
        if self._state is not _ACTIVE or run != self._runs:
            if self._state is ElementState.PAUSED and run == self._runs:
                self._held_answers.append((run, then, outcome))  # handled when it resumes (a stop forgets it)
            return
        facade = self._facade
        facade._trigger, facade._row_key, facade._trigger_value, facade._depth = None, None, None, 0
        try:
            then(facade, outcome)
        except Exception as error:
            where = _qaction_frame(then, error)
            name = getattr(then, "__name__", None) or getattr(getattr(then, "func", None), "__name__", repr(then))
            self.log(f"the answer handler {name} failed: {type(error).__name__}: {error} ({where.filename}:{where.lineno})", LogType.ERROR)

    # -- user API: lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        """Activate: a stopped element starts afresh (saved values kept, after-startup QActions run);
        a paused one resumes its timers."""
        with self._lifecycle_lock:
            if self._state is _ACTIVE:
                return
            fresh = self._state is ElementState.STOPPED or self._needs_startup
            self._needs_startup = False
            self._state = ElementState.ACTIVE
            self._schedule_timers()
        self.dms._element_state_changed(self)
        held, self._held_answers = self._held_answers, []
        if not fresh:
            for run, then, outcome in held:  # answers that came while it was paused
                self._queue.run_soon(partial(self._run_answer, run, then, outcome))
        if fresh:
            self._queue.run(self._forget_volatile_once)  # a stop that could not do it yet
            for qaction in self._model.startup_qactions:
                self._queue.run(self._run_qaction, qaction, None, None, None, 0)
            for timer in self.protocol.timers:
                if timer.at_startup:
                    self._on_timer(timer)

    def pause(self) -> None:
        """Stop timers but keep everything; `start()` resumes."""
        with self._lifecycle_lock:
            if self._state is not _ACTIVE:
                return
            self._cancel_timers()
            self._state = ElementState.PAUSED
        self.dms._element_state_changed(self, write_now=True)

    def stop(self) -> None:
        """Stop timers, drop queued work, close the connection and save. Values not marked
        `save` go back to their defaults."""
        with self._lifecycle_lock:
            if self._state is ElementState.STOPPED:
                return
            self._cancel_timers()
            self._state = ElementState.STOPPED
            self._runs += 1
            dropped = self._queue.cancel(ElementStateError(f"element {self.name!r} stopped before this work ran"))
            self._volatile_to_forget = True
        if dropped:
            self.log(f"stopped with {dropped} queued sets or QActions not run", LogType.ERROR)
        self._queue.run_exclusive(self._forget_volatile_once)
        self.dms._element_state_changed(self, write_now=True)
        self.save()

    def restart(self) -> None:
        self.stop()
        self.start()

    def save(self) -> None:
        """Write the `save` parameters and tables now if they changed (normally done per tick).

        The snapshot is taken between QActions: once the running one is done, before the next.
        Returns once the file is on disk, with what a batch handed over before it."""
        self._store.wait_written()  # a batch's write that fails makes the element dirty again: retried here
        self._write(self._queue.run_exclusive(self._take_snapshot, or_first=False))

    def _save_soon(self) -> StateFileError | None:
        """The DMS's batch save, which never waits for a busy element: taken now when no
        QAction runs, else first in line after the running one, on the thread running them.
        The file is written by the writer thread (see `storage.deferred_writes`); answers the
        error of a snapshot that could not be encoded. A failed save is logged and stays dirty."""
        if self._save_queued:
            return None  # an earlier batch's save still waits for its turn
        self._save_queued = True
        return self._queue.run_exclusive(self._save_queued_now, wait=False)

    def _save_queued_now(self) -> StateFileError | None:
        self._save_queued = False
        snapshot = self._take_snapshot()
        if snapshot is None:
            return None
        try:
            self._write(snapshot, deferred=True)
        except StateFileError as error:
            self.log(str(error), LogType.ERROR)
            return error
        return None

    def _write(self, snapshot: tuple[int, dict[int, Any], dict[int, RowChanges]] | None, *, deferred: bool = False) -> None:
        """Write a snapshot taken by `_take_snapshot`: on disk when this returns, or, `deferred`,
        handed to the writer thread, whose failure `_write_failed` hears of."""
        with self._save_done:
            if snapshot is None:
                # Nothing new here, but another thread may hold a snapshot it has not handed
                # over yet: once it has, and the writer has written it, the disk is current.
                self._save_done.wait_for(lambda: self._snapshots_unwritten == 0)
            else:
                self._write_locked(snapshot, deferred)
        if snapshot is None and not deferred:
            self._store.wait_written()

    def _write_locked(self, snapshot: tuple[int, dict[int, Any], dict[int, RowChanges]], deferred: bool) -> None:
        generation, parameters, tables = snapshot
        # Not held while taking the snapshot, so a QAction calling save() cannot deadlock
        # with a flush; the generation keeps an older snapshot from overwriting a newer one
        # (the writer writes in the order handed over).
        try:
            if generation > self._saved_generation and not self._deleted:
                self.dms._write_registry_if_dirty()  # never an element file the registry does not name
                if deferred:
                    with deferred_writes(self._write_failed):
                        self._store.save(parameters, tables, saved_at=self.dms.clock.now())
                else:
                    self._store.save(parameters, tables, saved_at=self.dms.clock.now())
                self._saved_generation = generation
        except Exception:
            self._dirty = True  # try again next batch; the previous snapshot stays on disk
            raise
        finally:
            self._snapshots_unwritten -= 1
            self._save_done.notify_all()

    def _write_failed(self, write: HandedWrite) -> None:
        """A deferred write of the state file failed (on the writer thread): logged, and the
        element is dirty again, so a later batch writes it; the previous snapshot stays on disk."""
        self.log(str(write.error), LogType.ERROR)
        if not self._deleted:
            self._dirty = True
            self.dms._element_dirty(self)

    def _delete_state(self) -> None:
        """Remove the state file for good; a save still under way elsewhere finishes first."""
        with self._save_done:
            self._deleted = True
            self._store.delete()

    def _forget_volatile_once(self) -> None:
        """What a stop loses: the connection, queued timer work, values not marked `save`.

        Runs on the queue, after the QAction running at the stop: at once, or first in line
        when the stop came from another element's QAction, or before the next start's work.
        """
        if self._volatile_to_forget:
            self._volatile_to_forget = False
            self.close_connection()
            self._queued_timers.clear()
            self._reset_volatile(self._snapshot_saved())
            if self._change_listeners:  # every table has new rows: its listeners look again
                for tid in self._tables:
                    self._notify_table(tid, None, frozenset())

    def _end_started_exchanges(self) -> None:
        """Started serial exchanges end now (their handlers hear `SerialConnectionError`)."""
        port = self._serial
        if port is not None:
            port.close()

    def close_connection(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
        if self._serial is not None:
            self._serial.close()
            self._serial = None  # a start begins at the connection's own target again

    # -- internals used by the QAction facade and the DMS -----------------------------------

    def _restore_paused(self) -> None:
        """Loaded as Paused: nothing runs until `start()`, which then starts afresh."""
        self._state = ElementState.PAUSED
        self._needs_startup = True

    def _not_settable(self, ref: Any) -> Exception:
        pid = self._model.resolve(ref)  # raises UnknownParameterError
        if pid in self._tables:
            return ReadOnlyParameterError(f"{self._model.tables[pid].table.label} is a table: users set cells of write columns with set_cell")
        return ReadOnlyParameterError(f"{self._model.parameters[pid].label} is a read parameter; users set write parameters only")

    def _log_queued_error(self, error: Exception) -> None:
        self.log(f"queued work failed: {type(error).__name__}: {error}", LogType.ERROR)

    def _apply_user_set(self, pid: int, value: Any, depth: int) -> None:
        if self._state is not _ACTIVE:  # queued just before a stop or pause
            raise ElementStateError(f"element {self.name!r} is {self._state.value}: the set of parameter {pid} was not applied")
        self._apply_set(pid, value, depth)

    def _checked_user_set(self, ref: int | str, value: Any) -> tuple[int, Any]:
        """What `set` checks before it queues, raising what it raises: (parameter id, checked
        value). A request is delivered as a queue item of its own (`QActionProtocol.send_request`),
        so that its caller hears when the item is dropped or fails."""
        target = self._write_targets.get(ref)
        if target is None:
            raise self._not_settable(ref)
        parameter, check = target[0], target[1]
        value = check(value)
        if self._state is not _ACTIVE:
            raise ElementStateError(f"element {self.name!r} is {self._state.value}: start it before setting {parameter.label}")
        return parameter.id, value

    def _apply_user_cell(self, data: TableData, key: str, index: int, value: Any, depth: int) -> None:
        if self._state is not _ACTIVE:  # queued just before a stop or pause
            raise ElementStateError(f"element {self.name!r} is {self._state.value}: the cell set was not applied")
        self._apply_cell(data, key, index, value, depth)

    def _apply_set(self, pid: int, value: Any, depth: int) -> None:
        model = self._model
        if pid not in model.momentary_parameters:
            self._values[pid] = value
            if pid in model.saved_parameters:
                self._mark_dirty()
            if self._value_watchers or self._change_listeners:
                self._announce(pid, value)
        qactions = (model.qaction_triggers if depth else model.triggers).get(pid)  # depth 0: a user's set
        if qactions:
            self._queue_triggered(qactions, pid, None, value, depth)

    def _announce(self, pid: int, value: Any) -> None:
        """Tell the value watchers, then the change listeners, of the parameter's new value."""
        for watcher in self._value_watchers.get(pid, ()):
            try:
                watcher(self, pid, value)
            except Exception as error:
                self._watcher_failed(watcher, pid, value, error)
        if self._change_listeners:
            listeners = self._listeners_of.get(pid, self._listeners_of_all)
            if listeners:
                self._notify(listeners, ParameterChange(pid, value))

    def _apply_cell(self, data: TableData, key: str, index: int, value: Any, depth: int) -> None:
        data.set_cell(key, index, value)
        if data.model.table.id in self._model.saved_tables:
            self._mark_dirty()
        if self._change_listeners:
            self._notify_table(data.model.table.id, frozenset((key,)), frozenset())
        column_id = data.model.table.columns[index].id
        qactions = (self._model.qaction_triggers if depth else self._model.triggers).get(column_id)
        if qactions:
            self._queue_triggered(qactions, column_id, key, data.rows[key][index], depth)  # the cell as checked and stored

    def _queue_triggered(self, qactions: Sequence[QAction], pid: int, row_key: str | None, value: Any, depth: int) -> None:
        if depth >= MAX_CHAIN_DEPTH:
            chain = ", ".join(q.label for q in qactions)
            error = QActionLoopError(
                f"element {self.name!r}: QAction chain stopped after {depth} triggers in a row "
                f"(parameter {pid} would run {chain} again); check for QActions that set each other's triggers"
            )
            self.log(str(error), LogType.ERROR)
            self._queue.report_failure(error)  # the chain did not settle: a set asking for failures hears it
            return
        run = self._run_qaction
        for qaction in qactions:
            # The value travels with the QAction: a set queued behind it may overwrite the parameter.
            self._queue.run(run, qaction, pid, row_key if qaction.row else None, value, depth + 1)

    def _run_qaction(self, qaction: QAction, trigger: int | None, row_key: str | None, value: Any, depth: int) -> None:
        if self._state is not _ACTIVE:
            return  # queued before a pause or stop
        facade = self._facade
        facade._trigger, facade._row_key, facade._trigger_value, facade._depth = trigger, row_key, value, depth
        try:
            qaction.function(facade)
        except Exception as error:
            self._qaction_failed(qaction, error)

    def _qaction_failed(self, qaction: QAction, error: Exception) -> None:
        # A QAction failing is logged, as DataMiner does; the element runs on.
        where = _qaction_frame(qaction, error)
        message = f"{qaction.label} failed: {type(error).__name__}: {error} ({where.filename}:{where.lineno})"
        self.log(message, LogType.ERROR)
        # Kept on the chain of the work that ran it, for a user's set that asked to hear it.
        failure = QActionFailedError(f"element {self.name!r}: {self._mask_secrets(message)}", qaction=qaction.label, element=self.name)
        failure.__cause__ = error
        self._queue.report_failure(failure)

    def _on_timer(self, timer: Timer) -> None:
        # A timer's work already waiting on the queue is not queued twice; work run at once
        # (the queue was idle, every virtual firing's path) never waited, so is not recorded.
        if self._state is _ACTIVE and timer.id not in self._queued_timers:
            if not self._queue.run_if_idle(self._run_timer_qactions, timer):
                self._queued_timers.add(timer.id)
                self._queue.run(self._run_queued_timer, timer)

    def _run_queued_timer(self, timer: Timer) -> None:
        self._queued_timers.discard(timer.id)
        self._run_timer_qactions(timer)

    def _run_timer_qactions(self, timer: Timer) -> None:
        # `_run_qaction(qaction, None, None, None, 0)` spelled out: every timer firing's path.
        qactions = self._model.qactions
        facade = self._facade
        for qid in timer.qactions:
            if self._state is not _ACTIVE:
                return  # queued before a pause or stop, or a QAction before stopped the element
            qaction = qactions[qid]
            facade._trigger, facade._row_key, facade._trigger_value, facade._depth = None, None, None, 0
            try:
                qaction.function(facade)
            except Exception as error:
                self._qaction_failed(qaction, error)

    def _schedule_timers(self) -> None:
        self._cancel_timers()
        clock = self.dms.clock
        self._jobs = [clock.every(timer.seconds, partial(self._on_timer, timer), tag=self) for timer in self.protocol.timers]

    def _cancel_timers(self) -> None:
        for job in self._jobs:
            self.dms.clock.cancel(job)
        self._jobs = []

    # -- change listeners and value watchers (alarm monitoring, scripts waiting for a value) --

    def add_change_listener(self, listener: ChangeListener, *, ids: Iterable[int] | None = None) -> None:
        """Call `listener(element, change)` after each change, on the thread that made it: of the
        parameters and tables whose ids are in `ids`, or of everything (None)."""
        wanted = None if ids is None else frozenset(ids)
        with self._lifecycle_lock:
            if wanted is None or listener in self._listener_ids:
                self._listener_ids[listener] = wanted
                self._index_listeners()
                return
            # A listener of some ids (a script's wait, often hundreds of them at once): only the
            # entries of its ids change, its place after the listeners there before it.
            self._listener_ids[listener] = wanted
            everything = self._listeners_of_all
            listeners_of = dict(self._listeners_of)
            for pid in wanted:
                current = listeners_of.get(pid, everything)
                own = current[: len(current) - len(everything)]
                listeners_of[pid] = (*own, listener, *everything)
            self._listeners_of = listeners_of
            self._change_listeners = tuple(self._listener_ids)

    def remove_change_listener(self, listener: ChangeListener) -> None:
        with self._lifecycle_lock:
            ids = self._listener_ids.pop(listener, False)
            if ids is False:
                return
            if ids is None:
                self._index_listeners()
                return
            listeners_of = dict(self._listeners_of)
            everything_count = len(self._listeners_of_all)
            for pid in ids:
                kept = list(listeners_of[pid])
                del kept[kept.index(listener)]  # at C speed: hundreds of waits may listen to one id
                if len(kept) > everything_count:
                    listeners_of[pid] = tuple(kept)
                else:  # no listener of its own left: the id hears what every id hears
                    del listeners_of[pid]
            self._listeners_of = listeners_of
            self._change_listeners = tuple(self._listener_ids)

    def _index_listeners(self) -> None:
        everything = tuple(listener for listener, ids in self._listener_ids.items() if ids is None)
        listeners_of: dict[int, tuple[ChangeListener, ...]] = {}
        for listener, ids in self._listener_ids.items():
            for pid in ids or ():
                listeners_of[pid] = (*listeners_of.get(pid, ()), listener)
        self._listeners_of = {pid: (*listeners, *everything) for pid, listeners in listeners_of.items()}
        self._listeners_of_all = everything
        self._change_listeners = tuple(self._listener_ids)

    def add_value_watcher(self, pid: int, watcher: ValueWatcher) -> None:
        """Call `watcher(element, pid, value)` right after parameter `pid` gets a value, on the
        thread that set it. Cheaper than a change listener (no change record is made): for work
        done on every set of a few parameters, such as alarm monitoring."""
        with self._lifecycle_lock:
            self._value_watchers = {**self._value_watchers, pid: (*self._value_watchers.get(pid, ()), watcher)}

    def remove_value_watcher(self, pid: int, watcher: ValueWatcher) -> None:
        with self._lifecycle_lock:
            watchers = dict(self._value_watchers)
            kept = tuple(known for known in watchers.pop(pid, ()) if known is not watcher)
            if kept:
                watchers[pid] = kept
            self._value_watchers = watchers  # an id without watchers is left out: sets skip it

    def _watcher_failed(self, watcher: ValueWatcher, pid: int, value: Any, error: Exception) -> None:
        # Logged like a failing listener: a watcher's bug never undoes or breaks the change.
        self.log(f"value watcher {watcher!r} failed on parameter {pid} = {value!r}: {type(error).__name__}: {error}", LogType.ERROR)

    def _notify_table(self, table: int, keys: frozenset[str] | None, removed: frozenset[str]) -> None:
        listeners = self._listeners_of.get(table, self._listeners_of_all)
        if listeners:
            self._notify(listeners, TableChange(table, keys, removed))

    def _notify(self, listeners: tuple[ChangeListener, ...], change: Change) -> None:
        for listener in listeners:
            try:
                listener(self, change)
            except Exception as error:  # a listener's bug never undoes or breaks the change
                self.log(f"change listener {listener!r} failed on {change}: {type(error).__name__}: {error}", LogType.ERROR)

    def _set_initial(self, values: Mapping[int, Any]) -> None:
        """First values given at creation (already checked): stored like defaults, saved with the element."""
        self._values.update(values)
        if any(pid in self._model.saved_parameters for pid in values):
            self._mark_dirty()

    def _mark_dirty(self) -> None:
        if not self._dirty:
            self._dirty = True
            self.dms._element_dirty(self)

    def _take_snapshot(self) -> tuple[int, dict[int, Any], dict[int, RowChanges]] | None:
        if not self._dirty:
            return None
        self._dirty = False
        self._snapshot_generation += 1
        self._snapshots_unwritten += 1
        parameters = {pid: self._values[pid] for pid in self._model.saved_parameters}
        # The rows and which of them changed since the last snapshot: the save encodes only those.
        tables = {tid: self._tables[tid].rows.take_changes() for tid in self._model.saved_tables}
        return self._snapshot_generation, parameters, tables

    def _snapshot_saved(self) -> ElementSnapshot:
        # Rows are immutable tuples, so shallow copies are a consistent snapshot.
        return ElementSnapshot(
            parameters={pid: self._values[pid] for pid in self._model.saved_parameters},
            tables={tid: list(self._tables[tid].rows.values()) for tid in self._model.saved_tables},
        )

    def log(self, message: str, type: LogType = LogType.INFORMATION, level: LogLevel = LogLevel.NO_LOGGING) -> None:
        """Keep a log line when its level is within the element's log level; secrets are masked."""
        if level > self.log_level:
            return
        message = self._mask_secrets(message)
        self.log_entries.append(LogEntry(self.dms.clock.now(), type, LogLevel(level), message))
        _logger.log(logging.ERROR if type is LogType.ERROR else logging.INFO, "%s: %s", self.name, message)


ElementRef = str | tuple[int, int] | Element
"""An element by name, by ``"AGENT/ELEMENT"`` ids or (agent id, element id), or itself
(see `element_ids`)."""


def _qaction_frame(qaction: QAction | Callable[..., Any], error: Exception) -> traceback.FrameSummary:
    """Where in the connector's own code the QAction (or answer handler) failed (else the innermost frame)."""
    frames = traceback.extract_tb(error.__traceback__)
    function = qaction.function if isinstance(qaction, QAction) else getattr(qaction, "func", qaction)
    own_file = getattr(getattr(function, "__code__", None), "co_filename", None)
    own = [frame for frame in frames if frame.filename == own_file]
    return (own or frames)[-1]


class TableView:
    """A read-only view of a table, live: it always shows the current rows."""

    def __init__(self, element: ReadableElement, data: TableData) -> None:
        self._element = element
        self.model: TableModel = data.model

    @property
    def _data(self) -> TableData:
        # Looked up each time (one dict lookup): the view holds the element, not its storage.
        return self._element._tables[self.model.table.id]

    @property
    def id(self) -> int:
        return self.model.table.id

    @property
    def name(self) -> str:
        return self.model.table.name

    @property
    def columns(self) -> list[str]:
        return [column.name for column in self.model.table.columns]

    def keys(self) -> list[str]:
        return list(self._data.rows)

    def row_count(self) -> int:
        """How many rows the table holds now, as the QAction API's ``row_count(table)`` says."""
        return len(self._data.rows)

    def __len__(self) -> int:
        return len(self._data.rows)

    def __contains__(self, key: object) -> bool:
        return key in self._data.rows

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._data.rows))

    def row(self, key: str) -> dict[str, Any]:
        """The row as {column name: value}; an unknown key raises `UnknownRowError`."""
        return dict(zip(self.columns, self._data.get(key)))

    def rows(self) -> list[dict[str, Any]]:
        names = self.columns
        return [dict(zip(names, row)) for row in list(self._data.rows.values())]

    def row_cells(self, limit: int | None = None, offset: int = 0) -> list[tuple[Any, ...]]:
        """The rows as tuples of cells in column order: from the `offset`-th on, only `limit`
        of them when given.

        Cheaper than `rows()` for showing a few rows of a large table: no dict per row, and a
        window of rows is taken without copying the whole table.
        """
        rows = self._data.rows
        if limit is not None:
            try:  # C-level from start to end, so a QAction's thread cannot change the rows meanwhile
                return list(islice(rows.values(), offset, offset + limit))
            except RuntimeError:  # changed all the same (the rows are copied below instead)
                pass
        copied = list(rows.values())  # one C-level copy: safe while a QAction adds rows
        return copied[offset:] if limit is None else copied[offset : offset + limit]

    def cell(self, key: str, column: int | str) -> Any:
        return self._data.get(key)[self.model.column_position(column)]

    def column(self, column: int | str) -> dict[str, Any]:
        """{key: value} of one column."""
        index = self.model.column_position(column)
        return {key: row[index] for key, row in list(self._data.rows.items())}

    def display_key(self, key: str) -> str:
        """The row's readable label (its display key), or the primary key when none is defined."""
        return self.row_label(self._data.get(key))

    def row_label(self, row: Sequence[Any]) -> str:
        """The display key of a row given by its cells (as `row_cells` gives them): for many rows
        at once, without a lookup per row."""
        spec = self.model.table.display_key
        if spec is None:
            return row[self.model.key_index]
        return spec.separator.join(str(row[self.model.column_position(c)] or "") for c in spec.columns)

    def __repr__(self) -> str:
        return f"<TableView {self.id} {self.name!r}: {len(self)} rows>"


