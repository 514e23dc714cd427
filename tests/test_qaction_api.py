"""The `protocol` object a QAction receives keeps SLProtocol's semantics."""

from __future__ import annotations

import math

import pytest

from dmemu.protocol import (
    Button,
    Column,
    DefinitionError,
    Discrete,
    DisplayKey,
    InvalidValueError,
    LogLevel,
    LogType,
    Number,
    Parameter,
    Protocol,
    QAction,
    SetStatus,
    String,
    Table,
    UnknownParameterError,
    UnknownRowError,
    expect,
)

SCRIPT: list = []
RESULTS: list = []
ROW_EVENTS: list[tuple[int | None, str | None, object]] = []


def run_script(protocol):
    """QAction 1: runs whatever the test queued, recording each result."""
    for step in SCRIPT:
        RESULTS.append(step(protocol))


def on_lock_change(protocol):
    ROW_EVENTS.append((protocol.trigger_parameter, protocol.row_key, protocol.get_cell("Clients", protocol.row_key, "Lock")))


class Inventory(Protocol):
    name = "Inventory Under Test"
    parameters = (
        Parameter(1, "Run", type=Button(), write=True),
        Parameter(2, "Count", type=Number(0, 10)),
        Parameter(3, "Note", type=String()),
        Parameter(4, "Password", type=String(secret=True), write=True),
    )
    tables = (
        Table(
            1000,
            "Items",
            columns=(
                Column(1001, "ID", key=True),
                Column(1002, "Name"),
                Column(1003, "Size", type=Number(0, 100)),
                Column(1004, "State", type=Discrete({0: "Off", 1: "On"})),
            ),
            display_key=DisplayKey(("Name", "ID"), separator="/"),
        ),
        Table(
            2000,
            "Clients",
            columns=(Column(2001, "Client", key=True), Column(2002, "Lock", type=Discrete({0: "Free", 1: "Locked"}), write=True)),
        ),
    )
    qactions = (QAction(1, run_script, triggers=(1,)), QAction(2, on_lock_change, triggers=(2002,), row=True))


@pytest.fixture
def element(dms):
    SCRIPT.clear()
    RESULTS.clear()
    ROW_EVENTS.clear()
    return dms.create_element(Inventory, "Inventory")


def run(element, *steps):
    """Run steps inside a QAction, as connector code would, and answer their results."""
    SCRIPT[:] = steps
    RESULTS.clear()
    element.set("Run", 1)
    return list(RESULTS)


def fill(element, rows):
    run(element, lambda p: p.fill_array("Items", rows))


def test_parameters_by_id_or_name_with_a_status_instead_of_an_exception(element):
    results = run(
        element,
        lambda p: p.set_parameter("Count", 3),
        lambda p: p.get_parameter(2),
        lambda p: p.set_parameter(2, 11),
        lambda p: p.set_parameter("Missing", 1),
        lambda p: p.set_parameter(1000, "x"),
        lambda p: p.set_parameters({"Count": 4, "Note": "ok"}),
        lambda p: p.get_parameters([2, "Note"]),
    )
    assert results == [SetStatus.OK, 3, SetStatus.INVALID_VALUE, SetStatus.UNKNOWN_PARAMETER, SetStatus.NOT_SETTABLE, SetStatus.OK, [4, "ok"]]
    assert not SetStatus.INVALID_VALUE and SetStatus.OK
    expect(element).logged("parameter 2 'Count': 11 is out of range", LogType.ERROR)
    expect(element).logged("table 1000 'Items' is a table: use fill_array or set_row", LogType.ERROR)
    run(element, lambda p: p.get_parameter("Items"))
    expect(element).logged("table 1000 'Items' is a table: read it with get_row", LogType.ERROR)


def test_add_row_does_nothing_for_an_existing_key(element):
    results = run(
        element,
        lambda p: p.add_row("Items", ["a", "Alpha", 1, 0]),
        lambda p: p.add_row("Items", ["a", "Other", 2, 1]),
        lambda p: p.add_row(1000, {"ID": "b", 1002: "Beta"}),
    )
    assert results == [True, False, True]
    expect(element).table("Items").equals(
        {"a": {"Name": "Alpha", "Size": 1}, "b": {"Name": "Beta", "Size": None, "State": None}}
    )


def test_set_row_keeps_cells_given_as_none_and_updates_leading_columns_of_a_short_row(element):
    fill(element, [["a", "Alpha", 1, 0]])
    results = run(
        element,
        lambda p: p.set_row("Items", "a", [None, None, 5, None]),
        lambda p: p.set_row("Items", "a", ["a", "Alpha 2"]),
        lambda p: p.set_row("Items", "missing", ["missing", "x"]),
    )
    assert results == [True, True, False]
    assert element.table("Items").row("a") == {"ID": "a", "Name": "Alpha 2", "Size": 5, "State": 0}
    assert "missing" not in element.table("Items")


def test_a_row_key_never_changes(element):
    fill(element, [["a", "Alpha", 1, 0]])
    run(element, lambda p: p.set_row("Items", "a", ["b", "Other"]))
    expect(element).logged("cannot change its key", LogType.ERROR)
    assert element.table("Items").keys() == ["a"]


def test_get_row_of_a_missing_key_is_a_row_of_nones(element):
    fill(element, [["a", "Alpha", 1, 0]])
    results = run(
        element,
        lambda p: p.get_row("Items", "a"),
        lambda p: p.get_row("Items", "zzz"),
        lambda p: p.get_cell("Items", "a", "Size"),
        lambda p: p.get_cell("Items", "a", 1002),
        lambda p: p.get_cell("Items", "a", 4),  # 1-based position
        lambda p: p.get_cell("Items", "zzz", "Size"),
    )
    assert results == [["a", "Alpha", 1, 0], [None, None, None, None], 1, "Alpha", 0, None]


def test_delete_keys_exists_and_row_count(element):
    fill(element, [["a", "A", 1, 0], ["b", "B", 2, 1], ["c", "C", 3, 1]])
    results = run(
        element,
        lambda p: p.delete_row("Items", "b"),
        lambda p: p.delete_row("Items", ["a", "nope"]),
        lambda p: p.get_keys("Items"),
        lambda p: (p.exists("Items", "c"), p.exists("Items", "a")),
        lambda p: p.row_count(1000),
        lambda p: p.get_column("Items", "Size"),
    )
    assert results == [1, 1, ["c"], (True, False), 1, {"c": 3}]
    assert run(element, lambda p: p.clear_table("Items"), lambda p: p.row_count("Items")) == [None, 0]


def test_fill_array_replaces_and_fill_array_no_delete_upserts(element):
    fill(element, [["a", "A", 1, 0], ["b", "B", 2, 1]])
    run(element, lambda p: p.fill_array("Items", [("c", "C", 3, 0)]))
    assert element.table("Items").keys() == ["c"]
    run(element, lambda p: p.fill_array_no_delete("Items", [["c", None, 30, None], ["d", "D", 4, 1]]))
    assert element.table("Items").rows() == [
        {"ID": "c", "Name": "C", "Size": 30, "State": 0},
        {"ID": "d", "Name": "D", "Size": 4, "State": 1},
    ]
    run(element, lambda p: p.fill_array("Items", [["e", "E"]]))  # short rows are padded
    assert element.table("Items").row("e") == {"ID": "e", "Name": "E", "Size": None, "State": None}
    run(element, lambda p: p.fill_array("Items", [["f", None, None, None], ["g", "G", 100, 1], ["h", "H", 0.5, None]]))
    assert element.table("Items").column("Size") == {"f": None, "g": 100, "h": 0.5}
    expect(element).no_errors()


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([["a", "A", 1, 0], ["", "B", 1, 0]], "row 1: primary key '' must be a non-empty string"),
        ([["a", "A", 1, 0], [7, "B", 1, 0]], "primary key 7 must be a non-empty string"),
        ([["a", "A", "big", 0]], "row 0, column 1003 'Size': 'big' is a str"),
        ([["a", "A", 1, 5]], "column 1004 'State': 5 is not one of the allowed values"),
        ([["a", "A", 1, 0, "extra"]], "row 0 has 5 cells; the table has 4 columns"),
        ([["a", object(), 1, 0]], "column 1002 'Name'"),
        ([["a", "A", 1, 0], ["b", "B", 101, 0]], "row 1, column 1003 'Size': 101 is out of range; allowed: a number from 0 to 100"),
        ([["a", "A", math.nan, 0]], "row 0, column 1003 'Size': nan is not a finite number"),
        ([["a", "A", None, 0], ["b", "B", -math.inf, 0]], "row 1, column 1003 'Size': -inf is not a finite number"),
        ([["a", "A", None, 0], ["b", "B", "7", 0]], "row 1, column 1003 'Size': '7' is a str"),
        ([["a", "A", 1, True]], "row 0, column 1004 'State': True is a bool; allowed: 0 (Off), 1 (On)"),
        ([["a", "A", 1, 1.0]], "row 0, column 1004 'State': 1.0 is a float"),
    ],
)
def test_a_bad_fill_names_the_row_and_column_and_keeps_the_table(element, rows, message):
    fill(element, [["kept", "K", 1, 0]])
    fill(element, rows)
    errors = [entry.message for entry in element.logs(LogType.ERROR)]
    assert errors and message in errors[-1], errors
    assert element.table("Items").keys() == ["kept"]


def test_single_row_operations_check_column_types(element):
    run(element, lambda p: p.add_row("Items", ["a", "A", 101, 0]))
    expect(element).logged("column 1003 'Size': 101 is out of range", LogType.ERROR)
    assert len(element.table("Items")) == 0


def test_a_cell_set_fires_row_level_qactions_with_the_row_key(element):
    run(element, lambda p: p.fill_array("Clients", [["client-1", 0], ["client-2", 0]]))
    element.set_cell("Clients", "client-2", "Lock", "Locked")
    run(element, lambda p: p.set_cell("Clients", "client-1", 2002, 1))
    assert ROW_EVENTS == [(2002, "client-2", 1), (2002, "client-1", 1)]


def test_user_cell_sets_are_checked(element):
    run(element, lambda p: p.fill_array("Clients", [["client-1", 0]]))
    with pytest.raises(InvalidValueError, match="column 2002 'Lock'"):
        element.set_cell("Clients", "client-1", "Lock", 7)
    with pytest.raises(UnknownRowError, match="no row 'client-9'"):
        element.set_cell("Clients", "client-9", "Lock", 1)
    with pytest.raises(UnknownParameterError, match="no column 'Nope'"):
        element.set_cell("Clients", "client-1", "Nope", 1)
    fill(element, [["a", "A", 1, 0]])
    with pytest.raises(Exception, match="read-only"):
        element.set_cell("Items", "a", "Name", "x")
    assert ROW_EVENTS == []


def test_log_levels_and_secret_masking(element):
    element.set("Password", "s3cret-pw")
    element.log_level = LogLevel.LEVEL_2
    run(
        element,
        lambda p: p.log("kept at level 0"),
        lambda p: p.log("kept at level 2", LogType.DEBUG, 2),
        lambda p: p.log("dropped at level 3", LogType.DEBUG, LogLevel.LEVEL_3),
        lambda p: p.log("login with s3cret-pw failed", LogType.ERROR),
    )
    messages = [entry.message for entry in element.log_entries]
    assert "kept at level 0" in messages and "kept at level 2" in messages
    assert not any("dropped" in m for m in messages)
    assert "login with ******** failed" in messages
    assert not any("s3cret-pw" in m for m in messages)


def test_table_view(element):
    fill(element, [["a", "Alpha", 1, 0], ["b", "Beta", 2, 1]])
    items = element.get("Items")
    assert (items.id, items.name, len(items), "a" in items, list(items)) == (1000, "Items", 2, True, ["a", "b"])
    assert items.columns == ["ID", "Name", "Size", "State"]
    assert items.cell("b", "Size") == 2
    assert items.column(1002) == {"a": "Alpha", "b": "Beta"}
    assert items.display_key("a") == "Alpha/a"
    assert items.row_label(("b", "Beta", 2, 1)) == "Beta/b"
    fill(element, [[f"k{n}", f"N{n}", n, 0] for n in range(10)])
    assert [row[0] for row in items.row_cells(3, offset=4)] == ["k4", "k5", "k6"]  # a window of the rows
    assert [row[0] for row in items.row_cells(offset=8)] == ["k8", "k9"] and items.row_cells(5, offset=20) == []
    with pytest.raises(UnknownRowError):
        items.row("zzz")
    with pytest.raises(UnknownParameterError, match="is not a table"):
        element.table("Count")


# -- who set the trigger: a user, or a QAction ----------------------------------------------------

SET_BY: list[tuple[object, bool]] = []


def note_who_set(protocol):
    SET_BY.append((protocol.trigger_value, protocol.set_by_qaction))


def set_state_from_a_qaction(protocol):
    protocol.set_parameter("State", f"from {protocol.trigger_value or 'start-up'}")


class StateShown(Protocol):
    name = "State Shown"
    parameters = (
        Parameter(1, "State", String(), write=True, default=""),
        Parameter(2, "Poke", String(), write=True, default=""),
    )
    qactions = (
        QAction(1, note_who_set, triggers=(1,)),
        QAction(2, set_state_from_a_qaction, triggers=(2,)),
        QAction(3, set_state_from_a_qaction, after_startup=True),
    )


def test_a_qaction_tells_a_users_set_from_a_qactions(dms):
    SET_BY.clear()
    element = dms.create_element(StateShown, "Shown")
    element.set("State", "by hand")
    element.set("Poke", "poke")
    assert SET_BY == [("from start-up", True), ("by hand", False), ("from poke", True)]


def set_state_on_other(protocol):
    protocol.set_element_parameter("Shown", "State", f"{protocol.trigger_value} from another element")


class StateOnlyUsersSet(StateShown):
    name = "State Only Users Set"
    qactions = (
        QAction(1, note_who_set, triggers=(1,), user_sets_only=True),  # DataMiner's QAction on the write parameter
        QAction(2, set_state_from_a_qaction, triggers=(2,)),
        QAction(3, set_state_from_a_qaction, after_startup=True),
    )


class PokesOther(Protocol):
    name = "Pokes Other"
    parameters = (Parameter(1, "Poke", String(), write=True, default=""),)
    qactions = (QAction(1, set_state_on_other, triggers=(1,)),)


def test_a_qaction_for_users_sets_only_does_not_run_for_sets_by_qactions(dms):
    SET_BY.clear()
    element = dms.create_element(StateOnlyUsersSet, "Shown")
    other = dms.create_element(PokesOther, "Other")
    element.set("State", "by hand")
    element.set("Poke", "poke")  # its own QAction sets State: not run
    other.set("Poke", "poke")  # another element's QAction sets State: not run either
    dms.set_parameter("Shown", "State", "by a script")
    assert SET_BY == [("by hand", False), ("by a script", False)]
    assert element.get("State") == "by a script"


def test_a_qaction_for_users_sets_only_needs_triggers_users_can_set():
    with pytest.raises(DefinitionError, match="runs for users' sets only"):

        class ReadTrigger(Protocol):
            name = "Read Trigger"
            parameters = (Parameter(1, "Shown", String()),)
            qactions = (QAction(1, note_who_set, triggers=(1,), user_sets_only=True),)
