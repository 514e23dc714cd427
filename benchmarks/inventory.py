"""SES Inventory Management benchmark: the cache buildup and one periodic update, against the floor
of fetching the same pages with a plain loop of ``requests`` and ``json``.

``buildup``
    A new element reads 100,000 items (50,000 services, 20,000 carriers, 30,000 resources) from
    the simulator on loopback in pages of 40, into its three tables. The floor replays exactly
    the URLs the element asked for (the simulator's request log) with one `requests.Session`,
    decoding each body with ``json.loads``. Both sides pay the simulator's cost, so the ratio is
    the element's own overhead: rows, tables, progress and status on top of the transfer.
``periodic update``
    One update cycle (run at once by *Refresh Cache*, best of five) after a simulated day in
    which 1% of the items changed, against the floor of the same pages. The save that follows at the end of the
    tick (the whole element file, rewritten) is printed apart: the floor has nothing like it.
``buildup peak memory``
    The peak of Python allocations (tracemalloc) during the buildup, over the bytes of JSON the
    element received: what holding the cache costs per byte of inventory.

Each timed side runs ``--repeat`` times, alternating, and the best counts. The peak memory is
measured on a separate run, since tracemalloc slows everything it watches.

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

from dmemu.elements.ses_inventory import SesInventoryManagement
from dmemu.protocol import Connection, DataMinerSystem, Element, VirtualClock
from dmemu.simulators.inventory import DAY, InventorySpec
from dmemu.simulators.server import SES_BASE, Simulators

SIZES = {"services": 50_000, "carriers": 20_000, "resources": 30_000}
BUILDUP_TARGET = 1.3
UPDATE_TARGET = 1.3
MEMORY_TARGET = 2.0
UPDATE_RUNS = 5  # update cycles per measurement, the best one counts


def create_element(dms: DataMinerSystem, sim: Simulators) -> Element:
    port = int(sim.base_url.rsplit(":", 1)[1])
    return dms.create_element(
        SesInventoryManagement,
        "Inventory",
        connection=Connection(host="127.0.0.1", port=port, bus_address="BypassProxy"),
        parameters={"TMF 639 Endpoint": f"{sim.base_url}{SES_BASE}/tmf639", "Cache Update Frequency": DAY},
    )


def replay(base_url: str, paths: list[str]) -> tuple[float, int]:
    """Seconds to GET and decode every path with a plain session, and the bytes received."""
    received = 0
    with requests.Session() as http:
        http.trust_env = False
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


def run_once(spec: InventorySpec) -> tuple[float, float, float, list[str], list[str], dict[str, int]]:
    """One element's buildup and update: (buildup s, update s, save after it s, update paths, buildup paths, rows)."""
    clock = VirtualClock()
    with Simulators(spec, now=clock.now) as sim, tempfile.TemporaryDirectory() as state:
        dms = DataMinerSystem(state, clock)
        try:
            element: Element | None = None

            def build() -> None:
                nonlocal element
                element = create_element(dms, sim)

            buildup = timed(build)
            assert element is not None
            buildup_paths = [r.path for r in sim.requests() if r.method == "GET"]
            rows = {name: len(element.table(name)) for name in ("Services", "Carriers", "Resources")}
            dms.flush()
            clock.advance(DAY - 60)  # a day of changes, and the update is not due yet
            logged = len(sim.requests())
            update = timed(lambda: element.set("Refresh Cache", 1))  # the update cycle, at once
            update_paths = [r.path for r in sim.requests()[logged:] if r.method == "GET"]
            if not update_paths or element.table("Cache Progress").row("Services")["Result"] != "OK":
                raise RuntimeError("the update cycle did not run cleanly")
            for _ in range(UPDATE_RUNS - 1):  # the same pages again: a short figure needs several tries
                update = min(update, timed(lambda: element.set("Refresh Cache", 1)))
            save = timed(dms.flush)
            return buildup, update, save, update_paths, buildup_paths, rows
        finally:
            dms.close()


def peak_memory(spec: InventorySpec) -> int:
    clock = VirtualClock()
    with Simulators(spec, now=clock.now) as sim, tempfile.TemporaryDirectory() as state:
        dms = DataMinerSystem(state, clock)
        try:
            gc.collect()
            tracemalloc.start()
            create_element(dms, sim)
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
    spec = InventorySpec(**sizes, churn_per_day=0.01)
    element_buildups, element_updates, saves, floor_buildups, floor_updates = [], [], [], [], []
    received = 0
    for _ in range(max(1, args.repeat)):
        buildup, update, save, update_paths, buildup_paths, rows = run_once(spec)
        element_buildups.append(buildup)
        element_updates.append(update)
        saves.append(save)
        # The same pages from a fresh simulator in the same state: the floor pays what the element paid.
        clock = VirtualClock()
        with Simulators(spec, now=clock.now) as sim:
            floor, received = replay(sim.base_url, buildup_paths)
            floor_buildups.append(floor)
            clock.advance(DAY - 60)
            floor_updates.append(min(replay(sim.base_url, update_paths)[0] for _ in range(UPDATE_RUNS)))
    peak = peak_memory(spec)
    items = sum(sizes.values())
    print(f"# {items:,} items in {len(buildup_paths):,} pages; rows kept: {rows}")
    print(f"# buildup {min(element_buildups):.2f} s, floor {min(floor_buildups):.2f} s; "
          f"update ({len(update_paths)} pages) {min(element_updates) * 1000:.0f} ms, floor {min(floor_updates) * 1000:.0f} ms")
    print(f"# saving the element after the update (all its tables, at the end of the tick): {min(saves):.2f} s")
    print(f"# buildup peak memory {peak / 2**20:.0f} MiB for {received / 2**20:.0f} MiB of JSON received")
    print(f"buildup: ratio {min(element_buildups) / min(floor_buildups):.2f} (target <= {BUILDUP_TARGET:g})")
    print(f"periodic update: ratio {min(element_updates) / min(floor_updates):.2f} (target <= {UPDATE_TARGET:g})")
    print(f"buildup peak memory: ratio {peak / received:.2f} (target <= {MEMORY_TARGET:g})")


if __name__ == "__main__":
    main()
