"""What the REST API answers: the DMS's objects as plain JSON-ready data.

Element identity and parameter values come from the page model (`dmemu.pages`), so the API
shows exactly what `dmemu show --json` shows: the same display texts and units, and passwords
masked in the same one place (`ReadableElement.get`, `pages.masked_rows`), never sent.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from ..dms import Alarm, AlarmEvent, ScriptRun, Ticket, TicketEvent
from ..pages import PageModel, ParameterContent, element_data, masked_rows, read_page
from ..protocol import (
    Button,
    Column,
    DateTime,
    Discrete,
    Element,
    Number,
    PageButton,
    Parameter,
    String,
    Table,
    TableView,
)
from ..protocol.measurement import Measurement


class JsonText(str):
    """JSON already made (`json_text`), answered as it is."""


def json_text(content: Any) -> str:
    """Compact JSON, as the API answers; values JSON has no type for (a date in a ticket field) as their text."""
    return json.dumps(content, ensure_ascii=False, default=str, separators=(",", ":"))


def with_json_field(content: dict[str, Any], name: str, text: str) -> JsonText:
    """`content` as JSON with one more field, last, whose value is the JSON `text` made before."""
    head = json_text(content)
    return JsonText(f'{head[:-1]}{"," if content else ""}"{name}":{text}}}')


def element_ref(element: Element | tuple[int, int]) -> str:
    """``AGENT/ELEMENT``: how the API's paths and events name an element, given the element or
    its (agent id, element id), as an alarm keeps them after its element is gone."""
    agent_id, element_id = (element.agent_id, element.element_id) if isinstance(element, Element) else element
    return f"{agent_id}/{element_id}"


def element_json(element: Element) -> dict[str, Any]:
    """An element as the API lists it: its ``AGENT/ELEMENT`` ref with the page model's data
    (name, ids, protocol, state)."""
    return {"ref": element_ref(element), **element_data(element)}


def type_json(kind: Measurement) -> dict[str, Any]:
    """What a parameter or column accepts, for a form: its kind and limits."""
    data: dict[str, Any]
    if isinstance(kind, DateTime):
        data = {"kind": "datetime"}
    elif isinstance(kind, Number):
        data = {"kind": "number", "minimum": kind.minimum, "maximum": kind.maximum, "decimals": kind.decimals}
        if kind.units:
            data["units"] = kind.units
    elif isinstance(kind, String):
        data = {"kind": "string", "max_length": kind.max_length}
        if kind.secret:
            data["secret"] = True
    elif isinstance(kind, Discrete):
        data = {"kind": "discrete", "options": [{"value": value, "display": name} for value, name in kind.values.items()]}
    elif isinstance(kind, Button):
        data = {"kind": "button", "label": kind.label}
    elif isinstance(kind, PageButton):
        data = {"kind": "page_button", "page": kind.page, "label": kind.label or kind.page}
    else:  # pragma: no cover - the protocol check allows no other kind
        data = {"kind": type(kind).__name__}
    data["allowed"] = kind.allowed()
    return data


def parameter_content(element: Element, parameter: Parameter) -> ParameterContent:
    """A parameter as a page reads it (`get` reads a password as its mask)."""
    value = element.get(parameter.id)
    return ParameterContent(parameter, value, parameter.type.display(value))


def parameter_json(item: ParameterContent) -> dict[str, Any]:
    """A parameter as a page shows it: value and display text (as the page model read them, a
    secret's masked), units, whether it is writable or secret, its page, type and description."""
    parameter = item.parameter
    data: dict[str, Any] = {
        "id": parameter.id,
        "name": parameter.name,
        "value": item.value,
        "display": item.display,
        "units": item.units,
        "write": parameter.write,
        "secret": parameter.secret,
        "page": parameter.page,
        "type": type_json(parameter.type),
    }
    if parameter.description:
        data["description"] = parameter.description
    return data


def column_json(column: Column) -> dict[str, Any]:
    """A table column: id, name, whether it is the key or writable, and what it accepts."""
    return {"id": column.id, "name": column.name, "key": column.key, "write": column.write, "type": type_json(column.type)}


def table_json(element: Element, table: Table) -> dict[str, Any]:
    """A table without its rows: columns, row count and display key (rows come paged)."""
    display_key = None
    if table.display_key is not None:
        model = element.protocol.model.table(table.id)
        names = [table.columns[model.column_position(column)].name for column in table.display_key.columns]
        display_key = {"columns": names, "separator": table.display_key.separator}
    return {
        "id": table.id,
        "name": table.name,
        "page": table.page,
        "columns": [column_json(column) for column in table.columns],
        "row_count": len(element.table(table.id)),
        "display_key": display_key,
    }


def page_json(element: Element, page: PageModel) -> dict[str, Any]:
    """One page: its parameters with values and display texts, its tables without rows."""
    content = read_page(element, page, rows=1)  # the parameters; tables' rows come paged
    return {
        "name": page.name,
        "parent": page.parent,
        "depth": page.depth,
        "sub_pages": list(page.sub_pages),
        "parameters": [parameter_json(item) for item in content.parameters],
        "tables": [table_json(element, table) for table in page.tables],
    }


def rows_json(view: TableView, table: Table, rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Rows as a page shows them: raw cells and display texts, passwords masked."""
    key_index = view.model.key_index
    # Looked up once per column, not per cell: a plain string column shows itself.
    displays = [None if type(column.type) is String and not column.type.secret else column.type.display for column in table.columns]
    shown = []
    for row in masked_rows(table, rows):
        key = row[key_index]
        shown.append(
            {
                "key": key,
                # From the masked cells: a display key may include a password column.
                "display_key": view.row_label(row),
                "cells": list(row),
                "display": [("" if value is None else value) if show is None else show(value) for show, value in zip(displays, row)],
            }
        )
    return shown


def row_json(view: TableView, table: Table, key: str) -> dict[str, Any]:
    """One row in full: every cell with its column's id, name, value and display text."""
    row = masked_rows(table, [tuple(view.row(key).values())])[0]
    return {
        "key": key,
        "display_key": view.row_label(row),  # masked, as in rows_json
        "cells": [
            {"id": column.id, "name": column.name, "value": value, "display": column.type.display(value)}
            for column, value in zip(table.columns, row)
        ],
    }


def monitored_kind(element: Element | None, pid: int) -> Measurement | None:
    """The type of a monitored parameter or column (None: the element or the id is gone)."""
    if element is None:
        return None
    model = element.protocol.model
    kind = model.parameters[pid].type if pid in model.parameters else None
    for table in model.tables.values():
        if kind is None and pid in table.column_index:
            kind = table.table.columns[table.column_index[pid]].type
    return kind


def value_display(element: Element | None, pid: int, value: Any) -> str | None:
    """A monitored parameter's or column's value as its page shows it (None: the element is gone)."""
    kind = monitored_kind(element, pid)
    # A password's display is its mask (`String.display`), as on its page.
    return None if kind is None else kind.display(value)


def alarm_json(alarm: Alarm, element: Element | None = None) -> dict[str, Any]:
    """An alarm; with its element (if it still exists) its values' display texts too."""

    def shown(value: Any) -> str:
        display = value_display(element, alarm.parameter_id, value)
        return display if display is not None else ("" if value is None else str(value))

    kind = monitored_kind(element, alarm.parameter_id)
    secret = isinstance(kind, String) and kind.secret

    def sent(value: Any) -> Any:
        """The raw value, unless it is a password's: then its mask, like `display`."""
        return kind.display(value) if secret and kind is not None else value

    return {
        "id": alarm.id,
        "element": element_ref(alarm.element_ids),
        "element_name": alarm.element_name,
        "parameter_id": alarm.parameter_id,
        "parameter_name": alarm.parameter_name,
        "row_key": alarm.row_key,
        "severity": alarm.severity.label,
        "worst_severity": alarm.worst_severity.label,
        "value": sent(alarm.value),
        "display": shown(alarm.value),
        "active": alarm.active,
        "opened": alarm.opened,
        "last_change": alarm.last_change,
        "cleared": alarm.cleared,
        "properties": dict(alarm.properties),
        "records": [
            {"time": record.time, "severity": record.severity.label, "value": sent(record.value), "display": shown(record.value), "reason": record.reason}
            for record in alarm.records
        ],
    }


def alarm_event_json(event: AlarmEvent, element: Element | None = None) -> dict[str, Any]:
    return {"kind": event.kind.value, "property": event.property, "alarm": alarm_json(event.alarm, element)}


def ticket_json(ticket: Ticket) -> dict[str, Any]:
    """A ticket as DMS Ticketing records it (`Ticket.to_record`)."""
    return ticket.to_record()


def ticket_event_json(event: TicketEvent) -> dict[str, Any]:
    return {
        "kind": event.kind.value,
        "changed_fields": sorted(event.changed_fields),
        "previous_state": None if event.previous_state is None else event.previous_state.value,
        "ticket": ticket_json(event.ticket),
    }


def run_json(run: ScriptRun) -> dict[str, Any]:
    """An automation script run: its script and input, state, result or error, times and logs."""
    return {
        "id": run.id,
        "script": run.script,
        "input": run.input,
        "state": run.state.value,
        "result": run.result,
        "error": run.error,
        "started": run.started,
        "finished": run.finished,
        "logs": [{"time": entry.time, "type": entry.type.value, "message": entry.message} for entry in run.logs()],
    }


def record_json(record: Any) -> dict[str, Any]:
    """A simulator's `RequestRecord` (credentials already masked by the simulator's log)."""
    return attrs.asdict(record)
