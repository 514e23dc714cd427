"""Create the TM Forum Service Problem Management element (the customer branch with custom
attributes) against the simulators' standard TMF656 v4 API, with the Orbital Networks profile.

    python examples/tmf_service_problems.py

DataMiner tickets with the customer's attributes become service problems (characteristics and
extension attributes), a ServiceNow user's own problem is imported as a ticket, and a value the
profile does not allow is refused on its row while the rest goes on.
"""

from __future__ import annotations

import tempfile

from dmemu.dms import DataMinerSystem
from dmemu.elements.tm_forum_service_problems import ORBITAL_NETWORKS, TmForumServiceProblemManagement
from dmemu.protocol import BYPASS_PROXY, Connection, VirtualClock
from dmemu.simulators import InventorySpec, Simulators

LOGIN = ("dataminer", "tmf656")


def main() -> None:
    clock = VirtualClock()
    with Simulators(InventorySpec(services=50, carriers=5, resources=50), credentials={"tmf656": LOGIN}, now=clock.now) as sim, \
            tempfile.TemporaryDirectory() as state, DataMinerSystem(state, clock) as dms:  # fmt: skip
        element = dms.create_element(
            TmForumServiceProblemManagement, "Orbital Problems",
            connection=Connection(host="127.0.0.1", port=sim.port, bus_address=BYPASS_PROXY),
            parameters={"Username": LOGIN[0], "Password": LOGIN[1]},  # API Base Path: /tmf-api/serviceProblemManagement/v4
        )  # fmt: skip
        print(f"{element.name} for {ORBITAL_NETWORKS.customer}: custom attributes "
              + ", ".join(f"{a.field} ({a.kind}, {a.travels})" for a in ORBITAL_NETWORKS.attributes))
        ticket = dms.tickets.create(ORBITAL_NETWORKS.ticket_type, {
            "Description": "Rain fade on beam B7", "Priority": "3", "Site Category": "gold", "SLA Minutes": 240,
            "Beam": "B7", "Outage Start": "2026-01-01T00:00:30Z",
        })  # fmt: skip
        sim.problems.create({
            "category": "customer complaint", "priority": 4, "description": "Slow internet on vessel Aurora",
            "reason": "customer call", "originatorParty": {"id": "jane", "name": "jane.operator", "@referredType": "Individual"},
            "originatingSystem": "servicenow",
        })  # fmt: skip
        clock.advance(61)
        problem = sim.problems.get(dms.tickets.get(ticket.id).fields["Service Problem ID"])
        print(f"Created upstream: {problem['id']} @type {problem['@type']}, characteristic "
              f"{[(c['name'], c['value']) for c in problem['characteristic']]}, beamName {problem['beamName']}")
        print(f"Imported from ServiceNow: {element.get('Problems Imported')} ticket(s): "
              + "; ".join(t.fields["Description"] for t in dms.tickets.query(type=ORBITAL_NETWORKS.ticket_type) if t.id != ticket.id))
        sim.problems.patch(problem["id"], {"characteristic": [{"name": "siteCategory", "value": "platinum", "valueType": "string"}],
                                           "status": "inProgress"})  # fmt: skip
        clock.advance(61)
        now = dms.tickets.get(ticket.id)
        row = element.table("Managed Tickets").row(ticket.id)
        print(f"After ServiceNow set an unknown site category: the ticket is {now.state.value}, "
              f"Site Category still {now.fields['Site Category']!r}; its row says: {row['Last Error']}")


if __name__ == "__main__":
    main()
