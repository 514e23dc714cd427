"""Create the Telenet SAM ticketing suite with three Ticket Clients against the OSB simulator,
raise alarms on routers, and print the pages the flows leave behind.

    python examples/telenet_ticketing.py [--routers N]

Each alarm starts a flow: it takes a free Ticket Client, searches the alarm's ticket through it,
and creates, updates or closes the ticket through the Ticket Gateway, all on a virtual clock.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from dmemu.dms import AlarmTemplate, DataMinerSystem, Severity, Thresholds
from dmemu.elements.telenet.flow import SCRIPT_NAME, TICKET_ID_PROPERTY
from dmemu.elements.telenet.suite import create_telenet_suite
from dmemu.pages import render_page
from dmemu.protocol import Number, Parameter, Protocol, VirtualClock
from dmemu.simulators import OsbService


class Router(Protocol):
    """A monitored network element: its signal loss alarms (Minor 10 %, Major 30 %, Critical 60 %)."""

    name = "Example Router"
    parameters = (Parameter(10, "Signal Loss", Number(0, 100, "%"), write=True, default=0),)


ROUTER_ALARMS = AlarmTemplate("Router", {"Signal Loss": Thresholds(high={Severity.MINOR: 10, Severity.MAJOR: 30, Severity.CRITICAL: 60})})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--routers", type=int, default=4)
    args = parser.parse_args()
    clock = VirtualClock()
    routers = [f"Router {n}" for n in range(1, args.routers + 1)]
    with OsbService(clock=clock.now) as osb, tempfile.TemporaryDirectory() as work, \
            DataMinerSystem(Path(work) / "state", clock) as dms:  # fmt: skip
        suite = create_telenet_suite(
            dms, Path(work) / "suite", service=("127.0.0.1", osb.port), clients=3, monitored=routers,
            topology={name: f"BRU-{n:02d}/slot {n}/port 1" for n, name in enumerate(routers, start=1)},
        )  # fmt: skip
        for name in routers:
            dms.alarms.assign_template(dms.create_element(Router, name), ROUTER_ALARMS)

        def settle(step: str) -> None:
            runs = [run for run in dms.automation.runs(SCRIPT_NAME) if not run.done]
            for run in runs:
                run.wait(timeout=600)
            outcomes = [f"{run.result['action']} {run.result.get('ticket_id') or ''}".strip() if run.result else run.error for run in runs]
            print(f"{step}: {len(runs)} flow{'' if len(runs) == 1 else 's'}: {', '.join(sorted(outcomes))}")

        for name in routers:
            dms.element(name).set("Signal Loss", 35)  # Major alarms: tickets created
        settle("Alarms opened")
        dms.element(routers[0]).set("Signal Loss", 80)  # Critical: its ticket updated
        settle("Severity changed")
        dms.element(routers[-1]).set("Signal Loss", 0)  # cleared: its ticket closed
        settle("Alarm cleared")

        print("Upstream tickets:")
        for ticket in osb.tickets():
            print(f"  {ticket.ticket_id}  {ticket.status:<6} {ticket.severity:<8} {ticket.network_element:<10} {ticket.path_details}")
        print("Alarms:")
        for alarm in sorted((*dms.alarms.active(), *dms.alarms.history()), key=lambda alarm: alarm.id):
            if alarm.element_name in routers:
                state = "active" if alarm.active else "cleared"
                print(f"  alarm {alarm.id} on {alarm.element_name}: {state}, {TICKET_ID_PROPERTY} {alarm.properties.get(TICKET_ID_PROPERTY)}")
        client = suite.clients[0]
        for page in ("Connection Details", "Communication", "Search Results"):
            print()
            print(render_page(client, page, width=140))


if __name__ == "__main__":
    main()
