"""Assertions on element state for users' tests, in the spirit of Skyline's unit-testing framework.

Arrange through the real API, act (set a parameter, advance the clock), then assert on the
resulting state::

    expect(element).parameter("Item Count").equals(3)
    expect(element).table("Items").has_keys(["a", "b", "c"])
    expect(element).table("Items").row("a").matches({"Name": "Alpha"})
    expect(element).table("Items").row("a").cell("Name").equals("Alpha")

Failures raise `AssertionError` with a message that shows the actual state.
"""

from __future__ import annotations

import difflib
import inspect
import tokenize
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .element import Element, TableView
from .logs import LogType

_SHOWN_KEYS = 10


def expect(element: Element) -> ElementAssertions:
    """Start an assertion on an element."""
    return ElementAssertions(element)


def _describe(element: Element) -> str:
    return f"element {element.name!r}"


class ElementAssertions:
    def __init__(self, element: Element) -> None:
        self.element = element

    def parameter(self, ref: int | str) -> ValueAssertion:
        model = self.element.protocol.model
        pid = model.resolve(ref)
        if pid in model.tables:
            raise AssertionError(f"{_describe(self.element)}: {model.tables[pid].table.label} is a table; use expect(...).table({ref!r})")
        value = self.element.get(pid)
        name = model.parameters[pid].name
        return ValueAssertion(value, f"{_describe(self.element)} parameter {pid} {name!r}")

    def table(self, ref: int | str) -> TableAssertions:
        return TableAssertions(self.element, self.element.table(ref))

    def state(self, expected: Any) -> ElementAssertions:
        if self.element.state != expected and self.element.state.value != expected:
            raise AssertionError(f"{_describe(self.element)} is {self.element.state.value}, expected {expected}")
        return self

    def logged(self, fragment: str, type: LogType | None = None) -> ElementAssertions:
        """Some log entry (of `type`, if given) contains `fragment`."""
        entries = self.element.logs(type)
        if not any(fragment in entry.message for entry in entries):
            last = "\n  ".join(entry.message for entry in list(entries)[-5:]) or "(no entries)"
            kind = f" {type.value}" if type else ""
            raise AssertionError(f"{_describe(self.element)} has no{kind} log entry containing {fragment!r}; last entries:\n  {last}")
        return self

    def no_errors(self) -> ElementAssertions:
        errors = self.element.logs(LogType.ERROR)
        if errors:
            shown = "\n  ".join(entry.message for entry in errors[-5:])
            raise AssertionError(f"{_describe(self.element)} logged {len(errors)} errors:\n  {shown}")
        return self


class ValueAssertion:
    def __init__(self, value: Any, what: str) -> None:
        self.value = value
        self.what = what

    def equals(self, expected: Any) -> ValueAssertion:
        if self.value != expected:
            raise AssertionError(f"{self.what} is {self.value!r}, expected {expected!r}")
        return self

    def satisfies(self, predicate: Callable[[Any], Any], description: str = "") -> ValueAssertion:
        """`predicate(value)` is true; a failure shows `description`, else the predicate's own
        text (a lambda's source, a function's name)."""
        try:
            holds = predicate(self.value)
        except Exception as error:
            raise AssertionError(
                f"{self.what} is {self.value!r}; checking it with {description or describe_predicate(predicate)} "
                f"raised {type(error).__name__}: {error}"
            ) from error
        if not holds:
            raise AssertionError(f"{self.what} is {self.value!r}, which does not satisfy {description or describe_predicate(predicate)}")
        return self


class TableAssertions:
    def __init__(self, element: Element, table: TableView) -> None:
        self.element = element
        self.table = table
        self.what = f"{_describe(element)} table {table.id} {table.name!r}"

    def row_count(self, expected: int) -> TableAssertions:
        if len(self.table) != expected:
            raise AssertionError(f"{self.what} has {len(self.table)} rows, expected {expected}{self._sample()}")
        return self

    def is_empty(self) -> TableAssertions:
        return self.row_count(0)

    def has_keys(self, expected: Iterable[str], *, only: bool = True) -> TableAssertions:
        """The table holds these keys (and, with ``only``, nothing else)."""
        wanted = set(expected)
        actual = set(self.table.keys())
        missing = sorted(wanted - actual)
        extra = sorted(actual - wanted) if only else []
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing {_short(missing)}")
            if extra:
                parts.append(f"unexpected {_short(extra)}")
            raise AssertionError(f"{self.what}: {'; '.join(parts)}")
        return self

    def has_no_row(self, key: str) -> TableAssertions:
        if key in self.table:
            raise AssertionError(f"{self.what} has row {key!r}, expected none: {self.table.row(key)}")
        return self

    def row(self, key: str) -> RowAssertions:
        if key not in self.table:
            near = difflib.get_close_matches(key, self.table.keys(), n=3)
            hint = f"; similar keys: {near}" if near else ""
            raise AssertionError(f"{self.what} has no row {key!r} ({len(self.table)} rows{hint}){self._sample()}")
        return RowAssertions(self.table, key, f"{self.what} row {key!r}")

    def equals(self, expected: Mapping[str, Mapping[str, Any]]) -> TableAssertions:
        """Every row, by key, matches the expected cells (and the table has no other rows)."""
        self.has_keys(expected.keys())
        for key, cells in expected.items():
            self.row(key).matches(cells)
        return self

    def _sample(self) -> str:
        keys = self.table.keys()
        if not keys:
            return ""
        return f"; keys: {_short(keys)}"


class RowAssertions:
    def __init__(self, table: TableView, key: str, what: str) -> None:
        self.table = table
        self.key = key
        self.what = what

    def matches(self, expected: Mapping[int | str, Any]) -> RowAssertions:
        """The named cells (by column id or name) hold these values; other cells are not checked."""
        row = self.table.row(self.key)
        wrong = []
        for column, value in expected.items():
            name = self.table.columns[self.table.model.column_position(column)]
            if row[name] != value:
                wrong.append(f"{name!r} is {row[name]!r}, expected {value!r}")
        if wrong:
            raise AssertionError(f"{self.what}: {'; '.join(wrong)}\n  row: {row}")
        return self

    def cell(self, column: int | str) -> ValueAssertion:
        name = self.table.columns[self.table.model.column_position(column)]
        return ValueAssertion(self.table.cell(self.key, column), f"{self.what} column {name!r}")


def describe_predicate(predicate: Callable[..., Any]) -> str:
    """How a failure names a predicate: a lambda by its source text (``lambda v: v > 3``), when
    the source can be read; a function by its qualified name; anything else by its repr."""
    code = getattr(predicate, "__code__", None)
    name = getattr(predicate, "__qualname__", None)
    if code is not None and code.co_name == "<lambda>":
        source = _lambda_source(code)
        if source:
            return source
    return name if isinstance(name, str) and code is not None else repr(predicate)


_LAMBDA_ENDS = frozenset({",", ";", ")", "]", "}"})
_LINE_ENDS = frozenset({tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.ENDMARKER})


def _lambda_source(code: Any) -> str | None:
    """The text of the lambda expression `code` was compiled from, or None when unreadable.

    Its line may hold several lambdas: the one meant is the last that starts before the first
    instruction of `code`'s body. It ends after the last instruction of its body, at the first
    comma, semicolon, closing bracket, comprehension ``for`` or line end outside brackets it opened."""
    try:
        file_lines, first = inspect.findsource(code)  # the whole file; `first` counts from 0
    except (OSError, TypeError):
        return None
    # The lambda may sit inside a statement's brackets: read its lines as if in brackets too, so
    # that the tokenizer neither ends the statement nor checks indentation at their line ends.
    lines = ["(\n", *file_lines[first:]]
    # Instruction positions are (line, column in UTF-8 bytes); RESUME stands at column 0 with
    # no width and is not part of the body.
    spans = [(line - first + 1, column, end_line - first + 1, end) for line, end_line, column, end in code.co_positions()
             if line and end_line and column is not None and end]
    body_start = min(((line, column) for line, column, _, _ in spans), default=None)
    body_end = max(((line, end) for _, _, line, end in spans), default=None)

    def position(token: tokenize.TokenInfo) -> tuple[int, int]:
        row, column = token.start
        return row, len(lines[row - 1][:column].encode())

    start: tokenize.TokenInfo | None = None
    end: tuple[int, int] | None = None
    last_end = (0, 0)
    depth, in_body = 0, False
    try:
        for token in tokenize.generate_tokens(iter(lines).__next__):
            kind, text = token.type, token.string
            if kind == tokenize.NAME and text == "lambda" and (
                position(token) < body_start if body_start is not None else start is None
            ):
                start, depth, in_body = token, 0, False
                continue
            if start is None:
                continue
            done = in_body and depth == 0 and (body_end is None or position(token) >= body_end)
            if done and (
                kind in _LINE_ENDS
                or kind == tokenize.OP and text in _LAMBDA_ENDS
                or kind == tokenize.NAME and text in ("for", "async")  # the element of a comprehension
            ):
                end = token.start
                break
            if kind == tokenize.OP and text in "([{":
                depth += 1
            elif kind == tokenize.OP and text in ")]}":
                depth -= 1
            elif kind == tokenize.OP and text == ":" and depth == 0:
                in_body = True  # the lambda's own colon: its parameters may hold commas
            if kind not in _LINE_ENDS:
                last_end = token.end
    except (tokenize.TokenError, SyntaxError):
        end = last_end if start is not None and in_body else None  # the file ended in the lambda
    if start is None or end is None:
        return None
    (first_row, first_column), (last_row, last_column) = start.start, end
    if first_row == last_row:
        text = lines[first_row - 1][first_column:last_column]
    else:
        parts = [lines[first_row - 1][first_column:], *lines[first_row : last_row - 1], lines[last_row - 1][:last_column]]
        text = " ".join(part.strip() for part in parts)
    return " ".join(text.split("\n")).strip() or None


def _short(keys: list[str]) -> str:
    shown = ", ".join(repr(k) for k in keys[:_SHOWN_KEYS])
    more = f" and {len(keys) - _SHOWN_KEYS} more" if len(keys) > _SHOWN_KEYS else ""
    return f"[{shown}{more}]"
