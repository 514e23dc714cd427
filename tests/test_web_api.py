"""The REST API of a running DMS (`dmemu.web`), against the real server on 127.0.0.1 with requests."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from starlette.datastructures import QueryParams
from web_inventory import CREDENTIALS, create_inventory

from dmemu.dms import AlarmTemplate, DataMinerSystem, DiscreteSeverities, Severity, Thresholds, TicketField, TicketType
from dmemu.elements.ses_inventory import SesInventoryManagement
from dmemu.pages import pages_of
from dmemu.protocol import (
    Button,
    Column,
    Discrete,
    DisplayKey,
    Element,
    InvalidValueError,
    Number,
    Page,
    PageButton,
    Parameter,
    Protocol,
    QAction,
    String,
    Table,
    VirtualClock,
)
from dmemu.simulators import InventorySpec, Simulators
from dmemu.web import ROUTES, WebServer, WebServerError
from dmemu.web.events import timer_wait
from dmemu.web.tables import INLINE_LIMIT, is_window

pytestmark = pytest.mark.dmemu_simulators(spec=InventorySpec(services=120, carriers=20, resources=60, seed=5), credentials=CREDENTIALS)

ROWS = 20_000
MODES = {0: "Idle", 1: "Busy", 2: "Broken"}


def fill_items(protocol: Any) -> None:
    count = protocol.get_parameter("Row Count")
    protocol.fill_array(
        "Items",
        [[f"item-{n:05d}", f"Item {n}", (n * 7919) % 1000 + n / 100_000, n % 3, f"pw-{n}"] for n in range(count)],
    )


class Lab(Protocol):
    """A small protocol with a large table, a sub-page, a secret and an alarmed number."""

    name = "Web Lab"
    pages = (Page("General"), Page("Details", parent="General"), Page("Items", order=1))
    parameters = (
        Parameter(10, "Level", type=Number(0, 100, "%"), write=True, default=0, page="General"),
        Parameter(11, "Mode", type=Discrete(MODES), write=True, default=0, page="General"),
        Parameter(12, "Password", type=String(secret=True), write=True, default="", page="Details"),
        Parameter(13, "Status", type=String(), default="fine", page="General"),
        Parameter(14, "Open Details", type=PageButton("Details"), page="General"),
        Parameter(20, "Row Count", type=Number(0, 1_000_000), write=True, default=0, page="Items"),
        Parameter(21, "Fill", type=Button("Fill"), write=True, page="Items"),
    )
    tables = (
        Table(1000, "Items", page="Items", display_key=DisplayKey(("Name", "ID")), columns=(
            Column(1001, "ID", key=True), Column(1002, "Name"), Column(1003, "Value", type=Number(decimals=2)),
            Column(1004, "Mode", type=Discrete(MODES), write=True), Column(1005, "Secret", type=String(secret=True)),
        )),
    )  # fmt: skip
    qactions = (QAction(100, fill_items, triggers=(21,)),)


class Api:
    """requests against one server, with its token unless told otherwise."""

    def __init__(self, server: WebServer) -> None:
        self.server = server
        self.http = requests.Session()
        self.http.trust_env = False  # loopback only, whatever the environment's proxies
        self.http.headers["Authorization"] = f"Bearer {server.token}"

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.http.get(self.server.url + path, params=params, timeout=60)

    def put(self, path: str, value: Any) -> requests.Response:
        return self.http.put(self.server.url + path, json={"value": value}, timeout=60)

    def post(self, path: str, body: Any = None) -> requests.Response:
        return self.http.post(self.server.url + path, json=body, timeout=60)

    def delete(self, path: str) -> requests.Response:
        return self.http.delete(self.server.url + path, timeout=60)


def error_of(response: requests.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return response.json()["error"]


@pytest.fixture
def inventory(dms: DataMinerSystem, simulators: Simulators) -> Element:
    return create_inventory(dms, simulators)


@pytest.fixture
def lab(dms: DataMinerSystem) -> Element:
    element = dms.create_element(Lab, "Lab 1")
    element.set("Row Count", ROWS)
    element.set("Fill", 1)
    return element


@pytest.fixture
def server(dms: DataMinerSystem, simulators: Simulators, inventory: Element, lab: Element) -> Iterator[WebServer]:
    with dms.serve(simulators=simulators) as running:
        yield running


@pytest.fixture
def api(server: WebServer) -> Iterator[Api]:
    client = Api(server)
    yield client
    client.http.close()


# -- the DMS and its elements -------------------------------------------------------------------


def test_the_system_and_its_elements_by_ids_or_name_with_search(api: Api, inventory: Element, lab: Element) -> None:
    system = api.get("/api/system").json()
    assert system["element_count"] == 2 and system["clock"] == "virtual" and system["simulators"] is True
    listed = api.get("/api/elements").json()
    assert [(e["ref"], e["name"], e["protocol"], e["state"]) for e in listed["elements"]] == [
        ("1/1", "SES Inventory", "SES Inventory Management", "Active"),
        ("1/2", "Lab 1", "Web Lab", "Active"),
    ]
    assert [e["name"] for e in api.get("/api/elements", search="lab").json()["elements"]] == ["Lab 1"]
    assert [e["name"] for e in api.get("/api/elements", search="1/1").json()["elements"]] == ["SES Inventory"]
    assert api.get("/api/elements", state="Stopped").json()["count"] == 0
    by_ids, by_name = api.get("/api/elements/1/2").json(), api.get("/api/elements/Lab 1").json()
    assert by_ids == by_name and by_ids["ref"] == "1/2"
    assert [page["name"] for page in by_ids["pages"]] == ["General", "Details", "Items"]


def test_an_unknown_element_is_a_404_naming_the_elements_there_are(api: Api) -> None:
    for path in ("/api/elements/9/9", "/api/elements/Nobody/pages", "/api/elements/Nobody/parameters/1", "/api/elements/4/4/tables/1"):
        error = error_of(api.get(path), 404)
        assert error["field"] == "element" and "'Lab 1' (1/2)" in error["reason"], path
    assert error_of(api.put("/api/elements/Nobody/parameters/10", 1), 404)["field"] == "element"
    assert error_of(api.post("/api/elements/Nobody/stop"), 404)["field"] == "element"
    assert error_of(api.get("/api/alarms", element="Nobody"), 404)["field"] == "element"
    assert error_of(api.get("/api/nothing/here"), 404)["field"] == "path"


def test_state_commands(api: Api, lab: Element) -> None:
    assert api.post("/api/elements/1/2/pause").json()["state"] == "Paused"
    assert lab.state.value == "Paused"
    assert api.post("/api/elements/Lab 1/start").json()["state"] == "Active"
    assert api.post("/api/elements/1/2/stop").json()["state"] == "Stopped"
    error = error_of(api.put("/api/elements/1/2/parameters/Level", 5), 409)  # a stopped element takes no sets
    assert error["field"] == "Level" and "Stopped" in error["reason"]
    assert api.post("/api/elements/1/2/restart").json()["state"] == "Active"
    assert error_of(api.get("/api/elements/1/2/stop"), 404)["field"] == "element"  # GET is no command


# -- pages and parameters -----------------------------------------------------------------------


def test_pages_in_protocol_order_with_display_values_and_units(api: Api, inventory: Element) -> None:
    answer = api.get("/api/elements/SES Inventory/pages").json()
    assert [page["name"] for page in answer["pages"]] == [page.name for page in pages_of(SesInventoryManagement)]
    configuration = {p["name"]: p for p in api.get("/api/elements/1/1/pages/Configuration").json()["parameters"]}
    frequency = configuration["Cache Update Frequency"]
    assert (frequency["id"], frequency["value"], frequency["display"], frequency["units"], frequency["write"]) == (106, 3600, "3600 s", "s", True)
    assert frequency["type"]["minimum"] == 3600 and frequency["type"]["allowed"] == "a number from 3600 to 432000 s"
    active_only = configuration["Active Items Only"]
    assert active_only["display"] == "Enabled" and {"value": 0, "display": "Disabled"} in active_only["type"]["options"]
    general = api.get("/api/elements/1/1/pages/General").json()
    assert general["parameters"][0]["name"] == "Cache Phase" and general["parameters"][0]["write"] is False
    progress = next(table for table in general["tables"] if table["name"] == "Cache Progress")
    assert progress["row_count"] == 3 and progress["columns"][0] == {
        "id": 301, "name": "Type", "key": True, "write": False, "type": {"kind": "string", "max_length": None, "allowed": "a string"},
    }  # fmt: skip
    services = api.get("/api/elements/1/1/tables/Services", limit=1).json()
    assert services["display_key"] == {"columns": ["Name"], "separator": " - "}


def test_sub_pages_and_page_buttons(api: Api) -> None:
    general = api.get("/api/elements/1/2/pages/General").json()
    assert general["sub_pages"] == ["Details"]
    button = next(p for p in general["parameters"] if p["name"] == "Open Details")
    assert button["type"] == {"kind": "page_button", "page": "Details", "label": "Details", "allowed": "nothing: a page button only opens a page"}
    details = api.get("/api/elements/1/2/pages/Details").json()
    assert (details["parent"], details["depth"]) == ("General", 1)
    assert error_of(api.get("/api/elements/1/2/pages/Nowhere"), 404)["field"] == "page"


def test_secrets_are_never_sent(api: Api, inventory: Element, lab: Element) -> None:
    assert api.put("/api/elements/1/2/parameters/Password", "lab-password-1").json()["value"] == "********"
    lab.set("Level", 10)
    bodies = [
        api.get(path).text
        for path in (
            "/api/elements/1/1/pages", "/api/elements/1/1/parameters", "/api/elements/1/1/parameters/TMF 638 Password",
            "/api/elements/1/2/pages", "/api/elements/1/2/parameters", "/api/elements/1/2/tables/Items?limit=10000",
            "/api/elements/1/2/tables/Items?sort=Secret&limit=50", "/api/elements/1/2/tables/Items/rows/item-00042",
            "/api/elements/1/1/tables/API Status",
        )
    ]  # fmt: skip
    secrets = [CREDENTIALS["tmf638"][1], CREDENTIALS["tmf639"][1], "lab-password-1", "pw-42", "pw-1"]
    for body in bodies:
        assert not [secret for secret in secrets if secret in body]
    password = api.get("/api/elements/1/1/parameters/102").json()
    assert (password["value"], password["display"], password["secret"]) == ("********", "********", True)
    # Filtering on a password column matches its mask only: its values cannot be guessed through it.
    assert api.get("/api/elements/1/2/tables/Items", filter="Secret~pw-4").json()["matched"] == 0
    assert api.get("/api/elements/1/2/tables/Items", filter="Secret=pw-42").json()["matched"] == 0


def test_an_alarm_on_a_password_sends_its_mask_in_answers_and_events(api: Api, dms: DataMinerSystem, lab: Element) -> None:
    dms.alarms.assign_template(lab, AlarmTemplate("Lab", {"Password": DiscreteSeverities({"": Severity.MAJOR})}))
    events = EventStream(api, types="alarm")
    try:
        lab.set("Password", "alarm-secret-1")  # clears the alarm of the empty password: a record with the secret
        lab.set("Password", "")
        lab.set("Password", "alarm-secret-2")
        cleared = events.until("alarm", lambda data: data["kind"] == "cleared")
        cleared += events.until("alarm", lambda data: data["kind"] == "cleared")  # the second, of alarm-secret-2
        sent = [json.dumps(data) for data in cleared]
    finally:
        events.close()
    bodies = [api.get("/api/alarms").text, api.get("/api/alarms/history").text, *sent]
    assert not [body for body in bodies if "alarm-secret" in body]
    record = api.get("/api/alarms/history").json()["alarms"][0]["records"][-1]
    assert (record["value"], record["display"]) == ("********", "********")


class KeyedAccounts(Protocol):
    """A table whose display key includes a password column."""

    name = "Keyed Accounts"
    pages = (Page("General"),)
    parameters = (Parameter(20, "Fill", type=Button(), write=True, page="General"),)
    tables = (
        Table(2000, "Accounts", page="General", display_key=DisplayKey(("User", "Pass")), columns=(
            Column(2001, "ID", key=True), Column(2002, "User"), Column(2003, "Pass", type=String(secret=True)),
        )),
    )  # fmt: skip
    qactions = (QAction(200, lambda protocol: protocol.fill_array("Accounts", [["1", "alice", "alice-pw-123"]]), triggers=(20,)),)


def test_a_display_key_with_a_password_column_shows_its_mask(api: Api, dms: DataMinerSystem) -> None:
    dms.create_element(KeyedAccounts, "Keyed").set("Fill", 1)
    rows = api.get("/api/elements/Keyed/tables/Accounts").json()["rows"]
    row = api.get("/api/elements/Keyed/tables/Accounts/rows/1").json()
    assert [rows[0]["display_key"], row["display_key"]] == ["alice - ********"] * 2


def test_parameters_get_and_set_by_id_or_name(api: Api, inventory: Element) -> None:
    assert api.get("/api/elements/1/1/parameters/106").json() == api.get("/api/elements/1/1/parameters/Cache Update Frequency").json()
    answer = api.put("/api/elements/SES Inventory/parameters/Cache Update Frequency", 7200)
    assert answer.status_code == 200 and answer.json()["display"] == "7200 s"
    assert inventory.get("Cache Update Frequency") == 7200
    assert api.put("/api/elements/1/1/parameters/108", "Disabled").json()["value"] == 0  # a discrete by its name
    names = [p["name"] for p in api.get("/api/elements/1/1/parameters").json()["parameters"]]
    assert names == [p.name for p in SesInventoryManagement.parameters]


def test_a_refused_value_names_the_field_and_the_engines_message_and_changes_nothing(api: Api, inventory: Element) -> None:
    with pytest.raises(InvalidValueError) as engine:
        inventory.set("Cache Update Frequency", 60)
    error = error_of(api.put("/api/elements/1/1/parameters/Cache Update Frequency", 60), 422)
    assert error == {"field": "Cache Update Frequency", "reason": str(engine.value)}
    assert error_of(api.put("/api/elements/1/1/parameters/106", "soon"), 422)["reason"].startswith("parameter 106 'Cache Update Frequency': 'soon' is a str")
    assert error_of(api.put("/api/elements/1/1/parameters/108", "Sometimes"), 422)["field"] == "Active Items Only"
    assert inventory.get("Cache Update Frequency") == 3600 and inventory.get("Active Items Only") == 1
    read_only = error_of(api.put("/api/elements/1/1/parameters/Cache Phase", 1), 403)
    assert read_only["field"] == "Cache Phase" and "read parameter" in read_only["reason"]
    assert error_of(api.put("/api/elements/1/1/parameters/Nothing", 1), 404)["field"] == "parameter"
    assert error_of(api.get("/api/elements/1/1/parameters/Services"), 404)["reason"].endswith("is a table: see /tables/1000")
    missing = error_of(api.http.put(api.server.url + "/api/elements/1/1/parameters/106", json={"val": 1}), 400)
    assert missing["field"] == "value"
    not_json = api.http.put(api.server.url + "/api/elements/1/1/parameters/106", data="{", headers={"Content-Type": "application/json"})
    assert error_of(not_json, 400)["field"] == "body"


def test_buttons_are_pressed(api: Api, inventory: Element, simulators: Simulators) -> None:
    before = len(simulators.requests("tmf638"))
    answer = api.post("/api/elements/1/1/buttons/Refresh Cache")
    assert answer.status_code == 200 and answer.json()["display"] == "[Refresh]"
    assert len(simulators.requests("tmf638")) > before  # its QAction ran: the cache was read again
    assert error_of(api.post("/api/elements/1/1/buttons/Cache Update Frequency"), 422)["field"] == "Cache Update Frequency"


# -- tables ----------------------------------------------------------------------------------


def expected_rows() -> list[list[Any]]:
    return [[f"item-{n:05d}", f"Item {n}", (n * 7919) % 1000 + n / 100_000, n % 3, "********"] for n in range(ROWS)]


def test_a_large_table_is_paged_with_its_row_count(api: Api) -> None:
    page = api.get("/api/elements/1/2/tables/Items", offset=300, limit=50).json()
    assert (page["row_count"], page["matched"], page["offset"], page["limit"]) == (ROWS, ROWS, 300, 50)
    assert [row["cells"] for row in page["rows"]] == expected_rows()[300:350]
    first = page["rows"][0]
    assert first["key"] == "item-00300" and first["display_key"] == "Item 300 - item-00300"
    assert first["display"] == ["item-00300", "Item 300", f"{(300 * 7919) % 1000 + 0.003:.2f}", MODES[0], "********"]
    assert len(api.get("/api/elements/1/2/tables/1000").json()["rows"]) == 100  # by id, 100 rows by default
    assert api.get("/api/elements/1/2/tables/Items", offset=ROWS + 5).json()["rows"] == []
    for query, field in (({"limit": 0}, "limit"), ({"limit": 10_001}, "limit"), ({"offset": -1}, "offset"), ({"offset": "x"}, "offset"),
                         ({"offset": sys.maxsize + 1}, "offset"), ({"offset": sys.maxsize + 1, "search": "x"}, "offset")):
        assert error_of(api.get("/api/elements/1/2/tables/Items", **query), 400)["field"] == field
    assert error_of(api.get("/api/elements/1/2/tables/Nothing"), 404)["field"] == "table"


def test_a_large_table_sorts_by_any_column(api: Api) -> None:
    rows = expected_rows()
    by_value = api.get("/api/elements/1/2/tables/Items", sort="-Value", limit=20).json()
    assert by_value["sort"] == "Value" and by_value["descending"] is True
    assert [row["cells"] for row in by_value["rows"]] == sorted(rows, key=lambda row: row[2], reverse=True)[:20]
    by_name = api.get("/api/elements/1/2/tables/Items", sort="1002", order="asc", offset=100, limit=20).json()
    assert [row["key"] for row in by_name["rows"]] == [row[0] for row in sorted(rows, key=lambda row: row[1].casefold())][100:120]
    # A discrete sorts by the name shown: Broken (2), Busy (1), Idle (0).
    by_mode = api.get("/api/elements/1/2/tables/Items", sort="Mode", offset=6000, limit=10_000).json()
    modes = sorted((row[3] for row in rows), key=MODES.__getitem__)
    assert [row["cells"][3] for row in by_mode["rows"]] == modes[6000:16_000] and modes[6000] == 2 and modes[15_999] == 0
    # A password column keeps the table's order: its values cannot be read from the order.
    by_secret = api.get("/api/elements/1/2/tables/Items", sort="-Secret", limit=5).json()
    assert [row["key"] for row in by_secret["rows"]] == [row[0] for row in rows[:5]]
    assert error_of(api.get("/api/elements/1/2/tables/Items", sort="Colour"), 400)["field"] == "sort"
    assert error_of(api.get("/api/elements/1/2/tables/Items", sort="Name", order="up"), 400)["field"] == "order"


def test_a_large_table_filters(api: Api) -> None:
    rows = expected_rows()
    contains = api.get("/api/elements/1/2/tables/Items", filter="Name~ITEM 19", limit=10_000).json()
    assert contains["row_count"] == ROWS and [row["key"] for row in contains["rows"]] == [r[0] for r in rows if "item 19" in r[1].lower()]
    both = api.get("/api/elements/1/2/tables/Items", filter=["Mode=Busy", "Value>=990"], sort="Value", limit=10_000).json()
    wanted = sorted((r for r in rows if r[3] == 1 and r[2] >= 990), key=lambda r: r[2])
    assert both["matched"] == len(wanted) and [row["key"] for row in both["rows"]] == [r[0] for r in wanted]
    assert api.get("/api/elements/1/2/tables/Items", filter="Mode=1").json()["matched"] == len([r for r in rows if r[3] == 1])
    assert api.get("/api/elements/1/2/tables/Items", filter="4!=Idle").json()["matched"] == len([r for r in rows if r[3] != 0])
    searched = api.get("/api/elements/1/2/tables/Items", search="item 1234", limit=10_000).json()
    assert [row["key"] for row in searched["rows"]] == [r[0] for r in rows if "item 1234" in r[1].lower()]
    assert error_of(api.get("/api/elements/1/2/tables/Items", filter="Value"), 400)["field"] == "filter"
    assert error_of(api.get("/api/elements/1/2/tables/Items", filter="Value>high"), 400)["field"] == "filter"
    assert error_of(api.get("/api/elements/1/2/tables/Items", filter="Colour=red"), 400)["field"] == "filter"


def test_pages_kept_between_requests_follow_the_table(api: Api, lab: Element) -> None:
    """An unchanged table's pages come from rows kept between requests (in each order asked), with
    each row's JSON made once; a change shows at once, in every order, and so does a stop."""
    path = "/api/elements/1/2/tables/Items"
    idle = len([row for row in expected_rows() if row[3] == 0])
    for _ in range(3):  # kept from the second look on
        assert api.get(path, offset=2, limit=1).json()["rows"][0]["display"][3] == "Broken"
        assert api.get(path, sort="Mode", limit=1).json()["rows"][0]["key"] == "item-00002"  # Broken first
        assert api.get(path, filter="Mode=Idle").json()["matched"] == idle
    lab.set_cell("Items", "item-00002", "Mode", 0)
    assert api.get(path, offset=2, limit=1).json()["rows"][0]["display"][3] == "Idle"
    assert api.get(path, sort="Mode", limit=1).json()["rows"][0]["key"] == "item-00005"
    assert api.get(path, filter="Mode=Idle").json()["matched"] == idle + 1
    lab.stop()  # the table is not saved: the stop empties it
    assert api.get(path, offset=2, limit=1).json()["rows"] == [] and api.get(path, sort="Mode").json()["row_count"] == 0


def test_pages_past_the_rows_json_kept_start_it_afresh(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dmemu.web.tables.MAX_ROW_TEXTS", 150)
    for offset in (0, 50, 100, 0):  # the third page has 50 rows kept and 50 too many: the kept ones go
        page = api.get("/api/elements/1/2/tables/Items", offset=offset, limit=100)
        assert [row["cells"] for row in page.json()["rows"]] == expected_rows()[offset : offset + 100], page.text


def test_a_send_waits_whole_milliseconds_rounded_down_as_the_loops_timer_counts() -> None:
    # The timer rounds a wait up to whole milliseconds: asked for 1.5 ms it waits 2.
    assert [timer_wait(seconds) for seconds in (0.0025, 0.002, 0.0015, 0.0009, 0.0, -0.001)] == [0.002, 0.002, 0.001, 0, 0, 0]


def test_plain_pages_of_a_few_rows_are_answered_on_the_event_loop() -> None:
    assert is_window(QueryParams("offset=50000&limit=100")) and is_window(QueryParams(f"limit={INLINE_LIMIT}"))
    for query in ("sort=Name", "filter=Mode%3D1", "search=item", f"limit={INLINE_LIMIT + 1}"):
        assert not is_window(QueryParams(query)), query  # a worker thread's: it may take long


def test_one_row_in_full_and_a_cell_set(api: Api, lab: Element) -> None:
    row = api.get("/api/elements/1/2/tables/Items/rows/item-00007").json()
    assert row["display_key"] == "Item 7 - item-00007"
    assert [(cell["name"], cell["display"]) for cell in row["cells"]] == [
        ("ID", "item-00007"), ("Name", "Item 7"), ("Value", f"{(7 * 7919) % 1000 + 0.00007:.2f}"), ("Mode", "Busy"), ("Secret", "********"),
    ]  # fmt: skip
    assert error_of(api.get("/api/elements/1/2/tables/Items/rows/item-99999"), 404)["field"] == "key"
    changed = api.put("/api/elements/1/2/tables/Items/cells/Mode/item-00007", "Broken").json()
    assert changed["cells"][3]["value"] == 2 and lab.table("Items").cell("item-00007", "Mode") == 2
    assert error_of(api.put("/api/elements/1/2/tables/Items/cells/Mode/item-00007", "Gone"), 422)["field"] == "Mode"
    assert error_of(api.put("/api/elements/1/2/tables/Items/cells/Name/item-00007", "x"), 403)["field"] == "Name"


# -- alarms, tickets, automation ---------------------------------------------------------------


def test_alarms_active_and_history_filtered_with_properties(api: Api, dms: DataMinerSystem, lab: Element) -> None:
    dms.alarms.assign_template(lab, AlarmTemplate("Lab", {"Level": Thresholds(high={Severity.MINOR: 50, Severity.CRITICAL: 90})}))
    api.put("/api/elements/1/2/parameters/Level", 60)
    active = api.get("/api/alarms", element="Lab 1").json()
    assert active["count"] == 1
    alarm = active["alarms"][0]
    assert (alarm["element"], alarm["parameter_name"], alarm["severity"], alarm["value"], alarm["active"]) == ("1/2", "Level", "Minor", 60, True)
    assert alarm["display"] == "60 %"  # the value as the element's page shows it
    assert api.get("/api/alarms", severity="Major").json()["count"] == 0
    dms.alarms.set_property(alarm["id"], "Ticket ID", "INC0001234")  # as a connector keeps its ticket id
    assert api.get(f"/api/alarms/{alarm['id']}").json()["properties"] == {"Ticket ID": "INC0001234"}
    api.put("/api/elements/1/2/parameters/Level", 95)
    assert api.get("/api/alarms", element="1/2", severity="critical").json()["alarms"][0]["severity"] == "Critical"
    api.put("/api/elements/1/2/parameters/Level", 10)
    assert api.get("/api/alarms").json()["count"] == 0
    history = api.get("/api/alarms/history", element="1/2", severity="Critical").json()["alarms"]
    assert [(a["id"], a["active"], a["worst_severity"]) for a in history] == [(alarm["id"], False, "Critical")]
    assert [record["severity"] for record in history[0]["records"]] == ["Minor", "Critical", "Normal"]
    assert error_of(api.get("/api/alarms", severity="Awful"), 400)["field"] == "severity"
    assert error_of(api.get("/api/alarms/999"), 404)["field"] == "alarm"


def test_tickets(api: Api, dms: DataMinerSystem, lab: Element) -> None:
    dms.tickets.define_type(TicketType("Incident", fields=(TicketField("Title", "string", required=True),)))
    first = dms.tickets.create("Incident", {"Title": "Fibre cut"}, elements=[lab])
    dms.tickets.create("Incident", {"Title": "Noise"}, state="In Progress")
    assert [t["fields"]["Title"] for t in api.get("/api/tickets").json()["tickets"]] == ["Fibre cut", "Noise"]
    assert [t["id"] for t in api.get("/api/tickets", state="New").json()["tickets"]] == [first.id]
    assert [t["id"] for t in api.get("/api/tickets", element="Lab 1").json()["tickets"]] == [first.id]
    assert api.get(f"/api/tickets/{first.id}").json() == json.loads(json.dumps(first.to_record()))
    assert api.get("/api/ticket-types").json()["types"][0]["name"] == "Incident"
    assert error_of(api.get("/api/tickets", state="Lost"), 400)["field"] == "state"
    assert error_of(api.get("/api/tickets", type="Nothing"), 404)["field"] == "type"
    assert error_of(api.get("/api/tickets/nope"), 404)["field"] == "ticket"


def test_automation_runs_started_with_an_input(api: Api, dms: DataMinerSystem) -> None:
    def double(ctx: Any, value: Any) -> Any:
        ctx.log(f"doubling {value}")
        return value * 2

    def broken(ctx: Any, value: Any) -> None:
        raise ValueError("no such port")

    dms.automation.register("double", double)
    dms.automation.register("broken", broken)
    assert api.get("/api/automation/scripts").json() == {"scripts": ["double", "broken"]}
    started = api.post("/api/automation/scripts/double/runs", {"input": 21})
    assert started.status_code == 201
    run = started.json()
    assert (run["script"], run["input"], run["state"], run["result"], run["error"]) == ("double", 21, "succeeded", 42, None)
    assert run["logs"][0]["message"] == "doubling 21"
    failed = api.post("/api/automation/scripts/broken/runs").json()
    assert (failed["state"], failed["error"]) == ("failed", "ValueError: no such port")
    assert [r["id"] for r in api.get("/api/automation/runs", state="failed").json()["runs"]] == [failed["id"]]
    assert api.get(f"/api/automation/runs/{run['id']}").json()["result"] == 42
    assert error_of(api.post("/api/automation/scripts/nothing/runs"), 404)["field"] == "script"
    assert error_of(api.get("/api/automation/runs", state="lost"), 400)["field"] == "state"
    assert error_of(api.get("/api/automation/runs/99"), 404)["field"] == "run"


# -- simulators ------------------------------------------------------------------------------


def test_simulator_faults_and_request_log(api: Api, simulators: Simulators, inventory: Element) -> None:
    summary = api.get("/api/simulators").json()
    assert (summary["base_url"], summary["apis"]) == (simulators.base_url, ["tmf638", "tmf639", "tmf656", "tmf642"])
    added = api.post("/api/simulators/faults", {"api": "tmf638", "kind": "status", "status": 503})
    assert added.status_code == 201 and added.json()["faults"][0]["status"] == 503
    assert [fault.status for fault in simulators.faults.faults] == [503]
    assert error_of(api.post("/api/simulators/faults", {"api": "tmf638", "status": 200}), 422)["field"] == "fault"
    api.post("/api/elements/1/1/buttons/Refresh Cache")
    status = api.get("/api/elements/1/1/tables/API Status/rows/TMF 638").json()
    assert {cell["name"]: cell["display"] for cell in status["cells"]}["Last HTTP Status"] == "503"
    log = api.get("/api/simulators/requests", api="tmf638", limit=3).json()
    assert len(log["requests"]) == 3 and log["requests"][0]["status"] == 503  # the newest first
    assert log["requests"][0]["headers"]["Authorization"] == "Basic ***"
    for limit in (0, 10_001):  # the same limit rule as a table's rows
        assert error_of(api.get("/api/simulators/requests", limit=limit), 400) == {
            "field": "limit", "reason": f"limit is from 1 to 10,000, not {limit}"}
    assert api.delete("/api/simulators/faults").json() == {"faults": []} and simulators.faults.faults == []
    assert api.get("/api/simulators/faults").json() == {"faults": []}
    assert api.delete("/api/simulators/requests").status_code == 200 and simulators.requests() == []


def test_without_simulators_their_routes_say_so(dms: DataMinerSystem) -> None:
    with dms.serve() as server:
        client = Api(server)
        assert error_of(client.get("/api/simulators/faults"), 404)["field"] == "simulators"
        assert client.get("/api/system").json()["simulators"] is False


# -- access ----------------------------------------------------------------------------------


def test_every_call_needs_the_token_in_a_header(server: WebServer) -> None:
    http = requests.Session()
    http.trust_env = False
    url = server.url + "/api/elements"
    missing = http.get(url)
    assert missing.status_code == 401 and missing.json()["error"]["field"] == "token"
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert http.get(url, headers={"Authorization": "Bearer wrong"}).json()["error"]["reason"] == "the token is wrong"
    assert http.get(url, cookies={"token": server.token, "X-Dmemu-Token": server.token}).status_code == 401  # never a cookie
    assert http.get(url, headers={"X-Dmemu-Token": server.token}).status_code == 200
    assert http.get(url, headers={"Authorization": f"bearer {server.token}"}).status_code == 200
    for path in ("/api/openapi.json", "/api/events", "/api/elements/1/1/parameters/106"):
        assert http.get(server.url + path).status_code == 401
    assert http.put(server.url + "/api/elements/1/1/parameters/106", json={"value": 7200}).status_code == 401
    # Another site open in the same browser is refused even with a token it could not know anyway.
    foreign = http.get(url, headers={"X-Dmemu-Token": server.token, "Origin": "http://evil.example"})
    assert foreign.status_code == 403 and foreign.json()["error"]["field"] == "origin"
    assert http.get(url, headers={"X-Dmemu-Token": server.token, "Origin": server.url}).status_code == 200


def test_a_random_token_unless_one_is_given(dms: DataMinerSystem) -> None:
    with dms.serve() as first, dms.serve() as second, dms.serve(token="harness-token") as given:
        assert len(first.token) >= 32 and first.token != second.token and first.port != second.port
        assert given.token == "harness-token"
        assert Api(given).get("/api/system").status_code == 200


def test_another_address_without_a_token_is_refused(dms: DataMinerSystem) -> None:
    with pytest.raises(WebServerError, match="without a token"):
        dms.serve(host="0.0.0.0", token="")
    with dms.serve(token="") as open_server:  # loopback may go without, for the Host it was bound to only
        http = requests.Session()
        http.trust_env = False
        assert http.get(open_server.url + "/api/system").status_code == 200
        rebound = http.get(open_server.url + "/api/system", headers={"Host": f"attacker.example:{open_server.port}"})
        assert rebound.status_code == 403 and rebound.json()["error"]["field"] == "host"
    with dms.serve(host="127.0.0.2", token="") as other_loopback:  # any loopback address: the rule it was bound by
        http = requests.Session()
        http.trust_env = False
        assert http.get(other_loopback.url + "/api/system").status_code == 200
        assert http.get(other_loopback.url + "/api/system", headers={"Host": f"[::1]:{other_loopback.port}"}).status_code == 200


def test_the_server_sends_without_waiting_for_acknowledgements(dms: DataMinerSystem) -> None:
    import socket

    # With Nagle's algorithm on, a response written in two parts waits for the client's delayed
    # ACK (some 40 ms on every call); the accepted sockets inherit this from the listening one.
    with dms.serve() as server:
        assert server._socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert server._socket.proto == socket.IPPROTO_TCP  # what asyncio looks at to set it itself


def test_a_port_in_use_is_said(dms: DataMinerSystem) -> None:
    with dms.serve() as first, pytest.raises(WebServerError, match=f"cannot listen on 127.0.0.1:{first.port}"):
        dms.serve(port=first.port)


def test_the_openapi_document_describes_every_route(api: Api) -> None:
    document = api.get("/api/openapi.json").json()
    assert document["openapi"].startswith("3.")
    described = {(method.upper(), path) for path, operations in document["paths"].items() for method in operations}
    for route in ROUTES:
        assert (route.method, re.sub(r"\{(\w+):path\}", r"{\1}", route.path)) in described
    assert ("GET", "/api/events") in described
    assert document["paths"]["/api/elements/{element}/tables/{table}"]["get"]["parameters"][-1]["name"] == "search"
    assert document["components"]["schemas"]["Error"]["properties"]["error"]["required"] == ["field", "reason"]
    assert len({operation["operationId"] for operations in document["paths"].values() for operation in operations.values()}) == len(described)


def test_answers_match_the_openapi_document(api: Api, dms: DataMinerSystem, lab: Element) -> None:
    import jsonschema

    document = api.get("/api/openapi.json").json()
    operations = {
        operation["operationId"]: (operation, method) for operations in document["paths"].values() for method, operation in operations.items()
    }
    dms.alarms.assign_template(lab, AlarmTemplate("Lab", {"Level": Thresholds(high={Severity.MAJOR: 50})}))
    dms.tickets.define_type(TicketType("Incident", fields=(TicketField("Title", "string"),)))
    dms.tickets.create("Incident", {"Title": "checked"})
    dms.automation.register("echo", lambda ctx, value: value)
    run = api.post("/api/automation/scripts/echo/runs", {"input": {"any": ["thing"]}})
    alarm = api.put("/api/elements/1/2/parameters/Level", 70) and api.get("/api/alarms").json()["alarms"][0]
    answers = {
        "get_system": api.get("/api/system"), "list_elements": api.get("/api/elements"), "get_element": api.get("/api/elements/1/2"),
        "pause_element": api.post("/api/elements/1/2/pause"), "start_element": api.post("/api/elements/1/2/start"),
        "list_pages": api.get("/api/elements/1/2/pages"), "get_page": api.get("/api/elements/1/2/pages/General"),
        "list_parameters": api.get("/api/elements/1/1/parameters"), "get_parameter": api.get("/api/elements/1/2/parameters/Mode"),
        "set_parameter": api.put("/api/elements/1/2/parameters/Mode", 1), "press_button": api.post("/api/elements/1/1/buttons/20"),
        "list_tables": api.get("/api/elements/1/1/tables"), "get_table": api.get("/api/elements/1/2/tables/Items", sort="Name"),
        "get_row": api.get("/api/elements/1/2/tables/Items/rows/item-00001"),
        "set_cell": api.put("/api/elements/1/2/tables/Items/cells/Mode/item-00001", 0),
        "list_active_alarms": api.get("/api/alarms"), "list_alarm_history": api.get("/api/alarms/history"),
        "get_alarm": api.get(f"/api/alarms/{alarm['id']}"), "list_tickets": api.get("/api/tickets"),
        "list_ticket_types": api.get("/api/ticket-types"), "list_scripts": api.get("/api/automation/scripts"), "start_run": run,
        "list_runs": api.get("/api/automation/runs"), "get_run": api.get(f"/api/automation/runs/{run.json()['id']}"),
        "get_simulators": api.get("/api/simulators"), "add_faults": api.post("/api/simulators/faults", {"status": 502}),
        "list_faults": api.get("/api/simulators/faults"), "list_requests": api.get("/api/simulators/requests"),
        "clear_faults": api.delete("/api/simulators/faults"), "clear_requests": api.delete("/api/simulators/requests"),
    }  # fmt: skip
    ticket = answers["list_tickets"].json()["tickets"][0]
    answers["get_ticket"] = api.get(f"/api/tickets/{ticket['id']}")
    answers["stop_element"], answers["restart_element"] = api.post("/api/elements/1/2/stop"), api.post("/api/elements/1/2/restart")
    assert set(answers) == {name for name in operations if name not in ("events", "openapi")}
    for name, answer in answers.items():
        operation, _ = operations[name]
        assert answer.status_code in {int(status) for status in operation["responses"] if status != "default"}, (name, answer.text)
        schema = {**operation["responses"][str(answer.status_code)]["content"]["application/json"]["schema"], "components": document["components"]}
        jsonschema.validate(answer.json(), schema, cls=jsonschema.Draft202012Validator)
    wrong = api.get("/api/elements/1/2/parameters/Nothing")
    jsonschema.validate(wrong.json(), {"$ref": "#/components/schemas/Error", "components": document["components"]})


# -- live updates ----------------------------------------------------------------------------


class EventStream:
    """A client of /api/events, read on the test's thread."""

    def __init__(self, api: Api, **params: str) -> None:
        self.response = api.http.get(api.server.url + "/api/events", params=params, stream=True, timeout=60)
        assert self.response.status_code == 200 and self.response.headers["content-type"].startswith("text/event-stream")
        self.lines = self.response.iter_lines(decode_unicode=True)
        assert self.next() == ("ready", {})  # from here on every change is heard

    def next(self) -> tuple[str, Any]:
        kind = None
        for line in self.lines:
            if line.startswith("event: "):
                kind = line[len("event: ") :]
            elif line.startswith("data: "):
                return kind or "message", json.loads(line[len("data: ") :])
        raise AssertionError("the stream ended")

    def until(self, kind: str, test: Any) -> list[Any]:
        """Events of `kind` read until one passes `test` (all of them, that one last)."""
        seen = []
        while True:
            got, data = self.next()
            if got == kind:
                seen.append(data)
                if test(data):
                    return seen

    def close(self) -> None:
        self.response.close()


def test_events_bring_parameter_changes_coalesced_with_the_last_value_last(api: Api, lab: Element) -> None:
    events = EventStream(api, element="Lab 1")
    try:
        for level in range(1, 1001):  # a thousand sets as fast as the engine takes them
            lab.set("Level", level % 100)
        lab.set("Mode", 1)  # marked after the burst, so sent with or after its last change: waiting for it cannot hang
        burst = [data for data in events.until("parameter", lambda data: data["name"] == "Mode") if data["name"] == "Level"]
        assert burst[-1]["value"] == 1000 % 100
        assert len(burst) < 1001  # coalesced: each send carries the value of that moment
        lab.set("Level", 100)  # nothing pending now, and a value no set before took: only this change can bring it
        lab.set("Mode", 2)
        last = [data for data in events.until("parameter", lambda data: data["name"] == "Mode") if data["name"] == "Level"]
        assert last[-1] == {**last[-1], "element": "1/2", "id": 10, "value": 100, "display": "100 %", "units": "%"}
        api.put("/api/elements/1/2/parameters/Password", "event-secret")
        password = events.until("parameter", lambda data: data["name"] == "Password")[-1]
        assert password["value"] == "********"
    finally:
        events.close()


def test_events_bring_table_alarm_ticket_and_element_state_changes(api: Api, dms: DataMinerSystem, lab: Element) -> None:
    dms.alarms.assign_template(lab, AlarmTemplate("Lab", {"Level": Thresholds(high={Severity.MAJOR: 50})}))
    dms.tickets.define_type(TicketType("Incident", fields=(TicketField("Title", "string"),)))
    events = EventStream(api)
    try:
        api.put("/api/elements/1/2/tables/Items/cells/Mode/item-00003", 2)
        table = events.until("table", lambda data: data["name"] == "Items")[-1]
        assert (table["element"], table["row_count"], table["keys"]) == ("1/2", ROWS, ["item-00003"])
        api.put("/api/elements/1/2/parameters/Row Count", 150)
        api.post("/api/elements/1/2/buttons/Fill")  # a whole new table: too many keys to list, reload
        refilled = events.until("table", lambda data: data["row_count"] == 150)[-1]
        assert (refilled["keys"], refilled["removed"]) == (None, None)
        api.put("/api/elements/1/2/parameters/Level", 70)
        alarm = events.until("alarm", lambda data: data["kind"] == "opened")[-1]["alarm"]
        assert (alarm["element"], alarm["severity"], alarm["value"]) == ("1/2", "Major", 70)
        api.put("/api/elements/1/2/parameters/Level", 5)
        assert events.until("alarm", lambda data: data["kind"] == "cleared")[-1]["alarm"]["id"] == alarm["id"]
        ticket = dms.tickets.create("Incident", {"Title": "live"})
        assert events.until("ticket", lambda data: True)[-1]["ticket"]["id"] == ticket.id
        api.post("/api/elements/1/2/pause")
        state = events.until("element", lambda data: data["element"]["state"] == "Paused")[-1]
        assert (state["change"], state["element"]["ref"]) == ("state", "1/2")
        dms.create_element(Lab, "Lab 2", start=False)
        created = events.until("element", lambda data: data["change"] == "created")[-1]
        assert created["element"]["name"] == "Lab 2"
    finally:
        events.close()


def test_events_follow_an_element_deleted_and_created_again_with_the_same_ids(api: Api, dms: DataMinerSystem, lab: Element) -> None:
    events = EventStream(api, types="parameter,element")
    try:
        dms.delete_element("Lab 1")
        again = dms.create_element(Lab, "Lab 3")
        assert again.ids == lab.ids
        changes = events.until("element", lambda data: data["element"]["name"] == "Lab 3")
        assert [(data["change"], data["element"]["name"]) for data in changes][-2:] == [("deleted", "Lab 1"), ("created", "Lab 3")]
        again.set("Level", 77)
        level = events.until("parameter", lambda data: data["name"] == "Level")[-1]
        assert (level["element"], level["value"]) == ("1/2", 77)
    finally:
        events.close()


class Clearable(Protocol):
    name = "Clearable"
    pages = (Page("General"),)
    parameters = (Parameter(20, "Fill", type=Button(), write=True, page="General"), Parameter(21, "Clear", type=Button(), write=True, page="General"))
    tables = (Table(1000, "Items", page="General", columns=(Column(1001, "ID", key=True),)),)
    qactions = (
        QAction(100, lambda protocol: protocol.fill_array("Items", [[f"k{n}"] for n in range(150)]), triggers=(20,)),
        QAction(101, lambda protocol: protocol.clear_table("Items"), triggers=(21,)),
    )


def test_a_table_event_with_too_many_removed_rows_says_reload_with_both_null(api: Api, dms: DataMinerSystem) -> None:
    element = dms.create_element(Clearable, "Clearable")
    element.set("Fill", 1)
    events = EventStream(api, types="table", element="Clearable")
    try:
        element.set("Clear", 1)  # 150 rows removed, none changed: not keys [] with removed null
        emptied = events.until("table", lambda data: data["row_count"] == 0)[-1]
        assert (emptied["keys"], emptied["removed"]) == (None, None)
    finally:
        events.close()


def test_an_event_filter_and_its_mistakes(api: Api, lab: Element) -> None:
    events = EventStream(api, element="1/2", types="parameter")
    try:
        api.put("/api/elements/1/1/parameters/Records Per Page", 50)  # another element: not heard
        api.put("/api/elements/1/2/parameters/Mode", "Busy")
        assert events.next() == ("parameter", {**events_parameter(api, "1/2", "Mode")})
    finally:
        events.close()
    assert error_of(api.get("/api/events", types="weather"), 400)["field"] == "types"
    assert error_of(api.get("/api/events", element="Nobody"), 404)["field"] == "element"


def events_parameter(api: Api, element: str, name: str) -> dict[str, Any]:
    return {"element": element, **{k: v for k, v in api.get(f"/api/elements/{element}/parameters/{name}").json().items() if k != "element"}}


def test_stopping_the_server_ends_the_event_streams(dms: DataMinerSystem) -> None:
    server = dms.serve()
    events = EventStream(Api(server))
    server.stop()  # returns: the open stream does not hold the server up
    with pytest.raises(AssertionError, match="the stream ended"):
        events.next()
    events.close()
    with pytest.raises(requests.ConnectionError):
        Api(server).get("/api/system")


# -- concurrency -----------------------------------------------------------------------------


def test_concurrent_sets_from_the_api_while_timers_run(api: Api, inventory: Element, dmemu_clock: VirtualClock) -> None:
    answers: dict[str, list[int]] = {"Records Per Page": [], "Cache Update Frequency": []}
    values = {"Records Per Page": list(range(20, 60)), "Cache Update Frequency": list(range(3600, 3640))}

    def set_all(name: str) -> None:
        client = Api(api.server)
        for value in values[name]:
            answers[name].append(client.put(f"/api/elements/1/1/parameters/{name}", value).status_code)

    cycle_before = inventory.get("Last Cache Cycle")
    workers = [threading.Thread(target=set_all, args=(name,)) for name in values]
    for worker in workers:
        worker.start()
    for _ in range(12):
        dmemu_clock.advance(3600)  # the hourly update runs on this thread meanwhile
    for worker in workers:
        worker.join()
    assert answers == {name: [200] * len(sent) for name, sent in values.items()}
    assert inventory.get("Records Per Page") == 59 and inventory.get("Cache Update Frequency") == 3639
    assert inventory.get("Last Cache Cycle") > cycle_before
    assert [entry.message for entry in inventory.logs() if entry.type.value == "Error"] == []


# -- the command line -------------------------------------------------------------------------


def _environment() -> dict[str, str]:
    """The child runs this checkout's dmemu, never an installed one."""
    root = str(Path(__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])}


def _read_until(process: subprocess.Popen[str], pattern: str) -> re.Match[str]:
    assert process.stdout is not None
    for line in process.stdout:
        match = re.search(pattern, line)
        if match:
            return match
    raise AssertionError(f"the command ended without printing {pattern!r}: {process.wait()}")


def test_dmemu_serve_serves_a_saved_dms_until_interrupted(tmp_path: Path) -> None:
    with DataMinerSystem(tmp_path, VirtualClock()) as dms:
        dms.create_element(Lab, "Lab 1", start=False)  # kept stopped: serving runs what was saved, as it was
    # The protocol is this test module's: the child imports it from the tests folder (--path).
    process = subprocess.Popen(
        [sys.executable, "-m", "dmemu.cli", "serve", "--state", str(tmp_path), "--path", str(Path(__file__).parent)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_environment(),
    )  # fmt: skip
    try:
        url = _read_until(process, r"on (http://127\.0\.0\.1:\d+)")[1]
        token = _read_until(process, r"token: (\S+)")[1]
        http = requests.Session()
        http.trust_env = False
        listed = http.get(f"{url}/api/elements", headers={"X-Dmemu-Token": token}).json()["elements"]
        assert [(e["name"], e["state"], e["live"]) for e in listed] == [("Lab 1", "Stopped", True)]
        assert http.post(f"{url}/api/elements/Lab 1/start", headers={"X-Dmemu-Token": token}).json()["state"] == "Active"
        assert http.get(f"{url}/api/elements").status_code == 401
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "stopped" in out
    with DataMinerSystem(tmp_path, VirtualClock()) as again:  # closed and saved: the state is free again
        assert again.element("Lab 1").state.value == "Active"


def test_dmemu_serve_refuses_what_it_cannot_serve(tmp_path: Path) -> None:
    empty = subprocess.run(
        [sys.executable, "-m", "dmemu.cli", "serve", "--state", str(tmp_path)], capture_output=True, text=True, env=_environment()
    )
    assert empty.returncode == 2 and "holds no DataMiner System" in empty.stderr
    with DataMinerSystem(tmp_path, VirtualClock()) as dms:
        dms.create_element(Lab, "Lab 1", start=False)
    wide = subprocess.run(
        [sys.executable, "-m", "dmemu.cli", "serve", "--state", str(tmp_path), "--path", str(Path(__file__).parent),
         "--host", "0.0.0.0", "--token", ""],
        capture_output=True, text=True, env=_environment(),
    )  # fmt: skip
    assert wide.returncode == 2 and "without a token" in wide.stderr


def test_dmemu_demo_web_keeps_serving_with_the_simulators(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "dmemu.cli", "demo", "--web", "--services", "30", "--carriers", "5", "--resources", "20",
         "--state", str(tmp_path), "--width", "100"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_environment(),
    )  # fmt: skip
    try:
        url = _read_until(process, r"dmemu serving the demo DMS with its simulators on (http://127\.0\.0\.1:\d+) ")[1]
        token = _read_until(process, r"token: (\S+)")[1]
        http = requests.Session()
        http.trust_env = False
        http.headers["X-Dmemu-Token"] = token
        system = http.get(f"{url}/api/system").json()
        assert (system["clock"], system["simulators"]) == ("real", True)
        services = http.get(f"{url}/api/elements/SES Inventory/tables/Services", params={"limit": 5}).json()
        assert services["row_count"] > 5 and len(services["rows"]) == 5  # the active ones of the 30
        assert http.post(f"{url}/api/simulators/faults", json={"api": "tmf639", "status": 500}).status_code == 201
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
