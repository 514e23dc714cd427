"""What to generate: `InventorySpec`, the sizes, seed and realism switches of a generated inventory."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import attrs

DEFAULT_START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc).timestamp()


def _whole(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if type(value) is not int:  # a bool is an int to Python, and 2.5 items are nonsense
        raise TypeError(f"InventorySpec.{attribute.name} must be a whole number, not {value!r}")


def _real(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if type(value) not in (int, float) or not math.isfinite(value):
        raise TypeError(f"InventorySpec.{attribute.name} must be a finite number, not {value!r}")


_count = attrs.validators.and_(_whole, attrs.validators.ge(0))
_fraction = attrs.validators.and_(_real, attrs.validators.ge(0.0), attrs.validators.le(1.0))


@attrs.frozen
class InventorySpec:
    """What to generate: sizes, seed and the realism switches (all off by default)."""

    services: int = attrs.field(default=200, validator=_count)  # customer-facing services (TMF638)
    carriers: int = attrs.field(default=50, validator=_count)  # services with "@type": "element" (TMF638)
    resources: int = attrs.field(default=300, validator=_count)  # TMF639 resources
    seed: int = attrs.field(default=1, validator=_whole)
    duplicate_ids: int = attrs.field(default=0, validator=_count)  # extra items per collection repeating an id
    empty_ids: int = attrs.field(default=0, validator=_count)  # extra items per collection with "id": ""
    churn_per_day: float = attrs.field(default=0.0, validator=_fraction)  # fraction of live items changed a day
    arrivals_per_day: float = attrs.field(default=0.0, validator=_fraction)  # new items a day, as a fraction
    removals_per_day: float = attrs.field(default=0.0, validator=_fraction)  # items gone a day, as a fraction
    start: float = attrs.field(default=DEFAULT_START, validator=_real)  # simulated time 0 (epoch seconds; a fraction of a second is dropped)
