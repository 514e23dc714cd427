"""The remote systems the connectors talk to: TMF638/639/656 (v4 and SES paths) and SES TMF642
on a loopback server, with a generated inventory and faults on demand, and the Telenet OSB
ticketing service (SOAP-style XML over HTTP). It imports nothing from
dmemu.protocol or dmemu.elements: it is the other side of the wire."""

from .activity import ProblemActivity
from .faults import Fault, FaultPlan, RequestRecord
from .inventory import Inventory
from .osb import OsbTicket, OsbTransaction, SoapFault
from .osb_server import OsbService
from .server import SES_PATHS, TMF_PATHS, Simulators
from .spec import InventorySpec
from .views import Collection

__all__ = [
    "SES_PATHS",
    "TMF_PATHS",
    "Collection",
    "Fault",
    "FaultPlan",
    "Inventory",
    "InventorySpec",
    "OsbService",
    "OsbTicket",
    "OsbTransaction",
    "ProblemActivity",
    "RequestRecord",
    "Simulators",
    "SoapFault",
]
