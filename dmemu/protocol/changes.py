"""What changed on an element: told to its change listeners (alarm monitoring, scripts waiting)."""

from __future__ import annotations

from typing import Any


class _ChangeRecord:
    """Value semantics over `__slots__`, written by hand: a change record is made for every change
    a listener hears, and a plain slots class is made several times faster than an attrs or a
    named tuple instance. Treat records as read-only."""

    __slots__: tuple[str, ...] = ()

    def _fields(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._fields() == other._fields()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self._fields()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{name}={getattr(self, name)!r}' for name in self.__slots__)})"


class ParameterChange(_ChangeRecord):
    """A parameter of an element got a value (a set, from a user, a QAction or another element)."""

    __slots__ = ("parameter", "value")

    def __init__(self, parameter: int, value: Any) -> None:
        self.parameter = parameter
        self.value = value


class TableChange(_ChangeRecord):
    """Rows of a table were added or updated (`keys`; None: any row may have) or removed (`removed`)."""

    __slots__ = ("table", "keys", "removed")

    def __init__(self, table: int, keys: frozenset[str] | None, removed: frozenset[str] = frozenset()) -> None:
        self.table = table
        self.keys = keys
        self.removed = removed


Change = ParameterChange | TableChange
