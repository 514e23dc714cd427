"""Create the Tiny Poller in a DataMiner System, let it poll a local device, print its table.

    python examples/run_tiny_poller.py
"""

import json
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tiny_poller import TinyPoller  # noqa: E402

from dmemu.dms import DataMinerSystem
from dmemu.protocol import BYPASS_PROXY, Connection, VirtualClock  # noqa: E402

ITEMS = [{"id": f"item-{n}", "name": f"Item {n}", "value": n * 1.5} for n in range(1, 6)]


class Device(BaseHTTPRequestHandler):
    """A stand-in device answering GET /items."""

    def do_GET(self):
        body = json.dumps(ITEMS).encode()
        self.send_response(200 if self.path == "/items" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@contextmanager
def running_device() -> Iterator[int]:
    """The stand-in device on a free port of 127.0.0.1; gives the port."""
    device = ThreadingHTTPServer(("127.0.0.1", 0), Device)
    threading.Thread(target=device.serve_forever, daemon=True).start()
    try:
        yield device.server_address[1]
    finally:
        device.shutdown()
        device.server_close()


def main() -> None:
    clock = VirtualClock()
    with running_device() as port, tempfile.TemporaryDirectory() as state, DataMinerSystem(state, clock) as dms:
        connection = Connection(host="127.0.0.1", port=port, bus_address=BYPASS_PROXY)
        element = dms.create_element(TinyPoller, "Tiny Poller 1", connection=connection)
        clock.advance(120)  # two more polls, on virtual time
        items = element.table("Items")
        print(f"{element.name}: {element.get('Item Count')} items, last HTTP status {element.get('Last HTTP Status')}")
        for row in items.rows():
            print(f"  {row['ID']:<8} {row['Name']:<8} {row['Value']:>6}")


if __name__ == "__main__":
    main()
