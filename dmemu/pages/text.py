"""Pages for people: terminal text with aligned columns, cut cells and row counts.

A page reads top to bottom: a title line (element, ids, protocol, state, page), the parameters
as ``name  value units`` lines, then each table with its row count. A table wider than the
text width gives way fairly (the widest columns are cut first, with a ``…`` marker; the key
column never is); when that would leave a column narrower than `MIN_COLUMN_WIDTH`, each row is
shown as a block of ``Column: value`` lines instead, which stays readable at any width.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence

from ..protocol import Number, ReadableElement
from .content import ParameterContent, TableContent, read_page
from .model import PageModel, pages_of

CUT_MARKER = "…"
DEFAULT_ROWS = 20
"""Rows shown per table unless asked otherwise (0 shows all)."""
MIN_COLUMN_WIDTH = 8
"""A table column is never cut narrower than this; the record layout takes over instead."""
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
    rows = [[e.name, f"{e.agent_id}/{e.element_id}", e.state.value, e.protocol.name] for e in elements]
    return "\n".join(_aligned(rows, width)) if rows else "no elements"


# -- layout ------------------------------------------------------------------------------------


def _text_width(width: int | None) -> int:
    if width is None:
        return max(shutil.get_terminal_size().columns, MIN_WIDTH)
    if width < MIN_WIDTH:
        raise ValueError(f"a text width of {width} is too narrow; at least {MIN_WIDTH}")
    return width


def _title(element: ReadableElement, page: str | None, width: int) -> list[str]:
    parts = [f"{element.name} ({element.agent_id}/{element.element_id})", element.protocol.name, element.state.value]
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
    natural = [max([len(header), *(len(row[index]) for row in cells)]) for index, header in enumerate(headers)]
    # The key column names the row, so it is never cut: the other columns share what it leaves.
    key = next(index for index, column in enumerate(columns) if column.key)
    others = [w for index, w in enumerate(natural) if index != key]
    widths = _fair_widths(others, width - len(_GAP) * (len(columns) - 1) - natural[key])
    if widths is not None:
        widths.insert(key, natural[key])
    if widths is None:
        lines += _record_lines(headers, cells, width)
    else:
        right = [isinstance(column.type, Number) for column in columns]  # numbers line up on their last digit
        lines.append(_grid_line(headers, widths, right))
        lines.append(_GAP.join("-" * w for w in widths))
        lines += [_grid_line(row, widths, right) for row in cells]
    if content.rows_left_out:
        lines.append(f"{CUT_MARKER} and {_count(content.rows_left_out, 'more row')}")
    return lines


def _fair_widths(natural: Sequence[int], available: int) -> list[int] | None:
    """Column widths that fit in `available` characters, or None when they cannot.

    The widest columns give way first: every column narrower than some level keeps its width,
    the others are cut to that level (the spare characters go to the leftmost of them). None
    when the level would be under `MIN_COLUMN_WIDTH`: too cut to read.
    """
    if sum(natural) <= available:
        return list(natural)
    narrow_first = sorted(range(len(natural)), key=natural.__getitem__)
    remaining, count = available, len(natural)
    for position, index in enumerate(narrow_first):
        level = remaining // count
        if natural[index] <= level:
            remaining -= natural[index]
            count -= 1
            continue
        if level < MIN_COLUMN_WIDTH:
            return None
        cut = sorted(narrow_first[position:])
        widths = list(natural)
        spare = remaining - level * count
        for rank, column in enumerate(cut):
            widths[column] = level + (rank < spare)
        return widths
    # Reached only with no column to cut (a table of just its key column) and still no room.
    return None


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
