"""A tiny protocol: every minute, GET /items from the device and fill the Items table."""

from dmemu.protocol import Column, HttpConnection, Number, Page, Parameter, Protocol, QAction, Table, Timer


def poll_items(protocol):
    """QAction 100: one GET, then the table becomes exactly what the device answered."""
    response = protocol.http.get("/items")
    protocol.set_parameter("Last HTTP Status", response.status_code)
    if response.status_code != 200:
        protocol.log(f"GET /items answered {response.status_code}; table kept")
        return
    items = response.json()
    protocol.fill_array("Items", [[item["id"], item["name"], item["value"]] for item in items])
    protocol.set_parameter("Item Count", len(items))


class TinyPoller(Protocol):
    name = "Tiny Poller"
    connection = HttpConnection(default_port=80)
    pages = (Page("General"),)
    parameters = (
        Parameter(10, "Item Count", type=Number(0, 1_000_000), default=0, page="General"),
        Parameter(11, "Last HTTP Status", type=Number(0, 599), page="General"),
    )
    tables = (
        Table(1000, "Items", save=True, page="General", columns=(
            Column(1001, "ID", key=True), Column(1002, "Name"), Column(1003, "Value", type=Number()),
        )),
    )
    timers = (Timer(1, seconds=60, qactions=(100,)),)
    qactions = (QAction(100, poll_items),)
