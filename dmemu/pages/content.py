"""What one page of an element shows, read once through the element's read interface.

Both renderers (terminal text and JSON) start from a `PageContent`, so they show the same
values, and passwords are masked here, in one place, before any renderer sees them. The read
interface is `ReadableElement` (identity, `get`, `table`), which a live `Element` and a
`SavedElement` read from a state directory both provide.
"""

from __future__ import annotations

from typing import Any

import attrs

from ..protocol import Number, Parameter, ReadableElement, String, Table
from .model import PageModel, find_page


@attrs.frozen
class ParameterContent:
    """A parameter's value as the element reads it (a password as ``********`` or ``""``)."""

    parameter: Parameter
    value: Any
    display: str

    @property
    def units(self) -> str:
        kind = self.parameter.type
        return kind.units if isinstance(kind, Number) else ""


@attrs.frozen
class TableContent:
    """A table's row count and the rows asked for, with password cells masked."""

    table: Table
    row_count: int
    rows: tuple[tuple[Any, ...], ...]

    @property
    def rows_left_out(self) -> int:
        # A live table may grow between counting and reading its rows: never a negative count.
        return max(0, self.row_count - len(self.rows))


@attrs.frozen
class PageContent:
    """Everything one page of one element shows."""

    element: ReadableElement
    page: PageModel
    parameters: tuple[ParameterContent, ...]
    tables: tuple[TableContent, ...]


def state_text(element: ReadableElement) -> str:
    """The element's state as the pages show it: a saved one says so, since nothing runs it
    here (``saved as Active`` is what its DMS starts it as, not a sign that it runs now)."""
    return element.state.value if element.live else f"saved as {element.state.value}"


def read_page(element: ReadableElement, page: str | PageModel, *, rows: int | None = None) -> PageContent:
    """The content of `page` (a name or a `PageModel`) of `element`, with at most `rows` rows
    of each table (None or 0: all rows)."""
    if rows is not None and rows < 0:
        raise ValueError(f"rows must be 0 (all) or a positive number, not {rows}")
    model = page if isinstance(page, PageModel) else find_page(element.protocol, page)
    parameters = []
    for parameter in model.parameters:
        # `get` already reads a password as its mask: the real value never reaches a renderer.
        value = element.get(parameter.id)
        parameters.append(ParameterContent(parameter, value, parameter.type.display(value)))
    return PageContent(
        element=element,
        page=model,
        parameters=tuple(parameters),
        tables=tuple(_read_table(element, table, rows or None) for table in model.tables),
    )


def _read_table(element: ReadableElement, table: Table, limit: int | None) -> TableContent:
    view = element.table(table.id)
    row_count = len(view)
    return TableContent(table, row_count, tuple(masked_rows(table, view.row_cells(limit))))


def masked_rows(table: Table, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """`rows` of `table` as a page may show them: password cells as ``********`` or ``""``
    (the same list when the table has no password column)."""
    secret = [
        index for index, column in enumerate(table.columns) if isinstance(column.type, String) and column.type.secret
    ]
    if secret:
        rows = [_masked(row, secret, table) for row in rows]
    return rows


def _masked(row: tuple[Any, ...], secret: list[int], table: Table) -> tuple[Any, ...]:
    cells = list(row)
    for index in secret:
        cells[index] = table.columns[index].type.display(cells[index])
    return tuple(cells)
