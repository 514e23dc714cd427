"""`dmemu demo`: the bundled simulators, a DataMiner System, and every connector pointed at them.

The simulators serve a generated inventory on 127.0.0.1; each connector's element is created in
a DMS (state in a temporary directory, or a kept one) and runs its start-up work while a
progress bar follows its requests in the simulators' log; then every page of every element is
printed. On the virtual clock that is the end; with ``real_time`` the elements keep polling on
the wall clock until interrupted.

A kept state directory is picked up again: the elements come back with their saved tables, and
the simulators listen on the port the elements were created with, so their start-up work finds
them where it expects.
"""

from __future__ import annotations

import math
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, TextIO

import attrs
import requests
from tqdm import tqdm

from .dms import DataMinerSystem, SavedSystem
from .dms.state_lock import refuse_if_in_use
from .elements.ses_inventory import COMPLETE, SesInventoryManagement
from .pages import pages_of, render_page
from .protocol import BYPASS_PROXY, Connection, Element, VirtualClock
from .protocol.errors import DmemuError
from .protocol.storage import REGISTRY_FILE
from .simulators.inventory import InventorySpec
from .simulators.server import SES_BASE, Simulators

DEMO_CREDENTIALS = {"tmf638": ("dmemu", "demo-services"), "tmf639": ("dmemu", "demo-resources")}
SHOWN_ROWS = 10
_INVENTORY_PAGE = SesInventoryManagement.model.parameters[107].default  # Records Per Page


@attrs.frozen
class DemoSettings:
    services: int = 2000
    carriers: int = 400
    resources: int = 1500
    state: Path | None = None  # None: a temporary directory, gone afterwards
    real_time: bool = False
    port: int | None = None  # None: the kept elements' port, else a free one
    seed: int = 1
    width: int | None = None
    web: bool = False  # then serve the REST API until interrupted (on the wall clock)
    web_port: int = 0


@attrs.frozen
class DemoConnector:
    """How the demo creates one connector's element and follows its start-up work."""

    element_name: str
    create: Callable[[DataMinerSystem, Simulators], Element]
    expected_requests: Callable[[Simulators], int]  # what its start-up work will ask the simulators
    apis: tuple[str, ...]  # the simulators' APIs it talks to
    unfinished: Callable[[Element], list[str]]  # what its start-up work left undone, for the user


def _create_inventory(dms: DataMinerSystem, sim: Simulators) -> Element:
    return dms.create_element(
        SesInventoryManagement,
        "SES Inventory",
        connection=Connection(host="127.0.0.1", port=sim.port, bus_address=BYPASS_PROXY),
        parameters={
            "TMF 638 Username": DEMO_CREDENTIALS["tmf638"][0],
            "TMF 638 Password": DEMO_CREDENTIALS["tmf638"][1],
            "TMF 639 Endpoint": f"{sim.base_url}{SES_BASE}/tmf639",
            "TMF 639 Username": DEMO_CREDENTIALS["tmf639"][0],
            "TMF 639 Password": DEMO_CREDENTIALS["tmf639"][1],
        },
        start=False,  # started by the demo, so the progress bar can follow it
    )


def _inventory_pages(sim: Simulators) -> int:
    """The pages the buildup will read: each type's active items, 40 to a page (at least one)."""
    pages = 0
    with requests.Session() as http:
        http.trust_env = False
        for api, query in (("tmf638", {}), ("tmf638", {"@type": "element"}), ("tmf639", {})):
            answer = http.get(sim.url(api), params={**query, "status": "1", "limit": 0}, auth=DEMO_CREDENTIALS[api])
            answer.raise_for_status()
            pages += max(1, math.ceil(int(answer.headers["X-Total-Count"]) / _INVENTORY_PAGE))
    return pages


def _inventory_unfinished(element: Element) -> list[str]:
    return [f"{row['Type']}: {row['Result']}" for row in element.table("Cache Progress").rows() if row["Cache State"] != COMPLETE]


CONNECTORS = (
    DemoConnector(
        "SES Inventory", _create_inventory, _inventory_pages, ("tmf638", "tmf639"), _inventory_unfinished
    ),
)


def run_demo(settings: DemoSettings, out: TextIO | None = None) -> int:
    """0 when every element finished its start-up work; 1 (after printing the pages) when one did not.

    `out` is where the pages go: None for the standard output of the moment of the call."""
    out = sys.stdout if out is None else out  # looked up now: stdout may have been replaced since import
    with ExitStack() as stack:
        state = settings.state or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dmemu-demo-")))
        _make_state_directory(state)  # a state that cannot be used is said before anything starts
        refuse_if_in_use(state)  # another demo running on it: said so, not as a port clash
        kept = _kept_elements(state)
        kept_port = _kept_port(kept)
        if settings.port is not None and kept_port and settings.port != kept_port:
            raise DmemuError(f"the elements kept in {state} expect the simulators on port {kept_port}, not {settings.port}")
        port = settings.port if settings.port is not None else kept_port
        real_time = settings.real_time or settings.web  # a console shows timers at work: the wall clock
        clock = None if real_time else VirtualClock()
        spec = InventorySpec(
            services=settings.services,
            carriers=settings.carriers,
            resources=settings.resources,
            seed=settings.seed,
            churn_per_day=0.02,  # a little life for the periodic updates
            arrivals_per_day=0.002,
            **({"start": time.time()} if clock is None else {}),
        )
        sim = stack.enter_context(_simulators(spec, port, clock))
        print(f"simulators on {sim.base_url}; DataMiner System state in {state}", file=out)
        if settings.state is None:
            print("  a temporary directory, deleted at exit (--state DIR keeps one)", file=out)
        for name in kept:
            print(f"  picked up the kept element {name!r} with its saved tables (its start-up work runs again)", file=out)
        out.flush()
        dms = _open_with_progress(state, clock, sim, kept)
        stack.callback(dms.close)
        unfinished = []
        for connector in CONNECTORS:
            element = dms.element(connector.element_name)
            _print_pages(element, settings.width, out)
            unfinished += [f"{element.name}: {problem}" for problem in connector.unfinished(element)]
        for problem in unfinished:
            print(f"dmemu: start-up work not finished: {problem}", file=sys.stderr)
        if settings.web:
            server = stack.enter_context(dms.serve(port=settings.web_port, simulators=sim))  # stopped before the DMS closes
            from .web.console import announce  # the web face loads only when serving

            print(file=out)
            announce(server, "the demo DMS with its simulators", out)
        if real_time:
            _poll_until_interrupted(dms, out)  # the next cycles try again
            return 0
    return 1 if unfinished else 0


def _make_state_directory(state: Path) -> None:
    try:
        state.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DmemuError(f"cannot use state directory {state}: {error.strerror or error}") from None


def _kept_elements(state: Path) -> dict[str, int | None]:
    """The demo's elements a kept state directory holds, with the port each was created with."""
    if not (state / REGISTRY_FILE).exists():
        return {}
    names = {connector.element_name for connector in CONNECTORS}
    return {element.name: element.connection.port for element in SavedSystem(state).elements if element.name in names}


def _kept_port(kept: dict[str, int | None]) -> int:
    ports = {port for port in kept.values() if port}
    if len(ports) > 1:
        raise DmemuError(f"the kept elements expect the simulators on several ports ({sorted(ports)}); give --port")
    return ports.pop() if ports else 0


@contextmanager
def _simulators(spec: InventorySpec, port: int, clock: VirtualClock | None) -> Iterator[Simulators]:
    try:
        simulators = Simulators(spec, credentials=DEMO_CREDENTIALS, port=port, now=clock.now if clock else None)
    except OSError as error:
        raise DmemuError(f"cannot listen on 127.0.0.1:{port}: {error.strerror or error}") from None
    with simulators:
        yield simulators


def _open_with_progress(
    state: Path, clock: VirtualClock | None, sim: Simulators, kept: dict[str, int | None]
) -> DataMinerSystem:
    """The DMS with every connector's element started, a progress bar following their requests."""
    expected = sum(connector.expected_requests(sim) for connector in CONNECTORS)
    logged_before = len(sim.requests())
    opened: dict[str, Any] = {}

    def open_and_start() -> None:
        try:
            dms = opened["dms"] = DataMinerSystem(state, clock)  # kept elements start here
            for connector in CONNECTORS:
                if connector.element_name not in kept:
                    connector.create(dms, sim).start()
        except BaseException as error:  # handed to the main thread, which reports it
            opened["error"] = error

    worker = threading.Thread(target=open_and_start, name="dmemu-demo-start", daemon=True)
    worker.start()
    apis = {api for connector in CONNECTORS for api in connector.apis}
    try:
        # tqdm draws nothing when stderr is not a terminal (disable=None).
        with tqdm(total=expected, desc="start-up work", unit="request", disable=None, leave=False) as bar:
            while worker.is_alive():
                worker.join(0.1)
                done = sum(1 for record in sim.requests()[logged_before:] if record.api in apis)
                bar.update(min(done, expected) - bar.n)
    except BaseException:  # Ctrl-C: the elements give up between pages once their DMS closes
        _close_opened(opened, worker)
        raise
    error = opened.get("error")
    if error is not None:
        _close_opened(opened, worker)
        if isinstance(error, OSError):
            raise DmemuError(f"cannot use state directory {state}: {error.strerror or error}") from error
        raise error
    return opened["dms"]


def _close_opened(opened: dict[str, Any], worker: threading.Thread) -> None:
    dms = opened.get("dms")
    if dms is not None:
        dms.close()
    worker.join(timeout=60)


def _print_pages(element: Element, width: int | None, out: TextIO) -> None:
    for page in pages_of(element.protocol):
        print(file=out)
        print(render_page(element, page, rows=SHOWN_ROWS, width=width), file=out)


def _poll_until_interrupted(dms: DataMinerSystem, out: TextIO) -> None:
    seen: dict[str, Any] = {}
    try:  # from the announcement on: Ctrl-C may come as soon as it is printed
        print("\npolling on the wall clock; Ctrl-C stops", file=out, flush=True)
        while True:
            time.sleep(1)
            for connector in CONNECTORS:
                element = dms.element(connector.element_name)
                cycle = element.get("Last Cache Cycle")
                if seen.get(connector.element_name) not in (None, cycle):
                    rows = ", ".join(f"{name} {len(element.table(name))}" for name in ("Services", "Carriers", "Resources"))
                    print(f"{element.name}: cache cycle at {element.display('Last Cache Cycle')}: {rows}", file=out, flush=True)
                seen[connector.element_name] = cycle
    except KeyboardInterrupt:
        print("stopped", file=out)
