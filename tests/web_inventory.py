"""The SES Inventory element the web face's API and browser tests serve, against the plugin's
simulators (the tests' module marks give those the credentials below)."""

from __future__ import annotations

from dmemu.dms import DataMinerSystem
from dmemu.elements.ses_inventory import SesInventoryManagement
from dmemu.protocol import BYPASS_PROXY, Connection, Element
from dmemu.simulators import Simulators
from dmemu.simulators.server import SES_BASE

CREDENTIALS = {"tmf638": ("svc-user", "svc-secret-638"), "tmf639": ("res-user", "res-secret-639")}


def create_inventory(dms: DataMinerSystem, simulators: Simulators) -> Element:
    return dms.create_element(
        SesInventoryManagement,
        "SES Inventory",
        connection=Connection(host="127.0.0.1", port=simulators.port, bus_address=BYPASS_PROXY),
        parameters={
            "TMF 638 Username": CREDENTIALS["tmf638"][0],
            "TMF 638 Password": CREDENTIALS["tmf638"][1],
            "TMF 639 Endpoint": f"{simulators.base_url}{SES_BASE}/tmf639",
            "TMF 639 Username": CREDENTIALS["tmf639"][0],
            "TMF 639 Password": CREDENTIALS["tmf639"][1],
        },
    )
