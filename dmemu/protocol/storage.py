"""Snapshots on disk: tinydb documents written atomically, in batches, by a writer thread.

tinydb rewrites its whole file on every write and writes in place, so a crash mid-write
breaks the file. Here live state stays in memory and a snapshot is written once per batch
through `AtomicJSONStorage`: serialise, write a temporary file, fsync, `os.replace`, fsync the
directory. A kill at any instant leaves either the previous snapshot or the new one.

The snapshot is taken and encoded by the caller; only the bytes go to one writer thread per
process (`StateFileWriter`), which writes them in the order they were handed over. Inside a
`deferred_writes` block (the DMS's batch at the end of a tick) a write is handed over and the
caller goes on at once; anywhere else a write returns once it is on disk, and reads wait for
the writes of their file. The lag is bounded by what was handed over: a kill loses at most the
batches not written yet (each file then holds its previous snapshot, never half of one); every
write someone needs durable (an explicit save, a stop, `flush`, `close`, a deletion, a read)
waits for everything handed over before it.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import math
import os
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import chain, repeat
from operator import is_
from pathlib import Path
from typing import Any

import attrs
from tinydb import TinyDB
from tinydb.storages import Storage

from .errors import StateFileError
from .json_text import json_encoder
from .tables import RowChanges

_logger = logging.getLogger("dmemu.storage")

_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})

_ELEMENT_STATES = frozenset({"Active", "Paused", "Stopped"})
"""The values of `element.ElementState` (not imported: element.py imports this module)."""

REGISTRY_FILE = "dms.json"
"""The DMS's own file in its state directory: which elements exist (see `RegistryStore`)."""


ELEMENTS_FOLDER = "elements"
"""The folder of the element state files in a DMS state directory."""


def element_path(state_dir: Path, agent_id: int, element_id: int) -> Path:
    """Where the state file of one element lives in a DMS state directory."""
    return state_dir / ELEMENTS_FOLDER / f"{agent_id}-{element_id}.json"


_ELEMENT_FILE = re.compile(r"(\d+)-(\d+)\.json")


def element_files(state_dir: Path) -> dict[tuple[int, int], Path]:
    """The element state files in a DMS state directory, by (agent id, element id)."""
    folder = state_dir / ELEMENTS_FOLDER
    found: dict[tuple[int, int], Path] = {}
    with contextlib.suppress(FileNotFoundError):
        for path in folder.iterdir():
            match = _ELEMENT_FILE.fullmatch(path.name)
            if match:
                found[int(match[1]), int(match[2])] = path
    return found


_RECORD_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "agent_id": (int,),
    "element_id": (int,),
    "protocol": (str,),
    "state": (str,),
    "connection": (dict,),
}


class AtomicJSONStorage(Storage):
    """A tinydb storage that never leaves a half-written file and never reads one silently."""

    sync_at_once = False
    """True: the rename is made durable before anything handed over after it is written, and
    the writer never moves a later write before it (the registry: no element file may outlive
    its record); see `StateFileWriter`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.key = self.path.absolute()
        """The file whatever path it was named by: what the writer thread knows it by."""

    @property
    def temporary_path(self) -> Path:
        return self.path.with_name(f".{self.path.name}.tmp")

    def read(self) -> dict[str, dict[str, Any]] | None:
        self.wait_written()  # what was handed over for this file is what a reader must see
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise StateFileError(f"cannot read state file {self.path}: {error.strerror or error}") from error
        try:
            document = json.loads(data)
        except (ValueError, UnicodeDecodeError) as error:
            raise StateFileError(f"state file {self.path} is corrupt: {error}") from error
        if not isinstance(document, dict) or not all(isinstance(t, dict) for t in document.values()):
            raise StateFileError(f"state file {self.path} is not a tinydb document (top level must map tables)")
        for name, table in document.items():
            for doc_id, record in table.items():
                # tinydb turns document ids into ints and documents into dicts; anything else
                # would fail later inside tinydb with an error that does not name the file.
                if not _is_document_id(doc_id) or not isinstance(record, dict):
                    raise StateFileError(
                        f"state file {self.path} is not a tinydb document: table {name!r} holds "
                        f"{doc_id!r}: {type(record).__name__} (documents are objects under integer ids)"
                    )
        return document

    def write(self, data: Mapping[str, Mapping[str, Any]]) -> None:
        self.write_encoded(self.encode(data))

    def encode(self, value: Any) -> str:
        """`value` as the file's JSON (compact, no NaN); `StateFileError` naming the file when it cannot be."""
        try:
            return _encode(value)
        except (TypeError, ValueError, RecursionError) as error:  # RecursionError: nested too deep to save
            raise StateFileError(f"cannot save state file {self.path}: {error}; the previous snapshot is kept") from error

    def encode_bytes(self, value: Any) -> bytes:
        """`encode`, as UTF-8 (for documents joined as bytes)."""
        return self.encode(value).encode()

    def write_encoded(self, document: str | bytes) -> None:
        """Write a document already encoded (by `encode`, or pieces of it joined; as text or its
        UTF-8 bytes): handed to the writer thread inside a `deferred_writes` block, else on disk
        when this returns."""
        payload = document if type(document) is bytes else document.encode()  # type: ignore[union-attr]
        batch: _Batch | None = getattr(_batch_of_thread, "batch", None)
        if batch is not None:
            _writer.hand_over(self, payload, batch)
            return
        write = _writer.hand_over(self, payload, None)
        _writer.wait_for(write.position)
        if write.error is not None:
            raise write.error

    def wait_written(self) -> None:
        """Return once every write of this file handed over so far is done (written or failed)."""
        _writer.wait_for_path(self.key)

    def _write_atomically(self, payload: bytes) -> None:
        """Temporary file, fsync, rename; the directory is synced by the caller (the writer)."""
        temporary = self.temporary_path
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Owner-only: state holds what elements need to log in again (their passwords).
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                view = memoryview(payload)
                while view:
                    view = view[os.write(descriptor, view) :]
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            os.replace(temporary, self.path)
        except OSError as error:
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)  # best effort: the next write truncates it anyway
            raise StateFileError(f"cannot save state file {self.path}: {error.strerror or error}") from error

    def close(self) -> None:
        """Nothing stays open between reads and writes."""


_encode = json_encoder(compact=True, allow_nan=False)  # what ``json.dumps(value, separators=(",", ":"), allow_nan=False)`` writes


class EncodedObjects:
    """The JSON texts of immutable objects (a table's row tuples, alarms), each encoded once while
    it stays in use: a batch that changed a few of thousands re-encodes those few. Lookups are
    by object identity, at C speed: the objects last encoded are held, so an id known here is
    never another object's."""

    __slots__ = ("_objects", "_texts")

    def __init__(self) -> None:
        self._objects: list[Any] = []
        self._texts: dict[int, str] = {}

    def texts(self, objects: list[Any], encode: Callable[[Any], str]) -> list[str]:
        ids = list(map(id, objects))
        texts = list(map(self._texts.get, ids))
        if None in texts:
            for position in [position for position, text in enumerate(texts) if text is None]:
                texts[position] = encode(objects[position])
        self._objects, self._texts = objects, dict(zip(ids, texts))  # objects gone are forgotten
        return texts  # type: ignore[return-value]  # no None left


class EncodedRecords:
    """The JSON texts of a record store's records kept by key (alarm ids, ...), for an owner that
    notes which records changed since its last save: a save re-encodes those and looks at no
    other, so a batch that changed a few of thousands costs those few and one join."""

    __slots__ = ("_texts",)

    def __init__(self) -> None:
        self._texts: dict[Any, bytes] = {}

    def texts(self, keys: Iterable[Any], changed: Mapping[Any, Any], encode: Callable[[Any], bytes]) -> list[bytes]:
        """The texts of the records of `keys`, in that order: those `changed` names (key -> the
        record now, or None when it is gone) encoded anew, the others as encoded before. Every key
        is either in `changed` or among the keys of an earlier call."""
        # All encoded before any is kept: a record that cannot be encoded leaves the texts as
        # they were, for the owner to name the same changes again at its next save.
        encoded = {key: encode(record) for key, record in changed.items() if record is not None}
        texts = self._texts
        for key, record in changed.items():
            if record is None:
                texts.pop(key, None)
        texts.update(encoded)
        return list(map(texts.__getitem__, keys))


class EncodedRows:
    """The JSON of one table's rows for `ElementStore.save`. Given the `RowChanges` of an
    element's table, it encodes only the rows whose keys changed since the state it encoded
    last (their texts kept by key), and an unchanged table costs nothing. Given a plain list of
    rows, it finds the rows of the last save still there by identity (rows are immutable
    tuples: `EncodedObjects`). Either way it gives exactly what encoding the whole list gives."""

    __slots__ = ("_cache", "_rows", "_document", "_texts", "_state")

    def __init__(self) -> None:
        self._cache = EncodedObjects()
        self._rows: list[Any] = []  # the rows last encoded, and their JSON
        self._document = b"[]"
        self._texts: dict[str, bytes] | None = None  # by key: the texts of the rows of `_state`
        self._state: int | None = None  # the `RowChanges.state` the document is of

    def encode(self, rows: Iterable[Any], storage: AtomicJSONStorage) -> bytes:
        """The rows' JSON list, as UTF-8 (pieces of a document are joined as bytes: a big
        document is copied once, not once more to encode it)."""
        if isinstance(rows, RowChanges):
            return self._encode_changes(rows, storage)
        self._texts = self._state = None
        rows = list(rows)
        last = self._rows
        if len(rows) == len(last) and all(map(is_, rows, last)):  # the same row objects: unchanged
            return self._document
        if not all(type(row) is tuple for row in rows):  # a list row may change in place: never taken as unchanged
            self._cache, self._rows, self._document = EncodedObjects(), [], storage.encode(rows).encode()
        elif _mostly_new(rows, last):
            # A table filled afresh: the whole list in one encode (C speed, no text per row kept);
            # its rows get texts of their own at the first save that finds most of them unchanged.
            self._cache, self._rows, self._document = EncodedObjects(), rows, storage.encode(rows).encode()
        else:
            self._rows, self._document = rows, _joined_list(self._cache.texts(rows, storage.encode_bytes))
        return self._document

    def _encode_changes(self, changes: RowChanges, storage: AtomicJSONStorage) -> bytes:
        rows, changed = changes.rows, changes.changed
        known = changes.since == self._state and changed is not None
        self._state = None  # until done: an encode that fails leaves no state to build on
        if self._rows:  # the identity path's state is not kept up
            self._rows, self._cache = [], EncodedObjects()
        if known and not changed:
            pass  # the document is of these rows already
        elif not known or len(changed) * 2 > len(rows):  # type: ignore[arg-type]
            # Filled afresh, restored, mostly changed, or from a state this did not encode (a
            # snapshot taken before the last one written): the whole list in one encode (C
            # speed); the rows get texts of their own at the first save that changes a few.
            self._texts, self._document = None, storage.encode(list(rows.values())).encode()
        else:
            texts = self._texts
            self._texts = None  # until done: an encode that fails leaves no texts half updated
            if texts is None:
                texts = dict(zip(rows, map(storage.encode_bytes, rows.values())))
            else:
                for key in changed:  # type: ignore[union-attr]
                    row = rows.get(key)
                    if row is None:
                        texts.pop(key, None)
                    else:
                        texts[key] = storage.encode_bytes(row)
            self._document = _joined_list(map(texts.__getitem__, rows))
            self._texts = texts
        self._state = changes.state
        return self._document


def _joined_list(texts: Iterable[bytes]) -> bytes:
    """The JSON list of these encoded items, in one join (no copy of the list's text to add brackets)."""
    return b"".join(chain((b"[",), _interleaved(b",", texts), (b"]",)))


def _interleaved(separator: bytes, items: Iterable[bytes]) -> Iterator[bytes]:
    """The items with the separator between each two: ``b"".join`` of it is ``separator.join(items)``."""
    pairs = chain.from_iterable(zip(repeat(separator), items))
    next(pairs, None)  # no separator before the first
    return pairs


def _mostly_new(rows: list[Any], last: list[Any]) -> bool:
    """Whether fewer than half of `rows` were among `last` (by identity: rows are immutable)."""
    known = set(map(id, last))
    return sum(map(known.__contains__, map(id, rows))) * 2 < len(rows)


def _is_document_id(doc_id: str) -> bool:
    try:
        int(doc_id)
    except ValueError:
        return False
    return True


class HandedWrite:
    """A document handed to the writer thread: its bytes, its file, its place in line, and,
    once done, the `StateFileError` it failed with (None when it is on disk)."""

    __slots__ = ("storage", "payload", "number", "position", "segment", "handed_in", "on_failure", "report", "error")

    def __init__(
        self, storage: AtomicJSONStorage, payload: bytes, number: int, position: int, segment: _Segment, batch: _Batch | None
    ) -> None:
        self.storage = storage
        self.payload = payload
        self.number = number  # counts the documents handed over for this file: the newest has the highest
        self.position = position
        self.segment = segment  # the batch it was queued with: directories synced once per segment
        self.handed_in = segment  # the batch of the document it holds now (see `StateFileWriter.hand_over`)
        self.on_failure = batch.on_failure if batch else None
        self.report = batch.report if batch else None
        self.error: StateFileError | None = None

    @property
    def path(self) -> Path:
        return self.storage.path

    def retry(self) -> None:
        """Hand the same document over again (to the batch open on this thread, if any), unless
        a newer one of its file was handed over since: that one is written instead."""
        if _writer.newest_number(self.storage.key) == self.number:
            self.storage.write_encoded(self.payload.decode())


FailureHandler = Callable[[HandedWrite], None]
"""Told on the writer thread about a deferred write that failed (its `error` is set)."""


class _Segment:
    """Writes queued together (one batch): their directories are synced once, after the last of
    them, when no more can join (the batch is over) or someone waits for them."""

    __slots__ = ("open",)

    def __init__(self, open: bool) -> None:
        self.open = open


@attrs.define
class _Batch:
    segment: _Segment
    on_failure: FailureHandler | None
    report: FailureHandler | None


_batch_of_thread = threading.local()


@contextlib.contextmanager
def deferred_writes(on_failure: FailureHandler, *, report: FailureHandler | None = None) -> Iterator[None]:
    """Writes made on this thread inside the block are handed to the writer thread and written
    after the block, or while it runs, in order; the caller does not wait for the disk. A write
    that fails is told to `on_failure` (who must make sure a later batch writes that file again)
    and to `report`, on the writer thread. A block inside another one joins its batch: its own
    `on_failure` (and `report`, when given) apply to the writes made inside it."""
    outer: _Batch | None = getattr(_batch_of_thread, "batch", None)
    segment = outer.segment if outer is not None else _Segment(open=True)
    _batch_of_thread.batch = _Batch(segment, on_failure, report if report is not None or outer is None else outer.report)
    try:
        yield
    finally:
        _batch_of_thread.batch = outer
        if outer is None:
            _writer.close(segment)


def wait_for_writes() -> None:
    """Return once everything handed to the writer so far is done (on disk, or failed)."""
    _writer.wait_for(_writer.last_position)


class StateFileWriter:
    """The thread writing state files handed over, one at a time, in the order handed over.

    While it is busy, a newer document for a file replaces a queued one not started yet, where
    that reorders nothing: the queued one was handed over in an earlier batch, nothing after it
    in the queue comes from another batch, and the newer document's batch has queued nothing
    behind it (so it overtakes no file of its own batch that may come first for a reason). A
    write of a `sync_at_once` file (the registry) is never replaced nor overtaken, is durable
    before anything queued after it is written, and when it fails everything queued after it
    fails with it (an element file must never exist that the registry does not name)."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._queue: deque[HandedWrite] = deque()
        self._replaceable: dict[Path, HandedWrite] = {}  # queued writes a newer document may replace
        self._tail_segment: _Segment | None = None  # the segment of the last write queued
        self.last_position = 0  # the place in line given to the last write queued
        self._done_position = 0  # every write up to here is done
        self._latest: dict[Path, int] = {}  # per file, the place of its last write not done yet
        self._numbers: dict[Path, int] = {}  # per file, the number of documents handed over
        self._unsynced: list[HandedWrite] = []  # written, their directory not synced yet
        self._waiters = 0
        self._thread: threading.Thread | None = None

    def hand_over(self, storage: AtomicJSONStorage, payload: bytes, batch: _Batch | None) -> HandedWrite:
        """Queue a document for its file; `batch` None: a batch of its own, which nobody extends."""
        segment = batch.segment if batch is not None else _Segment(open=False)
        key = storage.key
        with self._condition:
            number = self._numbers[key] = self._numbers.get(key, 0) + 1
            queued = self._replaceable.get(key)
            if queued is not None and queued.handed_in is not segment and self._tail_segment is not segment:
                queued.payload, queued.number, queued.handed_in = payload, number, segment
                queued.on_failure = batch.on_failure if batch else None
                queued.report = batch.report if batch else None
                return queued
            if self._tail_segment is not segment:
                self._replaceable.clear()  # the batch before is closed for replacing: see the class
                self._tail_segment = segment
            self.last_position += 1
            write = HandedWrite(storage, payload, number, self.last_position, segment, batch)
            self._queue.append(write)
            self._latest[key] = write.position
            if storage.sync_at_once:
                self._replaceable.clear()  # nothing handed over later goes before it
            else:
                self._replaceable[key] = write
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="dmemu state file writer", daemon=True)
                self._thread.start()
                atexit.register(wait_for_writes)  # a daemon thread: an ordinary exit waits for it
            self._condition.notify_all()
            return write

    def close(self, segment: _Segment) -> None:
        """No more writes join `segment`: its directories can be synced once it is written."""
        with self._condition:
            segment.open = False
            self._condition.notify_all()

    def newest_number(self, key: Path) -> int:
        return self._numbers.get(key, 0)

    def wait_for(self, position: int) -> None:
        with self._condition:
            if self._done_position >= position or threading.current_thread() is self._thread:
                return  # (the writer itself, e.g. a failure handler reading a file, cannot wait for itself)
            self._waiters += 1  # the writer syncs what it has written now rather than wait for more
            self._condition.notify_all()
            try:
                self._condition.wait_for(lambda: self._done_position >= position)
            finally:
                self._waiters -= 1

    def wait_for_path(self, key: Path) -> None:
        position = self._latest.get(key)
        if position is not None:
            self.wait_for(position)

    def _run(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(self._has_work)
                if self._must_sync():
                    write = None
                else:
                    write = self._queue.popleft()
                    if self._replaceable.get(write.storage.key) is write:
                        del self._replaceable[write.storage.key]
            if write is None:
                self._sync()
            else:
                self._write(write)

    def _has_work(self) -> bool:
        return bool(self._queue) or self._must_sync()

    def _must_sync(self) -> bool:
        """Whether the writes waiting for their directory sync are synced before anything else."""
        if not self._unsynced:
            return False
        if self._queue:
            return self._queue[0].segment is not self._unsynced[-1].segment  # one segment at a time
        return not self._unsynced[-1].segment.open or self._waiters > 0

    def _write(self, write: HandedWrite) -> None:
        try:
            write.storage._write_atomically(write.payload)
            if write.storage.sync_at_once:
                _fsync_directory(write.path.parent)  # durable before anything queued after it
        except Exception as error:  # the writer never dies: whatever failed is the write's error
            write.error = error if isinstance(error, StateFileError) else StateFileError(f"cannot save state file {write.path}: {error!r}")
            if write.storage.sync_at_once:
                with self._condition:  # everything after it fails with it, written or not
                    behind = list(self._queue)
                    self._queue.clear()
                    self._replaceable.clear()
                for later in behind:
                    later.error = write.error
                self._unsynced.append(write)
                self._unsynced.extend(behind)
                self._sync()
                return
        self._unsynced.append(write)

    def _sync(self) -> None:
        """Sync the directories of the writes done, once each, and tell who waits for them."""
        done, self._unsynced = self._unsynced, []
        failed: dict[Path, str] = {}
        for directory in sorted({write.path.parent for write in done if write.error is None and not write.storage.sync_at_once}):
            try:
                _fsync_directory(directory)
            except OSError as error:
                failed[directory] = f"{directory}: {error.strerror or error}"
        for write in done:
            if write.error is None and write.path.parent in failed:
                write.error = StateFileError(
                    f"cannot make the saved file {write.path} durable, syncing directory {failed[write.path.parent]}"
                )
        for write in done:  # before the waiters wake: whoever waited for a write sees its failure told
            if write.error is not None:
                for handler in (write.on_failure, write.report):
                    if handler is not None:
                        try:
                            handler(write)
                        except Exception:  # a handler's bug must not stop the writer
                            _logger.exception("telling of the failed write of %s failed", write.path)
        with self._condition:
            self._done_position = done[-1].position
            for write in done:
                if self._latest.get(write.storage.key) == write.position:
                    del self._latest[write.storage.key]
            self._condition.notify_all()


_writer = StateFileWriter()


def _fsync_directory(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def open_database(path: Path) -> TinyDB:
    """A TinyDB over an atomic storage, for reading snapshots with tinydb's query API."""
    return TinyDB(path, storage=AtomicJSONStorage)


@attrs.define
class ElementSnapshot:
    """What an element saves: `save` parameter values and `save` table rows."""

    parameters: dict[int, Any] = attrs.Factory(dict)
    tables: dict[int, list[list[Any]]] = attrs.Factory(dict)
    missing: str | None = None
    """Why the file held no snapshot at all (absent, or an empty document); None when it did."""
    saved_at: float | None = None  # the clock's time at the write; None in files from before it was kept


class ElementStore:
    """The state file of one element: tinydb tables ``parameters`` and ``tables``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._storage = AtomicJSONStorage(path)
        self._rows: dict[int, EncodedRows] = {}  # per table: saved every batch, often unchanged

    def load(self) -> ElementSnapshot:
        self._storage.wait_written()
        if not self.path.exists():
            return ElementSnapshot(missing="the file does not exist")
        with open_database(self.path) as database:
            if "parameters" not in database.tables():  # every snapshot written has this table
                return ElementSnapshot(missing="the file holds no snapshot")
            parameter_docs = database.table("parameters").all()
            table_docs = database.table("tables").all()
            saved_docs = database.table(SAVED_AT_TABLE).all()
        snapshot = ElementSnapshot(saved_at=_saved_at(saved_docs, self.path))
        try:
            for document in parameter_docs:
                values = document["values"]
                if not isinstance(values, dict):
                    raise TypeError(f"parameter values are a {type(values).__name__}, not an object")
                snapshot.parameters.update((int(pid), value) for pid, value in values.items())
            for document in table_docs:
                table_id, rows = int(document["id"]), document["rows"]
                # The engine only ever writes rows of scalar cells; anything else is damage.
                if not isinstance(rows, list) or not all(type(row) is list for row in rows):
                    raise TypeError(f"rows of table {table_id} are not a list of rows")
                if not _JSON_SCALARS.issuperset(map(type, chain.from_iterable(rows))):
                    raise TypeError(f"a row of table {table_id} holds a cell that is not a scalar")
                snapshot.tables[table_id] = list(rows)
        except (KeyError, TypeError, ValueError) as error:
            raise StateFileError(f"state file {self.path} has an unexpected layout: {error!r}") from error
        return snapshot

    def save(self, parameters: Mapping[int, Any], tables: Mapping[int, Iterable[Any]], *, saved_at: float | None = None) -> None:
        """Write the snapshot; `saved_at`, the clock's time, tells a DMS opening the file later
        that its time must not start before it. The document is what tinydb would write, its
        table rows encoded by `EncodedRows`."""
        storage = self._storage
        values = storage.encode({str(pid): value for pid, value in parameters.items()})
        parts = [f'{{"parameters":{{"1":{{"values":{values}}}}},"tables":{{'.encode()]
        for position, (table_id, rows) in enumerate(tables.items(), start=1):
            encoded = self._rows.get(table_id)
            if encoded is None:
                encoded = self._rows[table_id] = EncodedRows()
            parts.append(f'{"," if position > 1 else ""}"{position}":{{"id":{storage.encode(table_id)},"rows":'.encode())
            parts.append(encoded.encode(rows, storage))  # the big part: joined once, as it is
            parts.append(b"}")
        saved = _saved_at_table(saved_at)
        parts.append(f'}}{f",{storage.encode(SAVED_AT_TABLE)}:{storage.encode(saved[SAVED_AT_TABLE])}" if saved else ""}}}'.encode())
        storage.write_encoded(b"".join(parts))

    def wait_written(self) -> None:
        """Return once the writes of this file handed over so far are done (see `StateFileWriter`)."""
        self._storage.wait_written()

    def delete(self) -> None:
        self._storage.wait_written()  # a write still queued would bring the file back
        for path in (self.path, self._storage.temporary_path):
            path.unlink(missing_ok=True)

    @property
    def set_aside_path(self) -> Path:
        return self.path.with_name(self.path.stem + ".set-aside.json")

    def set_aside(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Keep saved values a protocol no longer accepts beside the state file, added to those
        kept before, so dropping them from the element's state loses nothing for good."""
        kept = RecordStore(self.set_aside_path, "set_aside")
        kept.save([*kept.load(), *records])


SAVED_AT_TABLE = "saved"
"""The tinydb table of the element and registry files holding ``{"at": epoch seconds}``: the
clock's time when the file was written. Files written before it was kept lack it."""


def _saved_at_table(saved_at: float | None) -> dict[str, dict[str, dict[str, float]]]:
    return {} if saved_at is None else {SAVED_AT_TABLE: {"1": {"at": saved_at}}}


def _saved_at(documents: list[Any], path: Path) -> float | None:
    """The time a file says it was saved at (see `SAVED_AT_TABLE`), None when it does not say."""
    if not documents:
        return None
    at = documents[0].get("at")
    if type(at) not in (int, float) or not math.isfinite(at):
        raise StateFileError(f"state file {path}: the time it was saved at is {at!r}, not a number of epoch seconds")
    return float(at)


class RecordStore:
    """A file of records (JSON objects) in one tinydb table, written whole and atomically.

    For state beside the elements' (alarms, tickets, ...): the caller checks what the records
    hold and names this file (`path`) when they are wrong."""

    def __init__(self, path: Path, table: str) -> None:
        self.path = path
        self.table = table
        self._storage = AtomicJSONStorage(path)

    def load(self) -> list[dict[str, Any]]:
        """The saved records, in saved order; none when the file does not exist yet."""
        self._storage.wait_written()
        if not self.path.exists():
            return []
        with open_database(self.path) as database:
            return [dict(record) for record in database.table(self.table).all()]

    def save(self, records: Iterable[Mapping[str, Any]]) -> None:
        self.save_encoded(self.encode(record) for record in records)

    def encode(self, record: Mapping[str, Any]) -> bytes:
        """One record's JSON, as UTF-8, for `save_encoded` (a caller may keep it while the record
        is unchanged)."""
        return self._storage.encode_bytes(dict(record))

    def save_encoded(self, records: Iterable[bytes]) -> None:
        """Save records given as their JSON (`encode`), in this order: what `save` writes. Joined
        as bytes: a document of thousands of records is copied once, not once more to encode it."""
        records = records if isinstance(records, list) else list(records)
        numbered = chain.from_iterable(zip(_document_ids(len(records)), records))  # b'"1":', record, b',"2":', ...
        document = b"".join(chain((b"{%s:{" % self._storage.encode_bytes(self.table),), numbered, (b"}}",)))
        self._storage.write_encoded(document)


_numbered_keys: tuple[bytes, ...] = ()


def _document_ids(count: int) -> tuple[bytes, ...]:
    """The keys of `count` tinydb documents as they precede each in a table's JSON, with the
    comma before each but the first: made once for all saves (a record store saves thousands
    of records a batch)."""
    global _numbered_keys
    keys = _numbered_keys
    if len(keys) < count:  # (a thread racing here makes the same keys: either tuple is right)
        numbers = range(1, max(count, 2 * len(keys)) + 1)
        keys = _numbered_keys = tuple(f'{"," if number > 1 else ""}"{number}":'.encode() for number in numbers)
    return keys


class RegistryStore:
    """The DMS's own file: which elements exist, their protocol, ids, connection and state."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._storage = AtomicJSONStorage(path)
        self._storage.sync_at_once = True  # durable before any element file it names is written

    def load(self) -> list[dict[str, Any]]:
        self._storage.wait_written()
        if not self.path.exists():
            return []
        with open_database(self.path) as database:
            records = database.table("elements").all()
        required = {"name", "agent_id", "element_id", "protocol", "state", "connection"}
        for record in records:
            missing = required - record.keys()
            if missing:
                raise StateFileError(f"state file {self.path}: an element record lacks {sorted(missing)}")
            for field, kinds in _RECORD_TYPES.items():
                if type(record[field]) not in kinds:
                    raise StateFileError(
                        f"state file {self.path}: element record {record.get('name')!r} has "
                        f"{field} {record[field]!r}, which is not of type {kinds[0].__name__}"
                    )
            if record["state"] not in _ELEMENT_STATES:
                raise StateFileError(
                    f"state file {self.path}: element record {record['name']!r} has state {record['state']!r}; "
                    f"expected one of {sorted(_ELEMENT_STATES)}"
                )
        return [dict(record) for record in records]

    def saved_at(self) -> float | None:
        """The clock's time at the last write (None when not kept: a file from before it was)."""
        self._storage.wait_written()
        if not self.path.exists():
            return None
        with open_database(self.path) as database:
            return _saved_at(database.table(SAVED_AT_TABLE).all(), self.path)

    def save(self, records: Iterable[Mapping[str, Any]], *, saved_at: float | None = None) -> None:
        self._storage.write(
            {"elements": {str(i): dict(r) for i, r in enumerate(records, start=1)}, **_saved_at_table(saved_at)}
        )
