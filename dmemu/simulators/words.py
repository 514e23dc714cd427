"""Random numbers for the generated inventory: BLAKE2b words per item key, and seeded streams per batch.

An item draws from its own words (`_words`, `_Stream`), so item i never needs items 0..i-1; a daily
batch of changes draws from a ``random.Random`` of its own (`_rng`).
"""

from __future__ import annotations

import hashlib
import itertools
import random
import struct
from collections.abc import Iterator, Sequence
from typing import Any

import attrs

_blake2b = hashlib.blake2b
_BLOCK = struct.Struct("<8Q")  # a BLAKE2b-512 digest as eight 64-bit words
_TWO_TO_MINUS_53 = 2.0**-53


def _words(key: bytes, block: int = 0) -> tuple[int, ...]:
    """Eight random 64-bit words, the same for the same key and block: the primitive under `_Stream`.

    An item that draws a fixed set of numbers takes them straight from here (``word % n`` is
    uniform to within n / 2**64); that is the cheapest way to draw in Python.
    """
    return _BLOCK.unpack(_blake2b(b"%d|%b" % (block, key) if block else key).digest())


def _later_blocks(key: bytes) -> Iterator[int]:
    for block in itertools.count(1):
        yield from _words(key, block)


class _Stream:
    """An item's own random numbers: 64-bit words hashed from its key, a word a draw.

    Seeding a Mersenne Twister costs more than writing a whole item, and an item needs about a
    dozen numbers: a BLAKE2b digest of the key gives eight for a twentieth of that, and the same
    key always gives the same numbers. A word reduced modulo n is uniform to within n / 2**64.
    The blocks after the first are hashed only when an item draws that far.
    """

    __slots__ = ("_word",)

    def __init__(self, key: str | bytes) -> None:
        data = key.encode() if isinstance(key, str) else key
        self._word = itertools.chain(_words(data), _later_blocks(data)).__next__

    def below(self, n: int) -> int:
        """A number in range(n)."""
        if n <= 0:
            raise ValueError(f"empty range below {n}")
        return self._word() % n

    def between(self, low: int, high: int) -> int:
        """A number in range(low, high)."""
        if high <= low:
            raise ValueError(f"empty range from {low} to {high}")
        return low + self._word() % (high - low)

    def pick(self, values: Sequence[Any]) -> Any:
        """One of `values`."""
        if not values:
            raise IndexError("nothing to pick from")
        return values[self._word() % len(values)]

    def random(self) -> float:
        """A float in [0, 1), with 53 random bits."""
        return (self._word() >> 11) * _TWO_TO_MINUS_53

    def uniform(self, low: float, high: float) -> float:
        """A float between low and high."""
        return low + (high - low) * self.random()


def _rng(*parts: object) -> random.Random:
    """A stream of its own per batch (never one global stream), so any of them is built alone."""
    return random.Random(":".join(map(str, parts)))


def _batch_size(expected: float, rng: random.Random) -> int:
    """`expected` rounded up or down at random in proportion: small kinds still change, on average."""
    whole = int(expected)
    return whole + (rng.random() < expected - whole)


@attrs.frozen
class _Weighted:
    """A weighted choice among names, drawn with one pick: each name fills as many places as its weight."""

    places: tuple[str, ...]

    @classmethod
    def of(cls, **weights: int) -> _Weighted:
        return cls(tuple(name for name, weight in weights.items() for _ in range(weight)))

    def draw(self, rng: _Stream) -> str:
        return rng.pick(self.places)

    def at(self, word: int) -> str:
        """The name a random word picks."""
        return self.places[word % len(self.places)]
