"""The shipped assertions pass on matching state and fail with messages that show the state."""

from __future__ import annotations

import pytest

from dmemu.protocol import Button, Column, LogType, Number, Parameter, Protocol, QAction, Table, expect


def load_rows(protocol):
    protocol.fill_array("Items", [[f"item-{n}", f"Item {n}", n] for n in range(1, 13)])
    protocol.set_parameter("Count", 12)


class Catalogue(Protocol):
    name = "Catalogue"
    parameters = (Parameter(1, "Count", type=Number(), default=0), Parameter(2, "Load", type=Button(), write=True))
    tables = (Table(1000, "Items", columns=(Column(1001, "ID", key=True), Column(1002, "Name"), Column(1003, "Size", type=Number()))),)
    qactions = (QAction(1, load_rows, triggers=(2,)),)


@pytest.fixture
def catalogue(dms):
    element = dms.create_element(Catalogue, "Catalogue")
    element.set("Load", 1)
    return element


def test_passing_assertions_chain(catalogue):
    expect(catalogue).parameter("Count").equals(12).satisfies(lambda v: v > 10, "more than ten")
    items = expect(catalogue).table("Items").row_count(12)
    items.row("item-3").matches({"Name": "Item 3", 1003: 3}).cell("Size").equals(3)
    items.has_keys([f"item-{n}" for n in range(1, 13)]).has_no_row("item-99")
    items.has_keys(["item-1"], only=False)
    expect(catalogue).state("Active").no_errors()


@pytest.mark.parametrize(
    ("check", "message"),
    [
        (lambda e: expect(e).parameter("Count").equals(3), "element 'Catalogue' parameter 1 'Count' is 12, expected 3"),
        (lambda e: expect(e).table("Items").row_count(2), "table 1000 'Items' has 12 rows, expected 2; keys: ['item-1',"),
        (lambda e: expect(e).table("Items").row("item-100"), "has no row 'item-100' (12 rows; similar keys: ['item-10', 'item-1',"),
        (lambda e: expect(e).table("Items").row("item-2").matches({"Name": "Two"}), "row 'item-2': 'Name' is 'Item 2', expected 'Two'"),
        (lambda e: expect(e).table("Items").has_keys(["item-1", "x"]), "missing ['x']; unexpected ['item-10', 'item-11',"),
        (lambda e: expect(e).table("Items").has_no_row("item-1"), "has row 'item-1', expected none"),
        (lambda e: expect(e).table("Items").is_empty(), "has 12 rows, expected 0"),
        (lambda e: expect(e).state("Stopped"), "element 'Catalogue' is Active, expected Stopped"),
        (lambda e: expect(e).logged("never said", LogType.ERROR), "has no Error log entry containing 'never said'"),
        (lambda e: expect(e).table("Items").row("item-1").cell("Size").equals(9), "row 'item-1' column 'Size' is 1, expected 9"),
        (lambda e: expect(e).parameter("Items"), "table 1000 'Items' is a table; use expect(...).table('Items')"),
    ],
)
def test_failures_say_what_is_there(catalogue, check, message):
    with pytest.raises(AssertionError) as raised:
        check(catalogue)
    assert message in str(raised.value)


def test_the_long_key_list_is_shortened(catalogue):
    with pytest.raises(AssertionError, match=r"and 2 more\]"):
        expect(catalogue).table("Items").has_keys([])


def test_no_errors_lists_the_errors(catalogue):
    catalogue.log("disk on fire", LogType.ERROR)
    with pytest.raises(AssertionError, match="logged 1 errors:\n  disk on fire"):
        expect(catalogue).no_errors()


def at_most_ten(value):
    return value <= 10


@pytest.mark.parametrize(
    ("check", "shown"),
    [
        (lambda e: expect(e).parameter("Count").satisfies(lambda v: v < 5), "is 12, which does not satisfy lambda v: v < 5"),
        (
            lambda e: expect(e).parameter("Count").satisfies(
                lambda count: count
                in (1, 2)
            ),
            "is 12, which does not satisfy lambda count: count in (1, 2)",
        ),
        # two lambdas on one line: the one that was checked is shown
        (lambda e: expect(e).parameter("Count").satisfies(lambda v: v > 0).satisfies(lambda v: v == 3), "satisfy lambda v: v == 3"),
        (lambda e: expect(e).parameter("Count").satisfies(at_most_ten), "is 12, which does not satisfy at_most_ten"),
        (lambda e: expect(e).parameter("Count").satisfies(at_most_ten, "ten or fewer"), "is 12, which does not satisfy ten or fewer"),
        (lambda e: expect(e).parameter("Count").satisfies(lambda v: v.startswith("1")), "is 12; checking it with lambda v: v.startswith(\"1\") raised AttributeError"),
    ],
)
def test_a_failed_predicate_is_shown_by_its_text(catalogue, check, shown):
    with pytest.raises(AssertionError) as raised:
        check(catalogue)
    assert shown in str(raised.value)
    assert "<function" not in str(raised.value)
