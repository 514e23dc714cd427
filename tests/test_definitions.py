"""Protocol definitions are checked when the class is created, naming the culprit."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from dmemu.protocol import (
    Button,
    Column,
    DefinitionError,
    Discrete,
    DisplayKey,
    InvalidValueError,
    Number,
    Page,
    PageButton,
    Parameter,
    Protocol,
    QAction,
    String,
    Table,
    Timer,
)


def noop(protocol: object) -> None:
    pass


def define(**attributes: object) -> type[Protocol]:
    """Create a protocol class from attributes, as a connector module would."""
    attributes.setdefault("name", "Checked")
    return type("Checked", (Protocol,), dict(attributes))


ITEMS = Table(1000, "Items", columns=(Column(1001, "ID", key=True), Column(1002, "Name")))


def test_a_complete_protocol_is_accepted_and_indexed() -> None:
    protocol = define(
        pages=(Page("General", order=1), Page("Configuration", order=2), Page("Details", parent="Configuration")),
        parameters=(
            Parameter(10, "Status", type=Discrete({0: "Down", 1: "Up"}), default=0, page="General"),
            Parameter(11, "Frequency", type=Number(10, 100, "s"), write=True, default=60, save=True, page="Configuration"),
            Parameter(12, "Refresh", type=Button("Refresh"), write=True, page="General"),
            Parameter(13, "Details", type=PageButton("Details"), page="Configuration"),
        ),
        tables=(ITEMS,),
        timers=(Timer(1, seconds=60, qactions=(100,)),),
        qactions=(QAction(100, noop, triggers=(12,)), QAction(101, noop, triggers=(1002,), row=True)),
    )
    model = protocol.model
    assert model.resolve("Frequency") == 11
    assert model.resolve(1000) == 1000
    assert model.table("Items").key_index == 0
    assert [q.id for q in model.triggers[12]] == [100]
    assert model.saved_parameters == {11}
    assert set(model.writable) == {11, "Frequency", 12, "Refresh"}


@pytest.mark.parametrize(
    ("attributes", "culprit"),
    [
        ({"parameters": (Parameter(10, "A"), Parameter(10, "B"))}, "duplicate id 10"),
        ({"parameters": (Parameter(1001, "A"),), "tables": (ITEMS,)}, "duplicate id 1001"),
        ({"parameters": (Parameter(10, "Items"),), "tables": (ITEMS,)}, "duplicate parameter or table name 'Items'"),
        ({"parameters": (Parameter(0, "Zero"),)}, "id 0"),
        ({"qactions": (QAction(1, noop, triggers=(99,)),)}, "triggered by parameter 99, which does not exist"),
        ({"qactions": (QAction(1, noop, triggers=(10,)), QAction(1, noop, triggers=(10,))), "parameters": (Parameter(10, "A"),)}, "duplicate QAction id 1"),
        ({"qactions": (QAction(1, noop),)}, "has no trigger"),
        ({"qactions": (QAction(1, noop, triggers=(1000,)),), "tables": (ITEMS,)}, "triggered by table 1000 'Items'; tables trigger nothing, their columns do"),
        ({"qactions": (QAction(1, noop, triggers=(10,), row=True),), "parameters": (Parameter(10, "A"),)}, "not a table column"),
        ({"tables": (Table(1000, "T", columns=(Column(1001, "A"), Column(1002, "B"))),)}, "needs exactly one key column, found 0"),
        ({"tables": (Table(1000, "T", columns=(Column(1001, "A", key=True), Column(1002, "B", key=True))),)}, "found 2"),
        ({"tables": (Table(1000, "T", columns=(Column(1001, "A", key=True, type=Number()),)),)}, "must be a String column"),
        ({"tables": (Table(1000, "T", columns=()),)}, "has no columns"),
        ({"tables": (Table(1000, "T", columns=(Column(1001, "A", key=True), Column(1002, "A"))),)}, "duplicate column name"),
        ({"tables": (Table(1000, "T", columns=(Column(1001, "A", key=True),), display_key=DisplayKey(("Nope",))),)}, "unknown column 'Nope'"),
        ({"parameters": (Parameter(10, "A", page="Nowhere"),)}, "placed on page 'Nowhere', which does not exist"),
        ({"tables": (Table(1000, "T", page="Nowhere", columns=(Column(1001, "A", key=True),)),)}, "page 'Nowhere'"),
        ({"pages": (Page("Sub", parent="Missing"),)}, "parent page 'Missing'"),
        ({"pages": (Page("General"), Page("General"))}, "duplicate page name 'General'"),
        ({"parameters": (Parameter(10, "Go", type=PageButton("Missing")),)}, "page button to page 'Missing'"),
        ({"parameters": (Parameter(10, "Press", type=Button()),)}, "must be a write parameter"),
        ({"parameters": (Parameter(10, "A", type=Number(0, 10), default=11),)}, "default does not fit"),
        ({"timers": (Timer(1, seconds=10, qactions=(5,)),)}, "runs QAction 5, which does not exist"),
        ({"timers": (Timer(1, seconds=0, qactions=(1,)),), "qactions": (QAction(1, noop),)}, "positive, finite number of seconds"),
        ({"timers": (Timer(1, seconds=float("inf"), qactions=(1,)),), "qactions": (QAction(1, noop),)}, "interval inf"),
        ({"timers": (Timer(1, seconds=float("nan"), qactions=(1,)),), "qactions": (QAction(1, noop),)}, "interval nan"),
        ({"timers": (Timer(1, seconds=True, qactions=(1,)),), "qactions": (QAction(1, noop),)}, "interval True"),
        ({"parameters": ("not a parameter",)}, "is not a Parameter"),
        ({"name": ""}, "`name` must be a non-empty string"),
    ],
)
def test_inconsistent_definitions_fail_naming_the_culprit(attributes: dict[str, object], culprit: str) -> None:
    with pytest.raises(DefinitionError) as raised:
        define(**attributes)
    assert culprit in str(raised.value)


def two_arguments(protocol: object, extra: object) -> None:
    pass


def no_argument() -> None:
    pass


class Poller:
    def poll(self, protocol: object) -> None:
        pass


# Mistakes a new user made that used to pass the class check (or fail with a raw TypeError).
# Each case builds its attributes when it runs: some used to fail already in the constructor.
@pytest.mark.parametrize(
    ("attributes", "culprit"),
    [
        (lambda: {"pages": Page("General")}, "`pages` must be a tuple of Page, not a single Page Page(name='General'"),
        (lambda: {"pages": "General"}, "`pages` must be a tuple of Page, not str 'General'"),
        (lambda: {"tables": ITEMS}, "`tables` must be a tuple of Table, not a single Table"),
        (lambda: {"parameters": Parameter(10, "A")}, "a one-item tuple needs a trailing comma"),
        (lambda: {"timers": Timer(1, seconds=5, qactions=(1,)), "qactions": (QAction(1, noop),)}, "`timers` must be a tuple of Timer"),
        (lambda: {"qactions": {1: QAction(1, noop, triggers=(10,))}, "parameters": (Parameter(10, "A"),)}, "`qactions` must be a tuple of QAction, not dict"),
        (lambda: {"tables": (Table(1000, "T", columns=Column(1001, "A", key=True)),)}, "table 1000 'T' `columns` must be a tuple of Column, not a single Column"),
        (lambda: {"tables": (Table(1000, "T", columns=(Column(1001, "A", key=True), "B")),)}, "table 1000 'T' columns` holds 'B', which is not a Column"),
        (lambda: {"timers": (Timer(1, seconds=5, qactions=1),), "qactions": (QAction(1, noop),)}, "timer 1 `qactions` must be a tuple of QAction ids, not a single int 1; a one-item tuple needs a trailing comma: `(1,)`"),
        (lambda: {"tables": (Table(1000, "T", columns=(Column(1001, "A", key=True),), display_key=DisplayKey("A")),)}, "display key `columns` must be a tuple of column ids or names, not a single str 'A'; a one-item tuple needs a trailing comma: `('A',)`"),
        (lambda: {"qactions": (QAction(1, noop, triggers=10),), "parameters": (Parameter(10, "A"),)}, "QAction 1 'noop' `triggers` must be a tuple of parameter ids, not a single int 10"),
        (lambda: {"parameters": (Parameter(10, "A", type=Number),)}, "parameter 10 'A' has type=Number, the class; give an instance: type=Number()"),
        (lambda: {"parameters": (Parameter(10, "A", type=int),)}, "parameter 10 'A' has type=<class 'int'>; a type is an instance of one of Number"),
        (lambda: {"tables": (Table(1000, "T", columns=(Column(1001, "A", key=True, type=String),)),)}, "column 1001 'A' of table 1000 'T' has type=String, the class"),
        (lambda: {"parameters": (Parameter(10, ""),)}, "parameter 10 '' has name ''; a name is a non-empty string"),
        (lambda: {"parameters": (Parameter(10, "  "),)}, "has name '  '"),
        (lambda: {"parameters": (Parameter(10, 5),)}, "parameter 10 5 has name 5"),
        (lambda: {"tables": (Table(1000, "", columns=(Column(1001, "A", key=True),)),)}, "table 1000 '' has name ''"),
        (lambda: {"tables": (Table(1000, "T", columns=(Column(1001, None, key=True),)),)}, "column 1001 None of table 1000 'T' has name None"),
        (lambda: {"pages": (Page(""),)}, "a page has name ''"),
        (lambda: {"qactions": (QAction(1, two_arguments, triggers=(10,)),), "parameters": (Parameter(10, "A"),)}, "QAction 1 'two_arguments' function is two_arguments(protocol, extra), but a QAction function is called with one argument, the protocol (missing a required argument: 'extra')"),
        (lambda: {"qactions": (QAction(1, no_argument, triggers=(10,)),), "parameters": (Parameter(10, "A"),)}, "is called with one argument, the protocol"),
        (lambda: {"qactions": (QAction(1, Poller.poll, triggers=(10,)),), "parameters": (Parameter(10, "A"),)}, "function is Poller.poll(self, protocol), but"),
        (lambda: {"paramters": (Parameter(10, "A"),)}, "unknown class attribute `paramters`"),
        (lambda: {"paramters": (Parameter(10, "A"),)}, "did you mean `parameters`?"),
        (lambda: {"qaction": (QAction(1, noop),)}, "did you mean `qactions`?"),
        (lambda: {"conection": None}, "did you mean `connection`?"),
        (lambda: {"device_model": "XR-100"}, "unknown class attribute `device_model` = 'XR-100'; a protocol declares connection, description"),
        (lambda: {"model": "XR-100"}, "`model` is built by dmemu"),
    ],
)
def test_mistakes_that_used_to_escape_fail_naming_protocol_and_culprit(
    attributes: Callable[[], dict[str, object]], culprit: str
) -> None:
    with pytest.raises(DefinitionError) as raised:
        define(name="My Connector", **attributes())
    assert culprit in str(raised.value)
    # The protocol is named: by its name, or by its class when the name may be what is wrong.
    assert str(raised.value).startswith(("protocol 'My Connector': ", "protocol Checked: "))


def test_a_misspelt_name_is_reported_by_the_class_it_is_on() -> None:
    with pytest.raises(DefinitionError, match=r"^protocol Checked: unknown class attribute `nmae`.*did you mean `name`\?"):
        type("Checked", (Protocol,), {"nmae": "Mine"})


def test_helpers_private_names_lists_and_callables_without_a_signature_are_accepted() -> None:
    class WithHelpers(Protocol):
        name = "With Helpers"
        _interval = 60  # private: the protocol's own
        pages = [Page("General")]  # a list is as good as a tuple
        parameters = [Parameter(10, "A", write=True)]
        qactions = (
            QAction(1, print, triggers=(10,)),  # a builtin has no signature to check
            QAction(2, Poller().poll, triggers=[10]),  # a bound method takes the protocol only
            QAction(3, lambda protocol, retries=3: None, triggers=(10,)),  # defaults are fine
        )

        def helper(self) -> None:  # methods and other callables are helpers, not declarations
            pass

        @staticmethod
        def parse(text: str) -> str:
            return text

    assert WithHelpers.pages == (Page("General"),)
    assert WithHelpers.model.qactions[2].triggers == (10,)


def test_a_subclass_may_redeclare_what_its_base_declares() -> None:
    base = define(parameters=(Parameter(10, "A"),))
    derived = type("Derived", (base,), {"version": "2.0.0.0", "parameters": (Parameter(10, "A"), Parameter(11, "B"))})
    assert set(derived.model.parameters) == {10, 11}


def test_a_parameter_error_names_the_protocol() -> None:
    with pytest.raises(DefinitionError, match="protocol 'My Connector'"):
        define(name="My Connector", parameters=(Parameter(1, "A"), Parameter(1, "B")))


class TestMeasurementChecks:
    def test_number_accepts_numbers_in_range_only(self) -> None:
        check = Number(3600, 432000, "s").checker("parameter 10 'Frequency'")
        assert check(3600) == 3600
        assert check(7200.5) == 7200.5
        with pytest.raises(InvalidValueError, match=r"parameter 10 'Frequency': 60 is out of range; allowed: a number from 3600 to 432000 s"):
            check(60)
        for wrong in ("3600", True, None, float("nan")):
            with pytest.raises(InvalidValueError, match="Frequency"):
                check(wrong)

    def test_string_checks_type_and_length(self) -> None:
        check = String(max_length=3).checker("p")
        assert check("abc") == "abc"
        with pytest.raises(InvalidValueError, match="too long"):
            check("abcd")
        with pytest.raises(InvalidValueError, match="is a int"):
            check(5)

    def test_discrete_accepts_value_or_display_name_and_stores_the_value(self) -> None:
        check = Discrete({0: "Disabled", 1: "Enabled"}).checker("parameter 5 'Sync'")
        assert check(1) == 1
        assert check("Enabled") == 1
        with pytest.raises(InvalidValueError) as raised:
            check(2)
        assert "0 (Disabled), 1 (Enabled)" in str(raised.value)
        with pytest.raises(InvalidValueError):
            check(True)  # a bool is not the discrete value 1
        with pytest.raises(InvalidValueError):
            check(1.0)  # nor is a float
        with pytest.raises(InvalidValueError):
            check([1])

    def test_button_is_pressed_with_one_or_its_label(self) -> None:
        check = Button("Refresh").checker("p")
        assert check(1) == 1
        assert check("Refresh") == 1
        with pytest.raises(InvalidValueError, match="does not press"):
            check(2)

    def test_secret_strings_never_display(self) -> None:
        assert String(secret=True).display("hunter2") == "********"
        assert Number(units="s", decimals=1).display(2.25) == "2.2 s"

    def test_empty_number_range_is_refused(self) -> None:
        with pytest.raises(ValueError, match="range is empty"):
            Number(10, 1)
