"""Measurement types: what values a parameter or column accepts and how they read.

Each type builds a `checker(label)`: a fast callable that returns the value to store or raises
`InvalidValueError` naming the parameter and what it allows. Checkers are built once per
protocol, so a set costs one call.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs

from .errors import InvalidValueError

Checker = Callable[[Any], Any]
_INFINITY = math.inf  # NaN fails `-inf < value < inf` too


def _type_name(value: object) -> str:
    return type(value).__name__


@attrs.frozen
class Number:
    """A number with an optional range, units and decimals, e.g. ``Number(3600, 432000, "s")``."""

    minimum: float | None = None
    maximum: float | None = None
    units: str = ""
    decimals: int = 0

    def __attrs_post_init__(self) -> None:
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(f"Number range is empty: minimum {self.minimum} > maximum {self.maximum}")

    def allowed(self) -> str:
        low = "-inf" if self.minimum is None else f"{self.minimum:g}"
        high = "inf" if self.maximum is None else f"{self.maximum:g}"
        units = f" {self.units}" if self.units else ""
        return f"a number from {low} to {high}{units}"

    def problem(self, value: Any) -> str | None:
        """What is wrong with `value` for this number, or None when it fits."""
        if type(value) is not int and type(value) is not float:
            return f"{value!r} is a {_type_name(value)}"
        if not -_INFINITY < value < _INFINITY:
            return f"{value!r} is not a finite number"
        if (self.minimum is not None and value < self.minimum) or (self.maximum is not None and value > self.maximum):
            return f"{value!r} is out of range"
        return None

    def checker(self, label: str) -> Checker:
        low = -_INFINITY if self.minimum is None else self.minimum
        high = _INFINITY if self.maximum is None else self.maximum

        def check(value: Any) -> Any:
            kind = type(value)
            # `value - value == 0` rules out NaN and inf, which JSON state files cannot hold.
            if (kind is int or kind is float) and low <= value <= high and value - value == 0:
                return value
            raise InvalidValueError(f"{label}: {self.problem(value)}; allowed: {self.allowed()}")

        return check

    def display(self, value: Any) -> str:
        if value is None:
            return ""
        text = f"{value:.{self.decimals}f}" if isinstance(value, float) and math.isfinite(value) else str(value)
        return f"{text} {self.units}" if self.units else text


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
FIRST_DATE_TIME = -62_135_596_800.0
"""0001-01-01 00:00:00 UTC in epoch seconds: the earliest `DateTime` value."""
LAST_DATE_TIME = 253_402_300_799.0
"""9999-12-31 23:59:59 UTC in epoch seconds: the latest `DateTime` value."""


@attrs.frozen
class DateTime(Number):
    """A moment, stored as epoch seconds (UTC) and shown as ``2026-01-01 00:00:00`` (UTC).

    A number to every check and comparison (``protocol.now()`` can be set as it is); only
    its display differs, so a page shows a date where an epoch figure would mean nothing.
    """

    minimum: float | None = FIRST_DATE_TIME
    maximum: float | None = LAST_DATE_TIME

    def allowed(self) -> str:
        return "a date and time in epoch seconds (UTC), from year 1 to 9999"

    def display(self, value: Any) -> str:
        if type(value) not in (int, float) or not FIRST_DATE_TIME <= value <= LAST_DATE_TIME:
            return "" if value is None else str(value)
        return (_EPOCH + timedelta(seconds=math.floor(value))).strftime("%Y-%m-%d %H:%M:%S")


@attrs.frozen
class String:
    """Free text; ``secret=True`` marks a password: write-only, never rendered, logged or exported."""

    max_length: int | None = None
    secret: bool = False

    def allowed(self) -> str:
        return "a string" if self.max_length is None else f"a string of at most {self.max_length} characters"

    def checker(self, label: str) -> Checker:
        limit, allowed, secret = self.max_length, self.allowed(), self.secret

        def check(value: Any) -> Any:
            if type(value) is not str:
                shown = "the value" if secret else repr(value)  # a refused password is still a password
                raise InvalidValueError(f"{label}: {shown} is a {_type_name(value)}; allowed: {allowed}")
            if limit is not None and len(value) > limit:
                raise InvalidValueError(f"{label}: {len(value)} characters is too long; allowed: {allowed}")
            return value

        return check

    def display(self, value: Any) -> str:
        if self.secret:
            return "********" if value else ""
        return "" if value is None else str(value)


def _discrete_values(values: Mapping[Any, str]) -> dict[Any, str]:
    if not values:
        raise ValueError("a discrete needs at least one value")
    return dict(values)


@attrs.frozen
class Discrete:
    """A value from a fixed set, each with a display name: ``Discrete({0: "Disabled", 1: "Enabled"})``.

    A set accepts the stored value or its display name; the stored value is kept.
    """

    values: Mapping[Any, str] = attrs.field(converter=_discrete_values)

    def allowed(self) -> str:
        return ", ".join(f"{value!r} ({name})" for value, name in self.values.items())

    def checker(self, label: str) -> Checker:
        by_value = {value: value for value in self.values}
        by_name = {name: value for value, name in self.values.items()}
        value_types = frozenset(map(type, self.values))  # True == 1 and 1.0 == 1, yet neither is 1
        allowed = self.allowed()

        def check(value: Any) -> Any:
            try:
                if type(value) in value_types and value in by_value:
                    return by_value[value]
                if value in by_name:
                    return by_name[value]
            except TypeError:  # unhashable input
                pass
            raise InvalidValueError(f"{label}: {value!r} is not one of the allowed values: {allowed}")

        return check

    def display(self, value: Any) -> str:
        return self.values.get(value, "" if value is None else str(value))


@attrs.frozen
class Button:
    """A button: setting it (to 1 or its label) fires its QActions; it holds no lasting value."""

    label: str = "Execute"

    def allowed(self) -> str:
        return f"1 or {self.label!r}"

    def checker(self, label: str) -> Checker:
        allowed, own_label = self.allowed(), self.label

        def check(value: Any) -> Any:
            if (type(value) is int and value == 1) or value == own_label:
                return 1
            raise InvalidValueError(f"{label}: {value!r} does not press the button; allowed: {allowed}")

        return check

    def display(self, value: Any) -> str:
        return f"[{self.label}]"


@attrs.frozen
class PageButton:
    """A button that opens a sub-page; it is shown, never set."""

    page: str
    label: str = ""

    def allowed(self) -> str:
        return "nothing: a page button only opens a page"

    def checker(self, label: str) -> Checker:
        def check(value: Any) -> Any:
            raise InvalidValueError(f"{label}: a page button opening {self.page!r} cannot be set")

        return check

    def display(self, value: Any) -> str:
        return f"[{self.label or self.page}...]"


Measurement = Number | DateTime | String | Discrete | Button | PageButton
