"""Alarms of a DataMiner System: templates per element, monitoring after every change, queries,
properties, events for subscribers, and state saved beside the elements'.

An `AlarmTemplate` names parameters or table columns (by id or name) with `Thresholds` (number
limits per severity, high and low) or `DiscreteSeverities` (a severity per value). Assigned to
an element (``dms.alarms.assign_template(element, template)``), it is checked against the
element's protocol, and from then on every change of a monitored value is evaluated: an alarm
opens when the value leaves normal, gets a new record when its severity changes, and clears
when the value is back to normal. Each table row alarms on its own (per row key).

Only elements with a template are watched: a monitored parameter has a value watcher
(`Element.add_value_watcher`), a monitored table a change listener. An element without a
template pays nothing but the engine's "any watchers?" and "any listeners?" checks per set; a
set of a parameter the template does not name costs one dict lookup; a monitored value still
normal, a comparison chain and a dict lookup.

What DataMiner users expect of an element's life, and what happens here:

- *stopped*: its alarms clear (reason ``element stopped``): a stopped element shows no alarms.
- *started* (and so *restarted*, and loaded by a new DMS): its current values are evaluated
  at once, on its queue; alarms still abnormal keep their id, history and properties (restored
  ones included), others clear and new ones open. A restart is a stop and a start, so an alarm
  of a value that is not saved clears at the stop and opens again, as a new alarm, once the
  element polls the value again.
- *paused*: its alarms are frozen: a QAction still finishing when the pause came may change
  values, but alarms are not evaluated until the element is started again, which evaluates its
  current values at once.
- *deleted*: its alarms clear (reason ``element deleted``) and its template is dropped.
- the DMS *closed*: alarms stay as they are, saved, and the next DMS goes on with them.

Alarm ids are integers unique in the DMS: one counter for every agent, never reused (it is
saved too). Alarm state is saved in ``alarms.json`` in the state directory, in the same
batches as the elements: the id counter, each element's template, the active alarms and the
most recent cleared ones (`AlarmManager.history_limit`), each with its records and properties.

Subscribers (``dms.alarms.subscribe(callback)``) get an `AlarmEvent` (opened, changed, cleared,
property set) with an immutable `Alarm` snapshot, after the change is made and outside the
manager's lock, so a subscriber may call the manager again. Events are delivered one at a time,
each to every subscriber, in the order the changes were made, whichever thread made them: a
change made by a subscriber (or by a script an alarm rule starts) is delivered after the event
being handled, so no subscriber hears an alarm clear before it opened. A subscriber that raises
is logged and never breaks the change.
"""

from __future__ import annotations

import enum
import logging
import math
import threading
import types
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from ..protocol.changes import Change, TableChange
from ..protocol.definitions import Column, Parameter, Protocol, ProtocolModel, TableModel
from ..protocol.element import ElementState, ValueWatcher
from ..protocol.errors import InvalidValueError, StateFileError
from ..protocol.logs import LogType
from ..protocol.measurement import Discrete, Number, String
from ..protocol.storage import EncodedRecords, RecordStore
from .delivery import SerialDelivery
from .errors import AlarmError, AlarmTemplateError, UnknownAlarmError

if TYPE_CHECKING:
    from ..protocol.element import Element, ElementRef
    from .system import DataMinerSystem

_logger = logging.getLogger("dmemu.alarms")

ALARMS_FILE = "alarms.json"
"""The alarm manager's file in a DMS state directory."""

MAX_CLEARED_ALARMS = 1000
"""Cleared alarms kept (and saved) for `AlarmManager.history`, the most recent ones."""

MAX_RECORDS_PER_ALARM = 1000
"""History records kept per alarm, the most recent ones: a flapping value cannot grow it forever."""


class Severity(enum.IntEnum):
    """How bad a value is. Ordered, so ``alarm.severity >= Severity.MAJOR`` reads as users say it."""

    NORMAL = 0
    WARNING = 1
    MINOR = 2
    MAJOR = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        """The name DataMiner shows: ``Major``."""
        return self.name.capitalize()

    @classmethod
    def from_label(cls, label: str) -> Severity:
        try:
            return cls[label.upper()]
        except (KeyError, AttributeError):
            raise ValueError(f"{label!r} is not a severity; severities: {', '.join(s.label for s in cls)}") from None


_NORMAL = Severity.NORMAL  # module constants: enum attribute lookups are slow in the change path
_STOPPED = ElementState.STOPPED
_ACTIVE = ElementState.ACTIVE


_NO_ITEMS: Mapping[Any, Any] = types.MappingProxyType({})


def _frozen_mapping(mapping: Mapping[Any, Any]) -> Mapping[Any, Any]:
    # Most alarms have no properties: sharing one empty mapping spares a copy per alarm change.
    return types.MappingProxyType(dict(mapping)) if mapping else _NO_ITEMS


# -- templates ----------------------------------------------------------------------------------


@attrs.frozen
class Thresholds:
    """Number limits of one parameter or column: a `high` severity applies when the value is above
    its limit, a `low` one when it is below; the most severe limit crossed wins, a value on a
    limit is still inside it.

    ``Thresholds(high={Severity.MAJOR: 80, Severity.CRITICAL: 95}, low={Severity.WARNING: 5})``
    """

    high: Mapping[Severity, float] = attrs.field(factory=dict, converter=_frozen_mapping)
    low: Mapping[Severity, float] = attrs.field(factory=dict, converter=_frozen_mapping)

    def problem(self) -> str | None:
        """What makes these limits unusable (wrong keys, out of order, overlapping), or None."""
        if not self.high and not self.low:
            return "thresholds without any limit"
        for side, limits in (("high", self.high), ("low", self.low)):
            for severity, limit in limits.items():
                if not isinstance(severity, Severity) or severity is _NORMAL:
                    return f"{side} limit key {severity!r} is not a severity from Warning to Critical"
                if type(limit) not in (int, float) or not math.isfinite(limit):
                    return f"{severity.label} {side} limit {limit!r} is not a finite number"
        for side, limits, rising in (("high", self.high, True), ("low", self.low, False)):
            ordered = sorted(limits.items())  # by severity
            for (milder, milder_limit), (worse, worse_limit) in zip(ordered, ordered[1:]):
                if (worse_limit <= milder_limit) if rising else (worse_limit >= milder_limit):
                    direction = "above" if rising else "below"
                    return (
                        f"{worse.label} {side} limit {worse_limit:g} must be {direction} "
                        f"{milder.label} {side} limit {milder_limit:g}"
                    )
        if self.high and self.low and max(self.low.values()) >= min(self.high.values()):
            return f"low limits (up to {max(self.low.values()):g}) overlap high limits (from {min(self.high.values()):g})"
        return None

    def normal_band(self) -> tuple[float, float]:
        """(bottom, top): a value within them, limits included, is normal."""
        return (max(self.low.values(), default=-math.inf), min(self.high.values(), default=math.inf))

    def severity_function(self) -> Callable[[Any], Severity]:
        """``severity(value)``: what the limits make of a value (None, no value, is normal)."""
        highs = sorted(((limit, severity) for severity, limit in self.high.items()), reverse=True)
        lows = sorted((limit, severity) for severity, limit in self.low.items())
        bottom, top = self.normal_band()
        normal = _NORMAL

        def severity(value: Any) -> Severity:
            if value is None or bottom <= value <= top:  # the common case: one comparison chain
                return normal
            if value > top:
                for limit, level in highs:  # most severe first
                    if value > limit:
                        return level
            for limit, level in lows:  # most severe (lowest limit) first
                if value < limit:
                    return level
            return normal

        return severity


@attrs.frozen
class DiscreteSeverities:
    """A severity per value of a discrete (or string) parameter or column; other values are normal.

    ``DiscreteSeverities({"Down": Severity.CRITICAL, "Degraded": Severity.MINOR})``: a discrete
    value is named as stored or by its display name.
    """

    severities: Mapping[Any, Severity] = attrs.field(converter=_frozen_mapping)

    def problem(self) -> str | None:
        if not self.severities:
            return "discrete severities without any value"
        for value, severity in self.severities.items():
            if not isinstance(severity, Severity):
                return f"value {value!r} has severity {severity!r}, which is not a Severity"
        return None


Monitor = Thresholds | DiscreteSeverities
"""How one parameter or column of a template is judged."""


@attrs.frozen
class AlarmTemplate:
    """Which parameters and columns of an element alarm, and how: ``{id or name: Thresholds or
    DiscreteSeverities}``. Its limits are checked here; that the parameters exist and fit is
    checked when it is assigned to an element (`AlarmManager.assign_template`)."""

    name: str
    parameters: Mapping[int | str, Monitor] = attrs.field(converter=_frozen_mapping)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise AlarmTemplateError(f"an alarm template needs a non-empty name, not {self.name!r}")
        for ref, monitor in self.parameters.items():
            where = f"alarm template {self.name!r}, parameter {ref!r}"
            if type(ref) not in (int, str):
                raise AlarmTemplateError(f"{where}: a parameter is named by its id or name")
            if not isinstance(monitor, (Thresholds, DiscreteSeverities)):
                raise AlarmTemplateError(f"{where}: {monitor!r} is neither Thresholds nor DiscreteSeverities")
            problem = monitor.problem()
            if problem:
                raise AlarmTemplateError(f"{where}: {problem}")


@attrs.frozen
class _Rule:
    """One template entry made concrete for a protocol: where the value lives and how it is judged."""

    parameter_id: int
    parameter_name: str
    table_id: int | None  # None for a standalone parameter
    column_index: int  # the cell's position in a row (unused for a standalone parameter)
    severity: Callable[[Any], Severity]
    key: tuple[int, None]  # the alarm key of a standalone parameter, made once
    # What judges a value normal without calling `severity`, for the watcher of a standalone
    # parameter: thresholds' (bottom, top) band, or the values discrete severities name.
    normal_band: tuple[float, float] | None
    abnormal_values: Mapping[Any, Severity] | None


@attrs.frozen
class _CompiledTemplate:
    parameters: dict[int, _Rule]
    tables: dict[int, tuple[_Rule, ...]]


def template_problem(template: AlarmTemplate, protocol: type[Protocol]) -> str | None:
    """Why `template` does not fit `protocol` (what `assign_template` would refuse), or None:
    for checking a template before any element of the protocol exists (a system file)."""
    try:
        _compile(template, protocol.model, protocol.name)
    except AlarmTemplateError as error:
        return str(error)
    return None


def _compile(template: AlarmTemplate, model: ProtocolModel, element_name: str) -> _CompiledTemplate:
    """The template's rules for one protocol; `AlarmTemplateError` names what does not fit."""
    parameters: dict[int, _Rule] = {}
    tables: dict[int, list[_Rule]] = {}
    for ref, monitor in template.parameters.items():
        where = f"alarm template {template.name!r} on element {element_name!r}"
        spec, table, index = _find_monitored(model, ref, where)
        label = f"column {spec.id} {spec.name!r} of {table.table.label}" if table else spec.label  # type: ignore[union-attr]
        where = f"{where}: {label}"
        if spec.id in parameters or any(rule.parameter_id == spec.id for rules in tables.values() for rule in rules):
            raise AlarmTemplateError(f"{where} is named twice in the template")
        band: tuple[float, float] | None = None
        abnormal: dict[Any, Severity] | None = None
        if isinstance(monitor, Thresholds):
            if not isinstance(spec.type, Number):
                raise AlarmTemplateError(f"{where} holds {spec.type.allowed()}; thresholds need a Number")
            severity = monitor.severity_function()
            band = monitor.normal_band()
        else:
            abnormal = _discrete_severities(monitor, spec, where)
            severity = _severity_of_value(abnormal)
        rule = _Rule(spec.id, spec.name, table.table.id if table else None, index, severity, (spec.id, None), band, abnormal)
        if table is None:
            parameters[spec.id] = rule
        else:
            tables.setdefault(table.table.id, []).append(rule)
    return _CompiledTemplate(parameters, {tid: tuple(rules) for tid, rules in tables.items()})


def _find_monitored(model: ProtocolModel, ref: int | str, where: str) -> tuple[Parameter | Column, TableModel | None, int]:
    """A parameter (no table) or a column (its table and position) by id or name."""
    if ref in model.parameters or (type(ref) is str and model.by_name.get(ref) in model.parameters):
        pid = ref if type(ref) is int else model.by_name[ref]  # type: ignore[index]
        return model.parameters[pid], None, 0  # type: ignore[index]
    if ref in model.tables or (type(ref) is str and model.by_name.get(ref) in model.tables):
        raise AlarmTemplateError(f"{where}: {ref!r} is a table; a template monitors its columns")
    found = [
        (column, table, index)
        for table in model.tables.values()
        for index, column in enumerate(table.table.columns)
        if ref == (column.id if type(ref) is int else column.name)
    ]
    if not found:
        raise AlarmTemplateError(f"{where}: protocol {model.name!r} has no parameter or column {ref!r}")
    if len(found) > 1:
        tables = ", ".join(f"{column.id} in {table.table.label}" for column, table, _ in found)
        raise AlarmTemplateError(f"{where}: several columns are named {ref!r} ({tables}); name it by id")
    column, table, index = found[0]
    if index == table.key_index:
        raise AlarmTemplateError(f"{where}: column {column.id} {column.name!r} is the key of {table.table.label}; keys do not alarm")
    return column, table, index


def _discrete_severities(monitor: DiscreteSeverities, spec: Parameter | Column, where: str) -> dict[Any, Severity]:
    """{stored value: severity} of the values the monitor names."""
    if not isinstance(spec.type, (Discrete, String)):
        raise AlarmTemplateError(f"{where} holds {spec.type.allowed()}; discrete severities need a Discrete or String")
    check = spec.type.checker(where)
    by_value: dict[Any, Severity] = {}
    for value, severity in monitor.severities.items():
        try:
            by_value[check(value)] = severity  # a display name becomes the stored value
        except InvalidValueError as error:
            raise AlarmTemplateError(f"{error} (in the template's discrete severities)") from None
    return by_value


def _severity_of_value(by_value: Mapping[Any, Severity]) -> Callable[[Any], Severity]:
    get = by_value.get
    normal = _NORMAL

    def severity(value: Any) -> Severity:
        return get(value, normal)

    return severity


# -- alarms and events --------------------------------------------------------------------------


@attrs.frozen
class AlarmRecord:
    """One step of an alarm's history: when, to which severity, with which value. `reason` says why
    an alarm cleared when its value did not (``element stopped``, ``row deleted``, ...)."""

    time: float
    severity: Severity
    value: Any
    reason: str = ""


AlarmKey = tuple[int, "str | None"]
"""An alarm's place in its element: (parameter or column id, row key or None)."""


# Without slots: attrs fills a frozen instance's __dict__ directly, close to twice as fast as
# setting 14 slots one by one, and a new `Alarm` is made on every alarm change.
@attrs.frozen(slots=False)
class Alarm:
    """An alarm as it stands: immutable, so a query or an event can be kept and read later.

    Times are epoch seconds of the DMS clock. `severity` and `value` are those of the latest
    record (a value change that keeps the severity makes no record); a cleared alarm has severity
    Normal and `cleared` set. `properties` are key -> string, set by elements and scripts.
    """

    id: int
    element_ids: tuple[int, int]
    element_name: str
    parameter_id: int
    parameter_name: str
    row_key: str | None
    severity: Severity
    value: Any
    opened: float
    last_change: float
    cleared: float | None
    records: tuple[AlarmRecord, ...]
    properties: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_mapping)
    worst_severity: Severity = attrs.field()

    @worst_severity.default
    def _worst_of_records(self) -> Severity:
        return max(record.severity for record in self.records)

    @property
    def active(self) -> bool:
        return self.cleared is None

    @property
    def key(self) -> AlarmKey:
        return (self.parameter_id, self.row_key)

    def _recorded(self, time: float, severity: Severity, value: Any, reason: str = "") -> Alarm:
        """This alarm after a new record: a changed severity, or a clear."""
        records = (*self.records, AlarmRecord(time, severity, value, reason))[-MAX_RECORDS_PER_ALARM:]
        cleared = time if severity is _NORMAL else None
        return self._changed(severity, value, time, cleared, records, self.properties, max(self.worst_severity, severity))

    def _with_property(self, key: str, value: str) -> Alarm:
        """This alarm with property `key` set to `value`."""
        properties = {**self.properties, key: value}
        return self._changed(self.severity, self.value, self.last_change, self.cleared, self.records, properties, self.worst_severity)

    def _changed(
        self, severity: Severity, value: Any, last_change: float, cleared: float | None, records: tuple[AlarmRecord, ...],
        properties: Mapping[str, str], worst_severity: Severity,
    ) -> Alarm:  # fmt: skip
        """This alarm with the fields that change over its life replaced: spelled out rather
        than `attrs.evolve`, which costs several times more per change."""
        return Alarm(
            self.id, self.element_ids, self.element_name, self.parameter_id, self.parameter_name, self.row_key,
            severity, value, self.opened, last_change, cleared, records, properties, worst_severity,
        )  # fmt: skip


class AlarmEventKind(enum.Enum):
    OPENED = "opened"
    CHANGED = "changed"  # the severity went up or down, still not normal
    CLEARED = "cleared"
    PROPERTY_SET = "property set"


@attrs.frozen
class AlarmEvent:
    """What subscribers hear: `kind`, the `alarm` just after it, and for ``PROPERTY_SET`` the
    `property` key that was set. E.g. ``event.kind is AlarmEventKind.OPENED and
    event.alarm.severity >= Severity.CRITICAL``."""

    kind: AlarmEventKind
    alarm: Alarm
    property: str | None = None


AlarmSubscriber = Callable[[AlarmEvent], None]

_EVENT_OPENED, _EVENT_CHANGED, _EVENT_CLEARED = AlarmEventKind.OPENED, AlarmEventKind.CHANGED, AlarmEventKind.CLEARED


# -- monitoring ---------------------------------------------------------------------------------


class _ElementMonitor:
    """What watches one element with a template: its template's rules for its protocol, a value
    watcher per monitored parameter and a change listener for the monitored tables.

    The change path compares the new value's severity with the alarm in place without taking the
    manager's lock; only a difference goes to the manager, which looks again under its lock."""

    def __init__(self, manager: AlarmManager, element: Element, compiled: _CompiledTemplate) -> None:
        self.manager = manager
        self.element = element
        self.parameters = compiled.parameters
        self.tables = compiled.tables
        self.ids = element.ids
        self.alarms = manager._alarms_of(self.ids)  # the manager's live dict for this element
        self.watchers = {pid: self._watcher(rule) for pid, rule in self.parameters.items()}
        self.listener = self._listener()

    def attach(self) -> None:
        """Start hearing the element's changes."""
        element = self.element
        for pid, watcher in self.watchers.items():
            element.add_value_watcher(pid, watcher)
        if self.tables:
            element.add_change_listener(self.listener, ids=self.tables)

    def detach(self) -> None:
        element = self.element
        for pid, watcher in self.watchers.items():
            element.remove_value_watcher(pid, watcher)
        element.remove_change_listener(self.listener)

    def _watcher(self, rule: _Rule) -> ValueWatcher:
        """What the element calls after each set of the rule's parameter: a closure over what it
        looks up, because it runs on every set. A value still normal without an alarm, the common
        case, costs a comparison and a dict lookup; `severity` is called only for other values."""
        alarm_at = self.alarms.get
        key = rule.key
        severity = rule.severity
        evaluate = self.manager._evaluate
        candidates = ((rule, None),)
        monitor = self
        normal = _NORMAL

        def judge(value: Any) -> None:  # the value is not normal, or its parameter has an alarm
            alarm = alarm_at(key)
            if severity(value) is not (normal if alarm is None else alarm.severity):
                evaluate(monitor, candidates)

        if rule.normal_band is not None:
            bottom, top = rule.normal_band

            def watch_number(element: Element, pid: int, value: Any) -> None:
                if (value is None or bottom <= value <= top) and alarm_at(key) is None:
                    return
                judge(value)

            return watch_number

        abnormal = rule.abnormal_values
        assert abnormal is not None  # a rule has a normal band or abnormal values

        def watch_discrete(element: Element, pid: int, value: Any) -> None:
            if value not in abnormal and alarm_at(key) is None:
                return
            judge(value)

        return watch_discrete

    def _listener(self) -> Callable[[Element, Change], None]:
        """What the element calls after each change of a monitored table."""
        rules_of_table = self.tables.get
        table_changed = self._table_changed

        def on_table_change(element: Element, change: Change) -> None:
            rules = rules_of_table(change.table)  # type: ignore[union-attr]  # only tables are listened to
            if rules is not None:
                table_changed(rules, change)  # type: ignore[arg-type]

        return on_table_change

    def _table_changed(self, rules: tuple[_Rule, ...], change: TableChange) -> None:
        rows = self.element._tables[change.table].rows
        alarms = self.alarms
        keys = list(rows) if change.keys is None else change.keys
        candidates = []
        for key in keys:
            row = rows.get(key)
            for rule in rules:
                alarm = alarms.get((rule.parameter_id, key))
                if _severity_of_row(rule, row) is not (_NORMAL if alarm is None else alarm.severity):
                    candidates.append((rule, key))
        gone = set(change.removed)
        if change.keys is None:  # any row may have gone: look for alarms of rows no longer there
            gone.update(key for _, key in list(alarms) if key is not None and key not in rows)
        if gone:
            column_rules = {rule.parameter_id: rule for rule in rules}
            candidates.extend(
                (column_rules[pid], key) for pid, key in list(alarms) if key in gone and pid in column_rules
            )
        if candidates:
            self.manager._evaluate(self, candidates)

    def current(self, rule: _Rule, row_key: str | None) -> tuple[bool, Any]:
        """(present, value) of a monitored parameter or cell now; a deleted row is not present."""
        element = self.element
        if rule.table_id is None:
            return True, element._values.get(rule.parameter_id)
        row = element._tables[rule.table_id].rows.get(row_key)  # type: ignore[arg-type]
        return (False, None) if row is None else (True, row[rule.column_index])

    def everything(self) -> Iterable[tuple[_Rule, str | None]]:
        """(rule, row key) of every monitored parameter, and of every row of monitored tables."""
        for rule in self.parameters.values():
            yield rule, None
        for table_id, rules in self.tables.items():
            keys = list(self.element._tables[table_id].rows)
            for rule in rules:
                for key in keys:
                    yield rule, key

    def rule_for(self, parameter_id: int) -> _Rule | None:
        rule = self.parameters.get(parameter_id)
        if rule is None:
            rule = next((r for rules in self.tables.values() for r in rules if r.parameter_id == parameter_id), None)
        return rule


def _severity_of_row(rule: _Rule, row: Sequence[Any] | None) -> Severity:
    return _NORMAL if row is None else rule.severity(row[rule.column_index])


# -- the manager --------------------------------------------------------------------------------


class AlarmManager:
    """The alarms of a DataMiner System: ``dms.alarms``.

    Templates are assigned per element; changes come from elements' threads, users and scripts
    at once, so all alarm state is guarded by one lock, and subscribers are called only once it
    is released.
    """

    history_limit: int = MAX_CLEARED_ALARMS

    def __init__(self, dms: DataMinerSystem) -> None:
        self._dms = dms
        self._clock = dms.clock
        self._store = RecordStore(dms.state_dir / ALARMS_FILE, "alarms")
        self._encoded = EncodedRecords()  # the records of the alarms saved, by alarm id
        self._lock = threading.Lock()
        self._dirty = False
        # Alarms opened, changed, cleared, given a property or dropped from the history since
        # the last save: the save encodes only those.
        self._changed_ids: set[int] = set()
        self._next_id = 1
        self._templates: dict[tuple[int, int], AlarmTemplate] = {}
        self._monitors: dict[tuple[int, int], _ElementMonitor] = {}
        # Active alarms by element, then by (parameter, row key). The inner dicts are shared with
        # the monitors and never replaced, so the change path reads them without the lock.
        self._by_element: dict[tuple[int, int], dict[AlarmKey, Alarm]] = {}
        self._active: dict[int, Alarm] = {}
        self._cleared: OrderedDict[int, Alarm] = OrderedDict()  # oldest cleared first
        self._subscribers: tuple[AlarmSubscriber, ...] = ()  # replaced whole: iterated without the lock
        self._events = SerialDelivery(self._deliver)  # queued under `_lock`, so in the order of the changes
        self._load()

    # -- templates ----------------------------------------------------------------------------

    def assign_template(self, element: ElementRef, template: AlarmTemplate | None) -> None:
        """Monitor `element` with `template` from now on, evaluating its current values at once;
        None removes its template and clears its alarms. A template that does not fit the
        element's protocol raises `AlarmTemplateError` naming the parameter; nothing changes then."""
        target = self._dms.element(element)
        if template is None:
            self._detach(target, forget_template=True, reason="template removed")
            return
        if not isinstance(template, AlarmTemplate):
            raise TypeError(f"an alarm template is an AlarmTemplate (or None to remove it), not {template!r}")
        monitor = _ElementMonitor(self, target, _compile(template, target._model, target.name))
        with self._lock:
            old = self._monitors.get(target.ids)
            self._monitors[target.ids] = monitor
            self._templates[target.ids] = template
            self._dirty = True
        if old is not None:
            old.detach()
        monitor.attach()
        self._evaluate_element(monitor)

    def template(self, element: ElementRef) -> AlarmTemplate | None:
        """The template assigned to an element, if any."""
        return self._templates.get(self._dms.element(element).ids)

    # -- queries ------------------------------------------------------------------------------

    def active(
        self, element: ElementRef | None = None, severity: Severity | None = None, parameter: int | str | None = None
    ) -> list[Alarm]:
        """Active alarms, oldest first: of one element (by name, ids or itself), of at least
        `severity`, of one parameter or column (by id, or by name)."""
        with self._lock:
            alarms = list(self._active.values())
        return self._filtered(alarms, element, severity, parameter, by_worst=False)

    def history(
        self, element: ElementRef | None = None, severity: Severity | None = None, parameter: int | str | None = None
    ) -> list[Alarm]:
        """Cleared alarms still kept (the last `history_limit`), in the order they cleared; filtered
        as `active` is, `severity` being the worst each alarm reached. An element given by its ids
        may be one that was deleted."""
        with self._lock:
            alarms = list(self._cleared.values())
        return self._filtered(alarms, element, severity, parameter, by_worst=True)

    def get(self, alarm_id: int) -> Alarm:
        """An active or kept cleared alarm by id; `UnknownAlarmError` otherwise."""
        with self._lock:
            return self._find_locked(alarm_id)

    # -- properties ---------------------------------------------------------------------------

    def set_property(self, alarm_id: int, key: str, value: str) -> Alarm:
        """Set a property of an active or kept cleared alarm (SES keeps its SNOW ticket id,
        incident number and link there); answers the alarm as it is now."""
        if not isinstance(key, str) or not key:
            raise AlarmError(f"alarm {alarm_id}: a property key is a non-empty string, not {key!r}")
        if not isinstance(value, str):
            raise AlarmError(f"alarm {alarm_id}: property {key!r} takes a string, not {type(value).__name__} {value!r}")
        with self._lock:
            alarm = self._find_locked(alarm_id)
            alarm = alarm._with_property(key, value)
            self._replace_locked(alarm)
            self._dirty = True
            self._events.queue(AlarmEvent(AlarmEventKind.PROPERTY_SET, alarm, key))
        self._events.run()
        return alarm

    # -- subscriptions ------------------------------------------------------------------------

    def subscribe(self, callback: AlarmSubscriber) -> Callable[[], None]:
        """Call `callback(event)` on every alarm event from now on; answers the unsubscribe function."""
        if not callable(callback):
            raise TypeError(f"an alarm subscriber is a callable taking an AlarmEvent, not {callback!r}")
        with self._lock:
            self._subscribers = (*self._subscribers, callback)

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = tuple(known for known in self._subscribers if known is not callback)

        return unsubscribe

    # -- saving (the DMS's `SystemService` seam) ----------------------------------------------

    @property
    def dirty(self) -> bool:
        return self._dirty

    def save_if_dirty(self) -> None:
        with self._lock:
            if not self._dirty:
                return
            self._dirty = False
            # Alarms and templates are immutable: references are a consistent snapshot.
            next_id, templates = self._next_id, list(self._templates.items())
            active, cleared = self._active, self._cleared
            changed_ids, self._changed_ids = self._changed_ids, set()
            changed = {alarm_id: active.get(alarm_id) or cleared.get(alarm_id) for alarm_id in changed_ids}
            saved_ids = [*active, *cleared]  # the file's order: active ones, then the history
        store = self._store
        try:
            records = [store.encode({"kind": "counter", "next_id": next_id})]
            records.extend(store.encode(_template_record(ids, template)) for ids, template in templates)
            # Only the alarms that changed since the last save are encoded (None: gone).
            records.extend(self._encoded.texts(saved_ids, changed, lambda alarm: store.encode(_alarm_record(alarm))))
            store.save_encoded(records)
        except StateFileError:
            with self._lock:
                self._dirty = True  # the next batch tries again, with these alarms still to encode
                self._changed_ids |= changed_ids
            raise

    def _reserve_ids(self, taken: Iterable[int]) -> None:
        """Never give out these alarm ids (linked elsewhere, e.g. by tickets, but maybe lost here)."""
        highest = max(taken, default=0)
        with self._lock:
            if highest >= self._next_id:
                self._next_id = highest + 1
                self._dirty = True

    # -- element lifecycle (called by the DMS) ------------------------------------------------

    def _element_state_changed(self, element: Element) -> None:
        """A start evaluates the element's current values (on its queue, after what a stop left
        to do there); a stop clears its alarms; a pause changes nothing."""
        state = element.state
        if state is ElementState.ACTIVE:
            monitor = self._attach(element)
            if monitor is not None:
                element._queue.run(self._evaluate_element, monitor)
        elif state is _STOPPED:
            self._clear_element(element.ids, "element stopped")

    def _element_deleted(self, element: Element) -> None:
        self._detach(element, forget_template=True, reason="element deleted")
        with self._lock:
            self._by_element.pop(element.ids, None)

    def _elements_loaded(self) -> None:
        """After the DMS loaded its elements: templates go back on their elements; alarms of
        elements that are gone or stopped (a stop saved before the alarms were) clear."""
        for ids in list(self._templates):
            element = self._dms.find(ids)
            if element is None:
                with self._lock:
                    self._templates.pop(ids, None)
                    self._dirty = True
            else:
                self._attach(element)
        for ids in list(self._by_element):
            element = self._dms.find(ids)
            if element is None:
                self._clear_element(ids, "element deleted")
                with self._lock:
                    self._by_element.pop(ids, None)
            elif element.state is _STOPPED:
                self._clear_element(ids, "element stopped")

    # -- internals ----------------------------------------------------------------------------

    def _alarms_of(self, ids: tuple[int, int]) -> dict[AlarmKey, Alarm]:
        with self._lock:
            return self._by_element.setdefault(ids, {})

    def _attach(self, element: Element) -> _ElementMonitor | None:
        """The element's monitor, built from its saved template the first time; a saved template
        its protocol no longer fits is logged on the element and kept (nothing saved is lost)."""
        monitor = self._monitors.get(element.ids)
        if monitor is not None and monitor.element is element:
            return monitor
        template = self._templates.get(element.ids)
        if template is None:
            return None
        try:
            monitor = _ElementMonitor(self, element, _compile(template, element._model, element.name))
        except AlarmTemplateError as error:
            element.log(f"alarm template not applied: {error}", LogType.ERROR)
            return None
        with self._lock:
            if self._templates.get(element.ids) is not template:
                return self._monitors.get(element.ids)  # assigned anew meanwhile
            self._monitors[element.ids] = monitor
        monitor.attach()
        return monitor

    def _detach(self, element: Element, *, forget_template: bool, reason: str) -> None:
        with self._lock:
            monitor = self._monitors.pop(element.ids, None)
            if forget_template and self._templates.pop(element.ids, None) is not None:
                self._dirty = True
        if monitor is not None:
            monitor.detach()
        self._clear_element(element.ids, reason)

    def _evaluate_element(self, monitor: _ElementMonitor) -> None:
        """Evaluate every monitored value of the element now, and clear what is no longer monitored."""
        self._evaluate(monitor, None)

    def _evaluate(self, monitor: _ElementMonitor, candidates: Iterable[tuple[_Rule, str | None]] | None) -> None:
        """Bring the alarms of these (rule, row key) in line with the values now; None: of every
        monitored value, clearing the alarms of parameters the template no longer names."""
        now = self._clock.now()
        element = monitor.element
        alarms = monitor.alarms
        with self._lock:
            # A replaced template's watcher may still be finishing a change: the new one rules. A
            # paused element's alarms are frozen (a QAction running at the pause may still change
            # values): its start evaluates them again.
            if self._monitors.get(monitor.ids) is not monitor or element._state is not _ACTIVE:
                return
            if candidates is None:
                candidates = list(monitor.everything())
                for key, alarm in list(alarms.items()):
                    rule = monitor.rule_for(key[0])
                    if rule is None:
                        self._clear_locked(alarms, alarm, now, None, "not in the template any more")
                    else:
                        candidates.append((rule, key[1]))  # its row may be gone
            for rule, row_key in candidates:
                present, value = monitor.current(rule, row_key)
                if present:
                    self._apply_locked(monitor, rule, row_key, rule.severity(value), value, "", now)
                else:
                    self._apply_locked(monitor, rule, row_key, _NORMAL, None, "row deleted", now)
        self._events.run()

    def _apply_locked(
        self,
        monitor: _ElementMonitor,
        rule: _Rule,
        row_key: str | None,
        severity: Severity,
        value: Any,
        reason: str,
        now: float,
    ) -> None:
        alarms = monitor.alarms
        key = (rule.parameter_id, row_key)
        alarm = alarms.get(key)
        if alarm is None:
            if severity is _NORMAL:
                return
            element = monitor.element
            alarm = Alarm(
                id=self._next_id,
                element_ids=monitor.ids,
                element_name=element.name,
                parameter_id=rule.parameter_id,
                parameter_name=rule.parameter_name,
                row_key=row_key,
                severity=severity,
                value=value,
                opened=now,
                last_change=now,
                cleared=None,
                records=(AlarmRecord(now, severity, value),),
                worst_severity=severity,
            )
            self._next_id += 1
            alarms[key] = self._active[alarm.id] = alarm
            self._events.queue(AlarmEvent(_EVENT_OPENED, alarm))
        elif severity is _NORMAL:
            self._clear_locked(alarms, alarm, now, value, reason)
            return
        elif severity is not alarm.severity:
            alarm = alarm._recorded(now, severity, value)
            alarms[key] = self._active[alarm.id] = alarm
            self._events.queue(AlarmEvent(_EVENT_CHANGED, alarm))
        else:
            return
        self._changed_ids.add(alarm.id)
        self._dirty = True

    def _clear_locked(self, alarms: dict[AlarmKey, Alarm], alarm: Alarm, now: float, value: Any, reason: str) -> None:
        cleared = alarm._recorded(now, _NORMAL, value, reason)
        del alarms[alarm.key]
        del self._active[alarm.id]
        self._cleared[alarm.id] = cleared
        self._changed_ids.add(alarm.id)
        while len(self._cleared) > self.history_limit:
            self._changed_ids.add(self._cleared.popitem(last=False)[0])
        self._dirty = True
        self._events.queue(AlarmEvent(_EVENT_CLEARED, cleared))

    def _clear_element(self, ids: tuple[int, int], reason: str) -> None:
        now = self._clock.now()
        with self._lock:
            alarms = self._by_element.get(ids, {})
            for alarm in list(alarms.values()):
                self._clear_locked(alarms, alarm, now, None, reason)
        self._events.run()

    def _find_locked(self, alarm_id: int) -> Alarm:
        alarm = self._active.get(alarm_id) or self._cleared.get(alarm_id)
        if alarm is None:
            raise UnknownAlarmError(
                f"no alarm {alarm_id!r} in this DMS: it never existed, or it cleared longer ago than the "
                f"last {self.history_limit} cleared alarms kept"
            )
        return alarm

    def _replace_locked(self, alarm: Alarm) -> None:
        if alarm.active:
            self._active[alarm.id] = self._by_element[alarm.element_ids][alarm.key] = alarm
        else:
            self._cleared[alarm.id] = alarm
        self._changed_ids.add(alarm.id)

    def _deliver(self, event: AlarmEvent) -> None:
        """Tell every subscriber (outside the lock: `SerialDelivery`); a failing one is logged and
        the others still hear."""
        for callback in self._subscribers:
            try:
                callback(event)
            except Exception:  # a subscriber's bug never undoes the change or stops the others
                _logger.exception("alarm subscriber %r failed on %s of alarm %d", callback, event.kind.value, event.alarm.id)

    def _filtered(
        self,
        alarms: list[Alarm],
        element: ElementRef | None,
        severity: Severity | None,
        parameter: int | str | None,
        *,
        by_worst: bool,
    ) -> list[Alarm]:
        if element is not None:
            # Ids are taken as they are, so the history of a deleted element can be asked for.
            ids = tuple(element) if isinstance(element, tuple) else self._dms.element(element).ids
            alarms = [alarm for alarm in alarms if alarm.element_ids == ids]
        if severity is not None:
            least = Severity(severity)
            alarms = [alarm for alarm in alarms if (alarm.worst_severity if by_worst else alarm.severity) >= least]
        if parameter is not None:
            if isinstance(parameter, str):
                alarms = [alarm for alarm in alarms if alarm.parameter_name == parameter]
            else:
                alarms = [alarm for alarm in alarms if alarm.parameter_id == parameter]
        return alarms

    def _load(self) -> None:
        records = self._store.load()
        try:
            for record in records:
                kind = record["kind"]
                if kind == "counter":
                    self._next_id = max(self._next_id, _typed(record, "next_id", int))
                elif kind == "template":
                    self._templates[_element_ids(record)] = _template_from_record(record)
                elif kind == "alarm":
                    alarm = _alarm_from_record(record)
                    self._next_id = max(self._next_id, alarm.id + 1)
                    if alarm.active:
                        self._active[alarm.id] = self._by_element.setdefault(alarm.element_ids, {})[alarm.key] = alarm
                    else:
                        self._cleared[alarm.id] = alarm
                else:
                    raise ValueError(f"a record of unknown kind {kind!r}")
        except (KeyError, TypeError, ValueError) as error:
            raise StateFileError(f"state file {self._store.path} has an unexpected layout: {error!r}") from error
        self._cleared = OrderedDict(sorted(self._cleared.items(), key=lambda item: (item[1].cleared, item[0])))
        self._changed_ids.update(self._active)  # none encoded yet: the first save encodes them all
        self._changed_ids.update(self._cleared)

    def __repr__(self) -> str:
        return f"<AlarmManager: {len(self._active)} active, {len(self._cleared)} cleared kept>"


# -- records on disk ----------------------------------------------------------------------------


def _typed(record: Mapping[str, Any], field: str, *kinds: type) -> Any:
    value = record[field]
    if type(value) not in kinds:
        raise TypeError(f"field {field!r} is {value!r}, not of type {' or '.join(kind.__name__ for kind in kinds)}")
    return value


def _element_ids(record: Mapping[str, Any]) -> tuple[int, int]:
    ids = _typed(record, "element", list)
    if len(ids) != 2 or not all(type(part) is int for part in ids):
        raise ValueError(f"element {ids!r} is not [agent id, element id]")
    return (ids[0], ids[1])


def _template_record(ids: tuple[int, int], template: AlarmTemplate) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = []
    for ref, monitor in template.parameters.items():
        if isinstance(monitor, Thresholds):
            parameters.append(
                {
                    "parameter": ref,
                    "high": {severity.label: limit for severity, limit in monitor.high.items()},
                    "low": {severity.label: limit for severity, limit in monitor.low.items()},
                }
            )
        else:
            # A list of pairs: discrete values need not be strings, JSON object keys must be.
            parameters.append({"parameter": ref, "discrete": [[v, s.label] for v, s in monitor.severities.items()]})
    return {"kind": "template", "element": list(ids), "name": template.name, "parameters": parameters}


def _template_from_record(record: Mapping[str, Any]) -> AlarmTemplate:
    parameters: dict[int | str, Monitor] = {}
    for entry in _typed(record, "parameters", list):
        ref = _typed(entry, "parameter", int, str)
        if "discrete" in entry:
            pairs = _typed(entry, "discrete", list)
            parameters[ref] = DiscreteSeverities({value: Severity.from_label(label) for value, label in pairs})
        else:
            high, low = _typed(entry, "high", dict), _typed(entry, "low", dict)
            parameters[ref] = Thresholds(
                high={Severity.from_label(label): limit for label, limit in high.items()},
                low={Severity.from_label(label): limit for label, limit in low.items()},
            )
    try:
        return AlarmTemplate(_typed(record, "name", str), parameters)
    except AlarmTemplateError as error:
        raise ValueError(str(error)) from None


_LABELS = {severity: severity.label for severity in Severity}  # a property call per label is slow: an alarm record has several


def _alarm_record(alarm: Alarm) -> dict[str, Any]:
    label = _LABELS.__getitem__
    return {
        "kind": "alarm",
        "id": alarm.id,
        "element": list(alarm.element_ids),
        "element_name": alarm.element_name,
        "parameter_id": alarm.parameter_id,
        "parameter_name": alarm.parameter_name,
        "row_key": alarm.row_key,
        "severity": label(alarm.severity),
        "worst_severity": label(alarm.worst_severity),
        "value": alarm.value,
        "opened": alarm.opened,
        "last_change": alarm.last_change,
        "cleared": alarm.cleared,
        "records": [[r.time, label(r.severity), r.value, r.reason] for r in alarm.records],
        "properties": dict(alarm.properties),
    }


_SCALARS = (str, int, float, bool, type(None))
_TIME = (int, float)  # JSON writes a whole float without its fraction


def _alarm_from_record(record: Mapping[str, Any]) -> Alarm:
    records = tuple(
        AlarmRecord(float(time), Severity.from_label(severity), value, reason)
        for time, severity, value, reason in _typed(record, "records", list)
    )
    if not records:
        raise ValueError(f"alarm {record['id']!r} has no records")
    properties = _typed(record, "properties", dict)
    if not all(type(value) is str for value in properties.values()):
        raise TypeError(f"alarm {record['id']!r} has a property that is not a string")
    cleared = _typed(record, "cleared", *_TIME, type(None))
    return Alarm(
        id=_typed(record, "id", int),
        element_ids=_element_ids(record),
        element_name=_typed(record, "element_name", str),
        parameter_id=_typed(record, "parameter_id", int),
        parameter_name=_typed(record, "parameter_name", str),
        row_key=_typed(record, "row_key", str, type(None)),
        severity=Severity.from_label(_typed(record, "severity", str)),
        value=_typed(record, "value", *_SCALARS),
        opened=float(_typed(record, "opened", *_TIME)),
        last_change=float(_typed(record, "last_change", *_TIME)),
        cleared=None if cleared is None else float(cleared),
        records=records,
        properties=properties,
        worst_severity=Severity.from_label(_typed(record, "worst_severity", str)),
    )
