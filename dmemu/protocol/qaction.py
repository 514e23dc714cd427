"""The `protocol` object a QAction receives: DataMiner's SLProtocol, in Python.

Semantics follow the real API: a parameter set answers with a status instead of raising, and
fires the QActions triggered on that parameter even when the value does not change; `add_row`
does nothing for an existing key; in `set_row` a None cell keeps the old value; `get_row` of a
missing key is a row of Nones; `fill_array` replaces a table, `fill_array_no_delete` upserts.
Columns are named by parameter id, name, or 1-based position.

A QAction that handles what was set on its trigger parameter (a request from another element, a
ticket event from `Ticketing.subscribe_element`) reads it from `trigger_value`, not from the
parameter: on a busy element a set queued behind the QAction may already have overwritten it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from .errors import (
    DmemuError,
    InvalidValueError,
    MessageFormatError,
    UnknownParameterError,
)
from .logs import LogLevel, LogType
from .messages import Reply, ReplyAddress, Request
from .tables import RowInput, TableData

if TYPE_CHECKING:
    from .element import Element, ElementRef
    from .http import ElementSession
    from .serial import SerialPort


class SetStatus(enum.Enum):
    OK = "ok"
    UNKNOWN_PARAMETER = "unknown parameter"
    NOT_SETTABLE = "not a settable parameter"
    INVALID_VALUE = "invalid value"
    FAILED = "failed"

    def __bool__(self) -> bool:
        return self is SetStatus.OK


_OK = SetStatus.OK  # a module constant: enum attribute lookups are slow in hot paths


class _TableRef(Exception):
    """A parameter reference named a table (`QActionProtocol._parameter`): each caller refuses
    it in its own words."""

    def __init__(self, label: str) -> None:
        super().__init__(label)
        self.label = label


class QActionProtocol:
    """What a QAction can do with its element (one per element; QActions never overlap)."""

    def __init__(self, element: Element) -> None:
        self.element = element
        self._trigger: int | None = None
        self._row_key: str | None = None
        self._trigger_value: Any = None
        self._depth = 0
        # Each name or id a QAction used for a parameter (not a table) -> (id, checker): resolved
        # once, as QActions get and set the same few parameters on every run.
        self._parameter_refs: dict[int | str, tuple[int, Callable[[Any], Any]]] = {}

    # -- context ----------------------------------------------------------------------------

    @property
    def trigger_parameter(self) -> int | None:
        """GetTriggerParameter: the parameter whose set started this QAction (None for timers/startup)."""
        return self._trigger

    @property
    def trigger_value(self) -> Any:
        """The value the set that started this QAction stored (for a cell, the cell's value);
        None for timers and start-up. Read requests and ticket events here, not from the
        parameter: a set queued behind this QAction may already have overwritten that."""
        return self._trigger_value

    @property
    def set_by_qaction(self) -> bool:
        """Whether the set that started this QAction came from a QAction (this element's own
        bookkeeping, a timer's or start-up QAction included, or another element's QAction)
        rather than from a user, a script or a test: a write parameter that also shows the
        element's state tells a user's set by this. (A QAction's sets count at least one link of
        a QAction chain, so the QAction they trigger runs at depth 2 or more.)"""
        return self._depth > 1

    @property
    def row_key(self) -> str | None:
        """RowKey: the row whose cell started a row-level QAction."""
        return self._row_key

    @property
    def element_name(self) -> str:
        return self.element.name

    @property
    def http(self) -> ElementSession:
        """The element's HTTP connection (base URL, timeout, retries, proxy, auth)."""
        return self.element.http

    @property
    def serial(self) -> SerialPort:
        """The element's serial (TCP stream) connection: `exchange`, `http_exchange`, `set_target`."""
        return self.element.serial

    @property
    def tickets(self) -> Any:
        """The DataMiner System's ticketing (`dms.tickets`, a `dmemu.dms.QActionTicketing`):
        ticket types, tickets, events. Its ticket changes continue this QAction's chain, as a
        set does, so loops through ticket events meet the loop guard."""
        return self.element.dms.qaction_services.tickets(self.element, self._depth)

    def has_licence(self, name: str) -> bool:
        """Whether the DataMiner System holds the licence `name` (``"Ticketing"``, ...)."""
        return self.element.dms.qaction_services.has_licence(name)

    def now(self) -> float:
        """The DMS clock, in epoch seconds (virtual in tests)."""
        return self.element._clock.now()

    def log(self, message: str, type: LogType | None = None, level: LogLevel | int = 0) -> None:
        """Log(message, type, level)."""
        self.element.log(message, type or LogType.INFORMATION, LogLevel(level))

    # -- parameters -------------------------------------------------------------------------

    def masked(self, text: str) -> str:
        """`text` with the element's passwords replaced by ``********``, as its log does: for
        text that goes into parameters and tables (an error answer may echo a request)."""
        return self.element._mask_secrets(text)

    def _parameter(self, ref: int | str) -> tuple[int, Callable[[Any], Any]]:
        """(id, checker) of the parameter `ref` names, kept for the next call; raises
        `UnknownParameterError` for an unknown name or id, `_TableRef` for a table."""
        model = self.element._model
        pid = model.resolve(ref)
        if pid in model.tables:
            raise _TableRef(model.tables[pid].table.label)
        target = self._parameter_refs[ref] = (pid, model.checkers[pid])
        return target

    def get_parameter(self, ref: int | str) -> Any:
        target = self._parameter_refs.get(ref)
        if target is None:
            try:
                target = self._parameter(ref)
            except _TableRef as table:
                raise UnknownParameterError(f"{table.label} is a table: read it with get_row, get_keys or get_column") from None
        return self.element._values[target[0]]

    def get_parameters(self, refs: Iterable[int | str]) -> list[Any]:
        return [self.get_parameter(ref) for ref in refs]

    def set_parameter(self, ref: int | str, value: Any) -> SetStatus:
        """SetParameter: store, then queue the QActions it triggers. Answers a status."""
        target = self._parameter_refs.get(ref)
        try:
            if target is None:
                target = self._parameter(ref)
            if value is not None:
                value = target[1](value)
        except _TableRef as table:
            self.element.log(f"set_parameter({ref!r}) refused: {table.label} is a table: use fill_array or set_row", LogType.ERROR)
            return SetStatus.NOT_SETTABLE
        except UnknownParameterError as error:
            self.element.log(f"set_parameter({ref!r}) refused: {error}", LogType.ERROR)
            return SetStatus.UNKNOWN_PARAMETER
        except InvalidValueError as error:
            self.element.log(f"set_parameter({ref!r}) refused: {error}", LogType.ERROR)
            return SetStatus.INVALID_VALUE
        self.element._apply_set(target[0], value, self._depth or 1)  # at least 1: set by a QAction (see set_by_qaction)
        return _OK

    def set_parameters(self, values: dict[int | str, Any]) -> SetStatus:
        """SetParameters: every value is set; the first failure is answered."""
        answer = _OK
        for ref, value in values.items():
            status = self.set_parameter(ref, value)
            if answer is _OK:
                answer = status
        return answer

    # -- other elements ----------------------------------------------------------------------

    def get_element_parameter(self, element: ElementRef, ref: int | str) -> Any:
        """Read a parameter of another element in the DMS, by its name or (agent id, element id)."""
        return self.element.dms.get_parameter(element, ref)

    def set_element_parameter(self, element: ElementRef, ref: int | str, value: Any) -> SetStatus:
        """Set a write parameter of another element; its QActions run on its own queue."""
        return self._set_on(element, ref, value, max(self._depth, 1))

    def _set_on(self, element: ElementRef, ref: int | str, value: Any, depth: int, found: Element | None = None) -> SetStatus:
        """Set `ref` of another element (`found`, when the caller already looked `element` up)."""
        try:
            if found is None:
                self.element.dms.set_parameter(element, ref, value, _depth=depth)
            else:
                found.set(ref, value, wait=False, _depth=depth)  # what the DMS's set_parameter does once found
        except DmemuError as error:
            self.element.log(f"set on element {element!r} parameter {ref!r} refused: {error}", LogType.ERROR)
            return SetStatus.FAILED
        return SetStatus.OK

    def send_request(self, element: ElementRef, parameter: int | str, body: Any, reply_parameter: int | str) -> str:
        """Set a request (a JSON envelope, see `messages`) on another element's string parameter,
        answered on `reply_parameter` of this element (a write parameter: its QActions run on the
        answer). Answers the request id.

        A request that cannot be delivered gets an error reply on `reply_parameter` instead,
        after this QAction, and is logged here: no such element, stopped, paused, a wrong
        parameter, and also a target that was busy and stopped or paused before the request's
        turn came. The target's QAction reads the request with `protocol.request`. This
        QAction's own mistakes raise: a body that is not JSON (`InvalidValueError`), a reply
        parameter that is unknown or not a write parameter (`UnknownParameterError`).
        """
        model = self.element._model
        reply_pid = model.resolve(reply_parameter)
        if reply_pid not in model.writable:
            raise UnknownParameterError(f"{model.parameters[reply_pid].label} is not a write parameter, so no reply can be set on it")
        request = Request.new(ReplyAddress(*self.element.ids, reply_pid), body)
        request._text_to_send()  # a body that is not JSON is this QAction's mistake: raised here
        self.element.dms.qaction_services.send_request(self, element, parameter, request, self._depth)
        return request.id

    @property
    def request(self) -> Request:
        """The request whose set started this QAction (`trigger_value`); `MessageFormatError` if
        there is none. Read from the set, not the parameter, so two requests queued on a busy
        element are each answered once."""
        if self._trigger is None:
            raise MessageFormatError(f"{self.element.name!r}: this QAction was not started by a parameter set, so it has no request")
        return Request.from_json(self._trigger_value)

    def reply(self, request: Request, answer: Any = None, *, error: str | None = None) -> SetStatus:
        """Answer `request` on its reply-to parameter, with `answer` or, for a refusal, `error`.

        An error reply too long for the caller's reply parameter is cut to fit (its text ends
        in ``...``): a caller must hear that its request failed, if not every detail."""
        return self.element.dms.qaction_services.reply(self, request, Reply(request.id, answer, error), self._depth)

    def run_script(self, name: str, input: Any = None) -> Any:
        """Start an automation script (`Automation.run`, answering its `dmemu.dms.ScriptRun`); it
        runs once this QAction is done, never inside it. A name nobody registered raises
        `UnknownScriptError`."""
        return self.element.dms.qaction_services.run_script(name, input)

    # -- cells and rows ---------------------------------------------------------------------

    def _data(self, table: int | str) -> TableData:
        element = self.element
        tid = element._model.table_ids.get(table)
        # `element._table` spelled out for a ref that names a table: every table operation's path.
        return element._table(table) if tid is None else element._tables[tid]

    def _table_changed(self, data: TableData, keys: Iterable[str] | None, removed: Iterable[str] = ()) -> None:
        """Mark the element for saving and tell its change listeners which rows changed (None: any)."""
        element = self.element
        table_id = data.model.table.id
        if table_id in element._model.saved_tables:
            element._mark_dirty()
        if element._change_listeners:
            element._notify_table(table_id, None if keys is None else frozenset(keys), frozenset(removed))

    def get_cell(self, table: int | str, key: str, column: int | str) -> Any:
        """GetParameterIndexByKey: None when the row does not exist."""
        data = self._data(table)
        row = data.rows.get(key)
        return None if row is None else row[data.model.column_position(column)]

    def set_cell(self, table: int | str, key: str, column: int | str, value: Any) -> SetStatus:
        """SetParameterIndexByKey: fires the QActions triggered on that column (with the row key)."""
        data = self._data(table)
        try:
            index = data.model.column_position(column)
            if key not in data.rows:
                raise UnknownParameterError(f"{data.label} has no row {key!r}")
            self.element._apply_cell(data, key, index, value, self._depth)
        except UnknownParameterError as error:
            self.element.log(f"set_cell refused: {error}", LogType.ERROR)
            return SetStatus.UNKNOWN_PARAMETER
        except InvalidValueError as error:
            self.element.log(f"set_cell refused: {error}", LogType.ERROR)
            return SetStatus.INVALID_VALUE
        return SetStatus.OK

    def add_row(self, table: int | str, row: RowInput) -> bool:
        """AddRow: True when added; an existing key is left as it is (False)."""
        data = self._data(table)
        key = data.add(row)
        if key is None:
            return False
        self._table_changed(data, (key,))
        return True

    def set_row(self, table: int | str, key: str, row: RowInput) -> bool:
        """SetRow: None cells keep their value, a short row updates the leading columns.
        False when the key does not exist."""
        data = self._data(table)
        updated = data.update(key, row)
        if updated:
            self._table_changed(data, (key,))
        return updated

    def delete_row(self, table: int | str, key: str | Iterable[str]) -> int:
        """DeleteRow: remove one key or several; answers how many rows went."""
        data = self._data(table)
        keys = [key] if isinstance(key, str) else list(key)
        gone = [k for k in keys if data.rows.pop(k, None) is not None]
        if gone:
            self._table_changed(data, (), gone)
        return len(gone)

    def get_row(self, table: int | str, key: str) -> list[Any]:
        """GetRow: the cells in column order, or a row of Nones when the key does not exist."""
        data = self._data(table)
        row = data.rows.get(key)
        return [None] * data.model.width if row is None else list(row)

    def get_keys(self, table: int | str) -> list[str]:
        return list(self._data(table).rows)

    def exists(self, table: int | str, key: str) -> bool:
        return key in self._data(table).rows

    def row_count(self, table: int | str) -> int:
        return len(self._data(table).rows)

    def get_column(self, table: int | str, column: int | str) -> dict[str, Any]:
        """One column as {key: value}."""
        data = self._data(table)
        index = data.model.column_position(column)
        rows = data.rows
        return dict(zip(rows, map(itemgetter(index), rows.values())))  # C-level: called per round on big tables

    def fill_array(self, table: int | str, rows: Iterable[Sequence[Any]]) -> None:
        """FillArray: the table becomes exactly `rows` (cells in column order, key included)."""
        data = self._data(table)
        before = data.rows.keys() if self.element._change_listeners else None
        data.fill(rows)
        self._table_changed(data, None, () if before is None else before - data.rows.keys())

    def fill_array_no_delete(self, table: int | str, rows: Iterable[Sequence[Any]]) -> None:
        """FillArrayNoDelete: add new rows and update existing ones; other rows stay."""
        data = self._data(table)
        rows = rows if isinstance(rows, Sequence) else list(rows)
        data.fill_no_delete(rows)
        self._table_changed(data, [data.key_of(row) for row in rows] if self.element._change_listeners else None)

    def clear_table(self, table: int | str) -> None:
        data = self._data(table)
        removed, data.rows = data.rows.keys(), {}
        self._table_changed(data, (), removed)

    # -- alarms -----------------------------------------------------------------------------

    def active_alarms(self, parameter: int | str | None = None, severity: Any = None) -> list[Any]:
        """This element's active alarms (`dmemu.dms.Alarm`), oldest first: of one parameter or
        column, of at least `severity` (a `dmemu.dms.Severity`)."""
        return self.element.dms.qaction_services.active_alarms(self.element, severity=severity, parameter=parameter)

    def set_alarm_property(self, alarm_id: int, key: str, value: str) -> SetStatus:
        """Set a property of any alarm in the DMS (SES keeps the SNOW ticket id, incident number and
        link there). Answers a status; a refusal (unknown alarm, a value that is no string) is logged."""
        try:
            self.element.dms.qaction_services.set_alarm_property(alarm_id, key, value)
        except DmemuError as error:
            self.element.log(f"set_alarm_property({alarm_id!r}, {key!r}) refused: {error}", LogType.ERROR)
            return SetStatus.FAILED
        return SetStatus.OK
