"""The Telenet SAM ticketing suite: Ticket Clients, the Ticket Gateway and the Topology Database,
which work together (REFERENCE §4). Alarm-started flows take hold of a free Ticket Client,
search through it, and send creates, updates and closes through the Gateway to the ticketing
service (OSB), one request at a time."""

from .flow import FlowSettings, TicketFlowError
from .suite import TelenetSuite, create_telenet_suite, flow_rule
from .ticket_client import TelenetTicketClient
from .ticket_gateway import TelenetTicketGateway
from .topology_database import TelenetTopologyDatabase

__all__ = [
    "FlowSettings",
    "TelenetSuite",
    "TelenetTicketClient",
    "TelenetTicketGateway",
    "TelenetTopologyDatabase",
    "TicketFlowError",
    "create_telenet_suite",
    "flow_rule",
]
