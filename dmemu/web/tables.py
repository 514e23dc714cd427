"""Tables through the API: a page of rows, sorted by any column and filtered, from a live table.

Filters compare what a person sees (a discrete's name, a date as text), so ``Status=Active``
matches the rows that show Active; numbers compare as numbers with ``>``, ``>=``, ``<``, ``<=``.
A password column is sorted and filtered by its mask only: its values never leak through the
order of the rows or a filter's answer.

A page of a large table costs the page, not the table: `ServedTable` keeps the rows in each order
asked and each row's JSON until the table changes.
"""

from __future__ import annotations

import itertools
import re
import sys
import threading
from collections.abc import Callable
from typing import Any

import attrs

from ..protocol import Column, Discrete, Element, Number, String, Table, TableView
from ..protocol.changes import Change
from ..protocol.errors import UnknownParameterError
from .errors import ApiError
from .shapes import json_text, rows_json

MAX_LIMIT = 10_000
MAX_OFFSET = sys.maxsize  # the most `itertools.islice` takes: past it, a 400 rather than a 500
DEFAULT_LIMIT = 100
INLINE_LIMIT = 1_000
"""The most rows of a plain page (no sort, filter or search) answered on the server's event loop."""
MAX_ROW_TEXTS = 20_000
"""Rows' JSON kept per table; past that the kept texts are dropped and made again as pages ask."""

Row = tuple[Any, ...]

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
    """A table request read by `parse_query`: the page (offset, limit), the sort column and
    direction, the filters (all must hold) and a search text."""

    offset: int = 0
    limit: int = DEFAULT_LIMIT
    sort: int | None = None  # a column index
    descending: bool = False
    filters: tuple[RowFilter, ...] = ()
    search: str = ""  # contained (ignoring case) in any column's display text


def is_window(params: Any) -> bool:
    """A plain page of a few rows (no sort, filter or search): quick enough for the event loop."""
    if params.get("sort") or params.get("filter") or params.get("search"):
        return False
    limit = params.get("limit")
    return not limit or not limit.isdigit() or int(limit) <= INLINE_LIMIT


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
    offset = _whole(params.get("offset"), "offset", 0, 0, MAX_OFFSET)
    limit = list_limit(params.get("limit"))
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


def list_limit(text: str | None) -> int:
    """The ``limit`` of any list the API pages (rows, request records): 1 to `MAX_LIMIT`, by
    default `DEFAULT_LIMIT`; one rule, so every list refuses the same way."""
    return _whole(text, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)


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


def query_rows(view: TableView, table: Table, query: RowQuery, served: ServedTable) -> tuple[int, int, list[Row]]:
    """(rows in the table, rows matching the filters, the asked page of those rows)."""
    columns = table.columns
    window = not (query.filters or query.search)
    rows = served.ordered(view, query.sort, query.descending, window=window)
    if rows is None:  # a plain page of a table that just changed: a window of the live rows, no copy
        return len(view), len(view), view.row_cells(query.limit, query.offset)
    total = len(rows)
    if window:
        return total, total, rows[query.offset : query.offset + query.limit]
    for row_filter in query.filters:
        rows = [row for row in rows if _filter_test(columns[row_filter.index], row_filter)(row[row_filter.index])]
    if query.search:
        wanted = query.search.casefold()
        shown = [_shown(column) for column in columns]
        rows = [row for row in rows if any(wanted in show(value).casefold() for show, value in zip(shown, row))]
    return total, len(rows), rows[query.offset : query.offset + query.limit]


class ServedTable:
    """What the API keeps of one table between requests.

    - The rows in table order and in each sort order asked, until the table changes (a change
      listener counts its changes). Table order is copied only once the table stayed unchanged
      from one request to the next, so paging a table that changes all the time copies nothing.
    - Each row's JSON, made once: a row is a tuple that a change replaces (never alters), so the
      JSON of a row stays right as long as that tuple is the row.
    """

    def __init__(self, element: Element, table: Table) -> None:
        self.element = element
        self.table = table
        self._changes = itertools.count(1)
        self._version = 0  # changes heard
        self._seen_version = -1  # at the last plain page that found no rows kept
        # (version, {(sort column, descending): rows}), replaced whole: a reader on another
        # thread sees a version with the rows of that version, never a mix.
        self._orders: tuple[int, dict[tuple[int | None, bool], list[Row]]] = (-1, {})
        self._texts: dict[int, tuple[Row, str]] = {}  # id of a row's tuple: (the tuple, its JSON)
        element.add_change_listener(self._changed, ids=(table.id,))

    def close(self) -> None:
        self.element.remove_change_listener(self._changed)

    def _changed(self, element: Element, change: Change) -> None:
        self._version = next(self._changes)

    def ordered(self, view: TableView, sort: int | None, descending: bool, *, window: bool) -> list[Row] | None:
        """The rows in table order (`sort` None) or sorted by column `sort`, as kept or taken now;
        None for a `window` (a plain page) of a table changed since the last look: read it live."""
        version = self._version  # read before the rows: a change meanwhile makes them stale at once
        kept_version, orders = self._orders
        if kept_version != version:
            if window and sort is None and version != self._seen_version:
                self._seen_version = version
                return None
            orders = {(None, False): view.row_cells()}  # one C-level copy: the table may change while we look
            self._orders = (version, orders)
        if sort is None:
            return orders[None, False]
        rows = orders.get((sort, descending))
        if rows is None:
            index, key = sort, _sort_key(self.table.columns[sort])
            rows = sorted(orders[None, False], key=lambda row: key(row[index]), reverse=descending)
            orders[sort, descending] = rows
        return rows

    def rows_text(self, view: TableView, rows: list[Row]) -> str:
        """The JSON list of `rows` as `shapes.rows_json` shows them, each row's text made once."""
        texts = self._texts
        missing = [row for row in rows if texts.get(id(row), (None,))[0] is not row]
        if missing:
            if len(texts) + len(missing) > MAX_ROW_TEXTS:  # start afresh with this page's rows
                texts = self._texts = {}
                missing = rows
            for row, shown in zip(missing, rows_json(view, self.table, missing)):
                texts[id(row)] = (row, json_text(shown))
        return "[" + ",".join([texts[id(row)][1] for row in rows]) + "]"


class ServedTables:
    """The `ServedTable` of each table the API was asked for, by element and table id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tables: dict[tuple[tuple[int, int], int], ServedTable] = {}
        self._closed = False

    def of(self, element: Element, table: Table) -> ServedTable:
        key = (element.ids, table.id)
        served = self._tables.get(key)
        if served is not None and served.element is element:
            return served
        with self._lock:
            served = self._tables.get(key)
            if served is None or served.element is not element:  # first asked, or another element now has those ids
                if served is not None:
                    served.close()
                served = ServedTable(element, table)
                if self._closed:  # the server stops: this one answers one request, hearing no changes
                    served.close()
                else:
                    self._tables[key] = served
        return served

    def close(self) -> None:
        """Stop listening to the tables (the server stops)."""
        with self._lock:
            self._closed = True
            tables, self._tables = self._tables, {}
        for served in tables.values():
            served.close()


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

