"""Kinds: the items of one "@type" each, with their numbering, content, initial times, timeline
and extra items (duplicates and empty ids).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterator, Sequence
from json.encoder import encode_basestring_ascii as _json_str
from typing import NamedTuple

import attrs

from .clock import YEAR, iso_utc
from .items import _ORIGINAL, Item, _Variant
from .numbering import _Numbering
from .spec import InventorySpec
from .timeline import _InitialTimes, _Rates, _Timeline
from .words import _rng


@attrs.frozen
class _Extra:
    """A duplicate (same id as its anchor) or an item with an empty id, listed right after its anchor."""

    anchor: int
    empty_id: bool
    time: int  # its lastUpdate; extras never change


class _ItemState(NamedTuple):
    slot: int
    variant: _Variant
    last_update: int


_ID = re.compile(r"([A-Z]+)-(\d{7,})")


class _Kind:
    """The items of one "@type": numbering, content, initial times, timeline and extras.

    A position within the kind is (slot, extra): extra 0 is the item in that slot, extra n >= 1 the
    kind's n-th extra item (extras are sorted by anchor slot, so that order is the listing order).
    """

    def __init__(
        self,
        spec: InventorySpec,
        *,
        type_name: str,
        prefix: str,
        href: str,
        stream: str,
        base: int,
        numbering: _Numbering,
        body: Callable[[int, _Variant, bool], Item | str],  # (slot, variant, text): see _Content
        extras: list[_Extra],
    ) -> None:
        self.type_name = type_name
        self._spec = spec
        self._prefix = prefix
        self._href = href
        self._href_json = _json_str(href + "/")[:-1]  # the href's JSON text up to the id
        self._stream = stream
        self._base = base
        self._numbering = numbering
        self._id_format = f"{prefix}-%07d"  # an id is read per item of every page: formatted the short way
        self._body = body
        self._extras = extras
        self._anchors = [extra.anchor for extra in extras]
        self._initial = _InitialTimes(base, int(spec.start), _rng(stream, "initial"))
        self.timeline = self._new_timeline()

    def _new_timeline(self) -> _Timeline:
        rates = _Rates(self._spec.churn_per_day, self._spec.arrivals_per_day, self._spec.removals_per_day)
        return _Timeline(self._base, rates, int(self._spec.start), self._stream)

    def rewind(self) -> None:
        self.timeline = self._new_timeline()

    def item_id(self, slot: int) -> str:
        return self._id_format % self._numbering.number(slot)

    def id_at(self, slot: int, extra: int) -> str:
        return "" if extra and self._extras[extra - 1].empty_id else self.item_id(slot)

    # Positions (call under the inventory's lock) ---------------------------------------------

    def __len__(self) -> int:
        return self.timeline.live_count + len(self._extras)

    def _extra_position(self, extra: int) -> int:
        """Where the extra with this 0-based index is listed: after the live slots up to its anchor."""
        return self.timeline.live_up_to(self._anchors[extra]) + extra

    def key_at(self, position: int) -> tuple[int, int]:
        if not self._extras:
            return self.timeline.select(position), 0
        before = bisect.bisect_right(range(len(self._extras)), position, key=self._extra_position)
        if before and self._extra_position(before - 1) == position:
            return self._anchors[before - 1], before
        return self.timeline.select(position - before), 0

    def states_between(self, start: int, stop: int) -> list[_ItemState]:
        """The states of the items at positions start..stop-1 of the kind (within it)."""
        if not self._extras and self.timeline.untouched:  # the common case, short: the positions are the slots
            last_update = self._initial.of
            return [_ItemState(slot, _ORIGINAL, last_update(slot)) for slot in range(start, stop)]
        return [self.state(*self.key_at(position)) for position in range(start, stop)]

    def keys(self) -> Iterator[tuple[int, int]]:
        following = 0  # index of the next extra to list
        slot = 0
        while slot < self.timeline.slots:
            if self.timeline.is_live(slot):
                yield slot, 0
            while following < len(self._extras) and self._anchors[following] == slot:
                following += 1
                yield slot, following
            slot += 1

    def find(self, item_id: str) -> tuple[int, int] | None:
        """The first position holding that id: the live item, else its first duplicate."""
        if item_id == "":
            return next(((e.anchor, i) for i, e in enumerate(self._extras, 1) if e.empty_id), None)
        match = _ID.fullmatch(item_id)
        if not match or match[1] != self._prefix:
            return None
        slot = self._numbering.slot(int(match[2]))
        if slot is None or self.item_id(slot) != item_id:  # another type's number, or not the canonical spelling
            return None
        if self.timeline.is_live(slot):
            return slot, 0
        extra = bisect.bisect_left(self._anchors, slot)
        while extra < len(self._anchors) and self._anchors[extra] == slot:
            if not self._extras[extra].empty_id:
                return slot, extra + 1
            extra += 1
        return None

    def keys_of(self, item_id: str) -> list[tuple[int, int]]:
        """Every position holding `item_id`, in listing order: the live item, then its duplicates.

        They are listed one after the other: duplicates sit right after their anchor, before
        any empty-id item anchored there."""
        first = self.find(item_id) if item_id else None
        if first is None:
            return []
        slot = first[0]
        keys = [(slot, 0)] if self.timeline.is_live(slot) else []
        extra = bisect.bisect_left(self._anchors, slot)
        while extra < len(self._anchors) and self._anchors[extra] == slot:
            if not self._extras[extra].empty_id:
                keys.append((slot, extra + 1))
            extra += 1
        return keys

    def position(self, slot: int, extra: int) -> int:
        """Where the item at (slot, extra) is listed within the kind: the inverse of `key_at`."""
        if extra:
            return self._extra_position(extra - 1)
        return self.timeline.live_up_to(slot) - 1 + bisect.bisect_left(self._anchors, slot)

    def changed_since(self, epoch: float) -> list[tuple[int, int]]:
        slots = set(self.timeline.changed_since(epoch))
        slots.update(slot for slot in self._initial.slots_since(epoch) if self.timeline.is_live(slot))
        keys = [(slot, 0) for slot in slots]
        keys += [(e.anchor, i) for i, e in enumerate(self._extras, 1) if e.time >= epoch]
        return sorted(keys)

    def state(self, slot: int, extra: int) -> _ItemState:
        if extra:
            copy = self._extras[extra - 1]
            return _ItemState(slot, _Variant(copy=extra, empty_id=copy.empty_id), copy.time)
        revision, changed_at = self.timeline.history(slot)
        last_update = self._initial.of(slot) if changed_at is None else changed_at
        return _ItemState(slot, _Variant(revision=revision) if revision else _ORIGINAL, last_update)

    # Building (no lock needed) ---------------------------------------------------------------

    def build(self, state: _ItemState, href: str | None = None) -> Item:
        """The item; `href`, when given, replaces the kind's collection URL in the item's own href."""
        item_id = "" if state.variant.empty_id else self.item_id(state.slot)
        item: Item = {"id": item_id, "href": f"{self._href if href is None else href}/{item_id}"}
        body = self._body(state.slot, state.variant, False)
        assert isinstance(body, dict)
        item.update(body)
        item["lastUpdate"] = iso_utc(state.last_update)
        return item

    def build_json(self, states: Sequence[_ItemState], href_json: str | None = None) -> list[str]:
        """The JSON text of `build`'s item for each state, as ``json.dumps(item, separators=(",", ":"))``
        writes it, without the dict (a page's worth at a time: what they share is looked up once).

        `href_json` is the JSON text of another collection URL plus "/", without its closing quote."""
        body, id_format, number = self._body, self._id_format, self._numbering.number
        href_json = self._href_json if href_json is None else href_json
        texts = []
        for slot, variant, last_update in states:
            item_id = "" if variant.empty_id else id_format % number(slot)
            texts.append(f'{{"id":"{item_id}","href":{href_json}{item_id}",{body(slot, variant, True)},"lastUpdate":"{iso_utc(last_update)}"}}')
        return texts


def _place_extras(spec: InventorySpec, collection: str, bases: Sequence[int]) -> list[list[_Extra]]:
    """The duplicate and empty-id items of one collection, per kind, anchored at seeded initial items."""
    per_kind: list[list[_Extra]] = [[] for _ in bases]
    total = sum(bases)
    if not total:
        return per_kind  # nothing to repeat or to sit next to
    starts = [sum(bases[:i]) for i in range(len(bases))]
    wanted = [(False, j) for j in range(spec.duplicate_ids)] + [(True, j) for j in range(spec.empty_ids)]
    for empty_id, j in wanted:
        rng = _rng(spec.seed, collection, "empty" if empty_id else "duplicate", j)
        position = rng.randrange(total)
        kind = bisect.bisect_right(starts, position) - 1
        moment = int(spec.start) - YEAR + rng.randrange(YEAR)
        per_kind[kind].append(_Extra(position - starts[kind], empty_id, moment))
    for extras in per_kind:
        extras.sort(key=lambda extra: extra.anchor)  # stable: duplicates first, in seeded order
    return per_kind
