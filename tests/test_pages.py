"""Pages: the page model, the text and JSON renderers, and saved state read without running."""

from __future__ import annotations

import json
import re

import pytest

from dmemu.dms import DataMinerSystem, SavedSystem
from dmemu.pages import (
    CUT_MARKER,
    UnknownPageError,
    element_data,
    elements_data,
    find_page,
    page_data,
    pages_data,
    pages_of,
    render_elements,
    render_page,
    render_pages,
)
from dmemu.protocol import (
    Button,
    Column,
    Connection,
    DateTime,
    Discrete,
    ElementNotFoundError,
    ElementState,
    HttpConnection,
    InvalidValueError,
    Number,
    Page,
    PageButton,
    Parameter,
    Protocol,
    QAction,
    StateFileError,
    String,
    Table,
    VirtualClock,
)
from dmemu.protocol.definitions import protocol_path

PASSWORD = "Pa55-w0rd-never-shown"
CONNECTION_PASSWORD = "c0nnect-secret-never-shown"
TOKEN = "t0ken-secret-never-shown"
LONG_NAME = "Item 2" + " with a name far too long for any column" * 3
STARTS: list[str] = []


def fill_items(protocol) -> None:
    count = protocol.get_parameter("Item Total")
    protocol.fill_array(
        "Items",
        [[f"item-{n:04d}", LONG_NAME if n == 2 else f"Item {n}", n * 1.25, n % 2, TOKEN] for n in range(count)],
    )


def note_start(protocol) -> None:
    STARTS.append(protocol.element_name)


class RackMonitor(Protocol):
    name = "Rack Monitor"
    connection = HttpConnection(default_port=8080, credentials=True)
    # Declared out of display order: `order` decides, and Login is a sub-page of Configuration.
    pages = (
        Page("Configuration", order=2),
        Page("Login", parent="Configuration"),
        Page("General", order=0),
        Page("Items", order=1),
        Page("Empty", order=3),
    )
    parameters = (
        Parameter(10, "Temperature", Number(-50, 150, "°C", decimals=1), default=21.46, page="General"),
        Parameter(11, "Mode", Discrete({0: "Off", 1: "Cooling", 2: "Heating"}), default=1, page="General"),
        Parameter(12, "Status", String(), default="All systems nominal", page="General"),
        Parameter(13, "Reboot", Button("Reboot"), write=True, page="General"),
        Parameter(14, "Hidden Counter", Number(), default=7),
        Parameter(20, "Item Total", Number(0, 100_000), write=True, default=0, save=True, page="Configuration"),
        Parameter(21, "Login Details", PageButton("Login"), page="Configuration"),
        Parameter(30, "Username", String(), write=True, default="", save=True, page="Login"),
        Parameter(31, "Password", String(secret=True), write=True, default="", save=True, page="Login"),
        Parameter(32, "API Key", String(secret=True), write=True, default="", save=True, page="Login"),
    )
    tables = (
        Table(1000, "Items", save=True, page="Items", columns=(
            Column(1001, "ID", key=True),
            Column(1002, "Name"),
            Column(1003, "Load", Number(0, None, "%", decimals=1)),
            Column(1004, "State", Discrete({0: "Idle", 1: "Busy"})),
            Column(1005, "Token", String(secret=True)),
        )),
    )  # fmt: skip
    qactions = (QAction(1, fill_items, triggers=(20,)), QAction(2, note_start, after_startup=True))


@pytest.fixture
def rack(dms):
    element = dms.create_element(
        RackMonitor,
        "Rack 1",
        connection=Connection(username="admin", password=CONNECTION_PASSWORD),
        parameters={"Password": PASSWORD, "Username": "admin"},
    )
    element.set("Item Total", 25)
    return element


def lines_of(text: str) -> list[str]:
    return text.splitlines()


def spans(rule: str) -> list[tuple[int, int]]:
    """(start, end) of each column, read from a table's ``----  ---`` rule line."""
    return [match.span() for match in re.finditer("-+", rule)]


def block(text: str, first: str) -> list[str]:
    """The lines from the one starting with `first` to the next blank line."""
    lines = lines_of(text)
    start = next(i for i, line in enumerate(lines) if line.startswith(first))
    end = next((i for i in range(start, len(lines)) if not lines[i]), len(lines))
    return lines[start:end]


# -- the page model -------------------------------------------------------------------------


def test_pages_come_in_display_order_with_sub_pages_after_their_parent():
    pages = pages_of(RackMonitor)
    assert [(p.name, p.depth) for p in pages] == [
        ("General", 0), ("Items", 0), ("Configuration", 0), ("Login", 1), ("Empty", 0),
    ]  # fmt: skip
    configuration, login = pages[2], pages[3]
    assert configuration.sub_pages == ("Login",)
    assert [p.name for p in configuration.parameters] == ["Item Total", "Login Details"]
    assert login.parent == "Configuration" and login.path == "Configuration > Login"
    assert [t.name for t in pages[1].tables] == ["Items"]
    placed = {p.name for page in pages for p in page.parameters}
    assert "Hidden Counter" not in placed


def test_a_page_button_to_a_top_level_page_lists_it_as_opened_from_there():
    class Jump(Protocol):
        name = "Jump"
        pages = (Page("Main"), Page("Details", order=1))
        parameters = (Parameter(1, "More", PageButton("Details"), page="Main"),)

    assert [p.sub_pages for p in pages_of(Jump)] == [("Details",), ()]


def test_find_page_by_name_ignoring_case_and_unknown_pages_list_the_pages():
    assert find_page(RackMonitor, "login").name == "Login"
    with pytest.raises(UnknownPageError) as raised:
        find_page(RackMonitor, "Alarms")
    assert str(raised.value) == (
        "protocol 'Rack Monitor' has no page 'Alarms'; pages: 'General', 'Items', 'Configuration', 'Login', 'Empty'"
    )


# -- text for people --------------------------------------------------------------------------


def test_every_measurement_type_renders_as_its_display(rack):
    text = render_page(rack, "General", width=80)
    assert lines_of(text)[:2] == ["Rack 1 (1/1) | Rack Monitor | Active | page General", "=" * 51]
    assert [line.split("  ")[0] for line in block(text, "Temperature")] == ["Temperature", "Mode", "Status", "Reboot"]
    values = [line[13:] for line in block(text, "Temperature")]
    assert values == ["21.5 °C", "Cooling", "All systems nominal", "[Reboot]"]
    configuration = render_page(rack, "Configuration", width=80)
    assert block(configuration, "Item Total") == ["Item Total     25", "Login Details  [Login...]"]
    assert lines_of(configuration)[-1] == "Sub-pages: Login"
    login = render_page(rack, "Login", width=80)
    assert lines_of(login)[0] == "Rack 1 (1/1) | Rack Monitor | Active | page Configuration > Login"
    assert block(login, "Username") == ["Username  admin", "Password  ********", "API Key"]


def test_parameter_values_start_in_one_column(tmp_path):
    class Labels(Protocol):
        name = "Labels"
        pages = (Page("General"),)
        parameters = (
            Parameter(1, "A", String(), default="first", page="General"),
            Parameter(2, "A much longer name", String(), default="second", page="General"),
            Parameter(3, "Mid name", Number(units="ms"), default=5, page="General"),
        )

    with DataMinerSystem(tmp_path, VirtualClock()) as dms:
        element = dms.create_element(Labels, "L", start=False)
        lines = block(render_page(element, "General", width=60), "A ")
    assert [line.index(value) for line, value in zip(lines, ("first", "second", "5 ms"))] == [20, 20, 20]


def test_a_table_has_a_header_a_rule_aligned_columns_and_its_row_count(rack):
    text = render_page(rack, "Items", width=200, rows=4)
    lines = block(text, "Items:")
    assert lines[0] == "Items: 25 rows"
    header, rule, *rows, trailer = lines[1:]
    assert trailer == f"{CUT_MARKER} and 21 more rows"
    (id_, name, load, state, token) = spans(rule)
    assert name[1] - name[0] == len(LONG_NAME)  # 200 columns: the longest name fits whole
    cells = [[line[start:end].strip() for start, end in spans(rule)] for line in (header, *rows)]
    assert cells[0] == ["ID", "Name", "Load", "State", "Token"]
    assert cells[1:] == [
        ["item-0000", "Item 0", "0.0 %", "Idle", "********"],
        ["item-0001", "Item 1", "1.2 %", "Busy", "********"],
        ["item-0002", LONG_NAME, "2.5 %", "Idle", "********"],
        ["item-0003", "Item 3", "3.8 %", "Busy", "********"],
    ]
    # Text starts where its column starts; numbers line up on their last digit.
    assert all(line[id_[0]] != " " and line[name[0]] != " " and line[state[0]] != " " for line in (header, *rows))
    assert all(line[load[1] - 1] != " " for line in (header, *rows)) and header[load[0]] == " "


def test_a_table_wider_than_the_text_shrinks_its_widest_columns_with_a_cut_marker(rack):
    text = render_page(rack, "Items", width=60, rows=4)
    lines = block(text, "Items:")
    assert max(len(line) for line in lines_of(text)) <= 60
    cells = [[line[start:end].strip() for start, end in spans(lines[2])] for line in lines[3:]]
    # Only the wide Name column gave way; the narrow columns keep their full width.
    assert [end - start for start, end in spans(lines[2])] == [9, 60 - 9 - 5 - 5 - 8 - 4 * 2, 5, 5, 8]
    assert cells[2][0] == "item-0002" and cells[2][2:] == ["2.5 %", "Idle", "********"]
    assert cells[2][1].endswith(CUT_MARKER) and LONG_NAME.startswith(cells[2][1][:-1])


def test_a_table_too_wide_to_shrink_is_shown_as_one_block_per_row(rack):
    text = render_page(rack, "Items", width=30, rows=2)
    assert max(len(line) for line in lines_of(text)) <= 30
    # The title wraps at a separator rather than losing the page's name.
    assert lines_of(text)[:3] == ["Rack 1 (1/1) | Rack Monitor", "Active | page Items", "=" * 27]
    assert block(text, "Items:") == [
        "Items: 25 rows",
        "ID:     item-0000",
        "Name:   Item 0",
        "Load:   0.0 %",
        "State:  Idle",
        "Token:  ********",
    ]
    assert lines_of(text)[-7:] == [
        "",
        "ID:     item-0001",
        "Name:   Item 1",
        "Load:   1.2 %",
        "State:  Busy",
        "Token:  ********",
        f"{CUT_MARKER} and 23 more rows",
    ]


def test_record_values_are_cut_to_the_width_too(rack):
    text = render_page(rack, "Items", width=30, rows=3)
    assert f"Name:   {LONG_NAME[:21]}{CUT_MARKER}" in lines_of(text)


def test_row_limits_and_counts_with_thousands_separators(rack):
    rack.set("Item Total", 1234)
    text = render_page(rack, "Items", width=120)
    assert "Items: 1,234 rows" in lines_of(text)
    assert sum(line.startswith("item-") for line in lines_of(text)) == 20
    assert lines_of(text)[-1] == f"{CUT_MARKER} and 1,214 more rows"
    everything = render_page(rack, "Items", width=120, rows=0)
    assert sum(line.startswith("item-") for line in lines_of(everything)) == 1234
    assert CUT_MARKER not in lines_of(everything)[-1]
    rack.set("Item Total", 1)
    one = render_page(rack, "Items", width=120)
    assert "Items: 1 row" in lines_of(one) and CUT_MARKER not in one


def test_an_empty_table_still_shows_its_columns(dms):
    element = dms.create_element(RackMonitor, "Bare", start=False)
    assert block(render_page(element, "Items", width=80), "Items:")[:2] == [
        "Items: 0 rows",
        "ID  Name  Load  State  Token",
    ]
    assert lines_of(render_page(element, "Empty", width=80))[-1] == "(nothing on this page)"


def test_control_characters_in_values_do_not_break_lines(dms):
    element = dms.create_element(RackMonitor, "Odd", start=False, parameters={"Username": "two\nlines\tand a tab"})
    assert "Username  two lines and a tab" in lines_of(render_page(element, "Login", width=80))


def test_the_width_defaults_to_the_terminal_and_cannot_be_absurdly_narrow(rack, monkeypatch):
    monkeypatch.setenv("COLUMNS", "45")
    assert max(len(line) for line in lines_of(render_page(rack, "Items"))) <= 45
    with pytest.raises(ValueError, match="too narrow"):
        render_page(rack, "Items", width=5)


def test_the_pages_and_elements_listings(rack, dms):
    dms.create_element(RackMonitor, "Rack 2", start=False)
    assert lines_of(render_pages(rack, width=80))[2:] == [
        "",
        "General        4 parameters",
        "Items          Items: 25 rows",
        "Configuration  2 parameters",
        "  Login        3 parameters",
        "Empty          0 parameters",
    ]
    assert lines_of(render_elements(dms.elements, width=80)) == [
        "Rack 1  1/1  Active   Rack Monitor",
        "Rack 2  1/2  Stopped  Rack Monitor",
    ]


# -- JSON for programs ------------------------------------------------------------------------


def test_page_data_has_ids_names_values_displays_and_units(rack):
    data = page_data(rack, "General")
    assert data == {
        "element": {
            "name": "Rack 1", "agent_id": 1, "element_id": 1, "protocol": "Rack Monitor",
            "protocol_version": "1.0.0.1", "state": "Active", "live": True,
        },
        "page": "General",
        "parent": None,
        "sub_pages": [],
        "parameters": [
            {"id": 10, "name": "Temperature", "value": 21.46, "display": "21.5 °C", "units": "°C"},
            {"id": 11, "name": "Mode", "value": 1, "display": "Cooling"},
            {"id": 12, "name": "Status", "value": "All systems nominal", "display": "All systems nominal"},
            {"id": 13, "name": "Reboot", "value": None, "display": "[Reboot]"},
        ],
        "tables": [],
    }  # fmt: skip
    assert json.loads(json.dumps(data)) == data


def test_table_data_has_columns_the_row_count_and_all_rows_or_the_first_n(rack):
    (table,) = page_data(rack, "Items")["tables"]
    assert table["id"] == 1000 and table["name"] == "Items" and table["row_count"] == 25
    assert table["columns"] == [
        {"id": i, "name": n} for i, n in zip(range(1001, 1006), ("ID", "Name", "Load", "State", "Token"))
    ]
    assert len(table["rows"]) == 25
    assert table["rows"][1] == ["item-0001", "Item 1", 1.25, 1, "********"]
    (first_two,) = page_data(rack, "Items", rows=2)["tables"]
    assert first_two["row_count"] == 25 and [row[0] for row in first_two["rows"]] == ["item-0000", "item-0001"]


def test_passwords_are_flagged_and_masked_in_page_data(rack):
    parameters = {p["name"]: p for p in page_data(rack, "Login")["parameters"]}
    assert parameters["Password"] == {
        "id": 31,
        "name": "Password",
        "value": "********",
        "display": "********",
        "secret": True,
    }
    assert parameters["API Key"] == {"id": 32, "name": "API Key", "value": "", "display": "", "secret": True}
    assert "secret" not in parameters["Username"]


def test_pages_and_elements_data(rack):
    data = pages_data(rack)
    assert data["element"] == element_data(rack)
    assert [(p["name"], p["parent"], p["parameter_count"]) for p in data["pages"]] == [
        ("General", None, 4), ("Items", None, 0), ("Configuration", None, 2), ("Login", "Configuration", 3), ("Empty", None, 0),
    ]  # fmt: skip
    assert data["pages"][1]["tables"] == [{"id": 1000, "name": "Items", "row_count": 25}]
    assert data["pages"][2]["sub_pages"] == ["Login"]
    assert elements_data([rack]) == {"elements": [element_data(rack)]}


# -- passwords, live and saved ---------------------------------------------------------------


def every_output(element) -> str:
    outputs = [render_pages(element, width=100), json.dumps(pages_data(element))]
    for page in pages_of(element.protocol):
        for width in (30, 60, 200):
            outputs.append(render_page(element, page, rows=0, width=width))
        outputs.append(json.dumps(page_data(element, page)))
    return "\n".join(outputs)


def test_no_password_appears_in_any_output_live_or_saved(rack, dms, dmemu_state_dir):
    dms.flush()
    state_files = "".join(path.read_text() for path in dmemu_state_dir.rglob("*.json"))
    # The secrets are really there to leak: in the element's state and in the registry.
    assert PASSWORD in state_files and TOKEN in state_files and CONNECTION_PASSWORD in state_files
    saved = SavedSystem(dmemu_state_dir).element("Rack 1")
    for element in (rack, saved):
        output = every_output(element) + render_elements([element]) + json.dumps(elements_data([element]))
        for secret in (PASSWORD, TOKEN, CONNECTION_PASSWORD):
            assert secret not in output
        assert "********" in output


# -- saved state ------------------------------------------------------------------------------


def test_saved_state_renders_exactly_as_the_live_element(rack, dms, dmemu_state_dir):
    dms.flush()  # the DMS keeps running: reading its state needs nothing from it
    saved = SavedSystem(dmemu_state_dir).element("Rack 1")
    assert saved.state is ElementState.ACTIVE and not saved.live
    for page in pages_of(RackMonitor):
        assert body(render_page(saved, page.name, width=70)) == body(render_page(rack, page.name, width=70))
        saved_data, live_data = page_data(saved, page.name), page_data(rack, page.name)
        assert saved_data["element"] == {**live_data["element"], "live": False}
        assert {**saved_data, "element": None} == {**live_data, "element": None}
    assert body(render_pages(saved, width=70)) == body(render_pages(rack, width=70))


def body(text: str) -> list[str]:
    """A page without its title, which says whether the element is live."""
    lines = lines_of(text)
    return lines[next(i for i, line in enumerate(lines) if line.startswith("=")) + 1 :]


def test_a_saved_element_says_its_state_is_the_saved_one_and_nothing_runs_it(dmemu_state_dir):
    with DataMinerSystem(dmemu_state_dir, VirtualClock()) as dms:
        dms.create_element(RackMonitor, "Rack 1")
        dms.create_element(RackMonitor, "Rack 2", start=False)
    # The DMS is closed: "Active" alone would read as running.
    system = SavedSystem(dmemu_state_dir)
    assert lines_of(render_elements(system.elements, width=80)) == [
        "Rack 1  1/1  saved as Active   Rack Monitor",
        "Rack 2  1/2  saved as Stopped  Rack Monitor",
    ]
    assert lines_of(render_page(system.element("Rack 1"), "General", width=80))[0] == (
        "Rack 1 (1/1) | Rack Monitor | saved as Active | page General"
    )
    assert [(e["state"], e["live"]) for e in elements_data(system.elements)["elements"]] == [("Active", False), ("Stopped", False)]


def test_saved_elements_hold_saved_values_defaults_and_saved_tables(dmemu_state_dir):
    with DataMinerSystem(dmemu_state_dir, VirtualClock()) as dms:
        rack = dms.create_element(RackMonitor, "Rack 1", parameters={"Username": "ops"})
        rack.set("Item Total", 3)
        dms.create_element(RackMonitor, "Rack 2", start=False)
        dms.create_element(RackMonitor, "Rack 3").pause()
    system = SavedSystem(dmemu_state_dir)
    assert [(e.name, e.ids, e.state) for e in system.elements] == [
        ("Rack 1", (1, 1), ElementState.ACTIVE), ("Rack 2", (1, 2), ElementState.STOPPED), ("Rack 3", (1, 3), ElementState.PAUSED),
    ]  # fmt: skip
    saved = system.element((1, 1))
    assert saved.protocol is RackMonitor
    assert saved.get("Username") == "ops" and saved.get("Item Total") == 3  # saved
    assert saved.get("Temperature") == 21.46 and saved.get("Hidden Counter") == 7  # defaults
    assert saved.table("Items").keys() == ["item-0000", "item-0001", "item-0002"]
    assert saved.get("Password") == "" and saved.problems == ()
    assert system.element("Rack 2").table("Items").keys() == []


def test_reading_saved_state_writes_nothing_and_runs_nothing(dmemu_state_dir):
    with DataMinerSystem(dmemu_state_dir, VirtualClock()) as dms:
        dms.create_element(RackMonitor, "Rack 1").set("Item Total", 5)
    STARTS.clear()
    before = {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in dmemu_state_dir.rglob("*") if path.is_file()}
    system = SavedSystem(dmemu_state_dir)
    every_output(system.element("Rack 1"))
    assert STARTS == []  # an Active element read from disk is not started: no start-up QAction
    assert {
        path: (path.stat().st_mtime_ns, path.read_bytes()) for path in dmemu_state_dir.rglob("*") if path.is_file()
    } == before
    assert not hasattr(system.element("Rack 1"), "http")  # nothing to open a connection with


def test_a_saved_value_the_protocol_no_longer_accepts_shows_its_default_and_a_problem(dmemu_state_dir):
    with DataMinerSystem(dmemu_state_dir, VirtualClock()) as dms:
        dms.create_element(RackMonitor, "Rack 1", start=False, parameters={"Item Total": 4})
    path = dmemu_state_dir / "elements" / "1-1.json"
    document = json.loads(path.read_text())
    document["parameters"]["1"]["values"]["20"] = -3
    path.write_text(json.dumps(document))
    saved = SavedSystem(dmemu_state_dir).element("Rack 1")
    assert saved.get("Item Total") == 0
    (problem,) = saved.problems
    assert str(path) in problem and "-3 is out of range" in problem


def test_an_unknown_saved_element_lists_the_elements(dmemu_state_dir):
    with DataMinerSystem(dmemu_state_dir, VirtualClock()) as dms:
        dms.create_element(RackMonitor, "Rack 1", start=False)
    with pytest.raises(ElementNotFoundError, match=r"no element 'Rack 9' in .*; elements: 'Rack 1' \(1/1\)"):
        SavedSystem(dmemu_state_dir).element("Rack 9")


def test_a_missing_or_corrupt_state_directory_is_a_state_file_error(tmp_path, dmemu_state_dir):
    with pytest.raises(StateFileError, match="holds no DataMiner System"):
        SavedSystem(tmp_path / "nowhere")
    assert not (tmp_path / "nowhere").exists()  # reading did not create it
    with DataMinerSystem(dmemu_state_dir, VirtualClock()) as dms:
        dms.create_element(RackMonitor, "Rack 1", start=False, parameters={"Item Total": 4})
    element_file = dmemu_state_dir / "elements" / "1-1.json"
    element_file.write_text("{not json")
    with pytest.raises(StateFileError, match=r"1-1\.json is corrupt"):
        SavedSystem(dmemu_state_dir)
    (dmemu_state_dir / "dms.json").write_text("[]")
    with pytest.raises(StateFileError, match=r"dms\.json is not a tinydb document"):
        SavedSystem(dmemu_state_dir)


def test_a_protocol_that_cannot_be_imported_is_named(dmemu_state_dir):
    with DataMinerSystem(dmemu_state_dir, VirtualClock()) as dms:
        dms.create_element(RackMonitor, "Rack 1", start=False)
    registry = dmemu_state_dir / "dms.json"
    registry.write_text(registry.read_text().replace(protocol_path(RackMonitor), "no_such_module_here:RackMonitor"))
    with pytest.raises(
        StateFileError, match="names protocol 'no_such_module_here:RackMonitor', which cannot be imported"
    ):
        SavedSystem(dmemu_state_dir)
    registry.write_text(registry.read_text().replace("no_such_module_here:RackMonitor", "json:dumps"))
    with pytest.raises(StateFileError, match="'json:dumps', which is not a Protocol class"):
        SavedSystem(dmemu_state_dir)


def fill_catalogue(protocol) -> None:
    protocol.fill_array("Parts", [["Widget " * 6, "PN-" + "7" * 20, "Fragile; keep dry " * 3]])
    protocol.fill_array("Codes", [["C" * 50]])


class Catalogue(Protocol):
    name = "Catalogue"
    pages = (Page("Parts"),)
    tables = (
        Table(100, "Parts", page="Parts", columns=(
            Column(101, "Name", String()), Column(102, "Part Number", String(), key=True), Column(103, "Notes", String()),
        )),
        Table(200, "Codes", page="Parts", columns=(Column(201, "Code", String(), key=True),)),
    )  # fmt: skip
    qactions = (QAction(1, fill_catalogue, after_startup=True),)


def test_the_key_column_is_never_cut_and_the_others_share_what_it_leaves(dms):
    catalogue = dms.create_element(Catalogue, "Catalogue")
    lines = block(render_page(catalogue, "Parts", width=60), "Parts:")
    assert max(map(len, lines)) <= 60
    name, number, notes = (line.strip() for line in lines[3].split("  ") if line.strip())
    assert number == "PN-" + "7" * 20
    # 60 - 23 (key) - 4 (gaps) = 33 characters for two columns: 17 and 16, the spare one to the left.
    assert (len(name), len(notes)) == (17, 16) and name.endswith(CUT_MARKER) and notes.endswith(CUT_MARKER)
    # A key wider than the whole text leaves no room for a grid: one block per row, cut.
    assert block(render_page(catalogue, "Parts", width=40), "Codes:") == [
        "Codes: 1 row",
        "Code:  " + "C" * 32 + CUT_MARKER,
    ]


# -- dates, and columns sized by their content ----------------------------------------------

NEW_YEAR = 1_767_225_600  # 2026-01-01 00:00:00 UTC


def fill_runs(protocol) -> None:
    protocol.set_parameter("Last Run", NEW_YEAR + 90.75)
    protocol.fill_array("Runs", [
        [f"run-{n}", n, n % 2, NEW_YEAR + n * 3600, f"finished with a note long enough to be cut {n}"] for n in range(3)
    ])  # fmt: skip


class Runs(Protocol):
    name = "Runs"
    pages = (Page("General"),)
    parameters = (Parameter(1, "Last Run", DateTime(), page="General"),)
    tables = (
        Table(100, "Runs", page="General", columns=(
            Column(101, "Run", key=True), Column(102, "Empty IDs Skipped", Number(0)),
            Column(103, "Outcome State", Discrete({0: "Bad", 1: "Good"})), Column(104, "Last Good Read Start", DateTime()),
            Column(105, "Result", String()),
        )),
    )  # fmt: skip
    qactions = (QAction(1, fill_runs, after_startup=True),)


def test_a_date_and_time_shows_as_utc_text_and_stays_epoch_seconds_in_data(dms):
    runs = dms.create_element(Runs, "Runs")
    assert block(render_page(runs, "General", width=80), "Last Run") == ["Last Run  2026-01-01 00:01:30"]
    data = page_data(runs, "General")
    assert data["parameters"] == [{"id": 1, "name": "Last Run", "value": NEW_YEAR + 90.75, "display": "2026-01-01 00:01:30"}]
    (table,) = data["tables"]
    assert table["rows"][1][3] == NEW_YEAR + 3600 and table["display_rows"][1][2:4] == ["Good", "2026-01-01 01:00:00"]
    assert runs.display("Last Run") == "2026-01-01 00:01:30" and runs.get("Last Run") == NEW_YEAR + 90.75
    with pytest.raises(InvalidValueError, match="a date and time in epoch seconds"):
        DateTime().checker("Last Run")("2026-01-01")


def test_columns_are_as_wide_as_their_content_and_long_headers_wrap(dms):
    runs = dms.create_element(Runs, "Runs")
    # Wide enough for every header on one line: as before.
    assert block(render_page(runs, "General", width=200), "Runs:")[1].startswith("Run    Empty IDs Skipped  Outcome State")
    lines = block(render_page(runs, "General", width=80), "Runs:")
    assert max(map(len, lines)) <= 80
    rule = next(line for line in lines if line.startswith("-"))
    header = lines[1 : lines.index(rule)]
    widths = [end - start for start, end in spans(rule)]
    # A one-digit count takes its header's longest word, not the whole header, which wraps;
    # the date is whole; the free text gave way.
    assert widths[:4] == [5, 7, 7, 19]
    assert [line[spans(rule)[1][0] : spans(rule)[1][1]].strip() for line in header] == ["Empty", "IDs", "Skipped"]
    first = lines[lines.index(rule) + 1]
    assert "2026-01-01 00:00:00" in first and first.endswith(CUT_MARKER)
    # Too narrow to show the date and the count whole: one block per row, nothing cut.
    narrow = block(render_page(runs, "General", width=44), "Runs:")
    assert "Last Good Read Start:  2026-01-01 00:00:00" in narrow
