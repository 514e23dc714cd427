"""DataMiner Ticketing: ticket types with typed fields, tickets with a state and links, events.

Reached as ``dms.tickets`` (from a QAction: ``protocol.tickets``).

**Ticket types** belong to the connectors that use them and are defined again at every start:
`Ticketing.define_type` accepts a definition identical to the one it has (field order aside),
and a changed one (a new connector version) when every stored ticket stays valid under it:
fields added (a required one with a default, which stored tickets get), enum values added,
unused ones removed, a field made optional, or made required when every stored ticket has it,
a default changed. It refuses anything else (a field removed, a kind changed, enum values
removed that stored tickets hold, a field made required that some lack) with a
`TicketTypeError` naming each reason.

**Field kinds** (`FieldKind`): ``string``; ``number`` (int or float, finite); ``enum`` (one of
the field's `values`); ``date``: ISO 8601 text with a UTC offset (``Z`` or ``+02:00``), epoch
seconds or an aware `datetime`, stored as UTC text to the millisecond,
``2026-01-01T12:00:00.000Z`` (JavaScript's ``toISOString`` form, so stored dates sort as
text); ``json``: any JSON value, kept as JSON text and handed out as a fresh value at every
read. A value of None means "no value": `create` leaves such a field out, `update` clears it (a
JSON field therefore cannot hold a top-level null). A required field must have a value from
creation on; a field's default fills it at creation when no value is given.

**States and moves** (`TicketState`, `TICKET_TRANSITIONS`), as ServiceNow users know them:
New is where a ticket starts: it moves from there to any other state and never goes back;
Assigned, In Progress and On Hold move freely among themselves and to Resolved or Closed; a
Resolved ticket is closed, or reopened by moving it to Assigned or In Progress; Closed is final:
the ticket is read-only until `Ticketing.reopen` brings it back. A ticket may be created in
any state (imported history).

**Links**: alarms by id (an int or str, or anything with an ``id`` attribute holding one) and
elements by (agent id, element id); an element named by name or given itself is resolved to its
ids at once, so the link outlives the element.

**Events**: every create, and every update that changes something, gives one `TicketEvent` to
each subscriber, in the order the changes were made, on the thread of the change (or of a
change still delivering when this one was made: one thread delivers at a time). Subscribers run
after the change is stored and without any ticketing lock held, so they may use the ticketing
themselves; one that raises is logged and changes nothing. `subscribe_element` turns events
into sets of an element's string parameter (the event as JSON text), so the QAction triggered
on that parameter runs on the element's own queue. A change made by a QAction (through
``protocol.tickets``) counts as a step of its QAction chain, as a parameter set does: QActions
that keep changing the tickets whose events trigger them are stopped by the engine's loop
guard (`QActionLoopError`, `MAX_CHAIN_DEPTH`) and logged on the element.

**Persistence**: ticket types and tickets are saved in ``tickets.json`` in the state
directory, one atomic snapshot per batch of the DMS (after each tick, on close); a new DMS on
the same directory has them back. Subscriptions are not saved: elements make them again at
start-up (`subscribe_element` is idempotent, so doing so at every start never doubles them).
"""

from __future__ import annotations

import datetime as dt
import enum
import itertools
import json
import logging
import math
import threading
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import attrs

from ..protocol.element import Element, ElementState
from ..protocol.errors import DmemuError, StateFileError
from ..protocol.logs import LogType
from ..protocol.measurement import String
from ..protocol.storage import RecordStore
from .delivery import SerialDelivery
from .errors import TicketFieldError, TicketNotFoundError, TicketStateError, TicketTypeError, UnknownTicketTypeError

if TYPE_CHECKING:
    from ..protocol.element import ElementRef
    from .system import DataMinerSystem

_logger = logging.getLogger("dmemu.ticketing")

TICKETS_FILE = "tickets.json"
"""The ticketing's file in a DMS state directory: ticket types, then tickets in creation order."""

AlarmId = int | str
"""How a ticket names a linked alarm."""

Unsubscribe = Callable[[], None]


class FieldKind(enum.Enum):
    STRING = "string"
    NUMBER = "number"
    ENUM = "enum"
    DATE = "date"
    JSON = "json"


class TicketState(enum.Enum):
    NEW = "New"
    ASSIGNED = "Assigned"
    IN_PROGRESS = "In Progress"
    ON_HOLD = "On Hold"
    RESOLVED = "Resolved"
    CLOSED = "Closed"


_WORKING = frozenset({TicketState.ASSIGNED, TicketState.IN_PROGRESS, TicketState.ON_HOLD})

TICKET_TRANSITIONS: Mapping[TicketState, frozenset[TicketState]] = MappingProxyType({
    TicketState.NEW: _WORKING | {TicketState.RESOLVED, TicketState.CLOSED},
    **{state: _WORKING - {state} | {TicketState.RESOLVED, TicketState.CLOSED} for state in _WORKING},
    TicketState.RESOLVED: frozenset({TicketState.ASSIGNED, TicketState.IN_PROGRESS, TicketState.CLOSED}),
    TicketState.CLOSED: frozenset(),
})
"""The states an `update` may move a ticket to from each state (staying put is always allowed)."""

REOPEN_STATES = _WORKING
"""The states `Ticketing.reopen` may bring a Resolved or Closed ticket back to."""


# -- ticket types ------------------------------------------------------------------------------


class _Refused(Exception):
    """A value does not fit a field; the caller adds which ticket type and field."""


@attrs.frozen
class TicketField:
    """One field of a ticket type: ``TicketField("Priority", "enum", values=("P1", "P2"), default="P2")``.

    `kind` is a `FieldKind` or its value; `values` are the choices of an enum field (and only of
    one); `default` fills the field at creation when no value is given, stored the way values
    are (a date default reads back as UTC text).
    """

    name: str
    kind: FieldKind = attrs.field()
    required: bool = False
    default: Any = None
    values: tuple[str, ...] = attrs.field(default=(), converter=tuple)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise TicketTypeError(f"a ticket field name must be a non-empty string, not {self.name!r}")
        try:
            object.__setattr__(self, "kind", FieldKind(self.kind))
        except ValueError:
            kinds = ", ".join(kind.value for kind in FieldKind)
            raise TicketTypeError(f"ticket field {self.name!r}: kind {self.kind!r} is not one of {kinds}") from None
        if type(self.required) is not bool:
            raise TicketTypeError(f"ticket field {self.name!r}: required is True or False, not {self.required!r}")
        if self.kind is FieldKind.ENUM:
            if not self.values or not all(isinstance(value, str) for value in self.values):
                raise TicketTypeError(f"ticket field {self.name!r}: an enum field lists its values as strings, not {self.values!r}")
            if len(set(self.values)) != len(self.values):
                raise TicketTypeError(f"ticket field {self.name!r}: enum values {self.values!r} repeat one")
        elif self.values:
            raise TicketTypeError(f"ticket field {self.name!r}: only enum fields list values; this one is {self.kind.value}")
        if self.default is not None:
            try:
                stored = self._store(self.default)
            except _Refused as refused:
                raise TicketTypeError(f"ticket field {self.name!r}: default {refused}") from None
            object.__setattr__(self, "default", self._read(stored))

    def _store(self, value: Any) -> Any:
        """The form a ticket keeps `value` in (never None); raises `_Refused` saying why not."""
        kind = self.kind
        if kind is FieldKind.STRING:
            if type(value) is not str:
                raise _Refused(f"{value!r} is not a string")
            return value
        if kind is FieldKind.NUMBER:
            if type(value) not in (int, float) or not math.isfinite(value):
                raise _Refused(f"{value!r} is not a finite number")
            return value
        if kind is FieldKind.ENUM:
            if value not in self.values or type(value) is not str:
                raise _Refused(f"{value!r} is not one of {', '.join(map(repr, self.values))}")
            return value
        if kind is FieldKind.DATE:
            return _utc_text(value)
        return _json_text(value)

    def _read(self, stored: Any) -> Any:
        """A stored value as a reader gets it: JSON fields as a fresh value, others as they are."""
        return json.loads(stored) if self.kind is FieldKind.JSON else stored

    def to_record(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind.value, "required": self.required, "default": self.default, "values": list(self.values)}


def _utc_text(value: Any) -> str:
    if isinstance(value, bool):
        raise _Refused(f"{value!r} is not a date")
    if isinstance(value, (int, float)):
        try:
            moment = dt.datetime.fromtimestamp(value, dt.timezone.utc)
        except (OverflowError, OSError, ValueError):
            raise _Refused(f"{value!r} is not a date in epoch seconds") from None
    elif isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, str):
        try:
            # Python 3.10's parser does not know the "Z" suffix.
            moment = dt.datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value)
        except ValueError:
            raise _Refused(f"{value!r} is not an ISO 8601 date") from None
    else:
        raise _Refused(f"{value!r} is not a date (ISO 8601 text with a UTC offset, or epoch seconds)")
    if moment.tzinfo is None:
        # A time without an offset means a different moment on every machine: refuse the guess.
        raise _Refused(f"{value!r} has no UTC offset; add one, as in 2026-01-01T12:00:00Z")
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json_text(value: Any) -> str:
    _check_json(value, "")
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _check_json(value: Any, where: str) -> None:
    # json.dumps alone would quietly turn int keys into strings and would not say where a
    # value is not JSON; check every level instead.
    if value is None or type(value) in (str, int, bool):
        return
    if type(value) is float:
        if not math.isfinite(value):
            raise _Refused(f"{value!r}{where} is not a JSON number")
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_json(item, f"{where}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise _Refused(f"key {key!r}{where} is not a string, so the value is not a JSON object")
            _check_json(item, f"{where}[{key!r}]")
        return
    raise _Refused(f"{type(value).__name__} {value!r}{' at ' + where if where else ''} is not a JSON value")


@attrs.frozen
class TicketType:
    """A kind of ticket and its fields, defined by a connector with `Ticketing.define_type`."""

    name: str
    fields: tuple[TicketField, ...] = attrs.field(default=(), converter=tuple)
    _by_name: dict[str, TicketField] = attrs.field(init=False, eq=False, repr=False)
    _json_names: frozenset[str] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise TicketTypeError(f"a ticket type name must be a non-empty string, not {self.name!r}")
        by_name: dict[str, TicketField] = {}
        for field in self.fields:
            if not isinstance(field, TicketField):
                raise TicketTypeError(f"ticket type {self.name!r}: {field!r} is not a TicketField")
            if field.name in by_name:
                raise TicketTypeError(f"ticket type {self.name!r}: field {field.name!r} is defined twice")
            by_name[field.name] = field
        object.__setattr__(self, "_by_name", by_name)
        object.__setattr__(self, "_json_names", frozenset(field.name for field in self.fields if field.kind is FieldKind.JSON))

    def field(self, name: str) -> TicketField:
        try:
            return self._by_name[name]
        except KeyError:
            raise self._unknown_field(name) from None

    def to_record(self) -> dict[str, Any]:
        return {"name": self.name, "fields": [field.to_record() for field in self.fields]}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> TicketType:
        return cls(record["name"], tuple(TicketField(**field) for field in record["fields"]))

    def _unknown_field(self, name: str) -> TicketFieldError:
        known = ", ".join(map(repr, self._by_name)) or "none"
        return TicketFieldError(f"ticket type {self.name!r} has no field {name!r}; its fields: {known}", ticket_type=self.name, field=name)

    def _store(self, name: str, value: Any) -> Any:
        """`value` in the form a ticket of this type keeps it in field `name`."""
        field = self.field(name)
        try:
            return field._store(value)
        except _Refused as refused:
            raise TicketFieldError(f"ticket type {self.name!r} field {name!r}: {refused}", ticket_type=self.name, field=name) from None

    def _stored_values(self, given: Mapping[str, Any], before: Mapping[str, Any] | None) -> dict[str, Any]:
        """The stored field values once `given` is applied: to a new ticket's defaults when
        `before` is None, else merged over `before` (None clears a field). Every required field
        must end with a value."""
        if not isinstance(given, Mapping):
            raise TypeError(f"ticket fields are a mapping of field name to value, not {given!r}")
        if before is None:
            values = {field.name: field._store(field.default) for field in self.fields if field.default is not None}
        else:
            values = dict(before)
        for name, value in given.items():
            if value is None:
                self.field(name)
                values.pop(name, None)
            else:
                values[name] = self._store(name, value)
        for field in self.fields:
            if field.required and field.name not in values:
                raise TicketFieldError(
                    f"ticket type {self.name!r} field {field.name!r} is required: give it a value", ticket_type=self.name, field=field.name
                )
        return values

    def _updated_values(self, given: Mapping[str, Any], before: dict[str, Any]) -> tuple[dict[str, Any], frozenset[str]]:
        """(stored field values, names of the fields changed) once `given` is merged over
        `before`, a stored ticket's values (None clears a field); `before` itself when nothing
        changes (the checks of `_stored_values`)."""
        if not isinstance(given, Mapping):
            raise TypeError(f"ticket fields are a mapping of field name to value, not {given!r}")
        writes: dict[str, Any] = {}  # every value given, as stored (_ABSENT: cleared)
        changed: list[str] = []
        for name, value in given.items():
            stored = _ABSENT if value is None else self._store(name, value)
            if stored is _ABSENT:
                self.field(name)
            if before.get(name, _ABSENT) != stored:
                changed.append(name)
            writes[name] = stored
        if not changed:
            return before, frozenset()
        values = dict(before)
        cleared = False
        for name, stored in writes.items():
            if stored is not _ABSENT:
                values[name] = stored
            elif name in values:
                del values[name]
                cleared = True
        # `before` has every required field (stored tickets are valid): only a clear can undo that.
        for field in self.fields if cleared else ():
            if field.required and field.name not in values:
                raise TicketFieldError(
                    f"ticket type {self.name!r} field {field.name!r} is required: give it a value", ticket_type=self.name, field=field.name
                )
        return values, frozenset(changed)

    def _refusals(self, new: TicketType, stored: Iterable[Mapping[str, Any]]) -> list[str]:
        """What keeps this definition from becoming `new`, given the stored field values of the
        tickets of this type; empty when the change is compatible (see `Ticketing.define_type`)."""
        stored = list(stored)
        refusals = [f"drops field {name!r}" for name in self._by_name if name not in new._by_name]
        for field in new.fields:
            old = self._by_name.get(field.name)
            if old is None:
                lacking = sum(1 for values in stored if field.name not in values)
                if field.required and field.default is None and lacking:
                    refusals.append(f"adds required field {field.name!r} without a default, which {lacking} stored tickets lack")
                continue
            if old.kind is not field.kind:
                refusals.append(f"field {field.name!r}: kind {old.kind.value!r} -> {field.kind.value!r}")
                continue
            dropped = set(old.values) - set(field.values)
            in_use = sorted({values[field.name] for values in stored if values.get(field.name) in dropped})
            if in_use:
                refusals.append(f"field {field.name!r}: drops enum values {', '.join(map(repr, in_use))}, which stored tickets hold")
            lacking = sum(1 for values in stored if field.name not in values)
            if field.required and not old.required and lacking:
                refusals.append(f"field {field.name!r}: becomes required, but {lacking} stored tickets have no value")
        return sorted(refusals)


# -- tickets -----------------------------------------------------------------------------------


class TicketFields(Mapping[str, Any]):
    """A ticket's field values, read-only.

    JSON fields are kept as JSON text and every read gives a fresh value, so changing what was
    read never changes the ticket, and a ticket can be shared between threads as it is.
    """

    __slots__ = ("_values", "_json_names")

    def __init__(self, values: dict[str, Any], json_names: frozenset[str]) -> None:
        self._values = values
        self._json_names = json_names

    def __getitem__(self, name: str) -> Any:
        value = self._values[name]
        return json.loads(value) if name in self._json_names else value

    # `get` and `to_dict` in one step each: connectors read fields per ticket they synchronise,
    # and Mapping's own `get` (and `dict(fields)`) call `__getitem__` per value.
    def get(self, name: str, default: Any = None) -> Any:
        value = self._values.get(name, _ABSENT)
        if value is _ABSENT:
            return default
        return json.loads(value) if name in self._json_names else value

    def to_dict(self) -> dict[str, Any]:
        """The values as a new plain dict, as ``dict(fields)`` gives them."""
        values = dict(self._values)
        for name in self._json_names:  # few: a type's JSON fields
            if name in values:
                values[name] = json.loads(values[name])
        return values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TicketFields):
            return self._values == other._values
        return Mapping.__eq__(self, other)

    def __hash__(self) -> int:
        return hash(frozenset(self._values.items()))

    def __repr__(self) -> str:
        return f"TicketFields({dict(self)!r})"


@attrs.frozen
class Ticket:
    """A ticket as it was at one moment: every change makes a new `Ticket`, so one read or
    received in an event never changes. Times are epoch seconds of the DMS clock."""

    id: str
    type: str
    state: TicketState
    fields: TicketFields
    alarms: tuple[AlarmId, ...] = ()
    elements: tuple[tuple[int, int], ...] = ()
    created: float = 0.0
    updated: float = 0.0

    def to_record(self) -> dict[str, Any]:
        """The ticket as plain JSON-ready data (what is saved, and what an element receives)."""
        return {
            "id": self.id,
            "type": self.type,
            "state": self.state.value,
            "fields": self.fields.to_dict(),
            "alarms": list(self.alarms),
            "elements": [list(ids) for ids in self.elements],
            "created": self.created,
            "updated": self.updated,
        }


class TicketEventKind(enum.Enum):
    CREATED = "created"
    UPDATED = "updated"


@attrs.frozen
class TicketEvent:
    """What a subscriber receives: the ticket after the change and what changed.

    `changed_fields` names the fields that got, changed or lost a value (for a new ticket: every
    field it has); `previous` is the ticket before an update (None for a creation), for state
    and link changes."""

    kind: TicketEventKind
    ticket: Ticket
    changed_fields: frozenset[str]
    previous: Ticket | None = None
    # The QAction chain depth of the change (0 outside QActions): the set of a subscribed
    # element's parameter continues that chain, so the loop guard sees ticket loops too.
    _depth: int = attrs.field(default=0, kw_only=True, eq=False, repr=False)
    # The (agent id, element id) whose QAction made the change (None outside QActions): an
    # element subscribed without its own changes does not hear them.
    _origin: tuple[int, int] | None = attrs.field(default=None, kw_only=True, eq=False, repr=False)

    @property
    def previous_state(self) -> TicketState | None:
        return None if self.previous is None else self.previous.state

    def to_json(self) -> str:
        """The event as JSON text, as `Ticketing.subscribe_element` sets it on an element."""
        return json.dumps(
            {
                "kind": self.kind.value,
                "ticket": self.ticket.to_record(),
                "changed_fields": sorted(self.changed_fields),
                "previous_state": None if self.previous_state is None else self.previous_state.value,
            },
            ensure_ascii=False,
        )


@attrs.frozen(eq=False)
class _Subscription:
    deliver: Callable[[TicketEvent], None]
    ticket_type: str | None
    skip_origin: tuple[int, int] | None = None  # an element that does not hear its own changes


class _Index:
    """The tickets sharing a state (or a type) by id, kept in creation order.

    A ticket moving in from another state is appended at the end; the dict is sorted again
    (timsort on nearly sorted data) only when a query needs it, so a query by state is a copy."""

    __slots__ = ("tickets", "in_order")

    def __init__(self) -> None:
        self.tickets: dict[str, Ticket] = {}
        self.in_order = True


_ElementKey = tuple[Element, int, str | None]


class Ticketing:
    """The ticketing of a DataMiner System: ``dms.tickets``. Thread-safe.

    It is the DMS's `SystemService` for tickets (``dirty``, ``save_if_dirty``), without naming
    the class: dms.py imports this module to build it."""

    def __init__(self, dms: DataMinerSystem) -> None:
        self._dms = dms
        self._store = RecordStore(dms.state_dir / TICKETS_FILE, "tickets")
        self._lock = threading.Lock()
        self._types: dict[str, TicketType] = {}
        self._tickets: dict[str, Ticket] = {}  # in creation order: an update replaces in place
        self._creation_order: dict[str, int] = {}
        self._counter = itertools.count()
        self._by_state = {state: _Index() for state in TicketState}
        self._by_type: dict[str, _Index] = {}
        self._dirty = False
        self._subscriptions: tuple[_Subscription, ...] = ()  # replaced whole: iterated without a lock
        self._element_subscriptions: dict[_ElementKey, _Subscription] = {}
        self._delivery: SerialDelivery[TicketEvent] = SerialDelivery(self._deliver)  # queued under `_lock`: in order of change
        self._load()

    # -- ticket types -----------------------------------------------------------------------

    def define_type(self, ticket_type: TicketType) -> None:
        """Make `ticket_type` known, or bring a known type to this definition.

        Connectors define their types at every start, and a new version of a connector may
        change them. A change is accepted when every stored ticket stays valid: adding a field
        (a required one needs a default, which existing tickets get, unless there are none),
        adding enum values, removing enum values no stored ticket holds, making a required field
        optional, making a field required that every stored ticket has, changing a default
        (used at creation only). The type then takes the new definition and is saved with the
        next batch. Anything else raises `TicketTypeError` naming each reason and changes
        nothing: removing a field, changing a field's kind, removing enum values stored tickets
        hold, making a field required that some stored tickets lack. Field order does not count.
        """
        if not isinstance(ticket_type, TicketType):
            raise TypeError(f"define_type takes a TicketType, not {ticket_type!r}")
        self._dms._check_open()
        name = ticket_type.name
        with self._lock:
            known = self._types.get(name)
            if known is not None and known._by_name == ticket_type._by_name:
                return  # the same definition: what every start of the same connector does
            if known is not None:
                index = self._by_type.get(name)
                tickets = list(index.tickets.values()) if index is not None else []
                refusals = known._refusals(ticket_type, (ticket.fields._values for ticket in tickets))
                if refusals:
                    raise TicketTypeError(f"ticket type {name!r} cannot change that way: the new definition {'; '.join(refusals)}")
                self._fill_defaults(known, ticket_type, tickets)
            self._types[name] = ticket_type
            self._dirty = True

    def _fill_defaults(self, known: TicketType, new: TicketType, tickets: list[Ticket]) -> None:
        """Give stored tickets the default of each required field `new` adds, so they stay valid
        (a migration: no event, the updated time stays)."""
        added = [field for field in new.fields if field.required and field.name not in known._by_name]
        for before in tickets if added else ():
            values = dict(before.fields._values)
            for field in added:
                values.setdefault(field.name, field._store(field.default))
            self._put(attrs.evolve(before, fields=_fields(new, values)), before)

    @property
    def types(self) -> list[TicketType]:
        with self._lock:
            return list(self._types.values())

    def get_type(self, name: str) -> TicketType:
        with self._lock:
            return self._type(name)

    # -- tickets ----------------------------------------------------------------------------

    def create(
        self,
        ticket_type: str | TicketType,
        fields: Mapping[str, Any] | None = None,
        *,
        state: TicketState | str = TicketState.NEW,
        alarms: Iterable[Any] = (),
        elements: Iterable[ElementRef] = (),
        _depth: int = 0,
        _origin: tuple[int, int] | None = None,
    ) -> Ticket:
        """A new ticket of a defined type. A bad field value, a missing required field or an
        unknown state raises (`TicketFieldError`, `TicketStateError`) and nothing is created.

        `_depth` is the QAction chain depth of the caller and `_origin` its element's ids (both
        set by ``protocol.tickets``)."""
        self._dms._check_open()
        type_name = ticket_type.name if isinstance(ticket_type, TicketType) else ticket_type
        initial_state = _state(state)
        alarm_links, element_links = _alarm_ids(alarms), self._element_ids(elements)
        with self._lock:
            definition = self._type(type_name)
            values = definition._stored_values(fields or {}, None)
            now = self._dms.clock.now()
            ticket = Ticket(
                str(uuid.uuid4()), definition.name, initial_state, _fields(definition, values), alarm_links, element_links, now, now
            )
            self._creation_order[ticket.id] = next(self._counter)
            self._put(ticket, None)
            self._delivery.queue(TicketEvent(TicketEventKind.CREATED, ticket, frozenset(values), depth=_depth, origin=_origin))
        self._delivery.run()
        return ticket

    def get(self, ticket_id: str) -> Ticket:
        with self._lock:
            return self._ticket(ticket_id)

    def update(
        self,
        ticket_id: str,
        fields: Mapping[str, Any] | None = None,
        *,
        state: TicketState | str | None = None,
        alarms: Iterable[Any] | None = None,
        elements: Iterable[ElementRef] | None = None,
        _depth: int = 0,
        _origin: tuple[int, int] | None = None,
    ) -> Ticket:
        """Merge `fields` into the ticket (None clears one), move it to `state`, replace its
        `alarms` or `elements` links; answers the ticket as it is now.

        Anything refused (a bad value, an unknown state, a move `TICKET_TRANSITIONS` does not
        allow, any change to a Closed ticket) raises and changes nothing. An update that changes
        nothing leaves the updated time alone and sends no event. `_depth`, `_origin`: as for `create`."""
        self._dms._check_open()
        new_state = None if state is None else _state(state)
        alarm_links = None if alarms is None else _alarm_ids(alarms)
        element_links = None if elements is None else self._element_ids(elements)
        with self._lock:
            before = self._ticket(ticket_id)
            definition = self._types[before.type]
            values, changed = definition._updated_values(fields or {}, before.fields._values)
            after_state = before.state if new_state is None else new_state
            after_alarms = before.alarms if alarm_links is None else alarm_links
            after_elements = before.elements if element_links is None else element_links
            if not changed and after_state is before.state and after_alarms == before.alarms and after_elements == before.elements:
                return before
            if before.state is TicketState.CLOSED:
                raise TicketStateError(f"ticket {ticket_id} ({before.type}) is Closed, which is final: reopen it before changing it")
            if after_state is not before.state and after_state not in TICKET_TRANSITIONS[before.state]:
                raise TicketStateError(_refused_move(before, after_state))
            # Spelled out rather than `attrs.evolve` (twice), which costs several times more:
            # connectors update a ticket per answer they take in.
            ticket_fields = before.fields if not changed else TicketFields(values, definition._json_names)
            after = Ticket(before.id, before.type, after_state, ticket_fields, after_alarms, after_elements, before.created, self._dms.clock.now())
            self._put(after, before)
            self._delivery.queue(TicketEvent(TicketEventKind.UPDATED, after, changed, before, depth=_depth, origin=_origin))
        self._delivery.run()
        return after

    def reopen(
        self, ticket_id: str, state: TicketState | str = TicketState.IN_PROGRESS, *, _depth: int = 0, _origin: tuple[int, int] | None = None
    ) -> Ticket:
        """Bring a Resolved or Closed ticket back to Assigned, In Progress or On Hold (`_depth`:
        as for `create`)."""
        target = _state(state)
        if target not in REOPEN_STATES:
            raise TicketStateError(f"a ticket is reopened to {', '.join(s.value for s in REOPEN_STATES)}, not {target.value}")
        self._dms._check_open()
        with self._lock:
            before = self._ticket(ticket_id)
            if before.state not in (TicketState.RESOLVED, TicketState.CLOSED):
                raise TicketStateError(f"ticket {ticket_id} ({before.type}) is {before.state.value}: only Resolved or Closed tickets are reopened")
            after = attrs.evolve(before, state=target, updated=self._dms.clock.now())
            self._put(after, before)
            self._delivery.queue(TicketEvent(TicketEventKind.UPDATED, after, frozenset(), before, depth=_depth, origin=_origin))
        self._delivery.run()
        return after

    def query(
        self,
        *,
        state: TicketState | str | Collection[TicketState | str] | None = None,
        type: str | TicketType | None = None,
        fields: Mapping[str, Any] | None = None,
        alarm: Any = None,
        element: ElementRef | None = None,
    ) -> list[Ticket]:
        """The tickets matching every filter given, oldest first.

        `state` is one state or several; `fields` maps field names to values, compared as
        stored (a date given as epoch seconds matches the same moment stored as text); `alarm`
        and `element` keep tickets linked to them. A field name no ticket type has raises
        `TicketFieldError`: a typo never silently matches nothing."""
        states = None if state is None else _states(state)
        type_name = type.name if isinstance(type, TicketType) else type
        alarm_id = None if alarm is None else _alarm_id(alarm)
        element_ids = None if element is None else self._element_ids((element,))[0]
        with self._lock:
            if type_name is not None:
                self._type(type_name)
            wanted = self._wanted_fields(fields or {}, type_name)
            # Start from the smaller index that applies; the other filters run on its copy.
            by_state = None if states is None else [self._by_state[s] for s in states]
            by_type = None if type_name is None else [self._by_type.get(type_name) or _Index()]
            if by_state is not None and (by_type is None or _size(by_state) <= _size(by_type)):
                candidates, by_state = self._in_creation_order(by_state), None
            elif by_type is not None:
                candidates, by_type = self._in_creation_order(by_type), None
            else:
                candidates = list(self._tickets.values())
        # Tickets never change, so the rest of the filtering needs no lock.
        if by_state is not None:
            candidates = [ticket for ticket in candidates if ticket.state in states]
        if by_type is not None:
            candidates = [ticket for ticket in candidates if ticket.type == type_name]
        if wanted:
            candidates = [ticket for ticket in candidates if _matches(ticket, wanted.get(ticket.type))]
        if alarm_id is not None:
            candidates = [ticket for ticket in candidates if alarm_id in ticket.alarms]
        if element_ids is not None:
            candidates = [ticket for ticket in candidates if element_ids in ticket.elements]
        return candidates

    def __len__(self) -> int:
        return len(self._tickets)

    def __repr__(self) -> str:
        return f"<Ticketing: {len(self._types)} ticket types, {len(self._tickets)} tickets>"

    # -- events -----------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[TicketEvent], None], *, ticket_type: str | None = None) -> Unsubscribe:
        """Call ``callback(event)`` after every change (of tickets of `ticket_type` only, when
        given); answers the function that ends the subscription."""
        if not callable(callback):
            raise TypeError(f"a ticket subscriber is a callable taking a TicketEvent, not {callback!r}")
        return self._subscribe(_Subscription(callback, ticket_type))

    def subscribe_element(
        self, element_ref: ElementRef, parameter: int | str, *, ticket_type: str | None = None, own_changes: bool = True
    ) -> Unsubscribe:
        """Set `parameter` (a string parameter) of the element to each event as JSON text
        (`TicketEvent.to_json`), so the QAction triggered on it runs with the event on the
        element's queue. That QAction should read the event from ``protocol.trigger_value`` (the
        value that triggered it): the parameter may already hold a later event. An event for a
        stopped or paused element is skipped with a line in its log; deleting the element ends
        its subscriptions. Subscribing the same element, parameter and type again keeps the one
        subscription (with the latest `own_changes`): elements may subscribe at every start-up.
        Without `own_changes` the element does not hear the changes its own QActions made (a
        synchronising connector already knows them)."""
        element = self._dms.element(element_ref)
        model = element._model
        pid = model.resolve(parameter)
        spec = model.parameters.get(pid)
        if spec is None or not isinstance(spec.type, String):
            raise TypeError(f"element {element.name!r}: ticket events go to a string parameter; parameter {parameter!r} is not one")
        key: _ElementKey = (element, pid, ticket_type)
        with self._lock:
            subscription = self._element_subscriptions.get(key)
            skip = None if own_changes else element.ids
            if subscription is None or subscription.skip_origin != skip:
                if subscription is not None:
                    self._subscriptions = tuple(known for known in self._subscriptions if known is not subscription)
                subscription = _Subscription(lambda event: self._deliver_to_element(key, event), ticket_type, skip)
                self._element_subscriptions[key] = subscription
                self._subscriptions = (*self._subscriptions, subscription)
        return lambda: self._unsubscribe(subscription, key)

    def _subscribe(self, subscription: _Subscription) -> Unsubscribe:
        with self._lock:
            self._subscriptions = (*self._subscriptions, subscription)
        return lambda: self._unsubscribe(subscription)

    def _unsubscribe(self, subscription: _Subscription, element_key: _ElementKey | None = None) -> None:
        with self._lock:
            self._subscriptions = tuple(known for known in self._subscriptions if known is not subscription)
            if element_key is not None and self._element_subscriptions.get(element_key) is subscription:
                del self._element_subscriptions[element_key]

    def _element_deleted(self, element: Element) -> None:
        """End the deleted element's subscriptions now (called by the DMS), so they neither keep
        the element alive nor wait for an event to find it gone."""
        with self._lock:
            gone = {key: subscription for key, subscription in self._element_subscriptions.items() if key[0] is element}
            if gone:
                for key in gone:
                    del self._element_subscriptions[key]
                ended = set(gone.values())
                self._subscriptions = tuple(known for known in self._subscriptions if known not in ended)

    def _deliver(self, event: TicketEvent) -> None:
        for subscription in self._subscriptions:
            if subscription.skip_origin is not None and subscription.skip_origin == event._origin:
                continue
            if subscription.ticket_type is None or subscription.ticket_type == event.ticket.type:
                try:
                    subscription.deliver(event)
                except Exception:  # a subscriber's bug never undoes the change or stops the others
                    _logger.exception("ticket subscriber %r failed on %s of ticket %s", subscription.deliver, event.kind.value, event.ticket.id)

    def _deliver_to_element(self, key: _ElementKey, event: TicketEvent) -> None:
        element, pid, _ = key
        what = f"{event.kind.value} event of ticket {event.ticket.id}"
        if self._dms.find(element) is not element:  # deleted while this event was being delivered
            _logger.info("%s not delivered: element %r (%s/%s) was deleted; its subscription ends", what, element.name, *element.ids)
            subscription = self._element_subscriptions.get(key)
            if subscription is not None:
                self._unsubscribe(subscription, key)
            return
        if element.state is not ElementState.ACTIVE:
            element.log(f"{what} not delivered to parameter {pid}: the element is {element.state.value}")
            return
        try:
            value = element._model.checkers[pid](event.to_json())
            element._queue.run(element._apply_user_set, pid, value, event._depth)
        except DmemuError as error:  # stopped in the meantime, or the text is too long for the parameter
            element.log(f"{what} not delivered to parameter {pid}: {error}", LogType.ERROR)

    # -- persistence (the DMS's `SystemService` seam) ---------------------------------------

    @property
    def dirty(self) -> bool:
        return self._dirty

    def save_if_dirty(self) -> None:
        with self._lock:
            if not self._dirty:
                return
            self._dirty = False
            types, tickets = list(self._types.values()), list(self._tickets.values())
        records = [{"record": "ticket type", **t.to_record()} for t in types]
        records += [{"record": "ticket", **ticket.to_record()} for ticket in tickets]
        try:
            self._store.save(records)
        except StateFileError:
            self._dirty = True  # retried with the next batch
            raise

    def _load(self) -> None:
        path = self._store.path
        for record in self._store.load():
            kind = record.get("record")
            try:
                if kind == "ticket type":
                    ticket_type = TicketType.from_record(record)
                    self._types[ticket_type.name] = ticket_type
                elif kind == "ticket":
                    ticket = self._ticket_from_record(record)
                    self._creation_order[ticket.id] = next(self._counter)
                    self._put(ticket, None)
                else:
                    raise ValueError(f"a record of kind {kind!r} (expected 'ticket type' or 'ticket')")
            except (DmemuError, KeyError, TypeError, ValueError) as error:
                raise StateFileError(f"state file {path} has an unexpected {kind or 'record'} {record.get('id') or record.get('name')!r}: {error}") from error
        self._dirty = False

    def _ticket_from_record(self, record: Mapping[str, Any]) -> Ticket:
        definition = self._type(record["type"])
        values = definition._stored_values(record["fields"], {})  # checked, but no defaults: it has what it had
        created, updated = record["created"], record["updated"]
        if not all(type(t) in (int, float) for t in (created, updated)) or not isinstance(record["id"], str):
            raise TypeError("id must be text and created/updated epoch seconds")
        elements = tuple((int(a), int(e)) for a, e in record["elements"])
        return Ticket(record["id"], definition.name, _state(record["state"]), _fields(definition, values), _alarm_ids(record["alarms"]), elements, created, updated)

    # -- internals (called with `_lock` held) -----------------------------------------------

    def _type(self, name: Any) -> TicketType:
        try:
            return self._types[name]
        except (KeyError, TypeError):
            known = ", ".join(map(repr, self._types)) or "none"
            raise UnknownTicketTypeError(f"no ticket type {name!r} is defined; defined: {known}") from None

    def _ticket(self, ticket_id: str) -> Ticket:
        try:
            return self._tickets[ticket_id]
        except (KeyError, TypeError):
            raise TicketNotFoundError(f"no ticket {ticket_id!r} in this DMS") from None

    def _put(self, ticket: Ticket, before: Ticket | None) -> None:
        """Store `ticket` (replacing `before`, the same ticket earlier) and index it."""
        self._tickets[ticket.id] = ticket
        if before is not None and before.state is not ticket.state:
            del self._by_state[before.state].tickets[ticket.id]
        self._index(self._by_state[ticket.state], ticket)
        self._index(self._by_type.setdefault(ticket.type, _Index()), ticket)
        self._dirty = True

    def _index(self, index: _Index, ticket: Ticket) -> None:
        tickets = index.tickets
        if ticket.id not in tickets and tickets and self._creation_order[next(reversed(tickets))] > self._creation_order[ticket.id]:
            index.in_order = False
        tickets[ticket.id] = ticket

    def _in_creation_order(self, indexes: list[_Index]) -> list[Ticket]:
        for index in indexes:
            if not index.in_order:
                order = self._creation_order
                index.tickets = dict(sorted(index.tickets.items(), key=lambda item: order[item[0]]))
                index.in_order = True
        if len(indexes) == 1:
            return list(indexes[0].tickets.values())
        merged = [ticket for index in indexes for ticket in index.tickets.values()]
        merged.sort(key=lambda ticket: self._creation_order[ticket.id])
        return merged

    def _wanted_fields(self, fields: Mapping[str, Any], type_name: str | None) -> dict[str, dict[str, Any] | None]:
        """Per ticket type, the field filter in stored form (None: no ticket of it can match)."""
        if not fields:
            return {}
        types = [self._types[type_name]] if type_name is not None else list(self._types.values())
        for name in fields:
            if not any(name in definition._by_name for definition in types):
                if type_name is not None:
                    raise types[0]._unknown_field(name)
                raise TicketFieldError(f"no ticket type has a field {name!r}", ticket_type="", field=name)
        wanted: dict[str, dict[str, Any] | None] = {}
        for definition in types:
            try:
                wanted[definition.name] = {name: definition._store(name, value) for name, value in fields.items()}
            except TicketFieldError:
                if type_name is not None:
                    raise  # a value the one type asked for can never hold
                wanted[definition.name] = None
        return wanted

    def _element_ids(self, refs: Iterable[ElementRef]) -> tuple[tuple[int, int], ...]:
        if isinstance(refs, (str, Element)):
            refs = (refs,)
        ids: list[tuple[int, int]] = []
        for ref in refs:
            if isinstance(ref, tuple):
                if len(ref) != 2 or not all(type(part) is int for part in ref):
                    raise TypeError(f"an element is linked by (agent id, element id), its name or itself, not {ref!r}")
                pair = ref
            else:
                pair = self._dms.element(ref).ids
            if pair not in ids:
                ids.append(pair)
        return tuple(ids)


class QActionTicketing:
    """`dms.tickets` as a QAction gets it (``protocol.tickets``): the same ticketing, whose
    `create`, `update` and `reopen` carry the QAction's chain depth onto their events, so an
    element's QAction changing the ticket whose event triggered it meets the loop guard.

    One is made per ``protocol.tickets`` read, with the depth of the QAction running then.
    Everything else is `Ticketing`'s own."""

    __slots__ = ("_tickets", "_depth", "_origin")

    def __init__(self, tickets: Ticketing, depth: int, origin: tuple[int, int] | None = None) -> None:
        self._tickets = tickets
        self._depth = depth
        self._origin = origin

    def create(self, ticket_type: str | TicketType, fields: Mapping[str, Any] | None = None, **options: Any) -> Ticket:
        return self._tickets.create(ticket_type, fields, _depth=self._depth, _origin=self._origin, **options)

    def update(self, ticket_id: str, fields: Mapping[str, Any] | None = None, **options: Any) -> Ticket:
        return self._tickets.update(ticket_id, fields, _depth=self._depth, _origin=self._origin, **options)

    def reopen(self, ticket_id: str, state: TicketState | str = TicketState.IN_PROGRESS) -> Ticket:
        return self._tickets.reopen(ticket_id, state, _depth=self._depth, _origin=self._origin)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tickets, name)

    def __len__(self) -> int:
        return len(self._tickets)

    def __repr__(self) -> str:
        return repr(self._tickets)


_ABSENT = object()


def _fields(definition: TicketType, values: dict[str, Any]) -> TicketFields:
    # Every JSON field name of the type: a name without a value is never looked up in it.
    return TicketFields(values, definition._json_names)


def _size(indexes: list[_Index]) -> int:
    return sum(len(index.tickets) for index in indexes)


def _matches(ticket: Ticket, wanted: Mapping[str, Any] | None) -> bool:
    if wanted is None:
        return False
    values = ticket.fields._values
    return all(values.get(name, _ABSENT) == value for name, value in wanted.items())


def _state(value: Any) -> TicketState:
    if isinstance(value, TicketState):
        return value
    try:
        return TicketState(value)
    except ValueError:
        states = ", ".join(state.value for state in TicketState)
        raise TicketStateError(f"unknown ticket state {value!r}; the states are {states}") from None


def _states(value: Any) -> frozenset[TicketState]:
    if isinstance(value, (TicketState, str)):
        return frozenset((_state(value),))
    return frozenset(_state(item) for item in value)


def _refused_move(ticket: Ticket, target: TicketState) -> str:
    allowed = ", ".join(state.value for state in TicketState if state in TICKET_TRANSITIONS[ticket.state]) or "none"
    return f"ticket {ticket.id} ({ticket.type}) cannot move from {ticket.state.value} to {target.value}; from {ticket.state.value} it can move to: {allowed}"


def _alarm_id(alarm: Any) -> AlarmId:
    alarm_id = getattr(alarm, "id", alarm)
    if type(alarm_id) not in (int, str):
        raise TypeError(f"an alarm is linked by its id (an int or a string), not {alarm!r}")
    return alarm_id


def _alarm_ids(alarms: Iterable[Any]) -> tuple[AlarmId, ...]:
    if isinstance(alarms, (str, int)):
        alarms = (alarms,)
    return tuple(dict.fromkeys(_alarm_id(alarm) for alarm in alarms))
