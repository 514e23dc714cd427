"""CSV files of the Telenet connectors, read and written one way: the Service Info Table's
(`service_info`), the Topology Database's provisioning files (`topology_database`) and the
files the suite writes for them.

`csv_lines` reads a file's bytes line by line: UTF-8 with an optional byte order mark, one
record per line (a field may be quoted, to hold a comma or a doubled quote, but never spans
lines), fields trimmed, blank lines skipped. A line that cannot be read (not UTF-8, a quote
left open) is yielded with its `problem` instead of raising, so each connector keeps its own
policy: the Service Info Table refuses the whole file, the Topology Database skips the line.
Each connector also keeps its own header rules; `field_count_problem` words a record whose
field count differs from the header's the same way for both.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs

_BOM = b"\xef\xbb\xbf"


@attrs.frozen
class CsvLine:
    """One non-blank line of a CSV file: its 1-based `number`, its trimmed `fields`, its `text`
    (bytes that are not UTF-8 replaced) and, when it cannot be read, the `problem` (then
    `fields` is empty)."""

    number: int
    fields: tuple[str, ...]
    text: str
    problem: str = ""


def csv_lines(data: bytes) -> Iterator[CsvLine]:
    """The non-blank lines of a CSV file's bytes, in order (see the module's text)."""
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    # Line by line, so a line that is not UTF-8 (or leaves a quote open) is that line's problem only.
    for number, raw in enumerate(data.split(b"\n"), start=1):
        raw = raw.removesuffix(b"\r")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            yield CsvLine(number, (), raw.decode("utf-8", "replace"), f"not UTF-8 text (byte {error.start + 1} of the line)")
            continue
        if not text.strip():
            continue
        try:
            fields = next(csv.reader([text], strict=True), [])
        except csv.Error as error:
            yield CsvLine(number, (), text, f"not a CSV record ({error})")
            continue
        yield CsvLine(number, tuple(field.strip() for field in fields), text)


def field_count_problem(line: CsvLine, header_size: int) -> str:
    """Why a record's field count does not fit the header's, or "" when it does."""
    count = len(line.fields)
    if count == header_size:
        return ""
    return f"{count} field{'' if count == 1 else 's'} where the header has {header_size}"


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A CSV file's text: the header, then a record per row (``\\n`` line ends), as `csv_lines` reads."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def write_csv_file(path: str | os.PathLike[str], header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Write a CSV file whole (a temporary file replaces it): a reader never sees half a file.
    `OSError` when it cannot be written."""
    target = Path(path)
    text = csv_text(header, rows)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
            file.write(text)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


__all__ = ["CsvLine", "csv_lines", "csv_text", "field_count_problem", "write_csv_file"]
