"""Tables through the API: a page of rows, sorted by any column and filtered, from a live table.

Filters compare what a person sees (a discrete's name, a date as text), so ``Status=Active``
matches the rows that show Active; numbers compare as numbers with ``>``, ``>=``, ``<``, ``<=``.
A password column is sorted and filtered by its mask only: its values never leak through the
order of the rows or a filter's answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import attrs

from ..protocol import Column, Discrete, Number, String, Table, TableView
from ..protocol.errors import UnknownParameterError
from .errors import ApiError

MAX_LIMIT = 10_000
DEFAULT_LIMIT = 100

# The column reference is everything before the first operator character.
_FILTER = re.compile(r"^(?P<column>[^~=!<>]+)(?P<operator>~|!=|>=|<=|=|>|<)(?P<text>.*)$", re.DOTALL)


@attrs.frozen
class RowFilter:
    """``column~text`` (contains, ignoring case), ``column=text``, ``column!=text``, or an order
    (numbers as numbers, text as text)."""

    index: int
    operator: str
    text: str


@attrs.frozen
class RowQuery:
    offset: int = 0
    limit: int = DEFAULT_LIMIT
    sort: int | None = None  # a column index
    descending: bool = False
    filters: tuple[RowFilter, ...] = ()
    search: str = ""  # contained (ignoring case) in any column's display text


def column_index(view: TableView, ref: str, field: str) -> int:
    """A column by id, name or 1-based position, given as text; `ApiError` naming the field."""
    ref = ref.strip()
    try:
        return view.model.column_position(int(ref) if ref.isdigit() else ref)
    except UnknownParameterError as error:
        raise ApiError(400, field, str(error)) from None


def parse_query(view: TableView, params: Any) -> RowQuery:
    """The query parameters of a table request: ``offset``, ``limit``, ``sort`` (a column; a
    leading ``-`` sorts descending), ``order`` (asc or desc), ``filter`` (repeatable) and ``search``."""
    offset = _whole(params.get("offset"), "offset", 0, 0, None)
    limit = _whole(params.get("limit"), "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    sort_text = params.get("sort")
    sort = None
    descending = False
    if sort_text:
        if sort_text.startswith("-"):
            descending, sort_text = True, sort_text[1:]
        sort = column_index(view, sort_text, "sort")
    order = params.get("order")
    if order is not None:
        if order not in ("asc", "desc"):
            raise ApiError(400, "order", f"order is asc or desc, not {order!r}")
        descending = order == "desc"
    filters = []
    for text in params.getlist("filter"):
        match = _FILTER.match(text)
        if match is None:
            raise ApiError(400, "filter", f"filter {text!r} is not COLUMN~TEXT, COLUMN=VALUE, COLUMN!=VALUE or COLUMN>NUMBER (>=, <, <=)")
        filters.append(RowFilter(column_index(view, match["column"], "filter"), match["operator"], match["text"]))
    return RowQuery(offset, limit, sort, descending, tuple(filters), params.get("search") or "")


def _whole(text: str | None, field: str, default: int, low: int, high: int | None) -> int:
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise ApiError(400, field, f"{field} is a whole number, not {text!r}") from None
    if value < low or (high is not None and value > high):
        raise ApiError(400, field, f"{field} is from {low}{'' if high is None else f' to {high:,}'}, not {value}")
    return value


def query_rows(view: TableView, table: Table, query: RowQuery) -> tuple[int, int, list[tuple[Any, ...]]]:
    """(rows in the table, rows matching the filters, the asked page of those rows)."""
    columns = table.columns
    if not (query.filters or query.search or query.sort is not None):
        return len(view), len(view), view.row_cells(query.limit, query.offset)  # a window: no copy of the table
    rows = view.row_cells()  # one copy of the rows: the table may change while we look
    total = len(rows)
    for row_filter in query.filters:
        rows = [row for row in rows if _filter_test(columns[row_filter.index], row_filter)(row[row_filter.index])]
    if query.search:
        wanted = query.search.casefold()
        shown = [_shown(column) for column in columns]
        rows = [row for row in rows if any(wanted in show(value).casefold() for show, value in zip(shown, row))]
    if query.sort is not None:
        index, key = query.sort, _sort_key(columns[query.sort])
        rows.sort(key=lambda row: key(row[index]), reverse=query.descending)
    return total, len(rows), rows[query.offset : query.offset + query.limit]


def _secret(column: Column) -> bool:
    return isinstance(column.type, String) and column.type.secret


def _shown(column: Column) -> Callable[[Any], str]:
    """The cell's text as a page shows it (a plain string column is its own text: no call)."""
    if isinstance(column.type, String) and not column.type.secret:
        return lambda value: "" if value is None else value
    return column.type.display


def _filter_test(column: Column, row_filter: RowFilter) -> Callable[[Any], bool]:
    shown, text, operator = _shown(column), row_filter.text, row_filter.operator
    if operator == "~":
        wanted = text.casefold()
        return lambda value: wanted in shown(value).casefold()
    if operator in ("=", "!="):
        # The display text or the stored value written out (a discrete's 1 as well as its name).
        equal = operator == "="
        return lambda value: ((shown(value) == text) or (value is not None and not _secret(column) and str(value) == text)) is equal
    if isinstance(column.type, Number):
        try:
            bound = float(text)
        except ValueError:
            raise ApiError(400, "filter", f"column {column.name!r} holds numbers: {text!r} is no number") from None
        compare = _COMPARE[operator]
        return lambda value: value is not None and compare(value, bound)
    compare = _COMPARE[operator]
    return lambda value: compare(shown(value), text)


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}


def _sort_key(column: Column) -> Callable[[Any], tuple[int, Any]]:
    """Empty cells last; numbers by value; discretes by the name shown; passwords by their mask."""
    if isinstance(column.type, Number):
        return lambda value: (1, 0) if value is None else (0, value)
    if isinstance(column.type, Discrete) or _secret(column):
        shown = column.type.display
        return lambda value: (1, "") if value is None else (0, shown(value).casefold())
    return lambda value: (1, "") if value is None else (0, str(value).casefold())

