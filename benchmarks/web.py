"""Web API benchmarks: each figure is the API's time over a loopback HTTP floor timed in the same
run, so the ratios hold on shared, noisy machines where absolute times do not.

Figures (lower is better):

``table page``
    A page of 100 rows from the middle of a 100,000-row table through the REST API
    (``GET /api/elements/1/1/tables/Items?offset=50000&limit=100``, token checked, on a kept-alive
    connection), against the same JSON bytes answered by a bare `http.server` handler (HTTP/1.1,
    kept alive, Nagle off): the floor is the loopback round trip carrying that answer. The gap is
    Starlette and uvicorn (its C request parser), the token check, and the page: the table does
    not change between requests, so its rows are kept from the second request on and each row's
    JSON is made once (`dmemu.web.tables.ServedTable`), and a plain page of a few rows is answered
    on the server's event loop, not a worker thread.
``live updates``
    1,000 sets a second of one parameter (``element.set``, paced on the wall clock) while a client
    reads ``/api/events?element=1/1``: the median delay from each set to the first event carrying
    its value or a later one (events are coalesced: each send carries the value of its moment),
    against one loopback round trip of a tiny answer from the same bare handler. The ``#`` line
    says how many events the sets became and that the last value arrived.

Each measurement alternates the sides ``--repeat`` times (rounds) and keeps each side's best
(the median of a round's requests for the page; of the round's sets for the updates). A figure's
line ends with the lowest and highest ratio of a single round: the noise the best times smooth out.

Run: ``python benchmarks/web.py [--scale 0.1] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests
from engine import round_times, scaled

from dmemu.dms import DataMinerSystem
from dmemu.protocol import (
    Button,
    Column,
    Discrete,
    DisplayKey,
    Element,
    Number,
    Page,
    Parameter,
    Protocol,
    QAction,
    Table,
    VirtualClock,
)

TARGETS = {"table page": 2.0, "live updates": 5.0}
ROW_COUNT = 100_000
PAGE_ROWS = 100
REQUESTS_PER_ROUND = 300
SETS_PER_SECOND = 1_000
UPDATE_SECONDS = 2.0

ROWS_TO_FILL: list[list[Any]] = []


def fill_items(protocol: Any) -> None:
    protocol.fill_array("Items", ROWS_TO_FILL)


class WebBenchmark(Protocol):
    name = "Web Benchmark"
    pages = (Page("General"),)
    parameters = (
        Parameter(10, "Level", type=Number(units="%"), write=True, default=0, page="General"),
        Parameter(20, "Fill", type=Button(), write=True, page="General"),
    )
    tables = (
        Table(1000, "Items", page="General", display_key=DisplayKey(("Name",)), columns=(
            Column(1001, "ID", key=True), Column(1002, "Name"), Column(1003, "Value", type=Number(decimals=2)),
            Column(1004, "State", type=Discrete({0: "Idle", 1: "Busy", 2: "Down"})), Column(1005, "Description"),
        )),
    )  # fmt: skip
    qactions = (QAction(100, fill_items, triggers=(20,)),)


class Floor(BaseHTTPRequestHandler):
    """Answers prepared bytes, as little work as an HTTP answer can be."""

    protocol_version = "HTTP/1.1"  # kept alive, as the API's client is
    disable_nagle_algorithm = True  # as the web server: no wait for a delayed ACK
    answers: dict[str, bytes] = {}

    def do_GET(self) -> None:
        body = self.answers[self.path]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def median_request_seconds(http: requests.Session, url: str, count: int) -> float:
    times = []
    for _ in range(count):
        start = time.perf_counter()
        http.get(url).raise_for_status()  # the body is read: requests reads it unless told to stream
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def report(figure: str, what: str, floor_times: list[float], api_times: list[float]) -> None:
    floor_seconds, api_seconds = min(floor_times), min(api_times)
    print(f"# {figure}: {what}; floor {floor_seconds * 1000:.3f} ms, API {api_seconds * 1000:.3f} ms (best)")
    round_ratios = [api / floor for floor, api in zip(floor_times, api_times)]
    spread = f"[round ratios {min(round_ratios):.2f}-{max(round_ratios):.2f} over {len(round_ratios)} rounds]"
    print(f"{figure}: ratio {api_seconds / floor_seconds:.2f} (target <= {TARGETS[figure]:g}) {spread}", flush=True)


def bench_table_page(http: requests.Session, api_url: str, floor_url: str, scale: float, repeat: int) -> None:
    path = f"/api/elements/1/1/tables/Items?offset={scaled(ROW_COUNT, scale) // 2}&limit={PAGE_ROWS}"
    Floor.answers["/page"] = http.get(api_url + path).content  # the same JSON, prepared
    count = scaled(REQUESTS_PER_ROUND, scale)
    times = round_times(
        [lambda: median_request_seconds(http, floor_url + "/page", count), lambda: median_request_seconds(http, api_url + path, count)],
        repeat,
    )
    what = f"{PAGE_ROWS} rows of {scaled(ROW_COUNT, scale):,}, {len(Floor.answers['/page']):,} bytes, median of {count} requests"
    report("table page", what, *times)


class EventReader:
    """Reads the parameter events of one stream on a thread: (arrival time, value) in order."""

    def __init__(self, http: requests.Session, url: str) -> None:
        self.response = http.get(url, stream=True)
        self.lines = self.response.iter_lines(decode_unicode=True)
        next(line for line in self.lines if line.startswith("data: "))  # ready
        self.arrivals: list[tuple[float, Any]] = []
        self.wanted: Any = None
        self.done = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for line in self.lines:
                if line.startswith("data: "):
                    value = json.loads(line[len("data: ") :])["value"]
                    self.arrivals.append((time.perf_counter(), value))
                    if value == self.wanted:
                        self.done.set()
        except (requests.RequestException, AttributeError):  # the stream closed under it: the end
            pass
        finally:
            self.response.close()


def median_update_delay(element: Element, reader: EventReader, seconds: float, base: int) -> tuple[float, int]:
    """Sets paced at SETS_PER_SECOND for `seconds`; (median delay, events heard)."""
    count = max(1, round(seconds * SETS_PER_SECOND))
    values = [base + n for n in range(1, count + 1)]
    reader.wanted, reader.done = values[-1], threading.Event()
    heard_before = len(reader.arrivals)
    set_times = []
    start = time.perf_counter()
    for n, value in enumerate(values):
        pause = start + n / SETS_PER_SECOND - time.perf_counter()
        if pause > 0:
            time.sleep(pause)  # not a busy wait: the server's loop needs the interpreter meanwhile
        set_times.append(time.perf_counter())
        element.set("Level", value)
    if not reader.done.wait(30):
        raise RuntimeError(f"the last value {values[-1]} never arrived")
    arrivals = reader.arrivals[heard_before:]
    delays, next_set = [], 0
    for arrival, value in arrivals:
        while next_set < count and values[next_set] <= value:
            delays.append(arrival - set_times[next_set])
            next_set += 1
    return statistics.median(delays), len(arrivals)


def bench_live_updates(http: requests.Session, element: Element, api_url: str, floor_url: str, scale: float, repeat: int) -> None:
    Floor.answers["/tiny"] = b"{}"
    reader = EventReader(http, api_url + "/api/events?element=1/1&types=parameter")
    seconds = UPDATE_SECONDS * min(1.0, scale)
    events: list[int] = []
    rounds = iter(range(repeat))

    def updates() -> float:
        delay, heard = median_update_delay(element, reader, seconds, 1_000_000 * (next(rounds) + 1))
        events.append(heard)
        return delay

    # A second session: the reader's connection is busy streaming.
    with requests.Session() as other:
        other.trust_env = False
        times = round_times([lambda: median_request_seconds(other, floor_url + "/tiny", 200), updates], repeat)
    # The stream is left open: the server ends it when it stops. Closing it from here would wait
    # for the reader's thread to hear something (the next keep-alive comes after 15 s).
    sets = round(seconds * SETS_PER_SECOND)
    what = f"{sets:,} sets at {SETS_PER_SECOND:,}/s became {min(events)}-{max(events)} events, the last value arriving; floor: one round trip"
    report("live updates", what, *times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply sizes (rows, requests, seconds) by this")
    parser.add_argument("--repeat", type=int, default=5, help="measurements per side; the best one counts")
    args = parser.parse_args()
    if args.scale <= 0:
        parser.error("--scale must be positive")
    ROWS_TO_FILL[:] = [
        [f"item-{n:06d}", f"Item {n}", n * 1.25, n % 3, f"description of item {n}"] for n in range(scaled(ROW_COUNT, args.scale))
    ]
    floor = ThreadingHTTPServer(("127.0.0.1", 0), Floor)
    threading.Thread(target=floor.serve_forever, daemon=True).start()
    floor_url = f"http://127.0.0.1:{floor.server_address[1]}"
    with tempfile.TemporaryDirectory(prefix="dmemu-bench-") as directory, DataMinerSystem(directory, VirtualClock()) as dms:
        element = dms.create_element(WebBenchmark, "Bench")
        element.set("Fill", 1)
        with dms.serve() as server, requests.Session() as http:
            http.trust_env = False
            http.headers["X-Dmemu-Token"] = server.token
            benches: list[Callable[[], None]] = [
                lambda: bench_table_page(http, server.url, floor_url, args.scale, max(1, args.repeat)),
                lambda: bench_live_updates(http, element, server.url, floor_url, args.scale, max(1, args.repeat)),
            ]
            for bench in benches:
                bench()
    floor.shutdown()
    floor.server_close()


if __name__ == "__main__":
    main()
