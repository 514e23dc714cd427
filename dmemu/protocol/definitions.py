"""Declarative protocol definitions, checked when the protocol class is created.

A connector is a subclass of `Protocol` whose class attributes are data::

    class TinyPoller(Protocol):
        name = "Tiny Poller"
        pages = (Page("General"),)
        parameters = (Parameter(10, "Item Count", type=Number(0, 1000), page="General"),)
        tables = (Table(1000, "Items", columns=(Column(1001, "ID", key=True),), page="General"),)
        timers = (Timer(1, seconds=60, qactions=(100,)),)
        qactions = (QAction(100, poll_items),)

Any inconsistency (a duplicate id, a trigger on an unknown parameter, a table without a key
column, a placement on a page that does not exist, ...) raises `DefinitionError` naming the
culprit, at import time rather than at run time.
"""

from __future__ import annotations

import difflib
import inspect
import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from .errors import DefinitionError, UnknownParameterError
from .measurement import Button, Checker, Discrete, Measurement, Number, PageButton, String

if TYPE_CHECKING:
    from .http import Connection
    from .serial import Framing


def _sequence(value: Any) -> Any:
    """A tuple from a tuple or list; anything else is kept as given, for the protocol check to
    refuse naming the protocol (a converter raising here could not say which protocol)."""
    return tuple(value) if isinstance(value, (tuple, list)) else value


@attrs.frozen
class Parameter:
    """A numbered parameter. ``write=True`` makes it settable by users and other elements."""

    id: int
    name: str
    type: Measurement = String()
    write: bool = False
    description: str = ""
    default: Any = None
    save: bool = False
    page: str | None = None

    @property
    def label(self) -> str:
        return f"parameter {self.id} {self.name!r}"

    @property
    def secret(self) -> bool:
        return isinstance(self.type, String) and self.type.secret


@attrs.frozen
class Column:
    """A table column: its own parameter id, a name and a type. One column per table is the key."""

    id: int
    name: str
    type: Measurement = String()
    key: bool = False
    write: bool = False
    description: str = ""


@attrs.frozen
class DisplayKey:
    """A readable row label built from columns (DataMiner's "naming"), e.g. ``DisplayKey(("Name",))``."""

    columns: tuple[int | str, ...] = attrs.field(converter=_sequence)
    separator: str = " - "


@attrs.frozen
class Table:
    """A table parameter: rows keyed by the string value of its key column."""

    id: int
    name: str
    columns: tuple[Column, ...] = attrs.field(converter=_sequence)
    description: str = ""
    save: bool = False
    page: str | None = None
    display_key: DisplayKey | None = None

    @property
    def label(self) -> str:
        return f"table {self.id} {self.name!r}"


@attrs.frozen
class Page:
    """A page of the element card; ``parent`` makes it a sub-page opened by a page button."""

    name: str
    order: int = 0
    parent: str | None = None


@attrs.frozen
class Timer:
    """Every ``seconds``, queue ``qactions`` on the element (once at start-up too when ``at_startup``)."""

    id: int
    seconds: float
    qactions: tuple[int, ...] = attrs.field(converter=_sequence)
    at_startup: bool = True
    name: str = ""


@attrs.frozen
class QAction:
    """Plain Python run with the `protocol` facade when a trigger parameter is set.

    ``row=True`` makes it row-level: it runs once per changed row of its trigger columns and
    ``protocol.row_key`` tells which. ``after_startup=True`` runs it when the element starts.
    ``user_sets_only=True`` runs it for sets by users and scripts only, not for sets any
    QAction makes (this element's or another's): DataMiner's QAction on the write parameter of a
    read/write pair, which the element's own bookkeeping (setting the read parameter) does not
    trigger.
    """

    id: int
    function: Callable[[Any], Any]
    triggers: tuple[int, ...] = attrs.field(default=(), converter=_sequence)
    row: bool = False
    after_startup: bool = False
    name: str = ""
    user_sets_only: bool = False

    @property
    def label(self) -> str:
        return f"QAction {self.id} {self.name or getattr(self.function, '__name__', repr(self.function))!r}"


@attrs.frozen
class HttpConnection:
    """The protocol talks HTTP: the element is created with host, port and bus address."""

    default_port: int = 443
    credentials: bool = False

    def address_of(self, connection: Connection) -> str:
        """Where an element with `connection` talks to."""
        return connection.base_url(self.default_port)


@attrs.frozen
class SerialConnection:
    """The protocol talks over a TCP stream (`element.serial`): the element is created with host,
    port and timeout. `framing` finds the end of an answer when an exchange names none."""

    default_port: int = 8650
    framing: Framing | None = None
    credentials: ClassVar[bool] = False

    def address_of(self, connection: Connection) -> str:
        return f"{connection.host}:{connection.port if connection.port is not None else self.default_port}"


@attrs.frozen
class TableModel:
    """A table definition with its lookups prepared for the runtime."""

    table: Table
    key_index: int
    column_index: dict[int | str, int]
    checkers: tuple[Checker, ...]

    @property
    def width(self) -> int:
        return len(self.table.columns)

    def column_position(self, column: int | str) -> int:
        """Index (0-based) of a column given by parameter id, name or 1-based position."""
        index = self.column_index.get(column)
        if index is not None:
            return index
        if type(column) is int and 1 <= column <= self.width:
            return column - 1
        names = ", ".join(f"{c.id} {c.name!r}" for c in self.table.columns)
        raise UnknownParameterError(f"{self.table.label} has no column {column!r}; columns: {names}")


class ProtocolModel:
    """Everything the runtime looks up, built once from a protocol's declarations."""

    def __init__(self, protocol: type[Protocol]) -> None:
        self.name: str = protocol.name
        self.parameters: dict[int, Parameter] = {p.id: p for p in protocol.parameters}
        self.defaults: dict[int, Any] = {p.id: p.default for p in protocol.parameters}
        self.tables: dict[int, TableModel] = {}
        self.pages: dict[str, Page] = {page.name: page for page in protocol.pages}
        self.timers: tuple[Timer, ...] = tuple(protocol.timers)
        self.qactions: dict[int, QAction] = {q.id: q for q in protocol.qactions}
        self.by_name: dict[str, int] = {}
        self.checkers: dict[int, Checker] = {p.id: p.type.checker(p.label) for p in protocol.parameters}
        for table in protocol.tables:
            key_index = next(i for i, c in enumerate(table.columns) if c.key)
            index: dict[int | str, int] = {}
            for position, column in enumerate(table.columns):
                index[column.id] = index[column.name] = position
            checkers = tuple(c.type.checker(f"{table.label} column {c.id} {c.name!r}") for c in table.columns)
            self.tables[table.id] = TableModel(table, key_index, index, checkers)
        for item in (*protocol.parameters, *protocol.tables):
            self.by_name[item.name] = item.id
        # Every way to name a parameter or table (id or name) -> its id: one lookup per get and set.
        self._ids_by_ref: dict[int | str, int] = {**{pid: pid for pid in (*self.parameters, *self.tables)}, **self.by_name}
        # Every way to name a table -> its id: one lookup per table operation of a QAction.
        self.table_ids: dict[int | str, int] = {ref: tid for ref, tid in self._ids_by_ref.items() if tid in self.tables}
        self.triggers: dict[int, tuple[QAction, ...]] = {}
        for qaction in protocol.qactions:
            for pid in qaction.triggers:
                self.triggers[pid] = (*self.triggers.get(pid, ()), qaction)
        # What a QAction's set triggers (`QAction.user_sets_only` left out).
        self.qaction_triggers: dict[int, tuple[QAction, ...]] = {
            pid: kept for pid, qactions in self.triggers.items() if (kept := tuple(q for q in qactions if not q.user_sets_only))
        }
        self.writable: dict[int | str, Parameter] = {}
        for p in protocol.parameters:
            if p.write:
                self.writable[p.id] = self.writable[p.name] = p
        self.startup_qactions = tuple(q for q in protocol.qactions if q.after_startup)
        self.momentary_parameters = frozenset(p.id for p in protocol.parameters if _momentary(p))
        self.saved_parameters = frozenset(p.id for p in protocol.parameters if p.save) - self.momentary_parameters
        # Parameters whose set only stores a value: no QAction to run, nothing momentary.
        self.plain_parameters = frozenset(self.parameters) - self.momentary_parameters - self.triggers.keys()
        # What a user's set needs, in one lookup: (parameter, checker, plain, saved).
        self.write_targets: dict[int | str, tuple[Parameter, Checker, bool, bool]] = {
            ref: (p, self.checkers[p.id], p.id in self.plain_parameters, p.id in self.saved_parameters)
            for ref, p in self.writable.items()
        }
        self.saved_tables = frozenset(t.id for t in protocol.tables if t.save)
        self.secret_parameters = frozenset(p.id for p in protocol.parameters if p.secret)
        # Every way to name a parameter whose value reads as it is stored (no table, no password)
        # -> its id: `Element.get` of one costs one lookup.
        self.plain_value_ids: dict[int | str, int] = {
            ref: pid for ref, pid in self._ids_by_ref.items() if pid not in self.tables and pid not in self.secret_parameters
        }

    def resolve(self, ref: int | str) -> int:
        """The id of a parameter or table given by id or name."""
        pid = self._ids_by_ref.get(ref)
        if pid is None:
            raise UnknownParameterError(f"{self.name}: no parameter or table {ref!r}")
        return pid

    def table(self, ref: int | str) -> TableModel:
        tid = self.table_ids.get(ref)
        if tid is not None:
            return self.tables[tid]
        pid = self.resolve(ref)  # raises for an unknown name or id
        model = self.tables.get(pid)
        if model is None:
            raise UnknownParameterError(f"{self.name}: {self.parameters[pid].label} is not a table")
        return model


def _momentary(parameter: Parameter) -> bool:
    return isinstance(parameter.type, (Button, PageButton))


class Protocol:
    """Base class of every connector; subclasses declare their parts as class attributes."""

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1.0.0.1"
    description: ClassVar[str] = ""
    connection: ClassVar[HttpConnection | SerialConnection | None] = None
    pages: ClassVar[tuple[Page, ...]] = ()
    parameters: ClassVar[tuple[Parameter, ...]] = ()
    tables: ClassVar[tuple[Table, ...]] = ()
    timers: ClassVar[tuple[Timer, ...]] = ()
    qactions: ClassVar[tuple[QAction, ...]] = ()
    model: ClassVar[ProtocolModel]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _check_definition(cls)
        cls.model = ProtocolModel(cls)
        PROTOCOLS[protocol_path(cls)] = cls


PROTOCOLS: dict[str, type[Protocol]] = {}
"""Every protocol class defined in this process, by `protocol_path`."""


def protocol_path(protocol: type[Protocol]) -> str:
    """``module:QualifiedName``: how a saved element finds its protocol again."""
    return f"{protocol.__module__}:{protocol.__qualname__}"


# What a protocol declares, each a tuple (or list) of one kind of item.
_DECLARATIONS: dict[str, type] = {"pages": Page, "parameters": Parameter, "tables": Table, "timers": Timer, "qactions": QAction}
_MEASUREMENTS = (Number, String, Discrete, Button, PageButton)


def _check_definition(cls: type[Protocol]) -> None:
    """Refuse an inconsistent protocol naming it and the culprit; make its declarations tuples."""
    where = f"protocol {cls.__qualname__}"
    _check_class_attributes(where, cls)
    if not cls.name or not isinstance(cls.name, str):
        raise DefinitionError(f"{where}: `name` must be a non-empty string")
    where = f"protocol {cls.name!r}"

    def fail(message: str) -> None:
        raise DefinitionError(f"{where}: {message}")

    for attribute, kind in _DECLARATIONS.items():
        declared = getattr(cls, attribute)
        _expect_sequence(fail, f"`{attribute}`", declared, kind)
        setattr(cls, attribute, tuple(declared))
        _expect_types(fail, attribute, declared, kind)

    for page in cls.pages:
        _expect_name(fail, "a page", page.name)
    for timer in cls.timers:
        _expect_sequence(fail, f"timer {timer.id} `qactions`", timer.qactions, int, "QAction ids")
    page_names = _unique(fail, "page name", (p.name for p in cls.pages))
    for page in cls.pages:
        if page.parent is not None and page.parent not in page_names:
            fail(f"page {page.name!r} has parent page {page.parent!r}, which does not exist")

    ids: dict[int, str] = {}

    def claim(pid: int, what: str) -> None:
        if type(pid) is not int or pid <= 0:
            fail(f"{what} has id {pid!r}; ids are positive integers")
        if pid in ids:
            fail(f"duplicate id {pid}: {ids[pid]} and {what}")
        ids[pid] = what

    for parameter in cls.parameters:
        claim(parameter.id, parameter.label)
        _expect_name(fail, parameter.label, parameter.name)
        _expect_measurement(fail, parameter.label, parameter.type)
        _check_placement(fail, parameter.label, parameter.page, page_names)
        if isinstance(parameter.type, PageButton) and parameter.type.page not in page_names:
            fail(f"{parameter.label} is a page button to page {parameter.type.page!r}, which does not exist")
        if parameter.default is not None and not _momentary(parameter):
            try:
                parameter.type.checker(parameter.label)(parameter.default)
            except ValueError as error:
                fail(f"default does not fit: {error}")
        if isinstance(parameter.type, Button) and not parameter.write:
            fail(f"{parameter.label} is a button, so it must be a write parameter")

    for table in cls.tables:
        claim(table.id, table.label)
        _expect_name(fail, table.label, table.name)
        _check_placement(fail, table.label, table.page, page_names)
        _expect_sequence(fail, f"{table.label} `columns`", table.columns, Column)
        _expect_types(fail, f"{table.label} columns", table.columns, Column)
        for column in table.columns:
            column_label = f"column {column.id} {column.name!r} of {table.label}"
            _expect_name(fail, column_label, column.name)
            _expect_measurement(fail, column_label, column.type)
        if not table.columns:
            fail(f"{table.label} has no columns")
        keys = [c for c in table.columns if c.key]
        if len(keys) != 1:
            fail(f"{table.label} needs exactly one key column, found {len(keys)}")
        if not isinstance(keys[0].type, String):
            fail(f"{table.label} key column {keys[0].id} {keys[0].name!r} must be a String column")
        _unique(fail, f"column name in {table.label}", (c.name for c in table.columns))
        for column in table.columns:
            claim(column.id, f"column {column.id} {column.name!r} of {table.label}")
        if table.display_key is not None:
            if not isinstance(table.display_key, DisplayKey):
                fail(f"{table.label} display key {table.display_key!r} is not a DisplayKey")
            _expect_sequence(fail, f"{table.label} display key `columns`", table.display_key.columns, int | str, "column ids or names")
            known = {c.id for c in table.columns} | {c.name for c in table.columns}
            for ref in table.display_key.columns:
                if ref not in known:
                    fail(f"{table.label} display key names unknown column {ref!r}")

    _unique(fail, "parameter or table name", (item.name for item in (*cls.parameters, *cls.tables)))

    columns = {c.id for t in cls.tables for c in t.columns}
    table_ids = {t.id for t in cls.tables}
    _unique(fail, "QAction id", (q.id for q in cls.qactions))
    for qaction in cls.qactions:
        if not callable(qaction.function):
            fail(f"QAction {qaction.id} function {qaction.function!r} is not callable")
        _check_qaction_arity(fail, qaction)
        _expect_sequence(fail, f"{qaction.label} `triggers`", qaction.triggers, int, "parameter ids")
        if not qaction.triggers and not qaction.after_startup and not _timer_runs(cls.timers, qaction.id):
            fail(f"{qaction.label} has no trigger, is not run after startup and no timer runs it")
        for pid in qaction.triggers:
            if pid not in ids:
                fail(f"{qaction.label} is triggered by parameter {pid}, which does not exist")
            if pid in table_ids:
                fail(f"{qaction.label} is triggered by {ids[pid]}; tables trigger nothing, their columns do")
            if qaction.row and pid not in columns:
                fail(f"{qaction.label} is row-level but its trigger {pid} is not a table column")
        if qaction.user_sets_only:
            writable = {p.id for p in cls.parameters if p.write} | {c.id for t in cls.tables for c in t.columns if c.write}
            if not qaction.triggers or not set(qaction.triggers) <= writable:
                fail(f"{qaction.label} runs for users' sets only, so it needs triggers that users can set (write parameters or columns)")

    qaction_ids = {q.id for q in cls.qactions}
    _unique(fail, "timer id", (t.id for t in cls.timers))
    for timer in cls.timers:
        seconds = timer.seconds
        # inf and nan compare their way past a plain `<= 0`: a timer that never fires is a mistake
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 < seconds < math.inf:
            fail(f"timer {timer.id} has interval {seconds!r}; it must be a positive, finite number of seconds")
        if not timer.qactions:
            fail(f"timer {timer.id} runs no QAction")
        for qid in timer.qactions:
            if qid not in qaction_ids:
                fail(f"timer {timer.id} runs QAction {qid}, which does not exist")

    if cls.connection is not None and not isinstance(cls.connection, (HttpConnection, SerialConnection)):
        fail(f"`connection` must be an HttpConnection or a SerialConnection, not {cls.connection!r}")
    framing = getattr(cls.connection, "framing", None)
    if framing is not None and not callable(getattr(framing, "answer_end", None)):
        fail(f"the serial connection's framing {framing!r} is no framing: use TrailerFraming, LengthFraming or HttpFraming")


def _timer_runs(timers: Iterable[Timer], qaction_id: int) -> bool:
    return any(qaction_id in timer.qactions for timer in timers)


def _expect_sequence(fail: Callable[[str], None], what: str, value: Any, kind: Any, items: str = "") -> None:
    """`value` must be a tuple or list (of `items`, by default `kind`s); a lone `kind` says a
    one-item tuple lost its comma."""
    if isinstance(value, (tuple, list)):
        return
    items = items or kind.__name__
    if isinstance(value, kind):
        fail(
            f"{what} must be a tuple of {items}, not a single {type(value).__name__} {value!r}; "
            f"a one-item tuple needs a trailing comma: `({value!r},)`"
        )
    fail(f"{what} must be a tuple of {items}, not {type(value).__name__} {value!r}")


def _expect_types(fail: Callable[[str], None], attribute: str, items: Iterable[Any], kind: type) -> None:
    for item in items:
        if not isinstance(item, kind):
            fail(f"`{attribute}` holds {item!r}, which is not a {kind.__name__}")


def _expect_name(fail: Callable[[str], None], label: str, name: Any) -> None:
    if not isinstance(name, str) or not name.strip():
        fail(f"{label} has name {name!r}; a name is a non-empty string")


def _expect_measurement(fail: Callable[[str], None], label: str, measurement: Any) -> None:
    if isinstance(measurement, _MEASUREMENTS):
        return
    kinds = ", ".join(kind.__name__ for kind in _MEASUREMENTS)
    if isinstance(measurement, type) and issubclass(measurement, _MEASUREMENTS):
        fail(f"{label} has type={measurement.__name__}, the class; give an instance: type={measurement.__name__}()")
    fail(f"{label} has type={measurement!r}; a type is an instance of one of {kinds}, e.g. type=Number()")


def _check_qaction_arity(fail: Callable[[str], None], qaction: QAction) -> None:
    """A QAction function is called with one argument, the `protocol` facade."""
    try:
        signature = inspect.signature(qaction.function)
    except (TypeError, ValueError):
        return  # a builtin or other callable without a signature: trusted
    try:
        signature.bind(None)
    except TypeError as error:
        # Parameter names only: annotations under `from __future__ import annotations` are strings.
        bare = signature.replace(
            parameters=[p.replace(annotation=inspect.Parameter.empty) for p in signature.parameters.values()],
            return_annotation=inspect.Signature.empty,
        )
        name = getattr(qaction.function, "__qualname__", None) or repr(qaction.function)
        fail(
            f"{qaction.label} function is {name}{bare}, but a QAction function is called with "
            f"one argument, the protocol ({error})"
        )


# Public class attributes a protocol declares; any other public data attribute is most likely
# a misspelt one (`paramters`), which would otherwise be silently ignored.
_PROTOCOL_ATTRIBUTES = frozenset({"name", "version", "description", "connection", *_DECLARATIONS})


def _check_class_attributes(where: str, cls: type) -> None:
    """Refuse public data attributes a protocol does not know; helpers (functions, classes,
    descriptors) and names starting with an underscore are the protocol's own business."""
    for attribute, value in vars(cls).items():
        if attribute.startswith("_") or attribute in _PROTOCOL_ATTRIBUTES:
            continue
        if attribute == "model":
            raise DefinitionError(f"{where}: `model` is built by dmemu from the declarations; do not set it")
        if callable(value) or isinstance(value, (staticmethod, classmethod, property)):
            continue
        close = difflib.get_close_matches(attribute, sorted(_PROTOCOL_ATTRIBUTES), n=1)
        hint = f"did you mean `{close[0]}`?" if close else (
            f"a protocol declares {', '.join(sorted(_PROTOCOL_ATTRIBUTES))}; "
            "name a helper of your own with a leading underscore"
        )
        raise DefinitionError(f"{where}: unknown class attribute `{attribute}` = {value!r}; {hint}")


def _check_placement(fail: Callable[[str], None], label: str, page: str | None, pages: set[str]) -> None:
    if page is not None and page not in pages:
        fail(f"{label} is placed on page {page!r}, which does not exist")


def _unique(fail: Callable[[str], None], what: str, values: Iterable[Any]) -> set[Any]:
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            fail(f"duplicate {what} {value!r}")
        seen.add(value)
    return seen


__all__ = [
    "Button",
    "Column",
    "Discrete",
    "DisplayKey",
    "HttpConnection",
    "Number",
    "Page",
    "PageButton",
    "Parameter",
    "Protocol",
    "QAction",
    "SerialConnection",
    "String",
    "Table",
    "Timer",
]
