"""A generated inventory collection plus what clients created, patched or deleted over it.

The generated collection (`inventory.Collection`) is never copied: edits are kept beside it.
A list overlays them: deleted items vanish, patched ones show their patch in their place,
created ones follow every generated item, in creation order. For the lists clients page through
(no filter, ``@type=...``, ``updatedDaysAgo=N``, alone or together; ``@type`` only while no
patch changed an item's ``@type``) a page costs the page plus the number of edits,
however large the collection: each edited id is located in the view (`Collection.span`) and the
page is cut from the runs of generated items between them. Other filters (``status=1`` among
them) first scan the generated items of that view once (`Collection.where`); edits do not change
that scan, so it is kept and the edits are overlaid on it the same way: paging through it costs
the page plus the edits too. Once simulated time has changed, added or removed items, the kept
scan judges only those again (1,000,000 services churning: 0.2 s, not a new 8 s scan). With
``updatedDaysAgo`` the scan covers only the items updated since then and is made per request.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Mapping
from typing import Any

from .clock import DAY, iso_utc
from .schema import CREATE_REQUIRED, PATCHABLE, check_attribute_types, check_item
from .tmf import (
    Filter,
    ListQuery,
    TmfError,
    bad_request,
    copied,
    homed,
    item_href,
    merge_patch,
    non_negative_int,
    not_found,
)
from .views import Collection, Marks

Item = dict[str, Any]
MAX_DAYS_AGO = 36_500  # further back than clocks and calendars here go
_FILTERED_VIEWS_KEPT = 8  # oldest dropped first: a few clients' filters at a time


class EncodedItems(list[str]):
    """A page of items already encoded as compact JSON text: sent as the JSON array of them."""


class _Edit:
    """What the edits do at one place of a view: hide `hidden` items from `index` on, show `shown` there."""

    __slots__ = ("hidden", "index", "order", "shown")

    def __init__(self, index: int, hidden: int, shown: list[Item], order: int) -> None:
        self.index = index
        self.hidden = hidden
        self.shown = shown
        self.order = order  # the item's index in the whole collection: orders edits at one index


class InventoryStore:
    """A generated collection plus what clients created, patched or deleted over it; thread-safe.

    `source` gives the current generated collection (whose items' hrefs are under
    `collection_url`, where created items get theirs). `api` ("tmf638", "tmf639") names the
    spec tables (`schema`) that creates and patches are checked against, so answers stay valid.
    """

    def __init__(self, source: Callable[[], Collection], now: Callable[[], float], api: str, collection_url: str = "") -> None:
        self._source = source
        self._now = now
        self._api = api
        self.collection_url = collection_url.rstrip("/")
        self._patched: dict[str, Item] = {}  # generated ids -> their patched item
        self._deleted: set[str] = set()  # generated ids
        self._retyped: set[str] = set()  # generated ids whose patch changed "@type": no type-only view holds them
        self._created: dict[str, Item] = {}  # in creation order
        self._new_ids = itertools.count(1)
        self._filtered: dict[tuple[Any, ...], tuple[Marks, Collection]] = {}  # per filters: generated items they keep, as of the marks
        self._lock = threading.RLock()  # each change is looked up, checked and stored as one step

    # -- one item ---------------------------------------------------------------------------

    def get(self, item_id: str, collection_url: str | None = None) -> Item:
        """The item (a copy); its href under `collection_url` when given."""
        with self._lock:
            item = self._find(item_id)
        if item is None:
            raise not_found("item", item_id)
        return homed(item, collection_url)

    def _find(self, item_id: str) -> Item | None:
        created = self._created.get(item_id)
        if created is not None:
            return created
        if item_id in self._deleted:
            return None
        return self._patched.get(item_id) or self._source().get(item_id)

    def create(self, body: Any, collection_url: str | None = None) -> Item:
        if not isinstance(body, dict):
            raise bad_request("the item is a JSON object")
        missing = [name for name in CREATE_REQUIRED[self._api] if name not in body]
        if missing:
            raise bad_request(f"missing required attributes: {', '.join(missing)}")
        check_attribute_types(self._api, body)
        with self._lock:
            if body.get("id"):
                item_id = str(body["id"])
                if self._find(item_id) is not None:
                    raise TmfError(409, "Conflict", f"an item with id {item_id!r} exists")
            else:
                item_id = next(i for i in (f"NEW-{n:07d}" for n in self._new_ids) if self._find(i) is None)
            item = {**body, "id": item_id, "href": item_href(self.collection_url, item_id), "lastUpdate": iso_utc(self._now())}
            self._created[item_id] = item
        return homed(item, collection_url)

    def patch(self, item_id: str, changes: Any, collection_url: str | None = None) -> Item:
        if not isinstance(changes, dict):
            raise bad_request("a merge patch is a JSON object")
        forbidden = sorted(changes.keys() - PATCHABLE[self._api])
        if forbidden:
            raise bad_request(f"{', '.join(forbidden)} cannot be patched")
        check_attribute_types(self._api, changes, merge_patch=True)
        with self._lock:
            current = self._find(item_id)
            if current is None:
                raise not_found("item", item_id)
            item = copied(current)
            merge_patch(item, changes)
            check_item(self._api, item)  # what a merged object lacks shows only in the result
            item["lastUpdate"] = iso_utc(self._now())
            if item_id in self._created:
                self._created[item_id] = item
            else:
                self._patched[item_id] = item
                original = self._source().get(item_id)
                if original is not None and item.get("@type") != original.get("@type"):
                    self._retyped.add(item_id)
        return homed(item, collection_url)

    def delete(self, item_id: str) -> None:
        with self._lock:
            if self._created.pop(item_id, None) is not None:
                return
            if self._find(item_id) is None:
                raise not_found("item", item_id)
            self._deleted.add(item_id)
            self._patched.pop(item_id, None)
            self._retyped.discard(item_id)

    # -- lists ------------------------------------------------------------------------------

    def listing(
        self,
        query: ListQuery,
        vendor: Mapping[str, str],
        status_filter: Callable[[Item], bool],
        collection_url: str | None = None,
    ) -> tuple[int, list[Item] | EncodedItems]:
        """(total matches, the page) for a list query: items, or (without ``fields``) their JSON text.

        `vendor` holds SES's ``updatedDaysAgo`` and ``status`` (``status`` keeps the items
        `status_filter` accepts); `collection_url` is where the items' hrefs point.
        """
        full = self._source()
        with self._lock:
            patched, deleted = dict(self._patched), set(self._deleted)
            created, retyped = list(self._created.values()), bool(self._retyped)
        # Generated items' hrefs are under the store's collection_url: moved only for another path.
        if collection_url is not None and collection_url.rstrip("/") != self.collection_url:
            full = full.with_item_href(collection_url)
        view, narrowed = full, False
        view_terms: list[Filter] = []  # the filters `view` already applies
        other_terms: list[Filter] = []
        for term in query.filters:
            if term.path == ("@type",) and term.operator == "eq" and len(term.values) == 1 and not retyped:
                view, narrowed = view.of_type(term.values[0]), True
                view_terms.append(term)
            else:
                other_terms.append(term)
        threshold: str | None = None
        if "updatedDaysAgo" in vendor:
            days = non_negative_int("updatedDaysAgo", vendor["updatedDaysAgo"])
            if days > MAX_DAYS_AGO:
                raise bad_request(f"updatedDaysAgo={days}: at most {MAX_DAYS_AGO} days (a century)")
            since = self._now() - (days + 1) * DAY
            view, narrowed = view.updated_since(since), True
            threshold = iso_utc(since)

        def present(item: Item) -> Item:
            return homed(item, collection_url)

        def in_view(item: Item) -> bool:
            return all(term.matches(item) for term in view_terms) and (threshold is None or item.get("lastUpdate", "") >= threshold)

        created = [item for item in created if in_view(item)]
        if other_terms or "status" in vendor:

            def wanted(item: Item) -> bool:
                return all(term.matches(item) for term in other_terms) and ("status" not in vendor or status_filter(item))

            if threshold is None:
                view = self._kept_where(view, wanted, (tuple(view_terms), tuple(other_terms), "status" in vendor, collection_url))
            else:
                view = view.where(wanted)  # only the items updated since the threshold: too short-lived to keep
            # The filtered view is of generated items: a patched item is listed where its generated
            # item would be when the patch passes the filter, whether or not the generated one does.
            edits = self._edits_in(view, full, patched, deleted, lambda item: in_view(item) and wanted(item))
            created = [item for item in created if wanted(item)]
        else:
            edits = self._edits_in(view, full if narrowed else None, patched, deleted, in_view)
        total = len(view) - sum(edit.hidden for edit in edits) + sum(len(edit.shown) for edit in edits) + len(created)
        stop = total if query.limit is None else min(total, query.offset + query.limit)
        page = _cut_page(view, edits, created, query.offset, stop, present, encoded=query.fields is None)
        return total, page

    def _kept_where(self, view: Collection, wanted: Callable[[Item], bool], filters: tuple[Any, ...]) -> Collection:
        """`view.where(wanted)`, kept per `filters` with the view's marks: a client paging through a
        filtered list pays for one scan, not one per page, and once time has moved on, for the
        items it touched (`Collection.where`'s update)."""
        marks = view.marks  # taken first: what changes during the scan is judged again next time
        with self._lock:
            kept = self._filtered.get(filters)
        if kept is not None and kept[0] == marks:
            filtered = kept[1]
        else:
            filtered = view.where(wanted, update=None if kept is None else (kept[1], kept[0]))
        with self._lock:
            self._filtered.pop(filters, None)  # put back last: the least recently used goes first
            if len(self._filtered) >= _FILTERED_VIEWS_KEPT:
                self._filtered.pop(next(iter(self._filtered)))
            self._filtered[filters] = (marks, filtered)
        return filtered

    def _edits_in(
        self,
        view: Collection,
        full: Collection | None,
        patched: Mapping[str, Item],
        deleted: set[str],
        in_view: Callable[[Item], bool],
    ) -> list[_Edit]:
        """Where patches and deletions change `view` (a part of `full`; None: the whole), in listing order.

        A patch stands for every generated item with its id: each copy (its duplicates) shows it
        where `in_view` accepts it, and an edited id the generated collection no longer holds is
        not listed."""
        edits: list[_Edit] = []
        for item_id in (*deleted, *patched):
            here = view.span(item_id)
            if here is None:
                continue
            index, count = here
            whole = here if full is None else full.span(item_id)
            if whole is None or whole[1] == 0:
                continue
            item = patched.get(item_id)
            shown = [item] * whole[1] if item is not None and in_view(item) else []
            if count or shown:
                edits.append(_Edit(index, count, shown, whole[0]))
        # An item the view leaves out is placed before the view's item at its index.
        edits.sort(key=lambda edit: (edit.index, edit.hidden > 0, edit.order))
        return edits


def _cut_page(
    view: Collection,
    edits: list[_Edit],
    created: list[Item],
    start: int,
    stop: int,
    present: Callable[[Item], Item],
    *,
    encoded: bool,
) -> list[Item] | EncodedItems:
    """Items start..stop-1 of `view` with `edits` applied and `created` after it, walking the runs
    of generated items between edits: the cost is the page plus the edits. Stored items on the
    page are given out as `present` makes them (copies, with the hrefs of the path asked)."""
    page: list[Item] | EncodedItems = EncodedItems() if encoded else []
    listed = 0  # items listed before the current piece

    def take_generated(first: int, end: int) -> None:
        nonlocal listed
        low, high = max(start, listed), min(stop, listed + end - first)
        if low < high:
            a, b = first + low - listed, first + high - listed
            page.extend(view.json_slice(a, b) if encoded else [view.at(i) for i in range(a, b)])
        listed += end - first

    def take_items(items: list[Item]) -> None:
        nonlocal listed
        low, high = max(start, listed), min(stop, listed + len(items))
        if low < high:
            chosen = [present(item) for item in items[low - listed : high - listed]]
            page.extend([json.dumps(item, separators=(",", ":")) for item in chosen] if encoded else chosen)
        listed += len(items)

    following = 0  # the view index after the last edit
    for edit in edits:
        if listed >= stop:
            return page
        take_generated(following, edit.index)
        take_items(edit.shown)
        following = edit.index + edit.hidden
    take_generated(following, len(view))
    take_items(created)
    return page
