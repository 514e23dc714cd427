"""Collections: ordered, read-only views of inventory items (a live listing of kinds, or a fixed
list of keys that a filter or `updated_since` found), built item by item when read.
"""

from __future__ import annotations

import abc
import bisect
import copy
import heapq
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from json.encoder import encode_basestring_ascii as _json_str

from .items import Item
from .kinds import _ItemState, _Kind
from .timeline import _Timeline

_Key = tuple[_Kind, int, int]  # (kind, slot, extra)
Marks = tuple[tuple[_Kind, _Timeline, int], ...]  # per kind: its timeline and how many touches it had (`Collection.marks`)


class Collection(abc.ABC):
    """An ordered, read-only view of inventory items, each built (a fresh dict) when asked for.

    The order is by (kind, slot, copy): unique and stable, so offset paging over an unchanged
    collection never repeats or skips. Items removed or arriving between pages shift positions,
    as on a real server.
    """

    _item_href: str | None = None  # set by `with_item_href`
    _item_href_json: str | None = None
    _kinds: tuple[_Kind, ...]

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock

    @property
    def marks(self) -> Marks:
        """How far time went for each of this view's kinds: equal marks, equal items. For `where`'s `update`."""
        with self._lock:
            return tuple((kind, kind.timeline, kind.timeline.touches) for kind in self._kinds)

    def where(self, predicate: Callable[[Item], bool], *, update: tuple[Collection, Marks] | None = None) -> Collection:
        """The items `predicate` accepts, in the same order, as a fixed view.

        One pass that builds every item: for filters the views cannot answer by arithmetic,
        made once and then paged through at the cost of the page. With `update`, an earlier
        `where` of a view of the same kinds with the same predicate and that view's `marks`
        then, only the items time touched since are built and judged again (the others have
        not changed): the cost is those items plus a pass over the keys. When time went back
        (an inventory replays from the start) the marks do not fit, and it is one pass again."""
        if update is not None:
            updated = self._updated_where(predicate, *update)
            if updated is not None:
                return updated
        with self._lock:
            keys = list(self._keys())
        return self._same_hrefs(_FixedCollection(self._accepted(keys, predicate), self._kinds, self._lock))

    def _accepted(self, keys: Iterable[_Key], predicate: Callable[[Item], bool]) -> list[_Key]:
        accepted = []
        for key in keys:
            kind, slot, extra = key
            with self._lock:
                if not kind.timeline.is_live(slot) and not extra:  # gone since the keys were taken
                    continue
                state = kind.state(slot, extra)
            if predicate(kind.build(state, self._item_href)):
                accepted.append(key)
        return accepted

    def _updated_where(self, predicate: Callable[[Item], bool], earlier: Collection, marks: Marks) -> Collection | None:
        if not isinstance(earlier, _FixedCollection) or [mark[0] for mark in marks] != list(self._kinds):
            return None
        touched: dict[int, set[int]] = {}  # per kind (by id): its slots touched since the marks
        with self._lock:
            for kind, timeline, touches in marks:
                since = timeline.touched_since(touches) if kind.timeline is timeline else None  # not: rewound
                if since is None:  # rewound, or too much happened since: scan again
                    return None
                touched[id(kind)] = since
        order = {id(kind): index for index, kind in enumerate(self._kinds)}
        kept = [key for key in earlier._key_list if key[2] or key[1] not in touched[id(key[0])]]  # extras never change
        judged = self._accepted(sorted(((kind, slot, 0) for kind in self._kinds for slot in touched[id(kind)]), key=lambda key: (order[id(key[0])], key[1])), predicate)
        keys = list(heapq.merge(kept, judged, key=lambda key: (order[id(key[0])], key[1], key[2])))
        return self._same_hrefs(_FixedCollection(keys, self._kinds, self._lock))

    def with_item_href(self, collection_url: str) -> Collection:
        """The same view, each item's own href under `collection_url` (``<url>/<id>``).

        For a server that serves the items at another path too (SES's): the references inside
        items keep pointing where the inventory's `href_base` put them."""
        view = copy.copy(self)
        view._item_href = collection_url.rstrip("/")
        view._item_href_json = _json_str(view._item_href + "/")[:-1]
        return view

    def _same_hrefs(self, view: Collection) -> Collection:
        """`view` (derived from this one) with this one's item hrefs."""
        return view if self._item_href is None else view.with_item_href(self._item_href)

    def span(self, item_id: str) -> tuple[int, int] | None:
        """Where the items with id `item_id` are listed in this view: (index of the first, how many).

        They are consecutive (an original and its duplicates). A count of 0 means the inventory
        has the item but this view leaves it out (an `updated_since` view: it was not updated
        since); the index is then where it would be listed. None when none of this view's kinds
        has a live item with that id."""
        with self._lock:
            return self._span(item_id)

    @abc.abstractmethod
    def _span(self, item_id: str) -> tuple[int, int] | None: ...

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def _key_at(self, index: int) -> _Key:
        """The key at a valid index (under the lock)."""

    def _states_between(self, start: int, stop: int) -> list[tuple[_Kind, list[_ItemState]]]:
        """The states at indexes start..stop-1, clipped to the collection, in runs of one kind (under the lock)."""
        runs: list[tuple[_Kind, list[_ItemState]]] = []
        for index in range(max(0, start), min(stop, len(self))):
            kind, slot, extra = self._key_at(index)
            if not runs or runs[-1][0] is not kind:
                runs.append((kind, []))
            runs[-1][1].append(kind.state(slot, extra))
        return runs

    @abc.abstractmethod
    def _first_key(self, item_id: str) -> _Key | None:
        """The key of the first item with that id (under the lock)."""

    @abc.abstractmethod
    def _keys(self) -> Iterator[_Key]: ...

    @abc.abstractmethod
    def of_type(self, type_name: str) -> Collection:
        """The items whose "@type" is `type_name` ("element": the carriers), in the same order."""

    @abc.abstractmethod
    def updated_since(self, epoch: float) -> Collection:
        """The items whose lastUpdate is at or after `epoch`, in the same order."""

    def at(self, index: int) -> Item:
        with self._lock:
            if not 0 <= index < len(self):
                raise IndexError(f"index {index} outside a collection of {len(self)} items")
            kind, slot, extra = self._key_at(index)
            state = kind.state(slot, extra)
        return kind.build(state, self._item_href)

    def json_slice(self, start: int, stop: int) -> list[str]:
        """The items at indexes start..stop-1 (clipped to the collection) as JSON text.

        Each is exactly ``json.dumps(self.at(index), separators=(",", ":"))``, written without
        building the dict: what a server sends for a page.
        """
        with self._lock:
            runs = self._states_between(start, stop)
        return [text for kind, states in runs for text in kind.build_json(states, self._item_href_json)]

    def get(self, item_id: str) -> Item | None:
        with self._lock:
            key = self._first_key(item_id)
            if key is None:
                return None
            kind, slot, extra = key
            state = kind.state(slot, extra)
        return kind.build(state, self._item_href)

    def __iter__(self) -> Iterator[Item]:
        for kind, slot, extra in self._keys():
            with self._lock:
                state = kind.state(slot, extra)
            yield kind.build(state, self._item_href)


class _LiveCollection(Collection):
    """Kinds listed one after the other, as they are now."""

    def __init__(self, kinds: Sequence[_Kind], lock: threading.RLock) -> None:
        super().__init__(lock)
        self._kinds = tuple(kinds)

    def __len__(self) -> int:
        with self._lock:
            return sum(len(kind) for kind in self._kinds)

    def _key_at(self, index: int) -> _Key:
        for kind in self._kinds:
            if index < len(kind):
                return (kind, *kind.key_at(index))
            index -= len(kind)
        raise IndexError(index)

    def _states_between(self, start: int, stop: int) -> list[tuple[_Kind, list[_ItemState]]]:
        runs = []
        for kind in self._kinds:  # start and stop count from this kind's first item
            size = len(kind)
            if start < size and stop > 0:
                runs.append((kind, kind.states_between(max(0, start), min(stop, size))))
            start, stop = start - size, stop - size
        return runs

    def _first_key(self, item_id: str) -> _Key | None:
        for kind in self._kinds:
            found = kind.find(item_id)
            if found is not None:
                return (kind, *found)
        return None

    def _span(self, item_id: str) -> tuple[int, int] | None:
        offset = 0
        for kind in self._kinds:
            keys = kind.keys_of(item_id)
            if keys:
                return offset + kind.position(*keys[0]), len(keys)
            offset += len(kind)
        return None

    def _keys(self) -> Iterator[_Key]:
        for kind in self._kinds:
            for slot, extra in kind.keys():
                yield kind, slot, extra

    def of_type(self, type_name: str) -> Collection:
        return self._same_hrefs(_LiveCollection([kind for kind in self._kinds if kind.type_name == type_name], self._lock))

    def updated_since(self, epoch: float) -> Collection:
        with self._lock:
            keys = [(kind, slot, extra) for kind in self._kinds for slot, extra in kind.changed_since(epoch)]
        return self._same_hrefs(_FixedCollection(keys, self._kinds, self._lock))


class _FixedCollection(Collection):
    """A fixed list of keys (what `updated_since` found); items are built with their content at access time."""

    def __init__(self, keys: list[_Key], kinds: Sequence[_Kind], lock: threading.RLock) -> None:
        super().__init__(lock)
        self._key_list = keys  # in listing order: by kind (in `kinds` order), slot, extra
        self._kinds = tuple(kinds)
        self._kind_order = {id(kind): index for index, kind in enumerate(self._kinds)}
        self._first_index: dict[str, int] | None = None

    def __len__(self) -> int:
        return len(self._key_list)

    def _key_at(self, index: int) -> _Key:
        return self._key_list[index]

    def _first_key(self, item_id: str) -> _Key | None:
        if self._first_index is None:
            self._first_index = {}
            for index, (kind, slot, extra) in enumerate(self._key_list):
                self._first_index.setdefault(kind.id_at(slot, extra), index)
        index = self._first_index.get(item_id)
        return None if index is None else self._key_list[index]

    def _span(self, item_id: str) -> tuple[int, int] | None:
        for kind in self._kinds:
            keys = kind.keys_of(item_id)
            if keys:
                wanted = {(kind, slot, extra) for slot, extra in keys}
                order = self._kind_order[id(kind)]
                index = bisect.bisect_left(self._key_list, (order, *keys[0]), key=lambda key: (self._kind_order[id(key[0])], key[1], key[2]))
                count = 0
                while index + count < len(self._key_list) and self._key_list[index + count] in wanted:
                    count += 1
                return index, count
        return None

    def _keys(self) -> Iterator[_Key]:
        return iter(self._key_list)

    def of_type(self, type_name: str) -> Collection:
        kinds = [kind for kind in self._kinds if kind.type_name == type_name]
        return self._same_hrefs(_FixedCollection([key for key in self._key_list if key[0].type_name == type_name], kinds, self._lock))

    def updated_since(self, epoch: float) -> Collection:
        with self._lock:
            keys = [(kind, slot, extra) for kind, slot, extra in self._key_list if kind.state(slot, extra).last_update >= epoch]
        return self._same_hrefs(_FixedCollection(keys, self._kinds, self._lock))
