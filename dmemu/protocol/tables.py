"""Table rows in memory: a dict from primary key to an immutable tuple of cells.

Rows are tuples so a snapshot for saving is a shallow copy, and bulk fills validate with
C-level passes (`map`, `set`) instead of a Python loop per cell.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import partial
from itertools import count
from operator import is_not, itemgetter
from typing import Any

import attrs

from .definitions import TableModel
from .errors import InvalidValueError, UnknownRowError
from .measurement import Button, Discrete, Number, String

Row = tuple[Any, ...]
RowInput = Sequence[Any] | Mapping[int | str, Any]

_SCALARS = frozenset({str, int, float, bool, type(None)})
_NUMBER_TYPES = frozenset({int, float, bool, type(None)})  # in bulk fills a bool counts as a number
_INFINITY = math.inf
_is_not_none = partial(is_not, None)


@attrs.frozen
class BulkChecks:
    """How a bulk fill checks each column with C-level passes over the rows."""

    # (index, types) of text-like columns: each cell's type must be one of these
    typed: list[tuple[int, frozenset[type]]]
    # (index, minimum, maximum) of number columns: checked by value, which covers the type
    numbers: list[tuple[int, float | None, float | None]]
    # (index, values, types) of discrete columns: by value and type (True == 1, yet is no 1)
    discretes: list[tuple[int, frozenset[Any], frozenset[type]]]

    @classmethod
    def of(cls, model: TableModel) -> BulkChecks:
        checks = cls([], [], [])
        for index, column in enumerate(model.table.columns):
            kind = column.type
            if isinstance(kind, Number):
                checks.numbers.append((index, kind.minimum, kind.maximum))
            elif isinstance(kind, Discrete):
                values = frozenset(kind.values) | {None}
                checks.discretes.append((index, values, frozenset(map(type, values))))
            elif isinstance(kind, String):
                checks.typed.append((index, frozenset({str, type(None)})))
            elif isinstance(kind, Button):
                checks.typed.append((index, frozenset({int, type(None)})))
            else:
                checks.typed.append((index, _SCALARS))
        return checks


_states = count(1)
"""Numbers the states of all tables' rows taken for saving (see `TrackedRows.take_changes`):
unique in the process, so a number never names the state of another table."""


class TrackedRows(dict[str, Row]):
    """A table's rows by key, remembering which keys were set or removed since the changes were
    last taken (`take_changes`), however they were changed: so a save encodes only those rows.

    Changes made by replacing the whole dict (a fill, a restore) are not known row by row: the
    next `RowChanges` says so (`changed` is None)."""

    __slots__ = ("_changed", "_state")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._changed: set[str] | None = None  # None: not known row by row
        self._state = next(_states)  # the state the changes are counted from

    def _note(self, key: str) -> None:
        changed = self._changed
        if changed is not None:
            changed.add(key)
            if len(changed) > 2 * len(self) + 64:  # e.g. a rolling log never saved: stop counting
                self._changed = None

    def _note_all(self, keys: Iterable[str]) -> None:
        if self._changed is not None:
            self._changed.update(keys)
            if len(self._changed) > 2 * len(self) + 64:
                self._changed = None

    def __setitem__(self, key: str, row: Row) -> None:
        dict.__setitem__(self, key, row)
        self._note(key)

    def __delitem__(self, key: str) -> None:
        dict.__delitem__(self, key)
        self._note(key)

    def pop(self, key: str, *default: Any) -> Any:
        if key in self:
            self._note(key)
        return dict.pop(self, key, *default)

    def popitem(self) -> tuple[str, Row]:
        item = dict.popitem(self)
        self._note(item[0])
        return item

    def setdefault(self, key: str, default: Row = ()) -> Row:  # type: ignore[assignment]
        if key not in self:
            self._note(key)
        return dict.setdefault(self, key, default)

    def clear(self) -> None:
        self._note_all(list(self))
        dict.clear(self)

    def update(self, *args: Any, **kwargs: Any) -> None:
        new = dict(*args, **kwargs)
        dict.update(self, new)
        self._note_all(new)

    def __ior__(self, other: Any) -> TrackedRows:  # type: ignore[override,misc]
        self.update(other)
        return self

    def take_changes(self) -> RowChanges:
        """The rows now (a copy), and which keys changed since the changes were last taken."""
        changes = RowChanges(dict.copy(self), self._changed, self._state, next(_states))
        self._changed, self._state = set(), changes.state
        return changes


@attrs.frozen
class RowChanges:
    """A table's rows at one instant (`rows`, in table order), with the keys set or removed
    since the state numbered `since` (None: not known row by row); this state is `state`.
    Iterating gives the rows, as a list of rows would."""

    rows: dict[str, Row]
    changed: set[str] | None
    since: int
    state: int

    def __iter__(self) -> Iterator[Row]:
        return iter(self.rows.values())

    def __len__(self) -> int:
        return len(self.rows)


def _key_problem(key: Any) -> str:
    return f"primary key {key!r} must be a non-empty string"


class TableData:
    """The rows of one table, with the checks its definition asks for."""

    def __init__(self, model: TableModel) -> None:
        self.model = model
        self._rows = TrackedRows()
        self._key_index = model.key_index
        self._width = model.width
        self._checkers = model.checkers
        self._checks = BulkChecks.of(model)

    @property
    def rows(self) -> TrackedRows:
        """The rows by primary key, in table order; changes however made are tracked for saving."""
        return self._rows

    @rows.setter
    def rows(self, rows: Mapping[str, Row]) -> None:
        self._rows = rows if type(rows) is TrackedRows else TrackedRows(rows)
        self._rows._changed = None  # replaced whole: the next save encodes the table whole

    @property
    def label(self) -> str:
        return self.model.table.label

    # -- single rows -------------------------------------------------------------------------

    def row_from_input(self, row: RowInput) -> list[Any]:
        """A full-width list from a sequence or a {column: value} mapping.

        Missing trailing cells (or unnamed columns of a mapping) are None; each given cell is
        checked against its column type.
        """
        width = self._width
        if isinstance(row, Mapping):
            cells: list[Any] = [None] * width
            for column, value in row.items():
                cells[self.model.column_position(column)] = value
        elif isinstance(row, (list, tuple)):
            if len(row) > width:
                raise InvalidValueError(f"{self.label}: a row has {len(row)} cells; the table has {width} columns")
            cells = row  # type: ignore[assignment]  # copied by the checking pass below
        else:
            raise InvalidValueError(f"{self.label}: a row must be a list, tuple or mapping, not {type(row).__name__}")
        # One pass in column order (so the first bad cell is the one named), padded after it.
        checked = [value if value is None else check(value) for check, value in zip(self._checkers, cells)]
        if len(checked) < width:
            checked.extend([None] * (width - len(checked)))
        return checked

    def key_of(self, cells: Sequence[Any]) -> str:
        key = cells[self._key_index]
        if type(key) is not str or not key:
            raise InvalidValueError(f"{self.label}: {_key_problem(key)}")
        return key

    def get(self, key: str) -> Row:
        row = self._rows.get(key)
        if row is None:
            raise UnknownRowError(f"{self.label} has no row {key!r}")
        return row

    def add(self, row: RowInput) -> str | None:
        """AddRow: the key of the row added; None when a row has that key (it is left as it is)."""
        cells = self.row_from_input(row)
        key = self.key_of(cells)
        rows = self._rows
        if key in rows:
            return None
        rows[key] = tuple(cells)
        return key

    def update(self, key: str, row: RowInput) -> bool:
        """SetRow: a None cell keeps the old value; False when the key does not exist."""
        rows = self._rows
        old = rows.get(key)
        if old is None:
            return False
        cells = self.row_from_input(row)
        new_key = cells[self._key_index]
        if new_key is not None and new_key != key:
            raise InvalidValueError(f"{self.label}: row {key!r} cannot change its key to {new_key!r}")
        rows[key] = tuple([old_cell if cell is None else cell for old_cell, cell in zip(old, cells)])
        return True

    def set_cell(self, key: str, index: int, value: Any) -> None:
        old = self.get(key)
        if index == self._key_index and value != key:
            raise InvalidValueError(f"{self.label}: the key of row {key!r} cannot change")
        if value is not None:
            value = self.model.checkers[index](value)
        cells = list(old)
        cells[index] = value
        self.rows[key] = tuple(cells)

    # -- bulk --------------------------------------------------------------------------------

    def bulk_rows(self, rows: Iterable[Sequence[Any]]) -> TrackedRows:
        """Checked rows keyed by primary key (a later duplicate key wins)."""
        rows = list(map(tuple, rows))  # a tuple stays the same object
        if not rows:
            return TrackedRows()
        width = self._width
        if set(map(len, rows)) != {width}:
            rows = [self._pad(position, row) for position, row in enumerate(rows)]
        keys = list(map(itemgetter(self._key_index), rows))
        if set(map(type, keys)) != {str} or "" in keys:
            self._raise_first_bad(rows)
        checks = self._checks
        for index, types in checks.typed:
            if not types.issuperset(map(type, map(itemgetter(index), rows))):
                self._raise_first_bad(rows)
        for index, values, types in checks.discretes:
            column = itemgetter(index)
            if not (values.issuperset(map(column, rows)) and types.issuperset(map(type, map(column, rows)))):
                self._raise_first_bad(rows)
        for index, low, high in checks.numbers:
            if not self._numbers_fit(rows, index, low, high):
                self._raise_first_bad(rows)
        return TrackedRows(zip(keys, rows))

    @staticmethod
    def _numbers_fit(rows: list[Row], index: int, low: float | None, high: float | None) -> bool:
        """Every cell of a number column is empty or a finite number within the range.

        One C-level `sum` proves the column numeric and finite (NaN and inf make the sum
        non-finite; a string or None makes it raise); only empty cells or a range cost more.
        """
        column = itemgetter(index)
        values: list[Any] | None = None
        try:
            total = sum(map(column, rows))
        except TypeError:  # empty cells, or a cell that is no number
            values = list(filter(_is_not_none, map(column, rows)))
            if not _NUMBER_TYPES.issuperset(map(type, values)):
                return False
            total = sum(values)
        if not -_INFINITY < total < _INFINITY:
            return False  # NaN or inf somewhere (or a finite overflow, which the slow path lets pass)
        if low is None and high is None:
            return True
        if values is None:
            values = list(map(column, rows))
        return not values or ((low is None or min(values) >= low) and (high is None or max(values) <= high))

    def _pad(self, position: int, row: Row) -> Row:
        width = self._width
        if len(row) > width:
            raise InvalidValueError(f"{self.label}: row {position} has {len(row)} cells; the table has {width} columns")
        return row + (None,) * (width - len(row))

    def _raise_first_bad(self, rows: list[Row]) -> None:
        """Slow path, only on suspect input: name the first offending row and column.

        It may find nothing: a column of huge but finite numbers can sum to infinity.
        """
        columns = self.model.table.columns
        allowed_types = dict(self._checks.typed)
        allowed_types.update((index, types) for index, _, types in self._checks.discretes)
        allowed_values = {index: values for index, values, _ in self._checks.discretes}
        for position, row in enumerate(rows):
            key = row[self._key_index]
            if type(key) is not str or not key:
                raise InvalidValueError(f"{self.label}: row {position}: {_key_problem(key)}")
            for index, value in enumerate(row):
                column = columns[index]
                if type(value) not in _SCALARS or type(value) not in allowed_types.get(index, _SCALARS):
                    problem = f"{value!r} is a {type(value).__name__}; allowed: {column.type.allowed()}"
                elif value not in allowed_values.get(index, (value,)):
                    problem = f"{value!r} is not one of the allowed values: {column.type.allowed()}"
                elif isinstance(column.type, Number) and type(value) not in (bool, type(None)) and column.type.problem(value):
                    problem = f"{column.type.problem(value)}; allowed: {column.type.allowed()}"
                else:
                    continue
                raise InvalidValueError(f"{self.label}: row {position}, column {column.id} {column.name!r}: {problem}")

    def fill(self, rows: Iterable[Sequence[Any]]) -> None:
        """FillArray: the table becomes exactly these rows."""
        self.rows = self.bulk_rows(rows)

    def fill_no_delete(self, rows: Iterable[Sequence[Any]]) -> None:
        """FillArrayNoDelete: add new rows, update existing ones (a None cell keeps the old value)."""
        current = self.rows
        merged = self.bulk_rows(rows)
        for key, row in merged.items():
            if None in row:
                old = current.get(key)
                if old is not None:
                    dict.__setitem__(merged, key, tuple(o if n is None else n for o, n in zip(old, row)))
        current.update(merged)  # one update: the changed keys noted at once

    def restore(self, rows: Iterable[Sequence[Any]]) -> None:
        """Rows from a snapshot, held to the same checks as a fill."""
        self.rows = self.bulk_rows(rows)
