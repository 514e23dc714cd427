"""SES Inventory Management against servers that page oddly or answer strangely: a small fake
TMF server on loopback whose answers each test chooses."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from dmemu.dms import DataMinerSystem
from dmemu.elements import ses_inventory
from dmemu.elements.ses_inventory import COMPLETE, INCOMPLETE, SesInventoryManagement
from dmemu.protocol import NO_RETRIES, Connection, Element, LogType, VirtualClock, expect
from dmemu.simulators.server import SES_BASE

HOUR = 3600
Answer = tuple[int, dict[str, str], Any]  # status, headers, JSON body
Behaviour = Callable[[str, dict[str, str]], Answer]


def services(count: int, state: str = "active") -> list[dict[str, Any]]:
    return [{"id": f"SVC-{n:04d}", "name": f"Service {n}", "@type": "CustomerFacingService", "state": state} for n in range(count)]


def honest(items: list[dict[str, Any]]) -> Behaviour:
    """Pages as TMF says: offset and limit honoured, the total in X-Total-Count."""

    def answer(collection: str, query: dict[str, str]) -> Answer:
        chosen = items if collection == "service" and "@type" not in query else []
        offset, limit = int(query.get("offset", 0)), int(query.get("limit", 1000))
        return 200, {"X-Total-Count": str(len(chosen))}, chosen[offset : offset + limit]

    return answer


class FakeServer:
    def __init__(self) -> None:
        self.behaviour: Behaviour = honest([])
        self.requests: list[tuple[str, dict[str, str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = dict(parse_qsl(parts.query))
                collection = parts.path.rsplit("/", 1)[-1]
                server.requests.append((collection, query))
                status, headers, body = server.behaviour(collection, query)
                data = json.dumps(body).encode() if not isinstance(body, bytes) else body
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer()
    yield fake
    fake.close()


def create(dms: DataMinerSystem, server: FakeServer, *, start: bool = True, **parameters: Any) -> Element:
    return dms.create_element(
        SesInventoryManagement,
        "Inventory",
        connection=Connection(host="127.0.0.1", port=server.port, bus_address="BypassProxy", retry=NO_RETRIES),
        parameters={"TMF 639 Endpoint": f"http://127.0.0.1:{server.port}{SES_BASE}/tmf639", **parameters},
        start=start,
    )


def service_state(element: Element) -> dict[str, Any]:
    return element.table("Cache Progress").row("Services")


def test_a_server_answering_fewer_items_than_asked_still_gives_everything(dms: DataMinerSystem, server: FakeServer) -> None:
    items = services(200)

    def capped(collection: str, query: dict[str, str]) -> Answer:
        status, headers, body = honest(items)(collection, {**query, "limit": "25"})
        return status, headers, body

    server.behaviour = capped
    element = create(dms, server)
    assert sorted(element.table("Services").keys()) == [item["id"] for item in items]
    assert service_state(element)["Cache State"] == COMPLETE and service_state(element)["Pages Read"] == 8


@pytest.mark.parametrize(
    ("name", "behaviour", "logged"),
    [
        ("ignores offset", lambda items: lambda c, q: (200, {"X-Total-Count": "200"}, items[:50] if c == "service" and "@type" not in q else []),
         "brought no new id"),
        ("empty pages before the total", lambda items: lambda c, q: (200, {"X-Total-Count": "200"}, items[:40] if q.get("offset") == "0" and c == "service" and "@type" not in q else []),
         "ends the list early"),
        ("nothing at all", lambda items: lambda c, q: (200, {}, []), "the server listed nothing"),
    ],
)
def test_a_server_that_pages_wrongly_never_costs_rows(dms: DataMinerSystem, server: FakeServer, name: str, behaviour: Any, logged: str) -> None:
    items = services(200)
    server.behaviour = honest(items)
    element = create(dms, server)
    assert len(element.table("Services")) == 200
    server.behaviour = behaviour(items)
    server.requests.clear()
    element.set("Rebuild Cache", 1)
    assert len(element.table("Services")) == 200, name  # nothing removed on the strength of a bad listing
    assert service_state(element)["Cache State"] == INCOMPLETE
    expect(element).logged(logged, LogType.ERROR)
    assert len(server.requests) < 20  # and it stopped asking


def test_a_server_ignoring_paging_without_a_total_does_not_hold_the_element_forever(dms: DataMinerSystem, server: FakeServer) -> None:
    items = services(50)
    server.behaviour = lambda c, q: (200, {}, items if c == "service" and "@type" not in q else [])
    element = create(dms, server)
    assert len(element.table("Services")) == 50 and service_state(element)["Cache State"] == INCOMPLETE
    assert len([r for r in server.requests if r[0] == "service" and "@type" not in r[1]]) == 2


def test_odd_headers_and_statuses_fail_one_type_and_the_cycle_still_ends_scheduled(
    dms: DataMinerSystem, server: FakeServer, dmemu_clock: VirtualClock
) -> None:
    items = services(90)

    def odd(collection: str, query: dict[str, str]) -> Answer:
        if collection == "resource":
            return 600, {}, {"message": "six hundred"}
        status, headers, body = honest(items)(collection, query)
        return status, {"X-Total-Count": "\u00b2"}, body  # a digit to str.isdigit, not to int()

    server.behaviour = odd
    element = create(dms, server)
    assert len(element.table("Services")) == 90 and service_state(element)["Cache State"] == COMPLETE
    resources = element.table("API Status").row("TMF 639")
    assert resources["Communication Status"] == 5 and resources["Last HTTP Status"] == 600
    assert element.get("Cache Phase") == 0 and element.get("Next Cache Update") == dmemu_clock.now() + HOUR


def test_an_unexpected_error_in_one_type_leaves_the_others_and_the_schedule(
    dms: DataMinerSystem, server: FakeServer, dmemu_clock: VirtualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.behaviour = honest(services(30))
    read = ses_inventory._Poller.read

    def carriers_break(poller: Any, entity: Any, **kwargs: Any) -> bool:
        if entity.name == "Carriers":
            raise RuntimeError("formatting bug")
        return read(poller, entity, **kwargs)

    monkeypatch.setattr(ses_inventory._Poller, "read", carriers_break)
    element = create(dms, server)
    assert len(element.table("Services")) == 30
    assert element.table("Cache Progress").row("Carriers")["Result"] == "Failed: RuntimeError: formatting bug"
    assert element.table("Cache Progress").row("Resources")["Cache State"] == COMPLETE
    assert element.get("Cache Phase") == 0 and element.get("Next Cache Update") == dmemu_clock.now() + HOUR
    monkeypatch.setattr(ses_inventory._Poller, "read", read)
    dmemu_clock.advance(HOUR + 60)
    assert element.table("Cache Progress").row("Carriers")["Cache State"] == COMPLETE  # retried by the next cycle


def test_an_update_listing_only_a_later_copy_of_an_id_leaves_the_first(dms: DataMinerSystem, server: FakeServer, dmemu_clock: VirtualClock) -> None:
    first = {"id": "SVC-1", "name": "the original", "@type": "CustomerFacingService", "state": "active"}
    copy = {"id": "SVC-1", "name": "a stale copy", "@type": "CustomerFacingService", "state": "inactive"}
    other = {"id": "SVC-2", "name": "another", "@type": "CustomerFacingService", "state": "active"}

    def listing(collection: str, query: dict[str, str]) -> Answer:
        if "updatedDaysAgo" in query:
            return honest([copy, {**other, "name": "renamed"}])(collection, query)
        return honest([first, copy, other])(collection, query)

    server.behaviour = listing
    element = create(dms, server, **{"Active Items Only": 0})
    assert element.table("Services").cell("SVC-1", "Name") == "the original"
    assert service_state(element)["Duplicate IDs Skipped"] == 1
    dmemu_clock.advance(HOUR + 60)
    assert element.table("Services").cell("SVC-1", "Name") == "the original"  # the copy alone changes nothing
    assert element.table("Services").cell("SVC-2", "Name") == "renamed"  # a real change still lands


def test_a_stop_ends_a_long_cycle_between_pages(tmp_path: Any, server: FakeServer) -> None:
    items = services(2000)
    gate = threading.Event()
    slow = honest(items)

    def paced(collection: str, query: dict[str, str]) -> Answer:
        if query.get("offset") == "400":
            gate.set()  # ten pages in: time to stop
        threading.Event().wait(0.02)
        return slow(collection, query)

    server.behaviour = paced
    with DataMinerSystem(tmp_path) as dms:  # the wall clock
        element = create(dms, server, start=False)
        starting = threading.Thread(target=element.start)  # the buildup runs on the starting thread
        starting.start()
        assert gate.wait(30)
        element.stop()
        asked = len(server.requests)
        starting.join(30)
        assert asked < 2000 / 40  # it did not read on to the end
    assert len(server.requests) <= asked + 1
    assert element.table("Cache Progress").row("Services")["Result"] == "Failed: the element is stopping"


def test_a_listing_longer_than_100000_pages_is_not_believed(dms: DataMinerSystem, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cap at its real value: a server that would list on past 100,000 pages (here of one new
    carrier each, without a total) leaves the type incomplete after exactly that many. Pages are
    answered in-process: 100,000 loopback requests would take minutes."""
    listed_pages = 100_010

    def one_new_item_a_page(poller: Any, entity: Any, offset: int, extra: Any) -> tuple[list[Any], int | None]:
        if entity.name != "Carriers" or offset >= listed_pages:
            return [], None  # an empty page: the list ends
        return [{"id": f"CAR-{offset:06d}", "@type": "element", "state": "inactive"}], None  # kept by no table

    monkeypatch.setattr(ses_inventory._Poller, "get_page", one_new_item_a_page)
    element = dms.create_element(
        SesInventoryManagement, "Inventory", connection=Connection(host="127.0.0.1", port=9, bus_address="BypassProxy")
    )
    carriers = element.table("Cache Progress").row("Carriers")
    assert carriers["Pages Read"] == 100_000 and carriers["Items Listed"] == 100_000
    assert carriers["Cache State"] == INCOMPLETE and carriers["Result"] == "Incomplete"
    expect(element).logged("Carriers: stopped after 100000 pages", LogType.ERROR)
    assert element.table("Cache Progress").row("Services")["Cache State"] == COMPLETE  # an empty list, read whole
