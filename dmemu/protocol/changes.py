"""What changed on an element: told to its change listeners (alarm monitoring, scripts waiting)."""

from __future__ import annotations

from typing import Any

import attrs


@attrs.frozen
class ParameterChange:
    """A parameter of an element got a value (a set, from a user, a QAction or another element)."""

    parameter: int
    value: Any


@attrs.frozen
class TableChange:
    """Rows of a table were added or updated (`keys`; None: any row may have) or removed (`removed`)."""

    table: int
    keys: frozenset[str] | None
    removed: frozenset[str] = frozenset()


Change = ParameterChange | TableChange
