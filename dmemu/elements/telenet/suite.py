"""The whole Telenet SAM ticketing suite in a DataMiner System, in one call: for examples, tests
and benchmarks.

    suite = create_telenet_suite(dms, folder, service=("127.0.0.1", osb.port), clients=3,
                                 monitored=["Router 1", "Router 2"], topology={"Router 1": "BRU-01/3/2"})

creates, in this order (each finds the ones before it when it starts):

* a Generic Dynamic Heartbeat Receiver (with its Missing alarm);
* a Telenet Topology Database reading the provisioning folder ``folder/provisioning``, where
  `topology` (network element -> Ninas network path details) is written as a CSV file first;
* a Telenet Ticket Gateway talking to the ticketing service at `service`;
* `clients` Telenet Ticket Clients, each importing the services CSV written to
  ``folder/services.csv`` (one service, ``OSB``, at `service`) and selecting it;
* the automatic flow (`flow.ticket_flow_script`) registered as `flow.SCRIPT_NAME`, started by an
  alarm rule per monitored element (a name gives a rule for that element's alarms opening,
  changing severity and clearing; an `AlarmRule` is used as given). Every rule is checked on
  every alarm event: for many elements, one rule by protocol (`flow_rule(protocol=...)`) is
  cheaper than a name each.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from dmemu.dms import AlarmRule, DataMinerSystem
from dmemu.elements.heartbeat_receiver import HEARTBEAT_ALARMS, GenericDynamicHeartbeatReceiver
from dmemu.protocol import BYPASS_PROXY, Connection, Element

from .flow import FLOW_EVENT_KINDS, SCRIPT_NAME, FlowSettings, ticket_flow_script
from .service_info import ServiceInfo, write_service_csv
from .ticket_client import DEFAULT_PORT, TelenetTicketClient
from .ticket_gateway import TelenetTicketGateway
from .topology_database import ADDRESS_FIELD, PATH_DETAILS_FIELD, TelenetTopologyDatabase

SERVICE_NAME = "OSB"


@attrs.frozen
class TelenetSuite:
    """The elements of a suite and what stops its flows from starting (`stop_flows`)."""

    clients: tuple[Element, ...]
    gateway: Element
    topology: Element
    heartbeat_receiver: Element
    services_csv: Path
    script: str
    stop_flows: Callable[[], None]


def flow_rule(**criteria: Any) -> AlarmRule:
    """An alarm rule that starts the flow on the events it handles (opened, changed, cleared) of
    the alarms `criteria` pick (`AlarmRule`'s: element, protocol, parameter, min_severity)."""
    return AlarmRule(**criteria, kinds=FLOW_EVENT_KINDS)


def create_telenet_suite(
    dms: DataMinerSystem,
    folder: str | Path,
    *,
    service: tuple[str, int],
    clients: int = 3,
    monitored: Iterable[str | AlarmRule] = (),
    topology: Mapping[str, str] | None = None,
    flow_settings: FlowSettings | None = None,
    prefix: str = "Telenet",
    timeout: float = 10.0,
    client_parameters: Mapping[str, Any] | None = None,
    gateway_parameters: Mapping[str, Any] | None = None,
) -> TelenetSuite:
    """Create the suite (see the module's text); `timeout` is the clients' and the Gateway's
    connection timeout, `*_parameters` first values of their write parameters."""
    if clients < 1:
        raise ValueError(f"a suite needs at least one Ticket Client, not {clients!r}")
    folder = Path(folder)
    provisioning = folder / "provisioning"
    provisioning.mkdir(parents=True, exist_ok=True)
    if topology is not None:
        with (provisioning / "topology.csv").open("w", encoding="utf-8", newline="") as file:
            writer = csv.writer(file, lineterminator="\n")
            writer.writerow((ADDRESS_FIELD, PATH_DETAILS_FIELD))
            writer.writerows(topology.items())
    host, port = service
    services_csv = folder / "services.csv"
    write_service_csv(services_csv, [ServiceInfo(SERVICE_NAME, host, port, description="Telenet ticketing service (OSB)")])

    receiver = dms.create_element(GenericDynamicHeartbeatReceiver, f"{prefix} Heartbeat Receiver")
    dms.alarms.assign_template(receiver, HEARTBEAT_ALARMS)
    topology_database = dms.create_element(
        TelenetTopologyDatabase, f"{prefix} Topology Database", parameters={"Provisioning Folder": str(provisioning)}
    )
    gateway = dms.create_element(
        TelenetTicketGateway, f"{prefix} Ticket Gateway",
        connection=Connection(host=host, port=port, bus_address=BYPASS_PROXY, timeout=timeout), parameters=gateway_parameters,
    )  # fmt: skip
    created = []
    for number in range(1, clients + 1):
        client = dms.create_element(
            TelenetTicketClient, f"{prefix} Ticket Client {number}",
            connection=Connection(host="127.0.0.1", port=DEFAULT_PORT, timeout=timeout),  # placeholders: the service's address is used
            parameters={
                "CSV File Path": str(services_csv), "Ticket Gateway Element": gateway.name,
                "Topology Database Element": topology_database.name, "Heartbeat Receiver Element": receiver.name,
                **(client_parameters or {}),
            },
        )  # fmt: skip
        client.set("Import CSV", 1, raise_on_failure=True)
        client.set("Service Selection", SERVICE_NAME, raise_on_failure=True)
        created.append(client)

    settings = flow_settings or FlowSettings()
    if settings.clients is None:
        settings = attrs.evolve(settings, clients=tuple(client.name for client in created))
    dms.automation.register(SCRIPT_NAME, ticket_flow_script(settings), replace=True)
    removers = [
        dms.automation.on_alarm(rule if isinstance(rule, AlarmRule) else flow_rule(element=rule), SCRIPT_NAME)
        for rule in monitored
    ]

    def stop_flows() -> None:
        for remove in removers:
            remove()

    return TelenetSuite(tuple(created), gateway, topology_database, receiver, services_csv, SCRIPT_NAME, stop_flows)


__all__ = ["SERVICE_NAME", "TelenetSuite", "create_telenet_suite", "flow_rule"]
