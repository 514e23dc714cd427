"""The generated inventory: deterministic, paged without repeats or gaps, found by id, changing with simulated time.

The clock is a plain attribute moved by hand: no test sleeps.
"""

from __future__ import annotations

import ast
import collections
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import attrs
import pytest
from tmf_schemas import TMF638, TMF639, TMF639_HOTFIX, assert_valid

from dmemu.simulators import inventory as inventory_module
from dmemu.simulators.inventory import (
    DAY,
    DEFAULT_START,
    RESOURCE_TYPES,
    Collection,
    Inventory,
    InventorySpec,
    _LiveSet,
)

ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
REALISTIC = InventorySpec(
    services=90, carriers=25, resources=140, seed=5, duplicate_ids=4, empty_ids=3,
    churn_per_day=0.05, arrivals_per_day=0.02, removals_per_day=0.02,
)  # fmt: skip


class FakeClock:
    """Simulated epoch seconds, moved by the test."""

    def __init__(self, now: float = DEFAULT_START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def paged(collection: Collection, page: int = 40) -> list[dict[str, Any]]:
    """What a client paging with offset/limit sees."""
    items: list[dict[str, Any]] = []
    for offset in range(0, len(collection), page):
        items += [collection.at(i) for i in range(offset, min(offset + page, len(collection)))]
    return items


def both(inventory: Inventory) -> list[Collection]:
    return [inventory.services, inventory.resources]


# Determinism ----------------------------------------------------------------------------------


def test_same_spec_and_time_give_identical_items() -> None:
    clock = FakeClock(DEFAULT_START + 3.5 * DAY)
    first, second = Inventory(REALISTIC, clock), Inventory(REALISTIC, clock)
    for one, other in zip(both(first), both(second)):
        assert json.dumps(list(one)) == json.dumps(list(other))


def test_another_seed_gives_another_inventory() -> None:
    clock = FakeClock()
    one = Inventory(InventorySpec(services=20, seed=1), clock).services.at(0)
    other = Inventory(InventorySpec(services=20, seed=2), clock).services.at(0)
    assert one["id"] == other["id"] and one != other


def test_items_do_not_depend_on_the_path_time_took() -> None:
    """Jumping to day 4 and creeping there an hour at a time (or going back) give the same items."""
    target = DEFAULT_START + 4 * DAY + 5000
    jumped = Inventory(REALISTIC, FakeClock(target))
    creeping_clock = FakeClock()
    crept = Inventory(REALISTIC, creeping_clock)
    while creeping_clock.now < target:
        crept.services, crept.resources  # noqa: B018 - reading applies the batches due so far
        creeping_clock.advance(min(3600, target - creeping_clock.now))
    rewound_clock = FakeClock(target + 6 * DAY)
    rewound = Inventory(REALISTIC, rewound_clock)
    rewound.services, rewound.resources  # noqa: B018
    rewound_clock.now = target  # the clock goes back: the inventory replays from the start
    expected = [json.dumps(list(c)) for c in both(jumped)]
    assert [json.dumps(list(c)) for c in both(crept)] == expected
    assert [json.dumps(list(c)) for c in both(rewound)] == expected


def test_items_are_the_same_in_another_process() -> None:
    """No dependence on str hashing (PYTHONHASHSEED) or other per-process state."""
    script = (
        "import json, hashlib\n"
        "from dmemu.simulators.inventory import Inventory, InventorySpec, DEFAULT_START\n"
        f"spec = InventorySpec(**{attrs.asdict(REALISTIC)!r})\n"
        "inventory = Inventory(spec, lambda: DEFAULT_START + 2.5 * 86400)\n"
        "text = json.dumps([list(inventory.services), list(inventory.resources)])\n"
        "print(hashlib.sha256(text.encode()).hexdigest())\n"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True, env={**os.environ, "PYTHONHASHSEED": seed}
        ).stdout.strip()
        for seed in ("1", "2")
    }
    here = Inventory(REALISTIC, FakeClock(DEFAULT_START + 2.5 * DAY))
    digests.add(hashlib.sha256(json.dumps([list(here.services), list(here.resources)]).encode()).hexdigest())
    assert len(digests) == 1


def test_json_text_of_items_is_what_json_dumps_writes_for_them() -> None:
    """`json_slice` writes items without building dicts; it must match json.dumps of `at` byte for byte."""
    clock = FakeClock(DEFAULT_START + 4.5 * DAY)
    spec = attrs.evolve(REALISTIC, churn_per_day=0.3)  # changed, duplicated, id-less, arrived and removed items
    inventory = Inventory(spec, clock, href_base='http://h\u00e9"st:1/a\\b/')  # an href that JSON has to escape
    views = [*both(inventory), inventory.services.of_type("element"), inventory.resources.updated_since(clock.now - 2 * DAY)]
    for collection in views:
        size = len(collection)
        expected = [json.dumps(collection.at(i), separators=(",", ":")) for i in range(size)]
        assert collection.json_slice(0, size) == expected
        for start, stop in ((-5, 3), (size - 2, size + 10), (37, 81), (85, 100), (10, 5)):  # 85..100 crosses kinds
            assert collection.json_slice(start, stop) == expected[max(0, start) : max(0, min(stop, size))]


# Sizes, order, paging -------------------------------------------------------------------------


def test_sizes_count_both_kinds_and_the_extras_per_collection() -> None:
    spec = InventorySpec(services=30, carriers=7, resources=50, duplicate_ids=2, empty_ids=3)
    inventory = Inventory(spec, FakeClock())
    assert len(inventory.services) == 30 + 7 + 2 + 3
    assert len(inventory.resources) == 50 + 2 + 3
    assert len(Inventory(InventorySpec(services=0, carriers=0, resources=0, duplicate_ids=2), FakeClock()).services) == 0


@pytest.mark.parametrize("size", [1, 3, 12, 101])
def test_handfuls_work_and_every_resource_type_appears_from_twelve_on(size: int) -> None:
    inventory = Inventory(InventorySpec(services=size, carriers=size, resources=size), FakeClock())
    services, resources = list(inventory.services), list(inventory.resources)
    assert len(services) == 2 * size and len(resources) == size
    first_numbers = [inventory.resources.get(f"RES-{n:07d}")["@type"] for n in range(1, min(size, 12) + 1)]
    assert first_numbers == [kind.name for kind in RESOURCE_TYPES][: min(size, 12)]
    assert all(kind.name in {item["@type"] for item in resources} for kind in RESOURCE_TYPES) == (size >= 12)


def test_paging_by_40_visits_every_item_once_in_a_unique_stable_order() -> None:
    clock = FakeClock(DEFAULT_START + 2 * DAY + 7)
    inventory = Inventory(REALISTIC, clock)
    for collection in both(inventory):
        pages = paged(collection)
        assert pages == list(collection) and len(pages) == len(collection)
        identities = [(item["id"], item["description"]) for item in pages]  # extras differ from their anchor
        assert len(set(identities)) == len(identities)
        assert paged(collection, page=7) == pages


def test_order_is_kind_then_number_with_extras_right_after_their_anchor() -> None:
    inventory = Inventory(REALISTIC, FakeClock())
    kind_rank = {"CustomerFacingService": 0, "element": 1} | {kind.name: i for i, kind in enumerate(RESOURCE_TYPES)}
    for collection in both(inventory):
        items = list(collection)
        for previous, item in zip(items, items[1:]):
            if item["id"] == "" or item["id"] == previous["id"]:
                assert "duplicate record" in item["description"] or "record without id" in item["description"]
                assert item["name"] == previous["name"]  # right after the item it copies (or after its other copies)
            elif previous["id"]:
                assert (kind_rank[previous["@type"]], previous["id"]) < (kind_rank[item["@type"]], item["id"])


def test_at_outside_the_collection_raises() -> None:
    services = Inventory(InventorySpec(services=3, carriers=0), FakeClock()).services
    with pytest.raises(IndexError):
        services.at(3)
    with pytest.raises(IndexError):
        services.at(-1)


# Lookup by id ---------------------------------------------------------------------------------


def test_get_finds_every_item_by_id_and_the_first_of_duplicates() -> None:
    inventory = Inventory(REALISTIC, FakeClock(DEFAULT_START + 2 * DAY))
    for collection in both(inventory):
        first_seen: dict[str, dict[str, Any]] = {}
        for item in collection:
            first_seen.setdefault(item["id"], item)
        counts = collections.Counter(item["id"] for item in collection)
        assert sum(n - 1 for item_id, n in counts.items() if item_id) == REALISTIC.duplicate_ids
        assert counts[""] == REALISTIC.empty_ids
        for item_id, item in first_seen.items():
            assert collection.get(item_id) == item


@pytest.mark.parametrize("item_id", ["SVC-9999999", "CAR-0000000", "SVC-1", "SVC-00000001", "svc-0000001", "RES-0000001", "", "x"])
def test_get_of_an_unknown_id_is_none(item_id: str) -> None:
    assert Inventory(InventorySpec(services=5, carriers=5, resources=5), FakeClock()).services.get(item_id) is None


def test_get_finds_a_duplicate_once_its_original_is_gone() -> None:
    spec = InventorySpec(services=40, carriers=0, resources=0, duplicate_ids=6, removals_per_day=0.3)
    clock = FakeClock(DEFAULT_START + 10 * DAY)
    services = Inventory(spec, clock).services
    originals = {item["id"] for item in services if "duplicate record" not in item["description"]}
    orphans: dict[str, dict[str, Any]] = {}
    for item in services:
        if item["id"] not in originals:
            orphans.setdefault(item["id"], item)
    assert orphans, "ten days at 30 % removals leave some duplicate without its original"
    for item_id, first_copy in orphans.items():
        assert services.get(item_id) == first_copy


SPANNED = InventorySpec(
    services=60, carriers=15, resources=90, seed=5, duplicate_ids=8, empty_ids=3,
    churn_per_day=0.05, arrivals_per_day=0.02, removals_per_day=0.1,
)  # fmt: skip


@pytest.mark.parametrize(("collection", "type_name"), [("services", "element"), ("resources", "Modem")])
def test_span_locates_every_id_with_its_duplicates_as_a_scan_would(collection: str, type_name: str) -> None:
    clock = FakeClock(DEFAULT_START + 6 * DAY + 999)
    whole = getattr(Inventory(SPANNED, clock), collection)
    since = clock.now - 2 * DAY
    everything = list(whole)

    def recent(item: dict[str, Any]) -> bool:
        return item["lastUpdate"] >= iso(since)

    def typed(item: dict[str, Any]) -> bool:
        return item["@type"] == type_name

    views = [
        (whole, lambda item: True, False),
        (whole.of_type(type_name), typed, True),
        (whole.updated_since(since), recent, False),
        (whole.updated_since(DEFAULT_START - 800 * DAY), lambda item: True, False),  # a fixed list of every key
        (whole.updated_since(since).of_type(type_name), lambda item: recent(item) and typed(item), True),
    ]
    ids = {item["id"] for item in everything if item["id"]}
    assert any(sum(item["id"] == i for item in everything) > 1 for i in ids), "some id is duplicated"
    for view, member, by_type in views:
        members = [position for position, item in enumerate(everything) if member(item)]
        assert [item["id"] for item in view] == [everything[p]["id"] for p in members]
        for item_id in ids:
            first = next(p for p, item in enumerate(everything) if item["id"] == item_id)
            if by_type and not typed(everything[first]):
                assert view.span(item_id) is None  # another kind: not in this view at all
                continue
            listed = [index for index, p in enumerate(members) if everything[p]["id"] == item_id]
            if listed:
                assert view.span(item_id) == (listed[0], len(listed))
                assert listed == list(range(listed[0], listed[0] + len(listed)))  # consecutive
            else:  # left out of this view: where it would be listed
                assert view.span(item_id) == (sum(p < first for p in members), 0)
    assert whole.span("") is None and whole.span("SVC-9999999") is None and whole.span("nonsense") is None


def test_with_item_href_moves_only_the_items_own_hrefs() -> None:
    clock = FakeClock(DEFAULT_START + 3 * DAY)
    inventory = Inventory(SPANNED, clock, href_base="http://sim:1")
    elsewhere = "http://sim:1/gstm/dataminer/tmf/api/v1/tmf638/service"
    moved = inventory.services.with_item_href(elsewhere + "/")
    plain = list(inventory.services)
    assert [item["href"] for item in moved] == [f"{elsewhere}/{item['id']}" for item in plain]
    assert [{**item, "href": original["href"]} for item, original in zip(moved, plain)] == plain
    assert all(ref["href"].startswith("http://sim:1/tmf-api/") for item in moved for ref in item["supportingResource"])
    assert moved.json_slice(0, 30) == [json.dumps(moved.at(i), separators=(",", ":")) for i in range(30)]
    carrier = moved.of_type("element").at(0)
    assert carrier["href"] == f"{elsewhere}/{carrier['id']}" == moved.get(carrier["id"])["href"]
    recent = moved.updated_since(clock.now - DAY)
    assert len(recent) and all(item["href"].startswith(elsewhere + "/") for item in recent)
    assert inventory.services.at(0)["href"].startswith("http://sim:1/tmf-api/")  # the original view is unchanged


# Types ----------------------------------------------------------------------------------------


def test_of_type_element_gives_exactly_the_carriers() -> None:
    inventory = Inventory(REALISTIC, FakeClock(DEFAULT_START + 3 * DAY))
    services = inventory.services
    carriers = services.of_type("element")
    assert list(carriers) == [item for item in services if item["@type"] == "element"]
    assert len(carriers) > 0 and paged(carriers) == list(carriers)
    customer_facing = services.of_type("CustomerFacingService")
    assert len(carriers) + len(customer_facing) == len(services)
    assert len(services.of_type("Modem")) == 0


def test_of_type_splits_the_resources_by_type() -> None:
    resources = Inventory(REALISTIC, FakeClock(DEFAULT_START + 3 * DAY)).resources
    views = {kind.name: resources.of_type(kind.name) for kind in RESOURCE_TYPES}
    assert sum(len(view) for view in views.values()) == len(resources)
    for name, view in views.items():
        assert {item["@type"] for item in view} == {name}
    modem = views["Modem"].at(0)
    assert resources.of_type("Modem").get(modem["id"]) == modem


# Time: churn, arrivals, removals --------------------------------------------------------------


def test_churn_changes_about_that_fraction_a_day_and_marks_it() -> None:
    spec = InventorySpec(services=2000, carriers=0, resources=0, churn_per_day=0.05)
    clock = FakeClock()
    inventory = Inventory(spec, clock)
    before = {item["id"]: item for item in inventory.services}
    clock.advance(DAY)
    services = inventory.services
    changed = services.updated_since(clock.now - DAY)
    assert 70 <= len(changed) <= 130  # 5 % of 2000, give or take
    window = (iso(clock.now - DAY), iso(clock.now))
    for item in changed:
        assert window[0] <= item["lastUpdate"] <= window[1]
        old = before[item["id"]]
        assert item["description"] != old["description"] and "change 1:" in item["description"]
        assert {k: v for k, v in item.items() if k not in ("description", "state", "hasStarted", "isServiceEnabled", "lastUpdate")} == {
            k: v for k, v in old.items() if k not in ("description", "state", "hasStarted", "isServiceEnabled", "lastUpdate")
        }
    changed_ids = {item["id"] for item in changed}
    assert all(item == before[item["id"]] for item in services if item["id"] not in changed_ids)


def test_updated_since_equals_filtering_every_item() -> None:
    clock = FakeClock(DEFAULT_START + 6 * DAY + 4321)
    inventory = Inventory(REALISTIC, clock)
    for collection in both(inventory):
        for epoch in (DEFAULT_START - 400 * DAY, DEFAULT_START - 30 * DAY, DEFAULT_START, clock.now - DAY, clock.now - 3600, clock.now + 1):
            expected = [item for item in collection if item["lastUpdate"] >= iso(epoch)]
            recent = collection.updated_since(epoch)
            assert list(recent) == expected
            assert paged(recent) == expected
            if expected:
                assert recent.get(expected[-1]["id"]) == next(i for i in expected if i["id"] == expected[-1]["id"])
            assert list(recent.of_type("element")) == [item for item in expected if item["@type"] == "element"]
            later = recent.updated_since(clock.now - DAY)
            assert list(later) == [item for item in expected if item["lastUpdate"] >= iso(clock.now - DAY)]


def test_initial_last_updates_spread_over_the_year_before_start() -> None:
    services = Inventory(InventorySpec(services=1000, carriers=0), FakeClock()).services
    stamps = sorted(item["lastUpdate"] for item in services)
    assert all(ISO_UTC.fullmatch(stamp) for stamp in stamps)
    assert iso(DEFAULT_START - 365 * DAY) <= stamps[0] < iso(DEFAULT_START - 300 * DAY)
    assert iso(DEFAULT_START - 60 * DAY) < stamps[-1] < iso(DEFAULT_START)
    assert len(services.updated_since(DEFAULT_START - DAY)) in range(0, 8)  # about 1000 / 365


def test_nothing_is_stamped_after_now_within_a_day() -> None:
    clock = FakeClock()
    inventory = Inventory(REALISTIC, clock)
    seen_changes = 0
    for _ in range(24):
        clock.advance(3600)
        for collection in both(inventory):
            stamps = [item["lastUpdate"] for item in collection]
            assert max(stamps) <= iso(clock.now)
            seen_changes = max(seen_changes, len(collection.updated_since(DEFAULT_START)))
    assert seen_changes > 0


def test_arrivals_and_removals_change_the_listing_and_lookups() -> None:
    spec = InventorySpec(services=500, carriers=0, resources=0, arrivals_per_day=0.04, removals_per_day=0.04)
    clock = FakeClock()
    inventory = Inventory(spec, clock)
    before = {item["id"] for item in inventory.services}
    clock.advance(3 * DAY)
    services = inventory.services
    after = {item["id"] for item in services}
    arrived, removed = after - before, before - after
    assert 30 <= len(arrived) <= 90 and 30 <= len(removed) <= 90
    assert len(services) == 500 + len(arrived) - len(removed)
    assert all(services.get(item_id) is None for item_id in removed)
    newest = max(arrived)
    assert services.get(newest)["id"] == newest and services.at(len(services) - 1)["id"] == newest  # new items come last
    assert arrived <= {item["id"] for item in services.updated_since(DEFAULT_START)}
    assert min(int(item_id[4:]) for item_id in arrived) == 501


def test_readers_on_other_threads_see_consistent_items_while_time_moves() -> None:
    clock = FakeClock()
    inventory = Inventory(REALISTIC, clock)
    failures: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        try:
            while not done.is_set():
                for collection in both(inventory):
                    for index in range(0, len(collection), 17):
                        try:
                            item = collection.at(index)
                        except IndexError:  # removed between len() and at(): as between two pages
                            continue
                        assert ISO_UTC.fullmatch(item["lastUpdate"]) and item["lastUpdate"] <= iso(clock.now)
                        collection.get(item["id"])  # may be gone by now; must not fail
        except BaseException as failure:  # handed to the main thread
            failures.append(failure)

    readers = [threading.Thread(target=read) for _ in range(4)]
    for reader in readers:
        reader.start()
    for _ in range(72):
        clock.advance(3600)
        inventory.services, inventory.resources  # noqa: B018 - applies the hour's events under the readers
    done.set()
    for reader in readers:
        reader.join()
    assert not failures, failures[0]


# Scale ----------------------------------------------------------------------------------------


def test_a_million_items_cost_next_to_nothing_until_asked_for() -> None:
    spec = InventorySpec(services=1_000_000, carriers=1_000_000, resources=1_000_000, duplicate_ids=10, empty_ids=10)
    tracemalloc.start()
    try:
        inventory = Inventory(spec, FakeClock())
        services, resources = inventory.services, inventory.resources
        last_service = services.at(999_999)
        found = services.get("SVC-1000000"), services.get("CAR-1000000"), resources.get(resources.at(999_999)["id"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(services) == 2_000_020 and len(resources) == 1_000_020
    assert last_service["id"].startswith("SVC-") and all(found)
    assert found[0]["id"] == "SVC-1000000" and found[1]["@type"] == "element"
    assert peak < 2_000_000, peak  # nothing per item is held: memory, not time, shows it


def test_a_million_changing_items_hold_only_small_arrays() -> None:
    # Every per-slot array exists as soon as each switch has fired once; small rates keep tracemalloc's overhead down.
    spec = InventorySpec(services=1_000_000, carriers=0, resources=0, churn_per_day=0.01, arrivals_per_day=0.002, removals_per_day=0.002)
    clock = FakeClock()
    inventory = Inventory(spec, clock)
    clock.advance(DAY)
    tracemalloc.start()
    try:
        services = inventory.services
        recent = services.updated_since(clock.now - DAY)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert 11_000 <= len(recent) <= 13_000  # 1 % changed plus 0.2 % arrived
    assert services.at(999_999)["lastUpdate"] <= iso(clock.now)
    assert peak < 40_000_000, peak


@pytest.mark.parametrize("size", [0, 1, 2, 7, 8, 9, 100, 1000])
def test_live_set_ranks_and_selects_like_a_plain_list(size: int) -> None:
    live_set, flags = _LiveSet(size), [1] * size
    rng = random.Random(size)
    for _ in range(size // 2):
        slot = rng.randrange(size)
        live_set.remove(slot)
        flags[slot] = 0
        if rng.random() < 0.3:
            live_set.append()
            flags.append(1)
    live = [slot for slot, flag in enumerate(flags) if flag]
    assert live_set.count == len(live)
    assert [live_set.select(rank) for rank in range(len(live))] == live
    assert [live_set.live_before(n) for n in range(len(flags) + 1)] == [sum(flags[:n]) for n in range(len(flags) + 1)]


# Conformance ----------------------------------------------------------------------------------



def test_every_item_validates_against_the_v4_schemas() -> None:
    clock = FakeClock(DEFAULT_START + 5 * DAY)
    inventory = Inventory(REALISTIC, clock, href_base="http://127.0.0.1:8080/")
    for service in inventory.services:
        assert_valid(TMF638, "Service", service)
        assert ISO_UTC.fullmatch(service["lastUpdate"])
    for resource in inventory.resources:
        assert_valid(TMF639, "Resource", resource)
        assert_valid(TMF639_HOTFIX, "Resource", resource)
        assert ISO_UTC.fullmatch(resource["lastUpdate"])


def test_content_looks_like_a_satellite_operator() -> None:
    inventory = Inventory(InventorySpec(services=50, carriers=20, resources=120), FakeClock(), href_base="http://sim:1")
    service = inventory.services.at(0)
    assert service["href"] == f"http://sim:1/tmf-api/serviceInventory/v4/service/{service['id']}"
    assert service["category"] == "CFS" and service["relatedParty"][0]["role"] == "customer"
    assert {ref["@referredType"] for ref in service["supportingResource"]} <= {"Modem", "Circuit", "BandwidthSegment"}
    carrier = inventory.services.of_type("element").at(0)
    characteristics = {c["name"]: c["value"] for c in carrier["serviceCharacteristic"]}
    assert {"ElementType", "UplinkAlias", "DownlinkAlias"} <= set(characteristics)
    assert characteristics["UplinkCenterFrequencyMHz"] > characteristics["DownlinkCenterFrequencyMHz"] > 3000
    assert [ref["@referredType"] for ref in carrier["supportingResource"]] == ["Satellite", "Transponder"]
    assert all(ref["id"].startswith("SVC-") and inventory.services.get(ref["id"]) for ref in carrier["supportingService"])
    resources = inventory.resources
    for resource in resources:
        assert isinstance(resource["place"], dict)
        for relationship in resource["resourceRelationship"]:
            target = resources.get(relationship["resource"]["id"])
            assert target is not None and target["name"] == relationship["resource"]["name"]
            assert target["@type"] == relationship["resource"]["@referredType"]


GENERATOR_MODULES = ("clock", "spec", "words", "world", "numbering", "items", "timeline", "kinds", "views", "inventory")  # each imports only rooms before it


def test_the_simulator_side_imports_nothing_from_the_client_side() -> None:
    # The generator's rooms import earlier rooms (so never in a circle), the standard library and attrs.
    folder = Path(inventory_module.__file__).parent
    for index, name in enumerate(GENERATOR_MODULES):
        tree = ast.parse((folder / f"{name}.py").read_text())
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and not node.level}
        siblings = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level}
        assert not {name for name in imported if name.startswith("dmemu")}
        assert {name.split(".")[0] for name in imported} - set(sys.stdlib_module_names) <= {"attrs"}
        assert siblings <= set(GENERATOR_MODULES[:index]), name


def test_the_log_of_touched_slots_stays_bounded_and_says_when_it_no_longer_reaches_back() -> None:
    clock = FakeClock(DEFAULT_START + DAY)
    inventory = Inventory(InventorySpec(services=30, carriers=0, resources=0, churn_per_day=1.0), clock)
    inventory.services  # noqa: B018 - reading applies the batches due so far
    timeline = inventory._service_kinds[0].timeline
    old_mark = timeline.touches
    clock.advance(300 * DAY)  # about 9,000 changes
    inventory.services  # noqa: B018
    assert timeline.touches - old_mark > 8_000 and len(timeline._touched) <= 1024
    assert timeline.touched_since(old_mark) is None  # a view marked then must scan again
    recent_mark = timeline.touches
    before = {item["id"]: item for item in inventory.services}
    clock.advance(DAY)
    after = {item["id"]: item for item in inventory.services}
    touched = timeline.touched_since(recent_mark)
    assert touched and {f"SVC-{slot + 1:07d}" for slot in touched} == {i for i in after if after[i] != before[i]}
