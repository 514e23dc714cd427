"""Time in the generated inventory: initial lastUpdate values, and per kind the daily batches of
churn, arrivals and removals, applied lazily up to the simulated now.
"""

from __future__ import annotations

import bisect
import math
import random
from array import array
from collections.abc import Iterator
from typing import NamedTuple

import attrs

from .clock import DAY, YEAR
from .words import _batch_size, _rng


class _InitialTimes:
    """Each initial item's lastUpdate, spread over the year before `start` in a seeded order.

    The order is an affine permutation of the slots (rank = a*slot + b mod n), so the slots
    updated since a given time are a run of ranks, found by bisection and inverted one by one.
    """

    def __init__(self, count: int, start: int, rng: random.Random) -> None:
        self._count = count
        self._start = start
        self._multiplier = 1
        while count > 2:  # any multiplier coprime with the count permutes it
            self._multiplier = rng.randrange(1, count)
            if math.gcd(self._multiplier, count) == 1:
                break
        self._offset = rng.randrange(count) if count else 0
        self._inverse = pow(self._multiplier, -1, count) if count > 1 else 0
        self._jitter_span = max(1, YEAR // count) if count else 1
        self._jitter_salt = rng.randrange(YEAR)

    def _at_rank(self, rank: int) -> int:
        # Non-decreasing in rank: the jitter never reaches the next rank's share of the year.
        jitter = (rank * 2_654_435_761 + self._jitter_salt) % self._jitter_span
        return self._start - YEAR + rank * YEAR // self._count + jitter

    def of(self, slot: int) -> int:
        return self._at_rank((self._multiplier * slot + self._offset) % self._count)

    def slots_since(self, epoch: float) -> Iterator[int]:
        first = bisect.bisect_left(range(self._count), epoch, key=self._at_rank)
        for rank in range(first, self._count):
            yield (self._inverse * (rank - self._offset)) % self._count


class _LiveSet:
    """Which slots still exist: flags plus a Fenwick tree over them, for O(log n) rank and select."""

    def __init__(self, size: int) -> None:
        self._flags = bytearray(b"\x01") * size
        # With every flag set, node i holds its range length, the lowest set bit of i: the nodes
        # with lowest bit p are p, 3p, 5p, ..., filled a power of two at a time.
        self._tree = array("i", bytes(4 * (size + 1)))
        power = 1
        while power <= size:
            self._tree[power :: 2 * power] = array("i", [power]) * len(range(power, size + 1, 2 * power))
            power *= 2
        self.count = size

    def __contains__(self, slot: int) -> bool:
        return self._flags[slot] == 1

    def append(self) -> None:
        node = len(self._tree)  # 1-based node of the new slot; it covers (node - lowbit, node]
        self._tree.append(1 + self.live_before(node - 1) - self.live_before(node - (node & -node)))
        self._flags.append(1)
        self.count += 1

    def remove(self, slot: int) -> None:
        if not self._flags[slot]:
            return
        self._flags[slot] = 0
        node = slot + 1
        while node < len(self._tree):
            self._tree[node] -= 1
            node += node & -node
        self.count -= 1

    def live_before(self, slots: int) -> int:
        """How many of the first `slots` slots are live."""
        total = 0
        while slots:
            total += self._tree[slots]
            slots &= slots - 1
        return total

    def select(self, rank: int) -> int:
        """The slot of the live item with this 0-based rank."""
        node, remaining = 0, rank + 1
        step = 1 << (len(self._tree) - 1).bit_length()
        while step:
            following = node + step
            if following < len(self._tree) and self._tree[following] < remaining:
                node, remaining = following, remaining - self._tree[following]
            step >>= 1
        return node  # the 1-based node after `node` is the slot, so its 0-based slot is `node`


class _Event(NamedTuple):
    time: int
    action: str  # "change", "arrive" or "remove"
    slot: int


@attrs.frozen
class _Rates:
    churn: float
    arrivals: float
    removals: float

    @property
    def active(self) -> bool:
        return bool(self.churn or self.arrivals or self.removals)


_TOUCH_LOG_FLOOR = 1024  # entries a timeline's log of touched slots always may hold


class _Timeline:
    """What simulated time did to one kind's slots, applied up to `time`: changes, arrivals, removals.

    The per-slot arrays appear with the first event that needs them; a kind nobody changes holds
    nothing per slot.
    """

    def __init__(self, base: int, rates: _Rates, start: int, stream: str) -> None:
        self.base = base
        self.slots = base
        self.time = -math.inf
        self._rates = rates
        self._changing = rates.active  # read on every request
        self._start = start
        self._stream = stream
        self._live: _LiveSet | None = None
        self._changed_at: array[int] | None = None  # epoch second of each slot's last change or arrival
        self._revision: array[int] | None = None  # changes so far, per slot
        self._days: list[tuple[int, int]] = []  # (slots, live) when each day began
        self._batch: list[_Event] = []  # the current day's events in time order
        self._applied = 0  # how many of them happened already
        self._touched = array("q")  # the slot of each event that changed something, in the order applied
        self._touched_dropped = 0  # how many of the oldest the log no longer holds

    @property
    def live_count(self) -> int:
        return self.slots if self._live is None else self._live.count

    @property
    def untouched(self) -> bool:
        """Nothing happened yet: every initial slot is live and unchanged, and none arrived."""
        return self._live is None and self._revision is None

    def is_live(self, slot: int) -> bool:
        return 0 <= slot < self.slots and (self._live is None or slot in self._live)

    @property
    def touches(self) -> int:
        """How many events changed something so far: a mark for `touched_since`."""
        return self._touched_dropped + len(self._touched)

    def touched_since(self, touches: int) -> set[int] | None:
        """The slots whose item changed, arrived or went since the mark `touches`; None when the
        log no longer reaches back that far."""
        first = touches - self._touched_dropped
        return None if first < 0 else set(self._touched[first:])

    def _touch(self, slot: int) -> None:
        self._touched.append(slot)
        # Bounded: once it holds more entries than the kind has slots, judging what it lists again
        # costs about what a new scan does, so its older half may go.
        if len(self._touched) > max(_TOUCH_LOG_FLOOR, 2 * self.slots):
            half = len(self._touched) // 2
            del self._touched[:half]
            self._touched_dropped += half

    def live_up_to(self, slot: int) -> int:
        """How many live slots are at or before `slot`."""
        return slot + 1 if self._live is None else self._live.live_before(slot + 1)

    def select(self, rank: int) -> int:
        return rank if self._live is None else self._live.select(rank)

    def history(self, slot: int) -> tuple[int, int | None]:
        """(revision, time of the last change or arrival), or (0, None) for an untouched initial item."""
        if self._revision is None or self._changed_at is None:
            return 0, None
        revision = self._revision[slot]
        return (revision, self._changed_at[slot]) if revision or slot >= self.base else (0, None)

    def advance(self, now: float) -> None:
        self.time = now
        if not self._changing:
            return
        while True:
            while self._applied < len(self._batch):
                event = self._batch[self._applied]
                if event.time > now:
                    return
                self._apply(event)
                self._applied += 1
            day = len(self._days)
            if self._start + day * DAY > now:
                return
            self._begin_day(day)

    def changed_since(self, epoch: float) -> Iterator[int]:
        """Live slots that changed or arrived at or after `epoch` (maybe repeated), from regenerated batches."""
        first_day = max(0, int((epoch - self._start) // DAY))
        for day in range(first_day, len(self._days)):
            slots, live = self._days[day]
            for event in self._changes(day, slots, live):
                if epoch <= event.time <= self.time and self.is_live(event.slot):
                    yield event.slot

    def _begin_day(self, day: int) -> None:
        self._days.append((self.slots, self.live_count))
        batch = self._changes(day, self.slots, self.live_count) + self._removals(day)
        batch.sort(key=lambda event: event.time)  # stable: arrivals keep their slot order
        self._batch, self._applied = batch, 0

    def _changes(self, day: int, slots: int, live: int) -> list[_Event]:
        """A day's changes and arrivals: a function of (day, slots, live) alone, so they can be regenerated."""
        day_start = self._start + day * DAY
        rng = _rng(self._stream, "churn", day)
        count = min(_batch_size(self._rates.churn * live, rng), slots)
        # Sampled among all slots; a change that lands on a removed item does nothing.
        events = [_Event(day_start + rng.randrange(DAY), "change", slot) for slot in rng.sample(range(slots), count)]
        rng = _rng(self._stream, "arrivals", day)
        count = _batch_size(self._rates.arrivals * live, rng)
        times = sorted(day_start + rng.randrange(DAY) for _ in range(count))
        return events + [_Event(moment, "arrive", slots + i) for i, moment in enumerate(times)]

    def _removals(self, day: int) -> list[_Event]:
        day_start = self._start + day * DAY
        rng = _rng(self._stream, "removals", day)
        count = min(_batch_size(self._rates.removals * self.live_count, rng), self.live_count)
        ranks = rng.sample(range(self.live_count), count)
        return [_Event(day_start + rng.randrange(DAY), "remove", self.select(rank)) for rank in ranks]

    def _apply(self, event: _Event) -> None:
        if event.action == "remove":
            if self._live is None:
                self._live = _LiveSet(self.slots)
            if event.slot in self._live:
                self._live.remove(event.slot)
                self._touch(event.slot)
            return
        changed_at, revision = self._history_arrays()
        if event.action == "arrive":
            changed_at.append(event.time)
            revision.append(0)
            if self._live is not None:
                self._live.append()
            self._touch(self.slots)  # the new slot
            self.slots += 1
        elif self.is_live(event.slot):
            changed_at[event.slot] = event.time
            revision[event.slot] += 1
            self._touch(event.slot)

    def _history_arrays(self) -> tuple[array[int], array[int]]:
        if self._changed_at is None or self._revision is None:
            self._changed_at = array("q", bytes(8 * self.slots))
            self._revision = array("I", bytes(4 * self.slots))
        return self._changed_at, self._revision
