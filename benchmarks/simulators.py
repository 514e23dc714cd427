"""Simulator benchmark: serving an inventory page by page, against the same server's floor.

``pages of 40``
    One client (a keep-alive `requests` session) reads 100,000 services in pages of 40 from
    the TMF638 simulator, against the same server stack answering a fixed small body
    (``/_admin/health``) as many times. The server runs in a process of its own, as a remote
    system does (see remote_simulators.py). The figure is the ratio of requests per second
    (higher is better): the cost of generating, filtering and encoding 40 items a page.

Each side is measured ``--repeat`` times, interleaved, and the best counts.

Run: ``python benchmarks/simulators.py [--scale 0.1] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import time

import requests
from remote_simulators import remote_simulators

from dmemu.simulators.inventory import InventorySpec
from dmemu.simulators.server import TMF_PATHS

SERVICES = 100_000
PAGE = 40
TARGET = 0.5


def read_all_pages(http: requests.Session, url: str, total: int) -> float:
    """Seconds to read every page. The client reads the bodies but, like the baseline, does not
    decode them (decoding is the client's cost, not the server's); the counts are checked."""
    started = time.perf_counter()
    received = 0
    for offset in range(0, total, PAGE):
        response = http.get(url, params={"offset": offset, "limit": PAGE})
        response.raise_for_status()
        received += int(response.headers["X-Result-Count"]) if response.content else 0
    elapsed = time.perf_counter() - started
    if received != total:
        raise RuntimeError(f"read {received} items, expected {total}")
    return elapsed


def read_fixed_body(http: requests.Session, url: str, count: int) -> float:
    """Seconds for `count` requests shaped like the pages' (the same query string, which the
    client builds and the server parses) answered with a fixed small body."""
    started = time.perf_counter()
    for number in range(count):
        http.get(url, params={"offset": number * PAGE, "limit": PAGE}).raise_for_status()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the number of services by this")
    parser.add_argument("--repeat", type=int, default=3, help="measurements per side; the best one counts")
    args = parser.parse_args()
    total = max(PAGE, round(SERVICES * args.scale))
    requests_per_round = -(-total // PAGE)
    with remote_simulators(InventorySpec(services=total, carriers=0, resources=0)) as base_url, requests.Session() as http:
        http.trust_env = False
        pages_url, fixed_url = base_url + TMF_PATHS["tmf638"], f"{base_url}/_admin/health"
        page_times, fixed_times = [], []
        for _ in range(max(1, args.repeat)):
            fixed_times.append(read_fixed_body(http, fixed_url, requests_per_round))
            page_times.append(read_all_pages(http, pages_url, total))
    pages_rate = requests_per_round / min(page_times)
    fixed_rate = requests_per_round / min(fixed_times)
    print(f"# pages of {PAGE}: {total:,} services in {requests_per_round:,} requests; "
          f"{pages_rate:,.0f} pages/s, fixed body {fixed_rate:,.0f} requests/s (best)")
    print(f"pages of {PAGE}: ratio {pages_rate / fixed_rate:.2f} (target >= {TARGET:g})")


if __name__ == "__main__":
    main()
