"""The DataMiner System: hosts elements on agents, shares one clock, saves state in batches,
and offers its services (alarms, automation, ticketing, requests between elements) to them.

It is the engine's `ElementHost` (`dmemu.protocol.host`): elements and their QActions reach it
only through that seam."""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import threading
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..protocol.clock import Clock, RealClock, VirtualClock
from ..protocol.definitions import Protocol, protocol_path
from ..protocol.element import Element, ElementRef, ElementState, element_ids, element_not_found
from ..protocol.errors import DmemuError, ReadOnlyParameterError, StateFileError
from ..protocol.http import Connection
from ..protocol.logs import LogType
from ..protocol.storage import (
    ELEMENTS_FOLDER,
    REGISTRY_FILE,
    ElementStore,
    HandedWrite,
    RegistryStore,
    deferred_writes,
    element_files,
    element_path,
    wait_for_writes,
)
from .alarms import AlarmManager
from .automation import Automation
from .errors import DuplicateElementError
from .qaction_services import DmsQActionServices
from .requests import ElementRequests
from .saved import read_element_records
from .state_lock import StateDirectoryLock
from .ticketing import Ticketing

if typing.TYPE_CHECKING:
    from ..web import WebServer

_logger = logging.getLogger("dmemu.dms")

LICENCES = frozenset({"Ticketing", "Automation"})
"""The DataMiner licences a system can hold: modules a connector may need beyond the core."""


class SystemService(typing.Protocol):
    """A platform service of the DMS with state of its own (alarms, tickets, ...), saved in batches.

    It marks itself dirty when its state changes; the DMS calls `save_if_dirty` at the end of
    each batch (see `DataMinerSystem`) and on close, never from two threads at once (it
    holds its flush lock), so an older snapshot never lands after a newer one. A save that raises
    `StateFileError` (a record that cannot be encoded) must leave the service dirty, so the next
    batch tries again; its file is written by the writer thread, and a write that fails there is
    logged and handed over again by the DMS with the next batch."""

    @property
    def dirty(self) -> bool: ...

    def save_if_dirty(self) -> None: ...


class DataMinerSystem:
    """Elements, their clock and their state directory.

    ``DataMinerSystem(state_dir)`` runs on the wall clock, firing timers in the background until
    `close()`; pass ``clock=VirtualClock()`` for tests and drive time with ``clock.advance``.
    Elements found in `state_dir` are loaded again (active ones start), so a process restart
    picks up where the last one saved. Changes are written in batches: after a tick of a virtual
    clock, at most every `batch_gap_seconds` of real time (a tick ending sooner leaves its
    changes to a later one, and to the batch taken when `advance` or `run_until` returns; 0: after
    every tick), every `autosave_seconds` on the wall clock, when an element stops or pauses, and
    on `close()`. A batch is written by a writer thread while the clock goes on (see
    `dmemu.protocol.storage`): a kill loses at most the changes not written yet; `flush()`,
    `close()`, a stop and `Element.save()` return once what they save is on disk.

    `licences` are the DataMiner licences the system holds (`LICENCES`, all by default); a
    connector that needs one it lacks (the service problem connectors need Ticketing) says so
    and does nothing.
    """

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        clock: Clock | None = None,
        *,
        agent_ids: Iterable[int] = (1,),
        protocols: Iterable[type[Protocol]] = (),
        autosave_seconds: float = 5.0,
        batch_gap_seconds: float = 0.25,
        licences: Iterable[str] = LICENCES,
    ) -> None:
        self.licences = frozenset(licences) if not isinstance(licences, str) else frozenset((licences,))
        unknown = self.licences - LICENCES
        if unknown:
            raise ValueError(f"unknown DataMiner licences {sorted(unknown)}; known: {sorted(LICENCES)}")
        self.state_dir = Path(state_dir)
        self.clock = clock if clock is not None else RealClock()
        self.agent_ids = tuple(agent_ids)
        if not self.agent_ids:
            raise ValueError("a DataMiner System needs at least one agent id")
        if not autosave_seconds > 0:
            raise ValueError(f"autosave_seconds must be a positive number of seconds, not {autosave_seconds!r}")
        if not (type(batch_gap_seconds) in (int, float) and 0 <= batch_gap_seconds < math.inf):
            raise ValueError(f"batch_gap_seconds must be 0 or more seconds, not {batch_gap_seconds!r}")
        self._elements: dict[tuple[int, int], Element] = {}
        self._by_name: dict[str, Element] = {}
        self._dirty_elements: set[Element] = set()
        self._protocols = tuple(protocols)
        self._autosave_seconds = autosave_seconds
        self._batch_gap_seconds = batch_gap_seconds
        self.unregistered_files: tuple[Path, ...] = ()
        """Element state files the registry does not name: reported at opening, never deleted."""
        self._closed = False
        self._registry_dirty = False
        self._registry_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._failed_writes: dict[Path, HandedWrite] = {}  # a service's files, handed over again with the next batch
        self._write_errors: dict[Path, StateFileError] = {}  # writes failed since the last flush(), by file
        try:
            (self.state_dir / ELEMENTS_FOLDER).mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StateFileError(f"cannot use state directory {self.state_dir}: {error.strerror or error}") from error
        if not os.access(self.state_dir, os.W_OK):
            raise StateFileError(f"state directory {self.state_dir} is not writable")
        self._lock = StateDirectoryLock(self.state_dir)
        self._lock.acquire()  # before anything is read: another system may be writing it
        try:
            self._open()
        except BaseException:
            self._lock.release()
            raise
        # On the wall clock the DMS runs its timers itself, like a real one.
        self._owns_clock = isinstance(self.clock, RealClock) and not self.clock.running
        if self._owns_clock:
            self.clock.start()

    def _open(self) -> None:
        autosave_seconds = self._autosave_seconds
        self._registry = RegistryStore(self.state_dir / REGISTRY_FILE)
        # Platform services beyond single elements (alarms, ticketing, automation) keep their own
        # state beside the elements' and are saved in the same batches (see `SystemService`).
        self._services: list[SystemService] = []
        # Before the elements load: their start-up QActions may start scripts.
        self.automation = Automation(self)
        # Before the elements load: starting elements evaluate their alarm templates.
        self.alarms = AlarmManager(self)
        # Before the elements load too: their start-up QActions may subscribe to ticket events.
        self.tickets = Ticketing(self)
        self.requests = ElementRequests(self)
        # What QActions reach of these services, through the engine's seam (`protocol.host`).
        self.qaction_services = DmsQActionServices(self)
        # Services save in the order they are added: alarms before tickets, since tickets link
        # alarm ids, so a batch never writes a ticket linking an alarm id it has not saved yet.
        self._add_service(self.alarms)
        self._add_service(self.tickets)
        # Should the alarms' save have failed (or an alarm opened between the two saves) before
        # a crash, tickets.json may still link alarm ids that alarms.json does not know: these
        # ids are never given out again.
        self.alarms._reserve_ids(alarm_id for ticket in self.tickets.query() for alarm_id in ticket.alarms if type(alarm_id) is int)
        self._load()
        self.alarms._elements_loaded()
        # Every batch rewrites each changed file whole: batches of ticks coming fast are taken
        # together (a burst of a thousand flows wrote 100 MB a second tick by tick).
        self.clock.add_tick_listener(self._flush_quietly, min_gap=self._batch_gap_seconds)
        self._autosave = (
            None if self.clock.ticks_end_in_one_place else self.clock.every(autosave_seconds, self._flush_quietly, tag=self)
        )

    # -- elements ---------------------------------------------------------------------------

    @property
    def elements(self) -> list[Element]:
        return list(self._elements.values())

    def create_element(
        self,
        protocol: type[Protocol],
        name: str,
        *,
        connection: Connection | None = None,
        agent_id: int | None = None,
        element_id: int | None = None,
        parameters: Mapping[int | str, Any] | None = None,
        start: bool = True,
    ) -> Element:
        """A new element of `protocol`; it starts (after-startup QActions, timers) unless ``start=False``.

        `parameters` gives write parameters their first values (by id or name), as if they were
        the defaults: no QAction runs for them, and the start-up work already sees them. A bad
        one raises before anything is created.
        """
        self._check_open()
        if not isinstance(protocol, type) or not issubclass(protocol, Protocol):
            raise TypeError(f"{protocol!r} is not a Protocol class")
        initial = _initial_values(protocol, parameters or {})
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"element name {name!r} must be a non-empty string")
        if name in self._by_name:
            raise DuplicateElementError(f"an element named {name!r} already exists")
        agent_id = self.agent_ids[0] if agent_id is None else agent_id
        if agent_id not in self.agent_ids:
            raise ValueError(f"agent {agent_id} is not part of this DMS (agents: {list(self.agent_ids)})")
        files = element_files(self.state_dir)
        if element_id is None:
            # Past the ids of state files too: a file the registry lost is never taken over.
            element_id = 1 + max((eid for aid, eid in (*self._elements, *files) if aid == agent_id), default=0)
        if (agent_id, element_id) in self._elements:
            raise DuplicateElementError(f"element id {agent_id}/{element_id} is taken by {self._elements[agent_id, element_id].name!r}")
        if (agent_id, element_id) in files:
            raise DuplicateElementError(
                f"element id {agent_id}/{element_id} has a state file the registry does not name, "
                f"{files[agent_id, element_id]}; it is kept: move it away or choose another id"
            )
        spec = protocol.connection
        if connection is None:
            connection = Connection(port=spec.default_port if spec else None)
            if spec is not None:  # kept for tests and demos, but said: a real device is elsewhere
                _logger.warning(
                    "element %r (protocol %r) was created without a connection, so it talks to %s; "
                    "pass connection=Connection(host=..., port=...) to reach its device",
                    name, protocol.name, spec.address_of(connection),
                )
        elif (connection.username or connection.password) and not (spec and spec.credentials):
            raise ValueError(f"protocol {protocol.name!r} takes no credentials on its connection; leave username and password out")
        store = ElementStore(element_path(self.state_dir, agent_id, element_id))
        element = Element(self, protocol, name, agent_id, element_id, connection, store)
        element._set_initial(initial)
        element._mark_dirty()  # its file exists from the first batch on: a missing one is then a loss
        self._register(element)
        if start:
            element.start()
        return element

    def find(self, ref: ElementRef) -> Element | None:
        """An element by name, ``"AGENT/ELEMENT"`` ids (``"1/12"``), (agent id, element id) or
        itself, or None; a name that looks like ids wins over them. A ref of another kind raises
        `TypeError`."""
        if isinstance(ref, str):
            element = self._by_name.get(ref)
            if element is not None:
                return element
        elif isinstance(ref, Element):
            return ref if self._elements.get(ref.ids) is ref else None
        ids = element_ids(ref)
        return None if ids is None else self._elements.get(ids)

    def element(self, ref: ElementRef) -> Element:
        """`find`, but an element that is not there raises `ElementNotFoundError` listing those that are."""
        element = self.find(ref)
        if element is None:
            raise element_not_found(ref, self._elements.values(), "this DMS")
        return element

    def stop_element(self, ref: ElementRef) -> None:
        self.element(ref).stop()

    def delete_element(self, ref: ElementRef) -> None:
        """Stop the element and remove it with its saved state."""
        element = self.element(ref)
        self.alarms._element_deleted(element)  # before the stop: its alarms clear as deleted, not stopped
        element.stop()
        del self._elements[element.ids]
        del self._by_name[element.name]
        self.tickets._element_deleted(element)  # its ticket subscriptions end with it
        self.automation._element_deleted(element)  # scripts waiting for its parameters fail: nothing will set them
        self._dirty_elements.discard(element)
        element._delete_state()
        self._registry_dirty = True
        self._write_registry_if_dirty()  # at once: the registry must not name an element whose file is gone

    # -- between elements -------------------------------------------------------------------

    def get_parameter(self, ref: ElementRef, parameter: int | str) -> Any:
        """A parameter of any element, by element name or ids and parameter id or name."""
        return self.element(ref).get(parameter)

    def set_parameter(self, ref: ElementRef, parameter: int | str, value: Any, *, _depth: int = 0) -> None:
        """Set a write parameter of any element; its QActions run on that element's queue."""
        self.element(ref).set(parameter, value, wait=False, _depth=_depth)

    # -- persistence ------------------------------------------------------------------------

    def flush(self) -> list[StateFileError]:
        """Save the element list and every element whose saved values changed, and return once
        everything handed to the writer thread is on disk; answers the errors (each also
        logged), with those of the batches' writes that failed since the last flush. An element
        running a QAction is saved once that QAction is done, without holding up the others'."""
        with self._flush_lock:
            errors = self._flush_locked()
        for element in list(self._elements.values()):
            if element._save_queued:  # its batch save waits for its turn: wait for that turn
                try:
                    element.save()
                except StateFileError as error:
                    errors.append(error)
                    element.log(str(error), LogType.ERROR)
        wait_for_writes()
        # Popped one by one: the writer thread may add one meanwhile (of a later batch's write).
        failed = [self._write_errors.pop(path) for path in list(self._write_errors)]
        return [*errors, *(error for error in failed if error not in errors)]

    def _flush_locked(self) -> list[StateFileError]:
        """One batch: snapshots taken and encoded here, written by the writer thread (the
        caller does not wait for the disk; see `dmemu.protocol.storage`)."""
        errors: list[StateFileError] = []
        with deferred_writes(self._write_failed, report=self._write_reported):
            self._flush_files(errors)
        return errors

    def _write_failed(self, write: HandedWrite) -> None:
        """A batch's write of the registry or a service's file failed (on the writer thread):
        logged, and written again with the next batch (element files: `Element._write_failed`)."""
        _logger.error("%s", write.error)
        if write.path == self._registry.path:
            self._registry_dirty = True  # rewritten whole, as it is then
        else:
            self._failed_writes.setdefault(write.path, write)  # the oldest kept: a newer one may follow it

    def _write_reported(self, write: HandedWrite) -> None:
        if write.error is not None:  # (only failed writes are reported)
            self._write_errors[write.path] = write.error  # for the next flush(); the latest failure per file

    def _flush_files(self, errors: list[StateFileError]) -> None:
        try:
            self._write_registry_if_dirty()
        except StateFileError as error:
            errors.append(error)
            _logger.error("%s", error)
        while self._dirty_elements:
            try:
                element = self._dirty_elements.pop()
            except KeyError:  # emptied by another thread since the test
                break
            error = element._save_soon()  # now, or first in line on a busy element's own queue
            if error is not None:
                errors.append(error)
        for element in list(self._elements.values()):
            if element._dirty and not element._save_queued:
                self._dirty_elements.add(element)  # failed saves are retried on the next batch
        for path in list(self._failed_writes):  # before the services' newer writes of them
            self._failed_writes.pop(path).retry()
        for service in self._services:
            try:
                service.save_if_dirty()  # a failed save stays dirty and is retried with the next batch
            except StateFileError as error:
                errors.append(error)
                _logger.error("%s", error)

    def _flush_quietly(self) -> None:
        """The batch at the end of a tick; skipped while another flush is still writing."""
        dirty = self._dirty_elements or self._registry_dirty or self._failed_writes or any(service.dirty for service in self._services)
        if dirty and self._flush_lock.acquire(False):
            try:
                self._flush_locked()
            finally:
                self._flush_lock.release()

    def close(self) -> None:
        """Save everything and let go of the clock; elements keep their state for the next DMS."""
        if self._closed:
            return
        self._closed = True
        for element in list(self._elements.values()):
            element._end_started_exchanges()  # nothing waits for a device's answer while closing
        if self._owns_clock:
            self.clock.stop()  # lets running QActions finish first
        self.automation._close()
        if self._autosave is not None:
            self.clock.cancel(self._autosave)
        self.clock.remove_tick_listener(self._flush_quietly)
        for element in list(self._elements.values()):
            element._cancel_timers()
            element._queue.run_exclusive(element.close_connection)
            if element._dirty:
                self._dirty_elements.add(element)
        errors = self.flush()
        for element in list(self._elements.values()):
            element._state = ElementState.STOPPED  # in memory only: the registry keeps their state
        self._lock.release()
        if errors:
            raise errors[0]

    def serve(
        self, port: int = 0, *, host: str = "127.0.0.1", token: str | None = None, simulators: Any = None
    ) -> WebServer:
        """Serve this DMS's REST API on `host`:`port` (0: a free port) in the background, until
        the answer's `stop()`; its `url` and `token` (random unless given) are what clients need.
        `simulators` (a `dmemu.simulators.Simulators`) adds their faults and request log."""
        from ..web import serve  # the web face: loaded only when asked for, never by the system itself

        return serve(self, port=port, host=host, token=token, simulators=simulators)

    def __enter__(self) -> DataMinerSystem:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<DataMinerSystem {str(self.state_dir)!r}: {len(self._elements)} elements>"

    @property
    def closed(self) -> bool:
        """True from the start of `close()`: long work in QActions may give up early then."""
        return self._closed

    def _add_service(self, service: SystemService) -> None:
        """Plug in a platform service: saved with every batch and on close, after the services
        added before it (a service that refers to another one's state is added after it)."""
        self._services.append(service)

    # -- internals --------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise DmemuError("this DataMinerSystem is closed")

    def _register(self, element: Element) -> None:
        self._elements[element.ids] = element
        self._by_name[element.name] = element
        self._registry_dirty = True

    def _element_state_changed(self, element: Element, *, write_now: bool = False) -> None:
        """Starts are written with the next batch; stops and pauses at once, as a user expects."""
        if self.find(element) is element:
            self.alarms._element_state_changed(element)
            self._registry_dirty = True
            if write_now:
                self._write_registry_if_dirty()

    def _element_dirty(self, element: Element) -> None:
        self._dirty_elements.add(element)

    def _write_registry_if_dirty(self) -> None:
        with self._registry_lock:  # the clock's autosave and a user's stop may write at once
            if self._registry_dirty:
                self._registry_dirty = False
                try:
                    self._save_registry()
                except StateFileError:
                    self._registry_dirty = True
                    raise

    def _save_registry(self) -> None:
        records = [
            {
                "name": e.name,
                "agent_id": e.agent_id,
                "element_id": e.element_id,
                "protocol": protocol_path(e.protocol),
                "state": e.state.value,
                "connection": e.connection.to_record(),
            }
            for e in list(self._elements.values())
        ]
        self._registry.save(records, saved_at=self.clock.now())  # the time: see `_continue_after`

    def _continue_after(self, *saved_times: float | None) -> None:
        """Time never goes back for saved state: a virtual clock whose start nobody chose moves to
        the latest time the state directory was saved at (its registry's and element files'
        records of it); a clock started earlier on purpose keeps its time, with a warning."""
        saved_at = max((time for time in saved_times if time is not None), default=None)
        now = self.clock.now()
        if saved_at is None or saved_at <= now:
            return
        if isinstance(self.clock, VirtualClock) and not self.clock.start_given:
            self.clock.skip_to(saved_at)
            _logger.info("state directory %s was saved at %s: the clock continues from there", self.state_dir, _format_time(saved_at))
            return
        _logger.warning(
            "state directory %s was saved at %s, later than its clock's time %s: time goes back for its elements "
            "(the clock's start was chosen; a VirtualClock() without a start continues after the saved time)",
            self.state_dir, _format_time(saved_at), _format_time(now),
        )

    def _load(self) -> None:
        loaded: list[tuple[Element, ElementState]] = []
        for record in read_element_records(self._registry, self._protocols):
            if record.agent_id not in self.agent_ids:
                self.agent_ids = (*self.agent_ids, record.agent_id)
            store = ElementStore(element_path(self.state_dir, record.agent_id, record.element_id))
            element = Element(self, record.protocol, record.name, record.agent_id, record.element_id, record.connection, store, loaded=True)
            self._register(element)
            loaded.append((element, record.state))
        unregistered = element_files(self.state_dir).keys() - self._elements.keys()
        self.unregistered_files = tuple(element_path(self.state_dir, *ids) for ids in sorted(unregistered))
        if self.unregistered_files:
            _logger.warning(
                "%s: the registry %s does not name these element state files, which are kept as they are: %s",
                self.state_dir, REGISTRY_FILE, ", ".join(str(path) for path in self.unregistered_files),
            )
        self._continue_after(self._registry.saved_at(), *(element._saved_at for element, _ in loaded))
        # Start only once every element exists, so start-up QActions can reach each other.
        for element, state in loaded:
            if state is ElementState.ACTIVE:
                element.start()
            elif state is ElementState.PAUSED:
                element._restore_paused()


def _format_time(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat()


def _initial_values(protocol: type[Protocol], parameters: Mapping[int | str, Any]) -> dict[int, Any]:
    """Checked first values of write parameters, by id."""
    targets = protocol.model.write_targets
    values: dict[int, Any] = {}
    for ref, value in parameters.items():
        target = targets.get(ref)
        if target is None:
            pid = protocol.model.resolve(ref)  # raises UnknownParameterError for a name or id it lacks
            raise ReadOnlyParameterError(f"protocol {protocol.name!r}: parameter {pid} is not a write parameter, so it takes no first value")
        parameter, check = target[0], target[1]
        values[parameter.id] = check(value)
    return values
