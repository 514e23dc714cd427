"""The DataMiner System hosts elements, finds them, and lets them reach each other."""

from __future__ import annotations

import threading

import pytest

from dmemu.dms import DataMinerSystem, DuplicateElementError, SavedSystem
from dmemu.protocol import (
    Connection,
    DmemuError,
    ElementNotFoundError,
    ElementState,
    ElementStateError,
    HttpConnection,
    InvalidValueError,
    LogType,
    Number,
    Parameter,
    Protocol,
    QAction,
    ReadOnlyParameterError,
    RealClock,
    SetStatus,
    StateFileError,
    String,
    Timer,
    UnknownParameterError,
    VirtualClock,
    expect,
)

REQUESTS: list[tuple[str, object]] = []


def ask_gateway(protocol):
    """Telenet-style request: set a parameter on another element and say where to answer."""
    status = protocol.set_element_parameter(
        protocol.get_parameter("Gateway"), "Request", f"{protocol.element.agent_id}/{protocol.element.element_id}/20:ping"
    )
    REQUESTS.append(("sent", status))


def answer_request(protocol):
    reply_to, _, body = protocol.get_parameter("Request").partition(":")
    agent, element, parameter = (int(part) for part in reply_to.split("/"))
    protocol.set_element_parameter((agent, element), parameter, f"pong to {body}")


class Client(Protocol):
    name = "Ticket Client Test"
    parameters = (
        Parameter(10, "Gateway", type=String(), write=True, default="Gateway"),
        Parameter(11, "Send", type=Number(), write=True),
        Parameter(20, "Response", type=String(), write=True, default=""),
    )
    qactions = (QAction(1, ask_gateway, triggers=(11,)),)


class Gateway(Protocol):
    name = "Ticket Gateway Test"
    connection = HttpConnection(default_port=8443, credentials=True)
    parameters = (Parameter(30, "Request", type=String(), write=True, default=""),)
    qactions = (QAction(1, answer_request, triggers=(30,)),)


@pytest.fixture(autouse=True)
def clear_requests():
    REQUESTS.clear()


def test_create_and_find_by_name_or_id_pair(dms):
    gateway = dms.create_element(Gateway, "Gateway")
    client = dms.create_element(Client, "Client 1")
    assert (gateway.ids, client.ids) == ((1, 1), (1, 2))
    assert dms.element("Client 1") is client
    assert dms.element((1, 2)) is client
    assert dms.find("nobody") is None
    assert dms.elements == [gateway, client]
    assert gateway.connection.port == 8443  # the protocol's default port
    with pytest.raises(ElementNotFoundError, match=r"no element 'nobody' in this DMS; elements: 'Gateway' \(1/1\), 'Client 1' \(1/2\)"):
        dms.element("nobody")


def test_an_element_is_found_by_agent_slash_element_ids_as_the_cli_writes_them(dms):
    gateway = dms.create_element(Gateway, "Gateway")
    client = dms.create_element(Client, "Client 1")
    assert dms.element("1/2") is client and dms.find(" 1/1 ") is gateway
    assert dms.find("1/9") is None
    with pytest.raises(ElementNotFoundError, match=r"no element '2/1' in this DMS; elements: 'Gateway' \(1/1\)"):
        dms.element("2/1")
    named_like_ids = dms.create_element(Gateway, "1/2")  # a name that looks like ids: the name wins
    assert dms.element("1/2") is named_like_ids and dms.element((1, 2)) is client


def test_a_saved_system_finds_elements_by_the_same_refs(dms, dmemu_state_dir):
    dms.create_element(Gateway, "Gateway")
    dms.create_element(Client, "Client 1")
    dms.create_element(Gateway, "1/1")
    dms.flush()
    saved = SavedSystem(dmemu_state_dir)
    assert saved.element("1/2").name == saved.element((1, 2)).name == "Client 1"
    assert saved.element("1/1").name == "1/1"  # the name wins over the ids it looks like
    with pytest.raises(TypeError, match="not by \\(1, 'x'\\)"):
        saved.element((1, "x"))


@pytest.mark.parametrize("ref", [(1, "x"), (1,), (1, 2, 3), ("1", "2"), (True, 1), 12, 1.5, None, ["Gateway"]])
def test_a_ref_of_no_accepted_form_is_a_clear_error(dms, ref):
    dms.create_element(Gateway, "Gateway")
    with pytest.raises(TypeError, match=r"an element is named by its name, by \"AGENT/ELEMENT\" ids such as \"1/12\", or by an \(agent id, element id\) pair of ints") as raised:
        dms.element(ref)
    assert repr(ref) in str(raised.value)


class Configured(Protocol):
    name = "Configured Test"
    parameters = (
        Parameter(10, "Endpoint", type=String(), write=True, default="https://default", save=True),
        Parameter(11, "Password", type=String(secret=True), write=True, default=""),
        Parameter(12, "Seen At Startup", type=String(), default=""),
        Parameter(13, "Changes", type=Number(), default=0),
    )
    qactions = (
        QAction(1, lambda protocol: protocol.set_parameter("Seen At Startup", protocol.get_parameter("Endpoint")), after_startup=True),
        QAction(2, lambda protocol: protocol.set_parameter("Changes", protocol.get_parameter("Changes") + 1), triggers=(10,)),
    )


def test_first_values_given_at_creation_are_seen_by_the_start_up_work(dms, dmemu_state_dir, dmemu_clock):
    element = dms.create_element(Configured, "Configured", parameters={"Endpoint": "http://device", 11: "s3cret"})
    assert element.get("Seen At Startup") == "http://device"
    assert element.get("Changes") == 0  # like defaults: no QAction ran for them
    dms.close()
    with DataMinerSystem(dmemu_state_dir, dmemu_clock) as again:
        assert again.element("Configured").get("Endpoint") == "http://device"  # saved with the element


def test_bad_first_values_create_nothing(dms):
    with pytest.raises(InvalidValueError, match="Endpoint"):
        dms.create_element(Configured, "Configured", parameters={"Endpoint": 42})
    with pytest.raises(ReadOnlyParameterError, match="parameter 12 is not a write parameter"):
        dms.create_element(Configured, "Configured", parameters={"Seen At Startup": "x"})
    with pytest.raises(UnknownParameterError, match="Nope"):
        dms.create_element(Configured, "Configured", parameters={"Nope": "x"})
    assert dms.elements == []


def test_passwords_read_as_stars_but_qactions_see_them(dms):
    element = dms.create_element(Configured, "Configured")
    assert element.get("Password") == ""
    element.set("Password", "s3cret")
    assert element.get(11) == "********"
    assert element._facade.get_parameter("Password") == "s3cret"


def test_names_and_ids_are_unique(dms):
    dms.create_element(Client, "Client 1", element_id=7)
    with pytest.raises(DuplicateElementError, match="named 'Client 1'"):
        dms.create_element(Client, "Client 1")
    with pytest.raises(DuplicateElementError, match="1/7 is taken by 'Client 1'"):
        dms.create_element(Client, "Client 2", element_id=7)
    with pytest.raises(ValueError, match="non-empty"):
        dms.create_element(Client, "  ")
    with pytest.raises(TypeError, match="not a Protocol class"):
        dms.create_element(object, "Wrong")  # type: ignore[arg-type]


def test_several_agents_each_with_their_own_element_ids(dmemu_state_dir, dmemu_clock):
    with DataMinerSystem(dmemu_state_dir, dmemu_clock, agent_ids=(346, 347)) as dms:
        a = dms.create_element(Client, "On 346")
        b = dms.create_element(Client, "On 347", agent_id=347)
        c = dms.create_element(Client, "Also on 347", agent_id=347)
        assert (a.ids, b.ids, c.ids) == ((346, 1), (347, 1), (347, 2))
        with pytest.raises(ValueError, match="agent 9 is not part of this DMS"):
            dms.create_element(Client, "Lost", agent_id=9)


def test_request_and_reply_between_elements(dms):
    dms.create_element(Gateway, "Gateway")
    client = dms.create_element(Client, "Client 1")
    client.set("Send", 1)
    assert REQUESTS == [("sent", SetStatus.OK)]
    assert client.get("Response") == "pong to ping"


def test_a_request_to_a_missing_or_stopped_element_gets_an_error_status(dms):
    gateway = dms.create_element(Gateway, "Gateway")
    client = dms.create_element(Client, "Client 1")
    gateway.stop()
    client.set("Send", 1)
    client.set("Gateway", "Nobody")
    client.set("Send", 1)
    assert REQUESTS == [("sent", SetStatus.FAILED), ("sent", SetStatus.FAILED)]
    expect(client).logged("'Gateway' is Stopped", LogType.ERROR).logged("no element 'Nobody'", LogType.ERROR)


def test_a_qaction_reads_another_elements_parameter(dms):
    def read_gateway(protocol):
        protocol.set_parameter("Response", protocol.get_element_parameter("Gateway", "Request"))

    dms.create_element(Gateway, "Gateway").set("Request", "hello from the gateway")
    reader = type("Reader", (Client,), {"name": "Reader", "qactions": (QAction(1, read_gateway, triggers=(11,)),)})
    client = dms.create_element(reader, "Reader 1")
    client.set("Send", 1)
    assert client.get("Response") == "hello from the gateway"


def test_get_and_set_another_elements_parameter_from_the_dms(dms):
    dms.create_element(Client, "Client 1")
    dms.set_parameter("Client 1", "Response", "hello")
    assert dms.get_parameter((1, 1), 20) == "hello"


def test_stop_and_delete(dms, dmemu_state_dir):
    client = dms.create_element(Client, "Client 1")
    dms.stop_element("Client 1")
    assert client.state is ElementState.STOPPED
    with pytest.raises(ElementStateError):
        dms.set_parameter("Client 1", "Response", "x")
    client.start()
    client.set("Response", "kept?")
    dms.delete_element((1, 1))
    assert dms.find("Client 1") is None
    assert not (dmemu_state_dir / "elements" / "1-1.json").exists()
    again = dms.create_element(Client, "Client 1")
    assert again.ids == (1, 1) and again.get("Response") == ""


def test_a_closed_dms_refuses_new_elements(dmemu_state_dir, dmemu_clock):
    dms = DataMinerSystem(dmemu_state_dir, dmemu_clock)
    dms.close()
    with pytest.raises(DmemuError, match="closed"):
        dms.create_element(Client, "Late")


def test_a_state_directory_that_is_a_file_is_named(tmp_path, dmemu_clock):
    occupied = tmp_path / "occupied"
    occupied.write_text("not a directory")
    with pytest.raises(StateFileError, match="cannot use state directory .*occupied"):
        DataMinerSystem(occupied, dmemu_clock)


def test_connection_settings_are_kept_per_element(dms):
    connection = Connection(host="10.0.0.5", port=8080, bus_address="BypassProxy", username="u", password="p")
    element = dms.create_element(Gateway, "Gateway", connection=connection)
    assert element.connection == connection
    assert element.http.base_url == "http://10.0.0.5:8080/"
    assert element.http.auth == ("u", "p")


def test_credentials_only_where_the_protocol_asks_for_them(dms):
    with pytest.raises(ValueError, match="'Ticket Client Test' takes no credentials"):
        dms.create_element(Client, "Client 1", connection=Connection(username="u", password="p"))


WALL_CLOCK_TICKS = threading.Event()


def count_tick(protocol):
    count = protocol.get_parameter("Ticks") + 1
    protocol.set_parameter("Ticks", count)
    if count == 3:
        WALL_CLOCK_TICKS.set()


class Ticker(Protocol):
    name = "Wall Clock Ticker"
    parameters = (Parameter(1, "Ticks", type=Number(), default=0, save=True),)
    timers = (Timer(1, seconds=0.02, qactions=(1,), at_startup=False),)
    qactions = (QAction(1, count_tick),)


def test_on_the_wall_clock_the_dms_fires_timers_in_the_background_until_closed(dmemu_state_dir):
    WALL_CLOCK_TICKS.clear()
    dms = DataMinerSystem(dmemu_state_dir)
    try:
        assert isinstance(dms.clock, RealClock) and dms.clock.running
        ticker = dms.create_element(Ticker, "Ticker")
        assert WALL_CLOCK_TICKS.wait(5), "no timer fired on the wall clock"
    finally:
        dms.close()
    assert not dms.clock.running
    ticks = ticker.get("Ticks")
    assert ticks >= 3
    with DataMinerSystem(dmemu_state_dir, VirtualClock()) as reopened:
        assert reopened.element("Ticker").get("Ticks") == ticks  # saved on close


class Keeper(Protocol):
    name = "Wall Clock Keeper"
    parameters = (Parameter(1, "Setpoint", type=Number(), write=True, default=0, save=True),)


def test_saving_on_the_wall_clock_while_the_user_works_loses_nothing(dmemu_state_dir, caplog):
    """The autosave runs on a worker thread while this thread creates, sets and deletes."""
    dms = DataMinerSystem(dmemu_state_dir, autosave_seconds=0.001)
    try:
        for number in range(150):
            element = dms.create_element(Keeper, f"Keeper {number}")
            element.set("Setpoint", number)
            if number % 10 == 9:
                dms.delete_element(f"Keeper {number - 5}")
    finally:
        dms.close()
    assert [record.getMessage() for record in caplog.records if record.levelname == "ERROR"] == []
    with DataMinerSystem(dmemu_state_dir, VirtualClock()) as reopened:
        values = {element.name: element.get("Setpoint") for element in reopened.elements}
    deleted = {f"Keeper {number - 5}" for number in range(9, 150, 10)}
    assert values == {f"Keeper {n}": n for n in range(150) if f"Keeper {n}" not in deleted}
