"""Create the SES Service Problem Management element against the simulators and follow tickets
both ways between DataMiner Ticketing and the SES (ServiceNow) TMF656 API.

    python examples/ses_service_problems.py [--tickets N]

DataMiner tickets become service problems (with ServiceNow incident numbers), an operator
works them upstream, DataMiner resolves one: each side follows the other on a virtual clock.
"""

from __future__ import annotations

import argparse
import tempfile

from dmemu.dms import DataMinerSystem
from dmemu.elements.ses_service_problems import SesServiceProblemManagement
from dmemu.protocol import BYPASS_PROXY, Connection, VirtualClock
from dmemu.simulators import InventorySpec, Simulators

LOGIN = ("dataminer", "sn0w")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=3)
    args = parser.parse_args()
    clock = VirtualClock()
    with Simulators(InventorySpec(services=50, carriers=5, resources=50), credentials={"tmf656": LOGIN}, now=clock.now) as sim, \
            tempfile.TemporaryDirectory() as state, DataMinerSystem(state, clock) as dms:  # fmt: skip
        element = dms.create_element(
            SesServiceProblemManagement, "SES Service Problems",
            connection=Connection(host="127.0.0.1", port=sim.port, bus_address=BYPASS_PROXY),
            parameters={"Username": LOGIN[0], "Password": LOGIN[1]},  # API Base Path: SES's by default
        )  # fmt: skip
        tickets = [
            dms.tickets.create("SES Service Problem", {"Description": f"Carrier {n} unlocked at teleport Betzdorf", "Priority": "2",
                                                       "Affected Service": f"SVC-{n:04d}"})
            for n in range(1, args.tickets + 1)
        ]  # fmt: skip
        clock.advance(61)  # one synchronisation cycle
        print(f"{element.name}: {element.get('Synchronization Status')}, {element.get('Tickets Created Upstream')} created upstream")
        for row in element.table("Managed Tickets").rows():
            print(f"  {row['Service Problem ID']}  {row['Incident Number']}  {row['Upstream Status']:<12} {row['Ticket Info']}")
        first = element.table("Managed Tickets").row(tickets[0].id)["Service Problem ID"]
        sim.problems.patch(first, {"status": "inProgress", "priority": 1,
                                   "note": [{"author": "jane.operator", "date": "2026-01-01T00:02:00Z", "text": "crew dispatched"}]})
        dms.tickets.update(tickets[-1].id, state="Resolved")  # the alarm cleared
        clock.advance(61)
        print("After an operator took the first problem and DataMiner resolved the last ticket:")
        for ticket in tickets:
            now = dms.tickets.get(ticket.id)
            problem = sim.problems.get(now.fields["Service Problem ID"])
            print(f"  {now.fields['Incident Number']}: DataMiner {now.state.value:<11} priority {now.fields['Priority']:>2}"
                  f" | upstream {problem['status']:<12} priority {problem['priority']}")
        print(f"Upstream problems: {len(sim.problems)}")


if __name__ == "__main__":
    main()
