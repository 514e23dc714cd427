"""Pages for people: terminal text with aligned columns, cut cells and row counts.

A page reads top to bottom: a title line (element, ids, protocol, state, page), the parameters
as ``name  value units`` lines, then each table with its row count. A table wider than the
text width gives way fairly: columns are sized by their content, so long headers wrap first;
then free text is cut (the widest first, with a ``…`` marker); dates, numbers and the key
column never are. When that would leave free text narrower than `MIN_COLUMN_WIDTH` or the
table still does not fit, each row is shown as a block of ``Column: value`` lines instead,
which stays readable at any width.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence

from ..protocol import Column, Number, ReadableElement, String
from .content import ParameterContent, TableContent, read_page, state_text
from .model import PageModel, pages_of

CUT_MARKER = "…"
DEFAULT_ROWS = 20
"""Rows shown per table unless asked otherwise (0 shows all)."""
MIN_COLUMN_WIDTH = 8
"""Free text is never cut narrower than this; the record layout takes over instead."""
MIN_WIDTH = 20
"""The narrowest text width a page is laid out in."""

_GAP = "  "
# Control characters (a newline in a description, a tab) would break the alignment of a line.
_ONE_LINE = {code: " " for code in (*range(32), 127)}


def render_page(
    element: ReadableElement, page: str | PageModel, *, rows: int = DEFAULT_ROWS, width: int | None = None
) -> str:
    """One page of `element` as terminal text.

    At most `rows` rows per table are shown (0: all), followed by how many more there are;
    `width` defaults to the terminal's width.
    """
    width = _text_width(width)
    content = read_page(element, page, rows=rows)
    lines = _title(element, content.page.path, width)
    if content.parameters:
        lines += ["", *_parameter_lines(content.parameters, width)]
    for table in content.tables:
        lines += ["", *_table_lines(table, width)]
    if content.page.sub_pages:
        lines += ["", _cut("Sub-pages: " + ", ".join(content.page.sub_pages), width)]
    if not (content.parameters or content.tables or content.page.sub_pages):
        lines += ["", "(nothing on this page)"]
    return "\n".join(lines)


def render_pages(element: ReadableElement, *, width: int | None = None) -> str:
    """The pages of `element` in display order (sub-pages indented), with their tables' row counts."""
    width = _text_width(width)
    rows: list[list[str]] = []
    for page in pages_of(element.protocol):
        parts = [_count(len(page.parameters), "parameter")] if page.parameters or not page.tables else []
        parts += [f"{table.name}: {_count(len(element.table(table.id)), 'row')}" for table in page.tables]
        rows.append(["  " * page.depth + page.name, ", ".join(parts)])
    body = _aligned(rows, width) if rows else ["(no pages)"]
    return "\n".join([*_title(element, None, width), "", *body])


def render_elements(elements: Iterable[ReadableElement], *, width: int | None = None) -> str:
    """The elements of a DMS, one line each: name, ids, state and protocol."""
    width = _text_width(width)
    rows = [[e.name, f"{e.agent_id}/{e.element_id}", state_text(e), e.protocol.name] for e in elements]
    return "\n".join(_aligned(rows, width)) if rows else "no elements"


# -- layout ------------------------------------------------------------------------------------


def _text_width(width: int | None) -> int:
    if width is None:
        return max(shutil.get_terminal_size().columns, MIN_WIDTH)
    if width < MIN_WIDTH:
        raise ValueError(f"a text width of {width} is too narrow; at least {MIN_WIDTH}")
    return width


def _title(element: ReadableElement, page: str | None, width: int) -> list[str]:
    parts = [f"{element.name} ({element.agent_id}/{element.element_id})", element.protocol.name, state_text(element)]
    if page is not None:
        parts.append(f"page {page}")
    # Wrapped at a separator rather than cut, so that a narrow text still names the page.
    lines = [parts[0]]
    for part in parts[1:]:
        joined = f"{lines[-1]} | {part}"
        if len(joined) <= width:
            lines[-1] = joined
        else:
            lines.append(part)
    lines = [_cut(line, width) for line in lines]
    return [*lines, "=" * max(map(len, lines))]


def _parameter_lines(items: Sequence[ParameterContent], width: int) -> list[str]:
    return _aligned([[item.parameter.name, _one_line(item.display)] for item in items], width)


def _table_lines(content: TableContent, width: int) -> list[str]:
    columns = content.table.columns
    lines = [_cut(f"{content.table.name}: {_count(content.row_count, 'row')}", width)]
    headers = [column.name for column in columns]
    cells = [[_one_line(column.type.display(value)) for column, value in zip(columns, row)] for row in content.rows]
    widths = _column_widths(columns, headers, cells, width)
    if widths is None:
        lines += _record_lines(headers, cells, width)
    else:
        right = [isinstance(column.type, Number) for column in columns]  # numbers line up on their last digit
        lines += [_grid_line(line, widths, right) for line in _header_lines(headers, widths)]
        lines.append(_GAP.join("-" * w for w in widths))
        lines += [_grid_line(row, widths, right) for row in cells]
    if content.rows_left_out:
        lines.append(f"{CUT_MARKER} and {_count(content.rows_left_out, 'more row')}")
    return lines


def _column_widths(
    columns: Sequence[Column], headers: Sequence[str], cells: Sequence[Sequence[str]], width: int
) -> list[int] | None:
    """Each column's width, or None when the table cannot be shown as a grid in `width`.

    A column is as wide as its header or its widest cell. When that is too wide, it gives way
    in this order: headers wrap onto more lines (a column keeps its widest cell and its
    header's longest word; the room left unwraps the headers that need least); then free text
    is cut, the widest first, to `MIN_COLUMN_WIDTH`. Dates, numbers, discretes and the key
    column are never cut: the record layout shows them whole instead.
    """
    content = [max((len(row[index]) for row in cells), default=0) for index in range(len(columns))]
    natural = [max(len(header), cell) for header, cell in zip(headers, content)]
    # The key column names the row, so it is never cut: the other columns share what it leaves.
    key = next(index for index, column in enumerate(columns) if column.key)
    others = [index for index in range(len(columns)) if index != key]
    available = width - len(_GAP) * (len(columns) - 1) - natural[key]
    if sum(natural[index] for index in others) <= available:
        return natural
    widths = [max(cell, *map(len, header.split() or [""])) for header, cell in zip(headers, content)]
    widths[key] = natural[key]
    spare = available - sum(widths[index] for index in others)
    if spare >= 0:
        for index in sorted(others, key=lambda index: natural[index] - widths[index]):
            if natural[index] - widths[index] <= spare:
                spare -= natural[index] - widths[index]
                widths[index] = natural[index]
        return widths
    free = [index for index in others if _is_free_text(columns[index])]
    fixed = sum(widths[index] for index in others) - sum(widths[index] for index in free)
    shrunk = _fair_widths(
        [widths[index] for index in free], [min(widths[index], MIN_COLUMN_WIDTH) for index in free], available - fixed
    )
    if shrunk is None:
        return None
    for index, column_width in zip(free, shrunk):
        widths[index] = column_width
    return widths


def _is_free_text(column: Column) -> bool:
    """Text that can be cut and still be read from its start: not a date, number or choice."""
    return isinstance(column.type, String) and not column.key


def _fair_widths(natural: Sequence[int], floors: Sequence[int], available: int) -> list[int] | None:
    """Column widths that fit in `available` characters, or None when they cannot.

    The widest columns give way first: every column narrower than some level keeps its width,
    the others are cut to that level, or to their floor when that is higher (the spare
    characters go to the leftmost cut ones). None when even the floors do not fit.
    """
    if sum(natural) <= available:
        return list(natural)
    floors = [min(floor, full) for floor, full in zip(floors, natural)]
    if sum(floors) > available:
        return None

    def fitted(level: int) -> list[int]:
        return [max(floor, min(full, level)) for floor, full in zip(floors, natural)]

    low, high = 0, max(natural)  # the highest level that fits: fitted(low) always does
    while low < high:
        middle = (low + high + 1) // 2
        if sum(fitted(middle)) <= available:
            low = middle
        else:
            high = middle - 1
    widths = fitted(low)
    spare = available - sum(widths)
    for index, full in enumerate(natural):
        if spare and widths[index] < full and widths[index] == low:
            widths[index] += 1
            spare -= 1
    return widths


def _header_lines(headers: Sequence[str], widths: Sequence[int]) -> list[list[str]]:
    """The header as lines: a header wider than its column wraps at spaces, a word wider than
    it is cut; short headers sit on the last line, next to the rule."""
    wrapped = [_wrap(header, column_width) for header, column_width in zip(headers, widths)]
    height = max(map(len, wrapped), default=1)
    padded = [[""] * (height - len(lines)) + lines for lines in wrapped]
    return [[lines[row] for lines in padded] for row in range(height)]


def _wrap(text: str, width: int) -> list[str]:
    if len(text) <= width:
        return [text]
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(_cut(word, width))
    return lines or [""]


def _grid_line(cells: Sequence[str], widths: Sequence[int], right: Sequence[bool]) -> str:
    padded = (
        _cut(cell, w).rjust(w) if align_right else _cut(cell, w).ljust(w)
        for cell, w, align_right in zip(cells, widths, right)
    )
    return _GAP.join(padded).rstrip()


def _record_lines(headers: Sequence[str], cells: Sequence[Sequence[str]], width: int) -> list[str]:
    labels = [f"{header}:" for header in headers]
    lines: list[str] = []
    for number, row in enumerate(cells):
        if number:
            lines.append("")
        lines += _aligned(list(zip(labels, row)), width)
    return lines


def _aligned(rows: Sequence[Sequence[str]], width: int) -> list[str]:
    """Rows of cells with every column but the last padded to one width, each line cut to `width`.

    A leading column takes at most half the width, so a very long name cannot push its value
    out of sight.
    """
    columns = len(rows[0]) if rows else 0
    widths = [min(max(len(row[i]) for row in rows), width // 2) for i in range(columns - 1)]
    lines = []
    for row in rows:
        leading = [_cut(cell, w).ljust(w) for cell, w in zip(row, widths)]
        lines.append(_cut(_GAP.join([*leading, row[-1]]).rstrip(), width))
    return lines


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + CUT_MARKER


def _one_line(text: str) -> str:
    return text.translate(_ONE_LINE)


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"
