"""Short texts the Telenet connectors put in cells, statuses and logs, worded one way."""

from __future__ import annotations

from typing import Any

CELL_TEXT_LIMIT = 300
"""Characters of an error or an answer kept in a cell or a status."""


def cell_text(text: Any, limit: int = CELL_TEXT_LIMIT) -> str:
    """`text` on one line (runs of white space made one space), cut to `limit` characters with
    "..." when longer."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def counted(count: int, noun: str, plural: str = "") -> str:
    """``1 row``, ``2 rows`` (``2 entries`` with `plural`): the figures statuses and logs read."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


__all__ = ["CELL_TEXT_LIMIT", "cell_text", "counted"]
