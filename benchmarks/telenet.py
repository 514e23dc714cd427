"""Telenet ticketing benchmark: alarm flows end to end, against the service requests they make.

``telenet flows``
    1,000 alarms open at once on a monitored element (a row each, its key the network element),
    and each starts the automatic flow (`suite.flow_rule(protocol=...)`) of a Telenet suite with
    8 Ticket Clients on a virtual clock: the flow takes a client, searches the alarm's ticket
    through it (its serial connection), creates the ticket through the Ticket Gateway (HTTP),
    whose Buffer Processing asks for the asynchronous result, and puts the ticket id on the
    alarm. Timed from the alarms opening until every flow has ended. The floor is the same
    service requests (the same searches, creates and GetTransactionResult calls, the same heads
    and bodies, in the same order, read from the service's request log) sent by a plain loop
    over one kept-alive socket, each answer read whole. The ratio is suite time over floor time
    (lower is better): what the engine, the DMS and the elements add around the exchanges.

The OSB simulator runs in a process of its own for both sides, as a remote service does
(see remote_simulators.py), a fresh one for each measurement with the same settings. A run
whose alarms did not all get exactly one ticket upstream (and its id on the alarm) fails: no
ratio is printed for a wrong result.

Each round times the suite, then the floor; the best of each side counts, and the line ends
with the lowest and highest ratio of one round. ``--scale`` shrinks the number of alarms.

Run: ``python benchmarks/telenet.py [--scale 0.1] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import json
import socket
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import requests
from engine import Stopwatch, scaled
from remote_simulators import remote_osb

from dmemu.dms import AlarmTemplate, DataMinerSystem, ScriptState, Severity, Thresholds
from dmemu.elements.telenet.flow import SCRIPT_NAME, TICKET_ID_PROPERTY, FlowSettings
from dmemu.elements.telenet.suite import create_telenet_suite, flow_rule
from dmemu.protocol import Column, Number, Parameter, Protocol, QAction, QActionProtocol, String, Table, VirtualClock

FLOWS = 1_000
CLIENTS = 8
TARGET = 2.0
OSB_SETTINGS: dict[str, Any] = {"processing_delay": 0.0, "seed": 1}  # the same service for both sides
RAISED_LOSS = 40  # Major: each row's alarm opens
VIRTUAL_LIMIT = 7 * 86400.0  # virtual seconds the flows may take at most (they take minutes)


# -- the monitored element -----------------------------------------------------------------------


def fill_nodes(protocol: QActionProtocol) -> None:
    """QAction: the Nodes table becomes the rows given as JSON (one change: alarms open together)."""
    protocol.fill_array("Nodes", json.loads(protocol.get_parameter("Nodes Input")))


class NodeMonitor(Protocol):
    name = "Benchmark Telenet Node Monitor"
    parameters = (Parameter(10, "Nodes Input", String(), write=True, default="[]"),)
    tables = (Table(100, "Nodes", columns=(Column(101, "Node", key=True), Column(102, "Signal Loss", Number(0, 100, "%")))),)
    qactions = (QAction(1, fill_nodes, triggers=(10,)),)


NODE_ALARMS = AlarmTemplate("Nodes", {"Signal Loss": Thresholds(high={Severity.MINOR: 10, Severity.MAJOR: 30, Severity.CRITICAL: 60})})


def node_names(count: int) -> list[str]:
    return [f"Node {number:05d}" for number in range(1, count + 1)]


# -- the suite side ------------------------------------------------------------------------------


class FlowsDone:
    """Whether every flow started has ended: a cursor over the runs, each looked at until done."""

    def __init__(self, dms: DataMinerSystem) -> None:
        self.runs = dms.automation.runs(SCRIPT_NAME)
        self.position = 0

    def __call__(self) -> bool:
        runs = self.runs
        while self.position < len(runs) and runs[self.position].done:
            self.position += 1
        return self.position == len(runs)


def run_suite(directory: Path, flows: int) -> tuple[float, float, list[dict[str, Any]]]:
    """Seconds for `flows` alarms' flows, checked; answers them, the CPU seconds this process
    spent meanwhile (the machine's load does not count there) and the service's request log."""
    nodes = node_names(flows)
    clock = VirtualClock()
    with remote_osb(**OSB_SETTINGS) as port, DataMinerSystem(directory / "state", clock) as dms:
        dms.automation.history_limit = flows
        settings = FlowSettings(lock_wait_limit=VIRTUAL_LIMIT, gateway_timeout=VIRTUAL_LIMIT)
        create_telenet_suite(
            dms, directory / "suite", service=("127.0.0.1", port), clients=CLIENTS, monitored=[flow_rule(protocol=NodeMonitor.name)],
            topology={node: f"BRU-{number % 97:02d}/slot {number % 7}/port {number % 13}" for number, node in enumerate(nodes)},
            flow_settings=settings,
        )  # fmt: skip
        monitor = dms.create_element(NodeMonitor, "Node Monitor")
        monitor.set("Nodes Input", json.dumps([[node, 0] for node in nodes]))
        dms.alarms.assign_template(monitor, NODE_ALARMS)
        raised = json.dumps([[node, RAISED_LOSS] for node in nodes])
        with Stopwatch() as watch:
            cpu_start = time.process_time()
            monitor.set("Nodes Input", raised)  # every alarm opens: a flow each starts
            clock.run_until(FlowsDone(dms), timeout=VIRTUAL_LIMIT)
            cpu_seconds = time.process_time() - cpu_start
        check_flows(dms, flows)
        log = service_get(port, "/_admin/requests")
        check_tickets(dms, service_get(port, "/_admin/tickets"), flows)
    return watch.seconds, cpu_seconds, log


def service_get(port: int, path: str) -> Any:
    with requests.Session() as http:
        http.trust_env = False
        response = http.get(f"http://127.0.0.1:{port}{path}", timeout=60)
        response.raise_for_status()
        return response.json()


def check_flows(dms: DataMinerSystem, flows: int) -> None:
    runs = dms.automation.runs(SCRIPT_NAME)
    failed = [run for run in runs if run.state is not ScriptState.SUCCEEDED]
    if len(runs) != flows or failed:
        detail = failed[0].error if failed else ""
        raise RuntimeError(f"{len(runs)} flows ran for {flows} alarms, {len(failed)} did not succeed {detail}")
    actions = Counter(run.result["action"] for run in runs)
    if actions != {"created": flows}:
        raise RuntimeError(f"the flows did {dict(actions)}, not {flows} creates")


def check_tickets(dms: DataMinerSystem, tickets: list[dict[str, Any]], flows: int) -> None:
    """Exactly one ticket upstream per alarm, and its id on the alarm."""
    alarms = [alarm for alarm in dms.alarms.active() if alarm.element_name == "Node Monitor"]
    per_alarm = Counter(ticket["alarm_id"] for ticket in tickets)
    if len(alarms) != flows or len(tickets) != flows or set(per_alarm) != {str(alarm.id) for alarm in alarms} or set(per_alarm.values()) != {1}:
        raise RuntimeError(f"{len(alarms)} alarms, {len(tickets)} tickets upstream for {len(per_alarm)} alarms (expected one each)")
    ticket_of = {ticket["alarm_id"]: ticket["ticket_id"] for ticket in tickets}
    wrong = [alarm.id for alarm in alarms if alarm.properties.get(TICKET_ID_PROPERTY) != ticket_of[str(alarm.id)]]
    if wrong:
        raise RuntimeError(f"{len(wrong)} alarms do not carry their ticket's id, e.g. alarm {wrong[0]}")


# -- the floor -----------------------------------------------------------------------------------


def wire_requests(log: list[dict[str, Any]]) -> list[bytes]:
    """The requests of the service's log as they went on the wire: request line, heads, body."""
    wired = []
    for record in log:
        head = "".join(f"{name}: {value}\r\n" for name, value in record["headers"].items())
        wired.append(f"{record['method']} {record['path']} HTTP/1.1\r\n{head}\r\n".encode("latin-1") + record["body"].encode())
    return wired


def read_answer(sock: socket.socket, buffer: bytearray) -> int:
    """Read one HTTP answer (head, then Content-Length bytes) from `sock`; answers its status."""
    while (end := buffer.find(b"\r\n\r\n")) < 0:
        buffer += sock.recv(65536)
    head = bytes(buffer[:end]).decode("latin-1")
    length = 0
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    total = end + 4 + length
    while len(buffer) < total:
        buffer += sock.recv(65536)
    del buffer[:total]
    return int(head[9:12])


def run_floor(wired: list[bytes]) -> float:
    """Seconds to send `wired` to a fresh service over one kept-alive socket, answer after answer."""
    with remote_osb(**OSB_SETTINGS) as port, socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = bytearray()
        statuses: Counter[int] = Counter()
        with Stopwatch() as watch:
            for request in wired:
                sock.sendall(request)
                statuses[read_answer(sock, buffer)] += 1
    if statuses != {200: len(wired)}:
        raise RuntimeError(f"the floor's requests were answered {dict(statuses)}")
    return watch.seconds


# -- main ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the number of alarms by this")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (suite, then floor); the best of each side counts")
    args = parser.parse_args()
    if args.scale <= 0:
        parser.error("--scale must be positive")
    flows = scaled(FLOWS, args.scale)
    suite_times, suite_cpu, floor_times = [], [], []
    operations: Counter[str] = Counter()
    for _ in range(max(1, args.repeat)):
        with tempfile.TemporaryDirectory(prefix="dmemu-bench-") as directory:
            seconds, cpu_seconds, log = run_suite(Path(directory), flows)
        suite_times.append(seconds)
        suite_cpu.append(cpu_seconds)
        operations = Counter(record["operation"] for record in log)
        floor_times.append(run_floor(wire_requests(log)))
    suite_seconds, floor_seconds = min(suite_times), min(floor_times)
    per_flow = sum(operations.values()) / flows
    detail = ", ".join(f"{count} {name}" for name, count in sorted(operations.items()))
    print(f"# telenet flows: {flows:,} alarm flows on {CLIENTS} Ticket Clients, {per_flow:g} requests per flow ({detail})")
    print(f"# telenet flows: suite {suite_seconds:.3f} s ({flows / suite_seconds:,.0f} flows/s, {suite_seconds * 1000 / flows:.2f} ms per flow), "
          f"floor {floor_seconds:.3f} s ({floor_seconds * 1000 / flows:.2f} ms per flow) (best)")
    print(f"# telenet flows: per round, suite {', '.join(f'{t:.2f}' for t in suite_times)} s; floor {', '.join(f'{t:.2f}' for t in floor_times)} s; "
          f"suite CPU (this process) {', '.join(f'{t:.2f}' for t in suite_cpu)} s")
    round_ratios = [suite / floor for suite, floor in zip(suite_times, floor_times)]
    spread = f"[round ratios {min(round_ratios):.2f}-{max(round_ratios):.2f} over {len(round_ratios)} rounds]"
    print(f"telenet flows: ratio {suite_seconds / floor_seconds:.2f} (target <= {TARGET:g}) {spread}", flush=True)


if __name__ == "__main__":
    main()
