"""Requests and replies between elements, as the Telenet Ticket Gateway answers its clients:
a request set on another element's parameter says where the answer goes, and the answer is set
back there, on any agent; an undeliverable request gets an error reply, never silence."""

from __future__ import annotations

import contextlib
import json

import pytest

from dmemu.dms import DataMinerSystem
from dmemu.protocol import (
    ElementState,
    ElementStateError,
    InvalidValueError,
    LogType,
    MessageFormatError,
    Number,
    Parameter,
    Protocol,
    QAction,
    Reply,
    ReplyAddress,
    Request,
    SetStatus,
    String,
    UnknownParameterError,
    expect,
)


def search_tickets(protocol):
    target = protocol.get_parameter("Gateway Name") or (protocol.get_parameter("Gateway Agent"), protocol.get_parameter("Gateway Element"))
    request_id = protocol.send_request(target, "Search Request", {"search": protocol.get_parameter("Search")}, "Search Reply")
    protocol.set_parameter("Last Request Id", request_id)


def take_reply(protocol):
    reply = Reply.from_json(protocol.get_parameter("Search Reply"))
    protocol.set_parameter("Replied Request Id", reply.id)
    protocol.set_parameter("Result", json.dumps(reply.body) if reply.ok else f"error: {reply.error}")


class TicketClient(Protocol):
    name = "Ticket Client Requests Test"
    parameters = (
        Parameter(10, "Gateway Name", type=String(), write=True, default="Gateway"),
        Parameter(11, "Gateway Agent", type=Number(), write=True, default=0),
        Parameter(12, "Gateway Element", type=Number(), write=True, default=0),
        Parameter(13, "Search", type=String(), write=True, default=""),
        Parameter(20, "Search Reply", type=String(), write=True, default=""),
        Parameter(21, "Last Request Id", type=String(), default=""),
        Parameter(22, "Replied Request Id", type=String(), default=""),
        Parameter(23, "Result", type=String(), default=""),
    )
    qactions = (QAction(1, search_tickets, triggers=(13,)), QAction(2, take_reply, triggers=(20,)))


SEEN: list[Request] = []


def answer_search(protocol):
    request = protocol.request
    SEEN.append(request)
    search = request.body["search"]
    if search == "nack":
        protocol.reply(request, error="ticketing service refused the search")
    else:
        protocol.reply(request, {"tickets": [f"{search}-1", f"{search}-2"]})


class TicketGateway(Protocol):
    name = "Ticket Gateway Requests Test"
    parameters = (Parameter(30, "Search Request", type=String(), write=True, default=""),)
    qactions = (QAction(1, answer_search, triggers=(30,)),)


@pytest.fixture(autouse=True)
def clear_seen():
    SEEN.clear()


@pytest.fixture
def two_agents(dmemu_state_dir, dmemu_clock):
    with DataMinerSystem(dmemu_state_dir, dmemu_clock, agent_ids=(346, 347)) as dms:
        yield dms


def test_a_request_is_answered_on_the_callers_parameter_across_agents(two_agents):
    gateway = two_agents.create_element(TicketGateway, "Gateway", agent_id=347)
    client = two_agents.create_element(TicketClient, "Client 1", agent_id=346)
    assert (gateway.ids, client.ids) == ((347, 1), (346, 1))  # the same element id on two agents

    client.set("Search", "MO")  # A's QAction asks B; B's answer triggers A's reply QAction
    request_id = client.get("Last Request Id")
    assert SEEN == [Request(request_id, ReplyAddress(346, 1, 20), {"search": "MO"})]
    expect(client).parameter("Replied Request Id").equals(request_id)
    expect(client).parameter("Result").equals('{"tickets": ["MO-1", "MO-2"]}')


def test_the_target_is_found_by_agent_and_element_ids_too(two_agents):
    two_agents.create_element(TicketGateway, "Gateway", agent_id=347, element_id=12)
    client = two_agents.create_element(TicketClient, "Client 1", agent_id=346, parameters={"Gateway Name": "", "Gateway Agent": 347, "Gateway Element": 12})
    client.set("Search", "PLM")
    expect(client).parameter("Result").equals('{"tickets": ["PLM-1", "PLM-2"]}')


def test_the_envelopes_are_json_text_on_string_parameters(dms):
    gateway = dms.create_element(TicketGateway, "Gateway")
    client = dms.create_element(TicketClient, "Client 1")
    client.set("Search", "MO")
    request_id = client.get("Last Request Id")
    assert json.loads(gateway.get("Search Request")) == {
        "type": "request",
        "id": request_id,
        "reply_to": {"agent": 1, "element": 2, "parameter": 20},
        "body": {"search": "MO"},
    }
    assert json.loads(client.get("Search Reply")) == {"type": "reply", "id": request_id, "body": {"tickets": ["MO-1", "MO-2"]}, "error": None}


def test_every_request_gets_its_own_id(dms):
    dms.create_element(TicketGateway, "Gateway")
    client = dms.create_element(TicketClient, "Client 1")
    client.set("Search", "a")
    client.set("Search", "b")
    assert len({request.id for request in SEEN}) == 2
    expect(client).parameter("Replied Request Id").equals(SEEN[-1].id)


def test_the_target_can_refuse_with_an_error_reply(dms):
    dms.create_element(TicketGateway, "Gateway")
    client = dms.create_element(TicketClient, "Client 1")
    client.set("Search", "nack")
    expect(client).parameter("Result").equals("error: ticketing service refused the search")


def test_a_request_to_a_missing_element_gets_an_error_reply(dms):
    client = dms.create_element(TicketClient, "Client 1", parameters={"Gateway Name": "Nobody"})
    client.set("Search", "MO")
    request_id = client.get("Last Request Id")
    expect(client).parameter("Replied Request Id").equals(request_id)  # the reply QAction ran
    expect(client).parameter("Result").equals("error: request not delivered to element 'Nobody': no element 'Nobody' in this DMS")
    expect(client).logged(f"request {request_id} to element 'Nobody' parameter 'Search Request' not delivered", LogType.ERROR)
    assert not any("failed" in entry.message for entry in client.logs(LogType.ERROR))  # no QAction failed


@pytest.mark.parametrize("state_change", ["stop", "pause"])
def test_a_request_to_a_stopped_or_paused_element_gets_an_error_reply(dms, state_change):
    gateway = dms.create_element(TicketGateway, "Gateway")
    client = dms.create_element(TicketClient, "Client 1")
    getattr(gateway, state_change)()
    client.set("Search", "MO")
    state = "Stopped" if state_change == "stop" else "Paused"
    expect(client).parameter("Result").equals(f"error: request not delivered to element 'Gateway': element 'Gateway' is {state}: start it before setting parameter 30 'Search Request'")
    assert SEEN == []


def test_a_request_to_a_parameter_that_cannot_take_it_gets_an_error_reply(dms):
    def ask_wrong_parameter(protocol):
        protocol.send_request("Gateway", "No Such Parameter", "hello", "Search Reply")

    dms.create_element(TicketGateway, "Gateway")
    wrong = type("WrongClient", (TicketClient,), {"name": "Wrong Client", "qactions": (QAction(1, ask_wrong_parameter, triggers=(13,)), QAction(2, take_reply, triggers=(20,)))})
    client = dms.create_element(wrong, "Client 1")
    client.set("Search", "MO")
    assert client.get("Result").startswith("error: request not delivered to element 'Gateway': Ticket Gateway Requests Test: no parameter or table 'No Such Parameter'")


def test_a_reply_to_an_element_gone_meanwhile_fails_on_the_replier_only(dms):
    held: list[Request] = []

    def hold(protocol):
        held.append(protocol.request)

    slow = type("SlowGateway", (TicketGateway,), {"name": "Slow Gateway", "qactions": (QAction(1, hold, triggers=(30,)),)})
    gateway = dms.create_element(slow, "Gateway")
    client = dms.create_element(TicketClient, "Client 1")
    client.set("Search", "MO")
    client.stop()
    assert gateway._facade.reply(held[0], {"tickets": []}) is SetStatus.FAILED
    expect(gateway).logged("set on element (1, 2) parameter 20 refused: element 'Client 1' is Stopped", LogType.ERROR)


def test_the_caller_is_told_about_its_own_mistakes_at_once(dms):
    outcomes: list[str] = []

    def ask_badly(protocol):
        for body, reply_parameter in (({"at": {1, 2}}, "Search Reply"), ("x", "Result"), ("x", "Nope")):
            try:
                protocol.send_request("Gateway", "Search Request", body, reply_parameter)
            except (InvalidValueError, UnknownParameterError) as error:
                outcomes.append(f"{type(error).__name__}: {error}")

    dms.create_element(TicketGateway, "Gateway")
    bad = type("BadClient", (TicketClient,), {"name": "Bad Client", "qactions": (QAction(1, ask_badly, triggers=(13,)),)})
    dms.create_element(bad, "Client 1").set("Search", "MO")
    assert [outcome.split(":")[0] for outcome in outcomes] == ["InvalidValueError", "UnknownParameterError", "UnknownParameterError"]
    assert "the body must be a JSON value" in outcomes[0]
    assert "parameter 23 'Result' is not a write parameter" in outcomes[1]
    assert SEEN == []


def test_a_qaction_not_started_by_a_request_is_told_so(dms):
    gateway = dms.create_element(TicketGateway, "Gateway")
    gateway.set("Search Request", "hello")
    expect(gateway).logged("MessageFormatError: not a request: 'hello' is not JSON", LogType.ERROR)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (42, "a request is JSON text, not int 42"),
        ("[1]", "is not an object with \"type\": \"request\""),
        ('{"type": "reply", "id": "x"}', "is not an object with \"type\": \"request\""),
        ('{"type": "request", "id": ""}', "request without an id"),
        ('{"type": "request", "id": "r1", "reply_to": {"agent": 1, "element": "2", "parameter": 3}}', "reply_to must hold integer agent, element and parameter ids"),
    ],
)
def test_envelopes_that_are_not_requests_are_named(text, problem):
    with pytest.raises(MessageFormatError, match=problem.replace("[", r"\[")):
        Request.from_json(text)


def test_replies_round_trip_and_name_what_is_wrong():
    assert Reply.from_json(Reply("r1", {"a": [1]}).to_json()) == Reply("r1", {"a": [1]})
    assert not Reply.from_json(Reply("r1", error="boom").to_json()).ok
    with pytest.raises(MessageFormatError, match="error must be text or null"):
        Reply.from_json('{"type": "reply", "id": "r1", "error": 3}')


# -- a busy target ------------------------------------------------------------------------------
#
# The gateway's own QAction makes the clients ask, so their requests queue behind it: the second
# request's set overwrites the parameter before the QAction of the first one runs.

REPLIES: dict[str, list[Reply]] = {}


def keep_reply(protocol):
    REPLIES.setdefault(protocol.element_name, []).append(Reply.from_json(protocol.trigger_value))


class RecordingClient(TicketClient):
    name = "Recording Client Requests Test"
    parameters = (*TicketClient.parameters[:4], Parameter(20, "Search Reply", type=String(max_length=300), write=True, default=""), *TicketClient.parameters[5:])
    qactions = (QAction(1, search_tickets, triggers=(13,)), QAction(2, keep_reply, triggers=(20,)))


def make_clients_ask(protocol):
    for client in protocol.get_parameter("Clients").split(","):
        protocol.set_element_parameter(client, "Search", client[-1])
    then = protocol.get_parameter("Then")
    if then:  # the gateway goes away while the requests wait for their turn
        getattr(protocol.element.dms.element(protocol.element_name), then)()


class BusyGateway(TicketGateway):
    name = "Busy Gateway Requests Test"
    parameters = (
        *TicketGateway.parameters,
        Parameter(31, "Clients", type=String(), write=True, default=""),
        Parameter(32, "Then", type=String(), write=True, default=""),
    )
    qactions = (*TicketGateway.qactions, QAction(2, make_clients_ask, triggers=(31,)))


@pytest.fixture(autouse=True)
def clear_replies():
    REPLIES.clear()


def test_a_busy_target_answers_each_queued_request_once_with_its_own_answer(dms):
    gateway = dms.create_element(BusyGateway, "Gateway")
    dms.create_element(RecordingClient, "Client 1")
    dms.create_element(RecordingClient, "Client 2")
    gateway.set("Clients", "Client 1,Client 2")
    assert {name: [reply.body for reply in replies] for name, replies in REPLIES.items()} == {
        "Client 1": [{"tickets": ["1-1", "1-2"]}],
        "Client 2": [{"tickets": ["2-1", "2-2"]}],
    }
    assert [request.body for request in SEEN] == [{"search": "1"}, {"search": "2"}]


@pytest.mark.parametrize(
    ("state_change", "error"),
    [
        ("stop", "element 'Gateway' stopped before this work ran"),
        ("pause", "element 'Gateway' is Paused: the set of parameter 30 was not applied"),
    ],
)
def test_a_request_waiting_on_a_target_that_stops_or_pauses_gets_an_error_reply(dms, state_change, error):
    gateway = dms.create_element(BusyGateway, "Gateway", parameters={"Then": state_change})
    client = dms.create_element(RecordingClient, "Client 1")
    # The set that started the gateway's QAction hears that a stop cut its work short, as any set does.
    with pytest.raises(ElementStateError, match="stopped before this work ran") if state_change == "stop" else contextlib.nullcontext():
        gateway.set("Clients", "Client 1")
    assert gateway.state is not ElementState.ACTIVE and SEEN == []
    (reply,) = REPLIES["Client 1"]
    assert (reply.id, reply.error) == (client.get("Last Request Id"), f"request not delivered to element 'Gateway': {error}")
    expect(client).logged(f"request {reply.id} to element 'Gateway' parameter 'Search Request' not delivered: {error}", LogType.ERROR)


def test_a_missing_element_is_named_alone_so_the_error_reply_fits(dms):
    for number in range(99):
        dms.create_element(TicketGateway, f"Gateway With A Rather Long Name Number {number}")
    client = dms.create_element(RecordingClient, "Client 1", parameters={"Gateway Name": "Nobody"})
    client.set("Search", "MO")
    (reply,) = REPLIES["Client 1"]
    assert reply.error == "request not delivered to element 'Nobody': no element 'Nobody' in this DMS"


def test_an_error_reply_too_long_for_the_reply_parameter_is_cut_to_fit(dms):
    def refuse_at_length(protocol):
        protocol.reply(protocol.request, error="the ticketing service said: " + "\"no\" é " * 100)

    talkative = type("TalkativeGateway", (TicketGateway,), {"name": "Talkative Gateway", "qactions": (QAction(1, refuse_at_length, triggers=(30,)),)})
    dms.create_element(talkative, "Gateway")
    client = dms.create_element(RecordingClient, "Client 1")
    client.set("Search", "MO")
    (reply,) = REPLIES["Client 1"]
    assert reply.error.startswith('the ticketing service said: "no" é "no"') and reply.error.endswith("...")
    assert 290 < len(client.get("Search Reply")) <= 300  # as much as fits, escapes counted


# -- ticket events on a busy element --------------------------------------------------------------


def keep_ticket_event(protocol):
    REPLIES.setdefault("events", []).append(json.loads(protocol.trigger_value)["kind"])


def open_and_assign_ticket(protocol):
    ticket = protocol.tickets.create("Request", {"Title": protocol.get_parameter("Open Ticket")})
    protocol.tickets.update(ticket.id, state="Assigned")


class TicketWatcher(Protocol):
    name = "Ticket Watcher Requests Test"
    parameters = (Parameter(10, "Ticket Event", type=String()), Parameter(20, "Open Ticket", type=String(), write=True, default=""))
    qactions = (QAction(1, keep_ticket_event, triggers=(10,)), QAction(2, open_and_assign_ticket, triggers=(20,)))


def test_an_element_busy_making_two_ticket_events_handles_each_of_them(dms):
    from dmemu.dms import TicketField, TicketType

    dms.tickets.define_type(TicketType("Request", (TicketField("Title", "string"),)))
    watcher = dms.create_element(TicketWatcher, "Watcher")
    dms.tickets.subscribe_element(watcher, "Ticket Event")
    watcher.set("Open Ticket", "t")  # both events queue behind the QAction that makes them
    assert REPLIES["events"] == ["created", "updated"]
