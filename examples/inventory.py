"""Create the SES Inventory Management element against the simulators, build its cache, print it.

    python examples/inventory.py [--services N] [--carriers N] [--resources N]

The simulators serve a generated inventory on 127.0.0.1 behind basic authentication; the
element reads it page by page on a virtual clock, then a simulated day passes with some items
changing, and the hourly updates pick the changes up.
"""

from __future__ import annotations

import argparse
import tempfile

from dmemu.dms import DataMinerSystem
from dmemu.elements.ses_inventory import SesInventoryManagement
from dmemu.protocol import BYPASS_PROXY, Connection, VirtualClock
from dmemu.simulators import InventorySpec, Simulators
from dmemu.simulators.server import SES_BASE

CREDENTIALS = {"tmf638": ("inventory", "s3rvices"), "tmf639": ("inventory", "r3sources")}
SHOWN_ROWS = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=2000)
    parser.add_argument("--carriers", type=int, default=400)
    parser.add_argument("--resources", type=int, default=1500)
    args = parser.parse_args()
    spec = InventorySpec(services=args.services, carriers=args.carriers, resources=args.resources, churn_per_day=0.02)
    clock = VirtualClock(spec.start)
    with Simulators(spec, now=clock.now, credentials=CREDENTIALS) as sim, tempfile.TemporaryDirectory() as state:
        with DataMinerSystem(state, clock) as dms:
            port = int(sim.base_url.rsplit(":", 1)[1])
            element = dms.create_element(
                SesInventoryManagement,
                "SES Inventory",
                connection=Connection(host="127.0.0.1", port=port, bus_address=BYPASS_PROXY),
                parameters={
                    "TMF 638 Username": CREDENTIALS["tmf638"][0],
                    "TMF 638 Password": CREDENTIALS["tmf638"][1],
                    "TMF 639 Endpoint": f"{sim.base_url}{SES_BASE}/tmf639",
                    "TMF 639 Username": CREDENTIALS["tmf639"][0],
                    "TMF 639 Password": CREDENTIALS["tmf639"][1],
                },
            )  # starts: the initial cache buildup runs now
            print(f"{element.name}: cache built at {element.display('Last Completed Buildup')}")
            for row in element.table("Cache Progress").rows():
                print(f"  {row['Type']:<10} {row['Rows Kept']:>6} rows from {row['Items Listed']:>6} items in {row['Pages Read']:>4} pages: {row['Result']}")
            for name in ("Services", "Carriers", "Resources"):
                table = element.table(name)
                print(f"{name}: {len(table)} rows")
                for key in table.keys()[:SHOWN_ROWS]:
                    row = table.row(key)
                    print(f"  {key}  {row['Name']}  [{row['Status']}]")
            changes_before = len(sim.requests())
            clock.advance(24 * 3600)  # a day of hourly updates
            updates = [r for r in sim.requests()[changes_before:] if "updatedDaysAgo" in r.path]
            print(f"After a day: {len(updates)} update requests, last cycle {element.display('Last Cache Cycle')}, "
                  f"{len(element.table('Services'))} services")


if __name__ == "__main__":
    main()
