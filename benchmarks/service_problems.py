"""Service Problem Management benchmark: the SES connector's synchronisation cycles against the
floor of the same HTTP traffic sent by plain ``requests`` loops.

The simulators run in a process of their own (remote_simulators.py), fresh for each round, on
the wall clock; the DMS runs on a virtual clock and each cycle is started by *Synchronize Now*,
so only the cycle is timed.

``outbound``
    One cycle creating 10,000 new DMS tickets upstream (POSTs on 5 parallel connections, the
    problem ids written back on the tickets, the table rows), against the floor: the same POST
    bodies (taken from the simulator's request log) sent to a fresh simulator by 5 threads with
    plain ``requests`` sessions.
``inbound``
    One cycle applying 10,000 upstream changes (every problem's priority and status changed
    upstream beforehand, untimed) to the DMS tickets, against the floor: the same paged GETs
    (the simulator's request log) replayed with one ``requests`` session and ``json.loads``.
``duplicates``
    Problems created twice for one ticket, with 5% of the creates' answers lost (the create is
    done, its answer never arrives), after the cycles it takes for every ticket to be Created.

Each timed side runs ``--repeat`` times, alternating, and the best counts; the spread of the
single rounds' ratios is printed too. ``--scale`` shrinks the sizes for a quick run.

Run: ``python benchmarks/service_problems.py [--scale 0.1] [--repeat 2]``
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
from remote_simulators import remote_simulators

from dmemu.dms import DataMinerSystem
from dmemu.elements.ses_service_problems import SES_TMF656_BASE_PATH, SesServiceProblemManagement
from dmemu.protocol import Connection, Element, VirtualClock
from dmemu.simulators.inventory import InventorySpec

TICKETS = 10_000
DUPLICATE_TICKETS = 1_000
OUTBOUND_TARGET = 1.3
INBOUND_TARGET = 1.5
LOGIN = ("bench", "bench")
TYPE = "SES Service Problem"
SPEC = InventorySpec(services=10, carriers=2, resources=10)
COLLECTION = f"{SES_TMF656_BASE_PATH}/serviceProblem"


def session() -> requests.Session:
    http = requests.Session()
    http.trust_env = False
    http.auth = LOGIN
    return http


def logged(http: requests.Session, base_url: str, method: str) -> list[dict[str, Any]]:
    """The requests of `method` the simulator logged since it was last cleared; clears the log."""
    answer = http.get(f"{base_url}/_admin/requests", params={"api": "tmf656"})
    answer.raise_for_status()
    http.delete(f"{base_url}/_admin/requests").raise_for_status()
    return [record for record in answer.json() if record["method"] == method]


def new_element(dms: DataMinerSystem, base_url: str) -> Element:
    return dms.create_element(
        SesServiceProblemManagement, "Problems",
        connection=Connection(host="127.0.0.1", port=int(base_url.rsplit(":", 1)[1]), bus_address="BypassProxy"),
        parameters={"Username": LOGIN[0], "Password": LOGIN[1], "Ticket Synchronization Frequency": 86400},
    )  # fmt: skip


def timed(action: Any) -> float:
    gc.collect()
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def outbound_round(count: int) -> tuple[float, float]:
    """(element seconds, floor seconds) of creating `count` problems."""
    with tempfile.TemporaryDirectory() as state, remote_simulators(SPEC, {"tmf656": LOGIN}) as base_url, \
            DataMinerSystem(state, VirtualClock()) as dms:  # fmt: skip
        element = new_element(dms, base_url)
        for n in range(count):
            dms.tickets.create(TYPE, {"Description": f"carrier {n} unlocked", "Priority": str(1 + n % 10), "Affected Service": f"SVC-{n}"})
        http = session()
        logged(http, base_url, "POST")
        element_seconds = timed(lambda: element.set("Synchronize Now", 1))
        bodies = [record["body"] for record in logged(http, base_url, "POST")]
        created = element.get("Tickets Created Upstream")
        if created != count or len(bodies) != count:
            raise SystemExit(f"outbound: {created} created and {len(bodies)} POSTs for {count} tickets")
    with remote_simulators(SPEC, {"tmf656": LOGIN}) as base_url:
        sessions = [session() for _ in range(5)]
        url = f"{base_url}{COLLECTION}"

        def post_share(share: int) -> None:
            http = sessions[share]
            for body in bodies[share::5]:
                answer = http.post(url, data=body.encode(), headers={"Content-Type": "application/json"})
                answer.json()

        def floor() -> None:
            with ThreadPoolExecutor(5) as pool:
                list(pool.map(post_share, range(5)))

        floor_seconds = timed(floor)
    return element_seconds, floor_seconds


def inbound_round(count: int) -> tuple[float, float]:
    """(element seconds, floor seconds) of applying `count` upstream changes in one cycle."""
    with tempfile.TemporaryDirectory() as state, remote_simulators(SPEC, {"tmf656": LOGIN}) as base_url, \
            DataMinerSystem(state, VirtualClock()) as dms:  # fmt: skip
        element = new_element(dms, base_url)
        for n in range(count):
            dms.tickets.create(TYPE, {"Description": f"carrier {n} unlocked", "Priority": "5"})
        element.set("Synchronize Now", 1)  # created upstream, untimed
        element.set("Synchronize Now", 1)  # the watermark reaches the creates
        http = session()
        ids = [row["Service Problem ID"] for row in element.table("Managed Tickets").rows()]
        url = f"{base_url}{COLLECTION}"
        headers = {"Content-Type": "application/merge-patch+json"}
        with ThreadPoolExecutor(5) as pool:  # every problem changed upstream, untimed
            list(pool.map(lambda pid: http.patch(f"{url}/{pid}", json={"priority": 2, "status": "inProgress"}, headers=headers).raise_for_status(), ids))
        logged(http, base_url, "GET")
        element_seconds = timed(lambda: element.set("Synchronize Now", 1))
        if element.get("Upstream Changes Applied") != count:
            raise SystemExit(f"inbound: {element.get('Upstream Changes Applied')} changes applied of {count}")
        paths = [record["path"] for record in logged(http, base_url, "GET")]

        def floor() -> None:
            for path in paths:
                json.loads(http.get(f"{base_url}{path}").content)

        floor_seconds = timed(floor)
    return element_seconds, floor_seconds


def duplicates(count: int) -> int:
    from dmemu.simulators import Fault

    with tempfile.TemporaryDirectory() as state, remote_simulators(SPEC, {"tmf656": LOGIN}) as base_url, \
            DataMinerSystem(state, VirtualClock()) as dms:  # fmt: skip
        http = session()
        fault = Fault(api="tmf656", kind="lost", method="POST", probability=0.05)
        http.post(f"{base_url}/_admin/faults", json=fault.to_json()).raise_for_status()
        element = new_element(dms, base_url)
        tickets = [dms.tickets.create(TYPE, {"Description": f"problem {n}"}).id for n in range(count)]
        for _ in range(20):
            element.set("Synchronize Now", 1)
            if all(row["Creation Status"] == 2 for row in element.table("Managed Tickets").rows()):
                break
        else:
            raise SystemExit("duplicates: tickets still not created after 20 cycles")
        lost = sum(1 for record in http.get(f"{base_url}/_admin/requests", params={"api": "tmf656"}).json() if record["fault"])
        answer = http.get(f"{base_url}{COLLECTION}", params={"sysparm_query": "u_source=dataminer"})
        carried = Counter(
            entry["id"] for problem in answer.json() for entry in problem.get("externalIdentifier", [])
            if entry.get("externalIdentifierType") == "DataMinerTicketId"
        )  # fmt: skip
        missing = [ticket for ticket in tickets if carried[ticket] == 0]
        if missing:
            raise SystemExit(f"duplicates: {len(missing)} tickets have no problem upstream")
        print(f"# ({count} tickets, {lost} create answers lost)")
        return sum(n - 1 for n in carried.values())


def report(name: str, rounds: list[tuple[float, float]], target: float) -> None:
    best_element, best_floor = min(r[0] for r in rounds), min(r[1] for r in rounds)
    ratios = [element / floor for element, floor in rounds]
    print(f"# ({name}: element {best_element:.2f} s, floor {best_floor:.2f} s; single rounds {min(ratios):.2f}-{max(ratios):.2f})")
    print(f"{name}: ratio {best_element / best_floor:.2f} (target <= {target})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    logging.disable(logging.ERROR)  # the lost answers are logged by the element; its log keeps them
    count = max(10, int(TICKETS * args.scale))
    report("outbound", [outbound_round(count) for _ in range(args.repeat)], OUTBOUND_TARGET)
    report("inbound", [inbound_round(count) for _ in range(args.repeat)], INBOUND_TARGET)
    print(f"duplicates: ratio {duplicates(max(20, int(DUPLICATE_TICKETS * args.scale)))} (target <= 0)")


if __name__ == "__main__":
    main()
