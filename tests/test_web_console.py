"""The browser console (`dmemu.web`, served at /) in real headless Chromium, driven with Playwright.

Debian's `chromium` (/usr/bin/chromium, or DMEMU_CHROMIUM) and Playwright for Python; Playwright's
own browser download is never used. A missing browser FAILS these tests, so CI cannot pass
without running them; DMEMU_BROWSER_TESTS=optional makes them skip instead, on a machine
without one. DMEMU_CONSOLE_SHOTS=DIR saves a screenshot of each view there, to look at.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from web_inventory import CREDENTIALS, create_inventory

from dmemu.dms import AlarmTemplate, DataMinerSystem, DiscreteSeverities, Severity, TicketField, TicketType
from dmemu.elements.ses_inventory import SesInventoryManagement
from dmemu.pages import pages_of
from dmemu.protocol import (
    DateTime,
    Element,
    InvalidValueError,
    Number,
    Page,
    PageButton,
    Parameter,
    Protocol,
    String,
    VirtualClock,
)
from dmemu.simulators import InventorySpec, OsbService, Simulators
from dmemu.system_file import SimulatorGroup
from dmemu.web import WebServer

pytestmark = pytest.mark.dmemu_simulators(spec=InventorySpec(services=180, carriers=20, resources=60, seed=5), credentials=CREDENTIALS)

CHROMIUM = os.environ.get("DMEMU_CHROMIUM", "/usr/bin/chromium")
# No network, no profile of the machine's, nothing phoning home: a browser for tests only.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip
TIMEOUT_MS = 20_000  # how long an expectation waits for the page before it fails (it passes as soon as it holds)
SHOTS = os.environ.get("DMEMU_CONSOLE_SHOTS")


class Panel(Protocol):
    """A page button opening a sub-page, which holds a password."""

    name = "Web Panel"
    pages = (Page("Main"), Page("Advanced", parent="Main"))
    parameters = (
        Parameter(1, "Gain", type=Number(0, 10, "dB"), write=True, default=3, page="Main"),
        Parameter(2, "More Settings", type=PageButton("Advanced", label="Advanced"), page="Main"),
        Parameter(3, "Secret", type=String(secret=True), write=True, default="", page="Advanced"),
    )


def _no_browser(reason: str) -> None:
    if os.environ.get("DMEMU_BROWSER_TESTS") == "optional":
        pytest.skip(reason)
    pytest.fail(f"{reason} (set DMEMU_BROWSER_TESTS=optional to skip the browser tests instead)", pytrace=False)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium for the module (a fresh profile directory); each test gets its own page."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _no_browser("Playwright for Python is not installed (pip install -e '.[test]')")
    if not Path(CHROMIUM).is_file():
        _no_browser(f"no Chromium at {CHROMIUM} (apt-get install chromium, or DMEMU_CHROMIUM=PATH)")
    with tempfile.TemporaryDirectory(prefix="dmemu-chromium-") as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, viewport={"width": 1440, "height": 900}
        )
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def inventory(dms: DataMinerSystem, simulators: Simulators) -> Element:
    return create_inventory(dms, simulators)


@pytest.fixture
def server(dms: DataMinerSystem, simulators: Simulators, inventory: Element) -> Iterator[WebServer]:
    # An API failing (an HTTP error) is a Major alarm: what a fault on the simulator should raise.
    dms.alarms.assign_template(inventory, AlarmTemplate("SES", {"Communication Status": DiscreteSeverities({"HTTP Error": Severity.MAJOR})}))
    with dms.serve(simulators=simulators) as running:
        yield running


@pytest.fixture
def page(browser: Any, server: WebServer) -> Iterator[Any]:
    tab = browser.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    # A refused request is the browser's console "error" too: only the scripts' own errors count.
    tab.on("console", lambda message: errors.append(message.text) if message.type == "error" and "Failed to load resource" not in message.text else None)
    tab.goto(server.console_url)
    try:
        yield tab
    finally:
        tab.close()
    assert errors == [], "the console's scripts failed"


def shot(page: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=False)


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    playwright_expect.set_options(timeout=TIMEOUT_MS)
    return playwright_expect(locator)


def open_element(page: Any, name: str) -> Any:
    page.get_by_role("treeitem", name=name).click()
    card = page.get_by_role("region", name=f"Element {name}")
    expect(card.get_by_role("heading", name=name)).to_be_visible()
    return card


def open_tab(card: Any, name: str) -> None:
    card.get_by_role("tab", name=name, exact=True).click()
    expect(card.get_by_role("tab", name=name, exact=True)).to_have_attribute("aria-selected", "true")


def cells_of(table: Any, column: int) -> list[str]:
    return table.locator("tbody tr").evaluate_all(f"rows => rows.map(row => row.cells[{column}].textContent)")


# -- the tests ------------------------------------------------------------------------------------


def test_the_console_shows_the_dms_and_the_token_stays_out_of_the_address(page: Any, server: WebServer) -> None:
    tree = page.get_by_role("tree", name="Elements")
    expect(tree.get_by_role("treeitem", name="SES Inventory (1/1) Active")).to_be_visible()
    expect(page.get_by_role("status", name="Live updates")).to_have_text("live")
    assert "token" not in page.url  # taken from the fragment into the tab's storage, then wiped
    shot(page, "01-overview")
    page.get_by_role("searchbox", name="Search elements").fill("nothing like it")
    expect(page.get_by_role("status", name="Elements shown")).to_have_text("0 of 1 element")
    page.get_by_role("searchbox", name="Search elements").fill("inventory management")
    expect(page.get_by_role("status", name="Elements shown")).to_have_text("1 element")
    # The page reloaded keeps working from the tab's storage; a wrong token is asked for again.
    page.reload()
    expect(page.get_by_role("status", name="Live updates")).to_have_text("live")
    page.evaluate("sessionStorage.setItem('dmemu-token', 'wrong')")
    page.reload()
    expect(page.get_by_role("dialog", name="Token")).to_be_visible()
    expect(page.get_by_role("alert").filter(has_text="the token is wrong")).to_be_visible()


def test_the_element_card_pages_in_protocol_order_and_state_commands(page: Any, inventory: Element) -> None:
    card = open_element(page, "SES Inventory")
    tabs = card.get_by_role("tab").all_inner_texts()
    assert tabs == [p.name for p in pages_of(SesInventoryManagement) if p.depth == 0]
    expect(card.get_by_label("Cache Phase value")).to_have_text("Idle")
    shot(page, "02-element-general")
    open_tab(card, "Configuration")
    expect(card.get_by_label("Cache Update Frequency value")).to_have_text("3600 s")
    expect(card.get_by_label("TMF 638 Password value")).to_have_text("********")
    assert CREDENTIALS["tmf638"][1] not in page.content()  # secrets never reach the browser
    shot(page, "03-element-configuration")
    card.get_by_role("group", name="State commands").get_by_role("button", name="Pause").click()
    expect(card.get_by_label("State Paused")).to_be_visible()
    expect(page.get_by_role("treeitem", name="SES Inventory (1/1) Paused")).to_be_visible()
    assert inventory.state.value == "Paused"
    card.get_by_role("button", name="Start", exact=True).click()
    expect(card.get_by_label("State Active")).to_be_visible()


def test_the_services_table_is_paged_sorted_and_filtered(page: Any, inventory: Element) -> None:
    services = inventory.table("Services")
    rows = [services.row(key) for key in services.keys()]
    assert len(rows) > 100  # more than two pages of 50
    card = open_element(page, "SES Inventory")
    open_tab(card, "Services")
    block = card.get_by_role("region", name="Services table")
    table = block.get_by_role("table", name="Services")
    count = block.get_by_role("status", name="Services row count")
    expect(count).to_have_text(f"1–50 of {len(rows)} rows")
    block.get_by_role("button", name="Next ›").click()
    expect(count).to_have_text(f"51–100 of {len(rows)} rows")
    expect(block.get_by_text(f"Page 2 of {-(-len(rows) // 50)}")).to_be_visible()
    # Sorted by Name (External ID, Name, ...: a display key of one column, Name, gets no column of its own).
    expect(table.get_by_role("columnheader", name="Display Key")).to_have_count(0)
    block.get_by_role("button", name="Sort by Name").click()
    expect(count).to_have_text(f"1–50 of {len(rows)} rows")
    names = sorted((row["Name"] for row in rows), key=str.casefold)
    expect(table.locator("tbody tr").first.locator("td").nth(1)).to_have_text(names[0])
    assert cells_of(table, 1) == names[:50]
    block.get_by_role("button", name="Sort by Name").click()
    expect(table.locator("tbody tr").first.locator("td").nth(1)).to_have_text(names[-1])
    assert cells_of(table, 1) == names[::-1][:50]
    expect(table.get_by_role("columnheader", name="Sort by Name")).to_have_attribute("aria-sort", "descending")
    shot(page, "04-services-sorted")
    # Filtered on a column: the count says how many match of how many.
    wanted = [row for row in rows if "active" in row["Status"].casefold()]
    block.get_by_label("Filter Status").fill("active")
    expect(count).to_have_text(re.compile(rf"of {len(wanted)} matching, {len(rows)} rows in all$|^1–{min(50, len(wanted))} of {len(rows)} rows$"))
    first_key = rows[0]["External ID"]
    block.get_by_label("Filter Status").fill("")
    block.get_by_label("Filter External ID").fill(first_key)
    expect(count).to_have_text(f"1–1 of 1 matching, {len(rows)} rows in all")
    # A row in full, on demand.
    table.get_by_role("row", name=f"Row {rows[0]['Name']}").click()
    detail = block.get_by_role("dialog", name=f"Row {rows[0]['Name']} of Services")
    expect(detail.get_by_text(rows[0]["Description"], exact=True)).to_be_visible()
    shot(page, "05-services-row")


def test_setting_the_cache_update_frequency_and_a_refused_value(page: Any, inventory: Element) -> None:
    card = open_element(page, "SES Inventory")
    open_tab(card, "Configuration")
    field = card.get_by_role("textbox", name="Cache Update Frequency", exact=True)
    with pytest.raises(InvalidValueError) as engine:
        inventory.set("Cache Update Frequency", 60)
    field.fill("60")
    card.get_by_role("button", name="Set Cache Update Frequency").click()
    expect(card.get_by_role("alert").filter(has_text=str(engine.value))).to_be_visible()
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(card.get_by_label("Cache Update Frequency value")).to_have_text("3600 s")
    assert inventory.get("Cache Update Frequency") == 3600  # nothing changed
    shot(page, "06-refused-value")
    field.fill("7200")
    field.press("Enter")
    expect(card.get_by_label("Cache Update Frequency value")).to_have_text("7200 s")
    expect(field).not_to_have_attribute("aria-invalid", "true")
    assert inventory.get("Cache Update Frequency") == 7200
    # A discrete by its choice; a set from elsewhere reaches the page live.
    card.get_by_role("combobox", name="Active Items Only").select_option("Disabled")
    card.get_by_role("button", name="Set Active Items Only").click()
    expect(card.get_by_label("Active Items Only value")).to_have_text("Disabled")
    inventory.set("Records Per Page", 75)
    expect(card.get_by_label("Records Per Page value")).to_have_text("75")
    expect(card.get_by_role("textbox", name="Records Per Page", exact=True)).to_have_value("75")


def test_refresh_cache_moves_the_progress_live(page: Any, inventory: Element, dmemu_clock: VirtualClock) -> None:
    card = open_element(page, "SES Inventory")
    progress = card.get_by_role("table", name="Cache Progress")
    services_row = progress.get_by_role("row", name="Row Services")
    last_update = services_row.locator("td").nth(9)  # Type, Cache State, Pages Read, Items Listed, Rows Kept, 3 skips, Buildup, Last Update
    expect(progress.get_by_role("columnheader").nth(9)).to_have_text("Last Update")
    expect(last_update).to_have_text("")  # built up at start, never updated yet
    dmemu_clock.advance(120)
    # The refresh runs at this moment of the virtual clock, which stands still meanwhile: what the
    # page must come to show is known before the click (read from the element after the click,
    # it could be read before the refresh ran, and the page then be expected to show the old time).
    refreshed_at = DateTime().display(dmemu_clock.now())
    card.get_by_role("button", name="Refresh Cache").click()
    expect(last_update).to_have_text(refreshed_at)
    expect(card.get_by_label("Last Cache Cycle value")).to_have_text(refreshed_at)  # set as the cycle ends
    # The hourly update runs on the virtual clock, here: its progress reaches the page without a click.
    before = inventory.get("Last Cache Cycle")
    dmemu_clock.advance(3600)
    assert inventory.get("Last Cache Cycle") > before
    expect(card.get_by_label("Last Cache Cycle value")).to_have_text(DateTime().display(inventory.get("Last Cache Cycle")))
    expect(last_update).to_have_text(DateTime().display(inventory.table("Cache Progress").row("Services")["Last Update"]))
    shot(page, "07-refreshed")


def test_a_fault_on_the_simulator_changes_the_api_status_and_an_alarm_opens_and_clears_live(
    page: Any, dms: DataMinerSystem, inventory: Element, simulators: Simulators, dmemu_clock: VirtualClock
) -> None:
    bar = page.get_by_role("list", name="Active alarms")
    expect(bar).to_have_text("No active alarm.")
    page.get_by_role("navigation", name="Views").get_by_role("button", name="Simulators").click()
    form = page.get_by_role("form", name="Add a fault")
    form.get_by_label("Fault API").select_option("tmf638")
    form.get_by_label("Fault status").fill("503")
    form.get_by_role("button", name="Add fault").click()
    expect(page.get_by_role("status", name="Fault count")).to_have_text("1 fault")
    assert [(fault.api, fault.status) for fault in simulators.faults.faults] == [("tmf638", 503)]
    form.get_by_label("Fault status").fill("200")  # not an error status: the simulator's own words
    form.get_by_role("button", name="Add fault").click()
    expect(form.get_by_role("alert")).to_contain_text("fault status 200 is not an HTTP error status")
    shot(page, "08-simulators-fault")

    card = open_element(page, "SES Inventory")
    api_status = card.get_by_role("table", name="API Status").get_by_role("row", name="Row TMF 638")
    expect(api_status).to_contain_text("OK")
    dmemu_clock.advance(3600)  # the periodic update, from here: the browser hears it live
    expect(api_status).to_contain_text("HTTP Error")
    expect(api_status.locator("td").nth(2)).to_have_text("503")
    alarm = bar.get_by_role("listitem").filter(has_text="Communication Status")
    expect(alarm).to_contain_text("Major")
    expect(alarm).to_contain_text("TMF 638")
    expect(page.get_by_role("status", name="Active alarm counts")).to_contain_text("Major 1")
    shot(page, "09-alarm-open")

    page.get_by_role("button", name="Alarm console").click()
    console = page.get_by_role("region", name="Alarm console")
    expect(console.get_by_role("row", name=re.compile("Major alarm on SES Inventory"))).to_be_visible()
    console.get_by_label("Alarm severity filter").select_option("Critical")
    expect(console.get_by_role("status")).to_have_text("0 active alarms")
    console.get_by_label("Alarm severity filter").select_option("Major")
    console.get_by_role("row", name=re.compile("Major alarm on SES Inventory")).click()
    (alarm_id,) = [alarm.id for alarm in dms.alarms.active(element=inventory)]
    dms.alarms.set_property(alarm_id, "Ticket ID", "INC0001234")  # as a connector keeps its ticket id
    expect(console.get_by_role("dialog", name=f"Alarm {alarm_id}")).to_contain_text("INC0001234")
    shot(page, "10-alarm-console")

    page.get_by_role("navigation", name="Views").get_by_role("button", name="Simulators").click()
    page.get_by_role("button", name="Clear faults").click()
    expect(page.get_by_role("status", name="Fault count")).to_have_text("0 faults")
    assert simulators.faults.faults == []
    expect(page.get_by_role("table", name="Request log").locator("tbody tr").first).to_contain_text("tmf")
    dmemu_clock.advance(3600)
    expect(bar).to_have_text("No active alarm.")
    page.get_by_role("button", name="Alarm console").click()
    console = page.get_by_role("region", name="Alarm console")
    console.get_by_role("tab", name="History").click()
    expect(console.get_by_role("row", name=re.compile("Major alarm on SES Inventory"))).to_be_visible()
    shot(page, "11-alarm-history")


def test_the_fault_form_lists_the_apis_of_the_served_simulators_osb_too(browser: Any, dms: DataMinerSystem, simulators: Simulators) -> None:
    with OsbService() as osb, dms.serve(simulators=SimulatorGroup({"tmf": simulators, "osb": osb})) as served:
        tab = browser.new_page()
        try:
            tab.goto(served.console_url)
            tab.get_by_role("navigation", name="Views").get_by_role("button", name="Simulators").click()
            form = tab.get_by_role("form", name="Add a fault")
            options = ["* (every API)", "tmf638", "tmf639", "tmf656", "tmf642", "osb"]
            expect(form.get_by_label("Fault API").locator("option")).to_have_text(options)
            form.get_by_label("Fault API").select_option("osb")
            form.get_by_role("button", name="Add fault").click()
            expect(tab.get_by_role("status", name="Fault count")).to_have_text("1 fault")
            assert [(fault.api, fault.status) for fault in osb.faults.faults] == [("osb", 503)]
        finally:
            tab.close()


def test_a_server_without_a_token_opens_without_asking_for_one(browser: Any, dms: DataMinerSystem) -> None:
    dms.create_element(Panel, "Panel 1")
    with dms.serve(token="") as served:
        tab = browser.new_page()
        try:
            tab.goto(served.console_url)
            expect(tab.get_by_role("treeitem", name="Panel 1")).to_be_visible()
            expect(tab.locator("#login")).not_to_be_visible()
        finally:
            tab.close()


def test_tickets_and_automation_runs(page: Any, dms: DataMinerSystem, inventory: Element) -> None:
    dms.tickets.define_type(TicketType("Incident", fields=(TicketField("Title", "string", required=True),)))
    dms.tickets.create("Incident", {"Title": "Fibre cut"}, elements=[inventory])

    def double(ctx: Any, value: Any) -> Any:
        ctx.log(f"doubling {value}")
        return value * 2

    dms.automation.register("double", double)
    page.get_by_role("navigation", name="Views").get_by_role("button", name="Tickets").click()
    tickets = page.get_by_role("table", name="Tickets")
    expect(tickets).to_contain_text("Fibre cut")
    dms.tickets.create("Incident", {"Title": "Noise"}, state="In Progress")  # arrives live
    expect(tickets).to_contain_text("Noise")
    expect(tickets.get_by_role("row").filter(has_text="Fibre cut")).to_contain_text("SES Inventory")
    shot(page, "12-tickets")
    page.get_by_role("navigation", name="Views").get_by_role("button", name="Automation").click()
    page.get_by_label("Input for double").fill("21")
    page.get_by_role("button", name="Run double").click()
    runs = page.get_by_role("table", name="Script runs")
    expect(runs.get_by_role("row").filter(has_text="succeeded")).to_contain_text("42")
    page.get_by_label("Input for double").fill('"ab"')
    page.get_by_role("button", name="Run double").click()
    expect(runs.get_by_role("row").filter(has_text="abab")).to_be_visible()
    shot(page, "13-automation")


def test_a_page_button_opens_its_sub_page_and_a_password_is_write_only(page: Any, dms: DataMinerSystem) -> None:
    panel = dms.create_element(Panel, "Panel 1")
    card = open_element(page, "Panel 1")
    assert card.get_by_role("tab").all_inner_texts() == ["Main"]  # a sub-page opens from its page, not as a tab
    card.get_by_role("button", name="More Settings").click()
    trail = card.get_by_role("navigation", name="Sub-page")
    expect(trail.get_by_role("button", name="Main")).to_be_visible()
    expect(trail.get_by_text("Advanced")).to_be_visible()
    secret = card.get_by_label("Secret", exact=True)
    expect(secret).to_have_attribute("type", "password")
    secret.fill("hunter2-secret")
    card.get_by_role("button", name="Set Secret").click()
    expect(card.get_by_label("Secret value")).to_have_text("********")
    expect(secret).to_have_value("")
    assert panel.get("Secret") == "********" and "hunter2-secret" not in page.content()
    shot(page, "14-sub-page")
    trail.get_by_role("button", name="Main").click()
    expect(card.get_by_label("Gain value")).to_have_text("3 dB")


@pytest.mark.parametrize(("setting", "outcome"), [(None, "Failed"), ("optional", "Skipped")])
def test_without_a_browser_the_tests_fail_unless_told_they_are_optional(
    monkeypatch: pytest.MonkeyPatch, setting: str | None, outcome: str
) -> None:
    if setting is None:
        monkeypatch.delenv("DMEMU_BROWSER_TESTS", raising=False)
    else:
        monkeypatch.setenv("DMEMU_BROWSER_TESTS", setting)
    with pytest.raises(BaseException) as stopped:
        _no_browser("no Chromium at /nowhere")
    assert type(stopped.value).__name__ == outcome and "no Chromium at /nowhere" in str(stopped.value)


def test_the_console_files_are_served_without_a_token_and_load_nothing_from_elsewhere(server: WebServer) -> None:
    import requests

    from dmemu.web.console import CONSOLE_FILES

    http = requests.Session()
    http.trust_env = False
    assert server.console_url == f"{server.url}/#token={server.token}"
    index = http.get(server.url + "/", timeout=30)
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    policy = index.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy and "script-src 'self'" in policy
    for name in CONSOLE_FILES:
        answer = http.get(f"{server.url}/console/{name}", timeout=30) if name != "index.html" else index
        assert answer.status_code == 200, name
        # Nothing from another site: no CDN, no font service, no absolute address at all.
        assert not re.search(r"https?://", answer.text.replace("http://127.0.0.1", "")), name
    assert http.get(f"{server.url}/console/app.py", timeout=30).status_code == 404
    assert http.get(f"{server.url}/console/..%2Fapp.py", timeout=30).status_code == 404
    assert http.get(f"{server.url}/api/system", timeout=30).status_code == 401  # the API still needs the token
