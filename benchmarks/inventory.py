"""SES Inventory Management benchmark: the cache buildup and one periodic update, against the floor
of fetching the same pages with a plain loop of ``requests`` and ``json``.

The simulators run in a process of their own (remote_simulators.py), on the wall clock, with an
inventory whose day 0 was a day ago at 1% churn a day: the day's changes are there when the
element starts. Before anything is timed, each filtered list the element asks for is read once,
so the simulator's scans for ``status=1`` are made before either side is measured.

``buildup``
    A new element reads 100,000 items (50,000 services, 20,000 carriers, 30,000 resources) in
    pages of 40 into its three tables. The floor replays exactly the URLs the element asked for
    (the simulator's request log) with one `requests.Session`, decoding each body with
    ``json.loads``. The ratio is the element's own overhead: rows, tables, progress and status on
    top of the transfer.
``periodic update``
    One update cycle (run at once by *Refresh Cache*, best of five): the items updated in the
    last day, 1% of them having changed, against the floor of the same pages.
``buildup peak memory``
    The peak of the element process's Python allocations (tracemalloc) during a buildup, over
    the bytes of JSON received: what holding the cache costs per byte of inventory.

The element's save at the end of a tick (its whole file, rewritten) is printed apart: the floor
has nothing like it. Each timed side runs ``--repeat`` times, alternating, and the best counts;
the peak memory comes from a separate run, since tracemalloc slows everything it watches.

Run: ``python benchmarks/inventory.py [--scale 0.1] [--repeat 2]``
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import requests
from remote_simulators import remote_simulators

from dmemu.dms import DataMinerSystem
from dmemu.elements.ses_inventory import SesInventoryManagement
from dmemu.protocol import Connection, Element, VirtualClock
from dmemu.simulators.inventory import DAY, InventorySpec
from dmemu.simulators.server import SES_BASE

SIZES = {"services": 50_000, "carriers": 20_000, "resources": 30_000}
BUILDUP_TARGET = 1.3
UPDATE_TARGET = 1.3
MEMORY_TARGET = 2.0
UPDATE_RUNS = 5  # update cycles per measurement, the best one counts


def plain_session() -> requests.Session:
    http = requests.Session()
    http.trust_env = False
    return http


def logged_paths(http: requests.Session, base_url: str) -> list[str]:
    """The GETs the simulator logged since it was last cleared, then clears the log."""
    answer = http.get(f"{base_url}/_admin/requests")
    answer.raise_for_status()
    http.delete(f"{base_url}/_admin/requests").raise_for_status()
    return [record["path"] for record in answer.json() if record["method"] == "GET" and record["api"] != "unknown"]


def warm_filtered_lists(http: requests.Session, base_url: str) -> None:
    for collection, query in (("tmf638/service", {}), ("tmf638/service", {"@type": "element"}), ("tmf639/resource", {})):
        http.get(f"{base_url}{SES_BASE}/{collection}", params={**query, "status": "1", "limit": 0}).raise_for_status()


def create_element(dms: DataMinerSystem, base_url: str) -> Element:
    return dms.create_element(
        SesInventoryManagement,
        "Inventory",
        connection=Connection(host="127.0.0.1", port=int(base_url.rsplit(":", 1)[1]), bus_address="BypassProxy"),
        parameters={"TMF 639 Endpoint": f"{base_url}{SES_BASE}/tmf639"},
    )


def replay(http: requests.Session, base_url: str, paths: list[str]) -> tuple[float, int]:
    """Seconds to GET and decode every path, and the bytes received."""
    received = 0
    started = time.perf_counter()
    for path in paths:
        response = http.get(base_url + path)
        response.raise_for_status()
        json.loads(response.content)
        received += len(response.content)
    return time.perf_counter() - started, received


def timed(action: Callable[[], Any]) -> float:
    gc.collect()
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def element_run(http: requests.Session, base_url: str) -> tuple[float, float, float, list[str], list[str], dict[str, int]]:
    """A new element's buildup, then its best update: (buildup s, update s, save s, buildup paths, update paths, rows)."""
    clock = VirtualClock(time.time())
    with tempfile.TemporaryDirectory() as state:
        dms = DataMinerSystem(state, clock)
        try:
            created: list[Element] = []
            buildup = timed(lambda: created.append(create_element(dms, base_url)))
            element = created[0]
            buildup_paths = logged_paths(http, base_url)
            rows = {name: len(element.table(name)) for name in ("Services", "Carriers", "Resources")}
            dms.flush()
            updates = [timed(lambda: element.set("Refresh Cache", 1))]
            update_paths = logged_paths(http, base_url)
            updates += [timed(lambda: element.set("Refresh Cache", 1)) for _ in range(UPDATE_RUNS - 1)]
            logged_paths(http, base_url)
            if not update_paths or element.table("Cache Progress").row("Services")["Result"] != "OK":
                raise RuntimeError("the update cycle did not run cleanly")
            save = timed(dms.flush)
            return buildup, min(updates), save, buildup_paths, update_paths, rows
        finally:
            dms.close()


def peak_memory(base_url: str) -> int:
    with tempfile.TemporaryDirectory() as state:
        dms = DataMinerSystem(state, VirtualClock(time.time()))
        try:
            gc.collect()
            tracemalloc.start()
            create_element(dms, base_url)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            dms.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the inventory sizes by this")
    parser.add_argument("--repeat", type=int, default=2, help="measurements per side; the best one counts")
    args = parser.parse_args()
    sizes = {kind: max(1, round(count * args.scale)) for kind, count in SIZES.items()}
    spec = InventorySpec(**sizes, churn_per_day=0.01, start=time.time() - DAY)  # a day of changes behind it
    buildups, updates, saves, floor_buildups, floor_updates = [], [], [], [], []
    with remote_simulators(spec) as base_url, plain_session() as http:
        warm_filtered_lists(http, base_url)
        logged_paths(http, base_url)
        for _ in range(max(1, args.repeat)):
            buildup, update, save, buildup_paths, update_paths, rows = element_run(http, base_url)
            buildups.append(buildup)
            updates.append(update)
            saves.append(save)
            with plain_session() as floor_http:
                floor, received = replay(floor_http, base_url, buildup_paths)
                floor_buildups.append(floor)
                floor_updates.append(min(replay(floor_http, base_url, update_paths)[0] for _ in range(UPDATE_RUNS)))
            logged_paths(http, base_url)
        peak = peak_memory(base_url)
    print(f"# {sum(sizes.values()):,} items in {len(buildup_paths):,} pages; rows kept: {rows}")
    print(f"# buildup {min(buildups):.2f} s, floor {min(floor_buildups):.2f} s; "
          f"update ({len(update_paths)} pages) {min(updates) * 1000:.0f} ms, floor {min(floor_updates) * 1000:.0f} ms")
    print(f"# the element's save after the update (all its tables): {min(saves):.2f} s")
    print(f"# buildup peak memory {peak / 2**20:.0f} MiB for {received / 2**20:.0f} MiB of JSON received")
    print(f"buildup: ratio {min(buildups) / min(floor_buildups):.2f} (target <= {BUILDUP_TARGET:g})")
    print(f"periodic update: ratio {min(updates) / min(floor_updates):.2f} (target <= {UPDATE_TARGET:g})")
    print(f"buildup peak memory: ratio {peak / received:.2f} (target <= {MEMORY_TARGET:g})")


if __name__ == "__main__":
    main()
