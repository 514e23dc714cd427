"""InventoryStore lists over edits: a filtered list overlays the edits on one kept scan of the generated items.

Each list is checked against a plain reference: the whole collection with the edits applied,
filtered in Python. The clock is a plain attribute moved by hand: no test sleeps.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import requests

from dmemu.simulators import inventory as inventory_module
from dmemu.simulators.inventory import (
    DAY,
    DEFAULT_START,
    RESOURCE_PATH,
    SERVICE_PATH,
    Collection,
    Inventory,
    InventorySpec,
    iso_utc,
)
from dmemu.simulators.server import Simulators, _checked_filters
from dmemu.simulators.store import InventoryStore
from dmemu.simulators.tmf import ListQuery, homed, parse_list_query

Item = dict[str, Any]
VENDOR = ("updatedDaysAgo", "status")
OTHER_PATH = "/ses/tmf638/service"  # another path serving the same items, as SES's does
SERVICES = InventorySpec(
    services=120, carriers=40, resources=0, seed=3, duplicate_ids=6, empty_ids=4,
    churn_per_day=0.05, arrivals_per_day=0.03, removals_per_day=0.04,
)  # fmt: skip
RESOURCES = InventorySpec(services=0, carriers=0, resources=150, seed=4, duplicate_ids=5, empty_ids=3, churn_per_day=0.05)
STATUS_FILTERS: dict[str, Callable[[Item], bool]] = {
    "tmf638": lambda item: item.get("state") == "active",
    "tmf639": lambda item: item.get("resourceStatus") == "available",
}


class FakeClock:
    """Simulated epoch seconds, moved by the test (whole seconds: thresholds fall on a second)."""

    def __init__(self, now: float = DEFAULT_START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class EditedStore:
    """A store over a generated inventory, and what the test did to it, kept apart for the reference."""

    def __init__(self, spec: InventorySpec, clock: FakeClock, api: str) -> None:
        self.clock = clock
        self.api = api
        inventory = Inventory(spec, clock)
        self.source: Callable[[], Collection] = (lambda: inventory.services) if api == "tmf638" else (lambda: inventory.resources)
        path = SERVICE_PATH if api == "tmf638" else RESOURCE_PATH  # where the generated items' hrefs point
        self.store = InventoryStore(self.source, clock, api, path)
        self.patched: dict[str, Item] = {}
        self.deleted: set[str] = set()
        self.created: dict[str, Item] = {}

    def patch(self, item_id: str, changes: Item) -> None:
        item = self.store.patch(item_id, changes)
        (self.created if item_id in self.created else self.patched)[item_id] = item

    def delete(self, item_id: str) -> None:
        self.store.delete(item_id)
        if self.created.pop(item_id, None) is None:
            self.deleted.add(item_id)
            self.patched.pop(item_id, None)

    def create(self, body: Item) -> str:
        item = self.store.create(body)
        self.created[item["id"]] = item
        return item["id"]

    def query(self, params: list[tuple[str, str]]) -> tuple[ListQuery, dict[str, str]]:
        """The list query as the server hands it to the store: its filters typed (date-times as instants)."""
        query, vendor = parse_list_query(params, vendor=VENDOR)
        return _checked_filters(self.api, query), vendor

    def listed(self, params: list[tuple[str, str]], collection_url: str | None) -> tuple[int, list[Item]]:
        query, vendor = self.query(params)
        total, page = self.store.listing(query, vendor, STATUS_FILTERS[self.api], collection_url)
        return total, [json.loads(text) if isinstance(text, str) else text for text in page]

    def reference(self, params: list[tuple[str, str]], collection_url: str | None) -> tuple[int, list[Item]]:
        """The whole collection with every edit applied, filtered item by item."""
        query, vendor = self.query(params)
        items = []
        for item in self.source():
            if item["id"] in self.deleted:
                continue
            items.append(homed(self.patched.get(item["id"], item), collection_url))
        items += [homed(item, collection_url) for item in self.created.values()]
        threshold = None
        if "updatedDaysAgo" in vendor:
            threshold = iso_utc(self.clock.now - (int(vendor["updatedDaysAgo"]) + 1) * DAY)
        matches = [
            item
            for item in items
            if query.matches(item)
            and ("status" not in vendor or STATUS_FILTERS[self.api](item))
            and (threshold is None or item["lastUpdate"] >= threshold)
        ]
        stop = len(matches) if query.limit is None else query.offset + query.limit
        return len(matches), matches[query.offset : stop]

    def check(self, filters: list[list[tuple[str, str]]]) -> None:
        for terms in filters:
            for since in ([], [("updatedDaysAgo", "0")], [("updatedDaysAgo", "2")]):
                total, _ = self.reference([*terms, *since], None)
                pages = [(0, None), (0, 7), (5, 13), (max(0, total - 3), 10), (total + 4, 5)]
                for offset, limit in pages:
                    params = [*terms, *since, ("offset", str(offset))] + ([] if limit is None else [("limit", str(limit))])
                    for collection_url in (None, self.store.collection_url, OTHER_PATH):
                        assert self.listed(params, collection_url) == self.reference(params, collection_url), (params, collection_url)
                    assert self.listed([*params, ("fields", "id")], None) == self.reference(params, None), params


SERVICE_FILTERS = [
    [("status", "1")],
    [("relatedParty.role", "customer")],
    [("state", "active,inactive")],
    [("status", "1"), ("@type", "element")],
    [("relatedParty.role", "customer"), ("@type", "element")],
    [("state", "active,inactive"), ("@type", "CustomerFacingService")],
    [("lastUpdate.gte", iso_utc(DEFAULT_START - 120 * DAY))],  # date-times compare as instants
    [("startDate.lt", "2023-06-01T00:00:00+02:00"), ("@type", "element")],
]


def first(items: list[Item], accepted: Callable[[Item], bool]) -> str:
    return next(item["id"] for item in items if item["id"] and accepted(item))


def test_a_filtered_list_over_edits_and_time_lists_what_the_overlay_of_every_item_does():
    clock = FakeClock(DEFAULT_START + 100)
    edited = EditedStore(SERVICES, clock, "tmf638")
    items = list(edited.source())
    ids = [item["id"] for item in items]
    duplicated = [i for i in dict.fromkeys(ids) if i and ids.count(i) > 1]
    singles = [i for i in ids if i and ids.count(i) == 1]
    edited.check(SERVICE_FILTERS)  # unedited first: the scans are kept, then reused under the edits

    edited.patch(first(items, lambda item: item["state"] == "active" and item["@type"] == "element"), {"state": "inactive"})
    edited.patch(first(items, lambda item: item["state"] != "active" and item["id"] in singles), {"state": "active"})
    partner = first(items, lambda item: item["relatedParty"][0]["role"] == "customer" and item["id"] in singles[2:50])
    customer = edited.store.get(partner)["relatedParty"][0]  # a valid reference to reuse
    edited.patch(partner, {"relatedParty": [{**customer, "role": "partner"}]})
    edited.patch(duplicated[0], {"state": "active"})  # every copy shows it, whichever of them passed the filter
    edited.patch(duplicated[1], {"state": "designed"})
    edited.patch(singles[-1], {"state": "active", "description": "the last generated item, patched"})
    for item_id in (singles[0], singles[1], singles[50], duplicated[2]):
        edited.delete(item_id)
    edited.create({"id": singles[50], "state": "active", "serviceSpecification": {"id": "s"}})  # a deleted id, reused
    edited.create({"state": "active", "serviceSpecification": {"id": "s"}, "@type": "element"})
    made = edited.create({"state": "designed", "serviceSpecification": {"id": "s"}, "relatedParty": [customer]})
    edited.patch(made, {"state": "inactive"})
    edited.check(SERVICE_FILTERS)

    later = DEFAULT_START + 2 * DAY + 3_700
    removed = [i for i in set(singles) - set(item["id"] for item in Inventory(SERVICES, lambda: later).services) if i not in edited.deleted]
    edited.patch(removed[0], {"state": "active"})  # time removes these edited items: neither is listed then
    edited.delete(removed[1])
    edited.check(SERVICE_FILTERS[:1])
    clock.now = later  # churn, arrivals and removals, some of them over edited items
    edited.patch(first(list(edited.source()), lambda item: item["state"] == "active" and item["id"] not in edited.deleted), {"state": "reserved"})
    edited.patch(partner, {"relatedParty": [customer]})  # back in
    edited.check(SERVICE_FILTERS)


def test_a_resource_patched_into_another_type_is_filtered_by_its_new_type():
    edited = EditedStore(RESOURCES, FakeClock(DEFAULT_START + 3 * DAY), "tmf639")
    items = list(edited.source())
    modem = first(items, lambda item: item["@type"] == "Modem")
    edited.patch(modem, {"@type": "Amplifier", "resourceStatus": "available"})
    edited.patch(first(items, lambda item: item["resourceStatus"] == "available"), {"resourceStatus": "alarm"})
    edited.delete(first(items, lambda item: item["@type"] == "Amplifier"))
    edited.create({"name": "made", "@type": "Amplifier", "resourceStatus": "available"})
    edited.check([[("status", "1")], [("status", "1"), ("@type", "Amplifier")], [("relatedParty.role", "user"), ("@type", "Modem")]])


def test_paging_a_filtered_large_edited_store_costs_the_page_after_one_scan(monkeypatch):
    built = []
    build, build_json = inventory_module._Kind.build, inventory_module._Kind.build_json
    monkeypatch.setattr(inventory_module._Kind, "build", lambda kind, *args: built.append(1) or build(kind, *args))
    monkeypatch.setattr(inventory_module._Kind, "build_json", lambda kind, states, *args: built.extend([1] * len(states)) or build_json(kind, states, *args))
    scans = []
    where = Collection.where
    monkeypatch.setattr(Collection, "where", lambda view, predicate, **options: scans.append(1) or where(view, predicate, **options))
    edited = EditedStore(InventorySpec(services=200_000, carriers=0, resources=0), FakeClock(), "tmf638")
    page = [("status", "1"), ("offset", "150000"), ("limit", "100")]
    total, before = edited.listed([*page[:2], ("limit", "103")], None)  # the scan, then pages of it
    assert len(built) > 200_000 and len(scans) == 1
    ids = [item["id"] for item in before]
    numbers = [int(item_id[4:]) for item_id in ids]
    gap = next(i for i in range(30, 100) if numbers[i + 1] > numbers[i] + 1)  # an unlisted (not active) item follows
    leaving, deleted, entering = ids[10], ids[20], f"SVC-{numbers[gap] + 1:07d}"
    edited.patch(leaving, {"state": "inactive"})
    edited.patch(entering, {"state": "active", "name": "entered"})
    edited.delete(deleted)
    edited.create({"state": "active", "serviceSpecification": {"id": "s"}})

    built.clear()
    first_total, first_page = edited.listed(page, None)
    second_total, second_page = edited.listed([*page[:1], ("offset", "150100"), ("limit", "100")], None)
    assert len(scans) == 1  # the scan of the generated items outlives the edits
    assert len(built) <= 2 * 100 + 10  # two pages and the edits, not 200,000 items
    expected = ids[:10] + ids[11:20] + ids[21 : gap + 1] + [entering] + ids[gap + 1 :]
    assert first_total == second_total == total and [item["id"] for item in first_page] == expected[:100]
    assert next(item for item in first_page if item["id"] == entering)["name"] == "entered"
    assert len(second_page) == 100 and second_page[0]["id"] == expected[100]
    assert SERVICE_PATH in first_page[0]["href"]


def test_a_kept_scan_catches_up_with_time_at_the_cost_of_what_time_touched(monkeypatch):
    """An hour of churn, arrivals and removals over 60,000 services: the next filtered page judges
    the items those events touched, not the whole collection again; a clock that goes back (the
    inventory replays) makes it one whole scan, and both list what a fresh filter does."""
    spec = InventorySpec(services=60_000, carriers=0, resources=0, churn_per_day=0.02, arrivals_per_day=0.002, removals_per_day=0.002)
    clock = FakeClock(DEFAULT_START + DAY)
    edited = EditedStore(spec, clock, "tmf638")
    built = []
    build = inventory_module._Kind.build
    monkeypatch.setattr(inventory_module._Kind, "build", lambda kind, *args: built.append(1) or build(kind, *args))
    page = [("status", "1"), ("offset", "40000"), ("limit", "50")]
    edited.listed(page, None)  # the one scan
    assert len(built) > 59_000
    edited.patch("SVC-0000007", {"state": "inactive"})
    for step in (3600, 5 * 3600):
        clock.now += step  # about 60,000 x 2.4% / 24 = 60 events an hour
        built.clear()
        listed = edited.listed(page, None)
        assert 20 < len(built) < 2_000, step  # the touched items (the page itself is written as text)
        assert listed == edited.reference(page, None)
    clock.now -= 2 * DAY  # back before the scan: replayed from the start
    built.clear()
    listed = edited.listed(page, None)
    assert len(built) > 59_000 and listed == edited.reference(page, None)


# -- what the filters mean, from the TMF spec ---------------------------------------------------
# The checks above compare the kept listing with a plain pass that uses the simulator's own
# parser, matcher and link rewriting. These write the meaning out instead: the expected items are
# picked by the test from the raw generated items, by what TMF630 says a filter asks for.


def values_at(item: Item, path: str) -> list[Any]:
    """Every value a dotted attribute path reaches; a list on the way holds many (any may match)."""
    values: list[Any] = [item]
    for name in path.split("."):
        members = [member for value in values for member in (value if isinstance(value, list) else [value])]
        values = [member[name] for member in members if isinstance(member, dict) and name in member]
    return [member for value in values for member in (value if isinstance(value, list) else [value])]


def instant(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


COMPARISONS: dict[str, Callable[[dt.datetime, dt.datetime], bool]] = {
    "gt": lambda a, b: a > b, "gte": lambda a, b: a >= b, "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b,
}  # fmt: skip


def meant(terms: list[tuple[str, str]]) -> Callable[[Item], bool]:
    """TMF630 filtering: every term must hold (AND); ``attr=a,b`` is attr a OR b; ``attr.gte=t``
    compares date-times as instants, whatever offset each is written in; a dotted path looks into
    nested objects and lists, any of which may match."""

    def accepted(item: Item) -> bool:
        for name, wanted in terms:
            path, _, operator = name.rpartition(".")
            if operator in COMPARISONS:
                found = [instant(value) for value in values_at(item, path) if isinstance(value, str)]
                if not any(COMPARISONS[operator](value, instant(wanted)) for value in found):
                    return False
            else:
                shown = [value if isinstance(value, str) else json.dumps(value) for value in values_at(item, name)]
                if not set(shown) & set(wanted.split(",")):
                    return False
        return True

    return accepted


def in_another_offset(text: str, hours: int) -> str:
    """The same instant written in another UTC offset: its text compares differently."""
    shifted = instant(text).astimezone(dt.timezone(dt.timedelta(hours=hours)))
    return shifted.isoformat()


def test_filters_mean_what_tmf_says():
    edited = EditedStore(SERVICES, FakeClock(DEFAULT_START + 100), "tmf638")
    items = list(edited.source())
    carrier = first(items, lambda item: item["@type"] == "element")
    start = next(item["startDate"] for item in items if item["id"] == carrier)
    later = in_another_offset(start, 2)  # the carrier's own start, written two hours on
    assert later > start and instant(later) == instant(start)
    customer = next(item for item in items if item["relatedParty"])["relatedParty"][0]["name"]
    filters = [
        [("state", "active")],
        [("@type", "element")],
        [("hasStarted", "true")],
        [("relatedParty.role", "customer"), ("state", "inactive")],
        [("relatedParty.name", customer)],
        [("serviceSpecification.version", "1.0")],
        [("supportingService.@referredType", "Service"), ("state", "active")],
        [("serviceCharacteristic.name", "ServiceLevel")],  # not the first of its list
        [("state", "active,inactive")],
        [("state", "active,inactive"), ("@type", "CustomerFacingService")],
        [("startDate.gte", later)],
        [("startDate.gt", later)],
        [("startDate.lt", later), ("@type", "element")],
        [("startDate.lte", later), ("@type", "element")],
        [("startDate.gte", "2023-01-01T00:00:00-05:00"), ("startDate.lt", "2023-07-01T00:00:00+09:00")],
    ]
    for terms in filters:
        expected = [item["id"] for item in items if meant(terms)(item)]
        total, listed = edited.listed(terms, None)
        assert (total, [item["id"] for item in listed]) == (len(expected), expected), terms
        assert 0 < total < len(items), terms  # each filter tells items apart
    # Instants, not text: the carrier starts exactly at `later`, whose text sorts after its own.
    at_start = {
        operator: carrier in [item["id"] for item in edited.listed([(f"startDate.{operator}", later), ("@type", "element")], None)[1]]
        for operator in COMPARISONS
    }
    assert at_start == {"gt": False, "gte": True, "lt": False, "lte": True}


def test_field_selection_over_http_gives_the_attributes_asked_with_id_and_href_at_the_path_asked():
    """fields= is the server's (the store lists whole items): checked over loopback."""
    with Simulators(SERVICES, now=FakeClock(DEFAULT_START + 100)) as sim, requests.Session() as http:
        http.trust_env = False
        items = list(Inventory(SERVICES, FakeClock(DEFAULT_START + 100)).services)  # the raw generated items
        active = [item for item in items if item["state"] == "active"]
        for ses in (False, True):
            answer = http.get(sim.url("tmf638", ses=ses), params={"state": "active", "fields": "name,state"})
            assert answer.status_code == 200
            collection = sim.url("tmf638", ses=ses)
            assert answer.json() == [
                {"id": item["id"], "href": f"{collection}/{item['id']}", "name": item["name"], "state": "active"} for item in active
            ]


def test_resource_filters_look_into_a_single_object_and_lists():
    edited = EditedStore(RESOURCES, FakeClock(DEFAULT_START + 3 * DAY), "tmf639")
    items = list(edited.source())
    contained = first(items, lambda item: bool(item["resourceRelationship"]))
    target = next(item for item in items if item["id"] == contained)["resourceRelationship"][0]["resource"]["id"]
    for terms in (
        [("resourceStatus", "available")],
        [("place.role", "installationSite")],  # place is one object in v4
        [("resourceRelationship.resource.id", target)],
        [("resourceCharacteristic.name", "LaunchYear")],  # not the first of its list
        [("@type", "Modem,Amplifier"), ("resourceStatus", "available,reserved")],
        [("lastUpdate.gte", in_another_offset(iso_utc(DEFAULT_START - 30 * DAY), -5))],
    ):
        expected = [item["id"] for item in items if meant(terms)(item)]
        total, listed = edited.listed(terms, None)
        assert (total, [item["id"] for item in listed]) == (len(expected), expected), terms
        assert 0 < total < len(items), terms
