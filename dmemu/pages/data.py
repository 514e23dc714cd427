"""Pages for programs: plain data (dicts, lists, JSON scalars) ready for `json.dumps`.

Values are the stored ones (a discrete's value, not its name; a date and time as epoch seconds:
``display`` and a table's ``display_rows`` have what the text form shows), so a program can
compare them with what it set; passwords are masked exactly as in the text form.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..protocol import ReadableElement
from .content import ParameterContent, TableContent, read_page
from .model import PageModel, pages_of


def element_data(element: ReadableElement) -> dict[str, Any]:
    """Who the element is: name, ids, protocol and state; ``live`` is False for an element read
    from saved state (its ``state`` is the saved one: nothing runs it here)."""
    return {
        "name": element.name,
        "agent_id": element.agent_id,
        "element_id": element.element_id,
        "protocol": element.protocol.name,
        "protocol_version": element.protocol.version,
        "state": element.state.value,
        "live": element.live,
    }


def elements_data(elements: Iterable[ReadableElement]) -> dict[str, Any]:
    """The elements of a DMS: ``{"elements": [element_data, ...]}``."""
    return {"elements": [element_data(element) for element in elements]}


def pages_data(element: ReadableElement) -> dict[str, Any]:
    """The element and its pages in display order, each with its tables' row counts."""
    return {
        "element": element_data(element),
        "pages": [
            {
                "name": page.name,
                "parent": page.parent,
                "sub_pages": list(page.sub_pages),
                "parameter_count": len(page.parameters),
                "tables": [{"id": t.id, "name": t.name, "row_count": len(element.table(t.id))} for t in page.tables],
            }
            for page in pages_of(element.protocol)
        ],
    }


def page_data(element: ReadableElement, page: str | PageModel, *, rows: int | None = None) -> dict[str, Any]:
    """One page of the element: its parameters and its tables with all rows (or the first `rows`)."""
    content = read_page(element, page, rows=rows)
    return {
        "element": element_data(element),
        "page": content.page.name,
        "parent": content.page.parent,
        "sub_pages": list(content.page.sub_pages),
        "parameters": [_parameter_data(item) for item in content.parameters],
        "tables": [_table_data(item) for item in content.tables],
    }


def _parameter_data(item: ParameterContent) -> dict[str, Any]:
    data = {"id": item.parameter.id, "name": item.parameter.name, "value": item.value, "display": item.display}
    if item.units:
        data["units"] = item.units
    if item.parameter.secret:
        data["secret"] = True
    return data


def _table_data(item: TableContent) -> dict[str, Any]:
    columns = item.table.columns
    return {
        "id": item.table.id,
        "name": item.table.name,
        "columns": [{"id": column.id, "name": column.name} for column in columns],
        "row_count": item.row_count,
        "rows": [list(row) for row in item.rows],
        # As the text form shows the cells (a discrete's name, a date and time), row by row.
        "display_rows": [[column.type.display(value) for column, value in zip(columns, row)] for row in item.rows],
    }
