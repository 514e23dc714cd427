"""Slots and the numbers in ids: services and carriers count from 1, resource numbers interleave
the resource types in a seeded pattern of 100 (so the number alone names the type).
"""

from __future__ import annotations

import bisect
from typing import Protocol

import attrs

from .words import _rng
from .world import RESOURCE_TYPES


class _ResourcePattern:
    """Which type each resource number (from 1) has: a pattern of 100 positions, repeating.

    Every type comes once first, in hierarchy order (so even a handful of resources has a satellite
    for its transponders); the other positions are a seeded shuffle of the remaining weights.
    """

    def __init__(self, seed: int) -> None:
        rest = [i for i, kind in enumerate(RESOURCE_TYPES) for _ in range(kind.weight - 1)]
        _rng(seed, "resource-pattern").shuffle(rest)
        self._type_at = list(range(len(RESOURCE_TYPES))) + rest
        self.period = len(self._type_at)
        self._positions = [[p for p, t in enumerate(self._type_at) if t == i] for i in range(len(RESOURCE_TYPES))]
        self._ordinal = [self._positions[t].index(p) for p, t in enumerate(self._type_at)]

    def number(self, type_index: int, slot: int) -> int:
        """The resource number (from 1) of a type's slot."""
        positions = self._positions[type_index]
        cycle, i = divmod(slot, len(positions))
        return cycle * self.period + positions[i] + 1

    def locate(self, number: int) -> tuple[int, int]:
        """(type index, slot) of a resource number."""
        cycle, position = divmod(number - 1, self.period)
        type_index = self._type_at[position]
        return type_index, cycle * len(self._positions[type_index]) + self._ordinal[position]

    def count(self, type_index: int, numbers: int) -> int:
        """How many of the first `numbers` resource numbers have this type."""
        cycle, rest = divmod(numbers, self.period)
        positions = self._positions[type_index]
        return cycle * len(positions) + bisect.bisect_left(positions, rest)


class _Numbering(Protocol):
    def number(self, slot: int) -> int: ...
    def slot(self, number: int) -> int | None: ...


class _Sequential:
    """Services and carriers: slot 0 is number 1, and so on."""

    def number(self, slot: int) -> int:
        return slot + 1

    def slot(self, number: int) -> int | None:
        return number - 1 if number >= 1 else None


@attrs.frozen
class _ByResourceType:
    """One resource type's share of the resource numbers."""

    pattern: _ResourcePattern
    type_index: int

    def number(self, slot: int) -> int:
        return self.pattern.number(self.type_index, slot)

    def slot(self, number: int) -> int | None:
        if number < 1:
            return None
        type_index, slot = self.pattern.locate(number)
        return slot if type_index == self.type_index else None


_SEQUENTIAL = _Sequential()
