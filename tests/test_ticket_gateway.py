"""The Telenet Ticket Gateway and the OSB ticketing service's XML (client side).

The XML part works on plain bytes; the Gateway runs end to end against the OSB simulator over
loopback, on a virtual clock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest

from dmemu.dms import DataMinerSystem
from dmemu.elements.telenet import osb_messages as osb
from dmemu.elements.telenet import ticket_gateway
from dmemu.elements.telenet.osb_messages import (
    CREATE_TICKET,
    FoundTicket,
    OsbAck,
    OsbAnswerError,
    OsbFaultError,
    OsbNack,
    OsbNackError,
    OsbRequestError,
    TransactionResult,
)
from dmemu.elements.telenet.service_info import ServiceInfo, ServiceSelectionError, write_service_csv
from dmemu.elements.telenet.suite import SERVICE_NAME, create_telenet_suite
from dmemu.elements.telenet.ticket_gateway import TelenetTicketGateway, TicketRequest
from dmemu.protocol import (
    BYPASS_PROXY,
    Connection,
    ConnectionSettingError,
    Element,
    InvalidValueError,
    LogType,
    Parameter,
    Protocol,
    QAction,
    QActionFailedError,
    Reply,
    String,
    VirtualClock,
)
from dmemu.simulators import Fault, OsbService

ENVELOPE = (
    '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:tck="urn:telenet:sam:ticketing:v1">'
    "<soapenv:Body>{}</soapenv:Body></soapenv:Envelope>"
)


def answer(inner: str) -> bytes:
    return ENVELOPE.format(inner).encode()


# --------------------------------------------------------------------------------------------
# Requests


def test_a_search_request_carries_its_fields_in_the_ticketing_namespace() -> None:
    body = osb.search_request("MO", "ne-1 <core>", alarm_id=17, status="Open")
    assert body == (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:tck="urn:telenet:sam:ticketing:v1">'
        b"<soapenv:Body><tck:SearchTicketRequest><tck:TicketType>MO</tck:TicketType>"
        b"<tck:NetworkElement>ne-1 &lt;core&gt;</tck:NetworkElement><tck:AlarmId>17</tck:AlarmId><tck:Status>Open</tck:Status>"
        b"</tck:SearchTicketRequest></soapenv:Body></soapenv:Envelope>"
    )


def create_request(request_id: str, ticket_type: str, alarm_id: Any, network_element: str, severity: str) -> bytes:
    values = {"RequestId": request_id, "TicketType": ticket_type, "AlarmId": alarm_id, "NetworkElement": network_element, "Severity": severity,
              "PathDetails": "", "Description": ""}  # fmt: skip
    return osb.build_request(CREATE_TICKET, values)


def close_request(request_id: str, ticket_id: str, resolution: str | None = None) -> bytes:
    return osb.build_request(osb.CLOSE_TICKET, {"RequestId": request_id, "TicketId": ticket_id, "Resolution": resolution})


def test_optional_fields_left_out_are_not_sent() -> None:
    assert b"AlarmId" not in osb.search_request("PLM", "ne-1")
    assert b"Resolution" not in close_request("r1", "MO-000001")
    assert b"<tck:Resolution>fixed</tck:Resolution>" in close_request("r1", "MO-000001", "fixed")


def test_each_operation_has_its_request_element_and_soap_action() -> None:
    assert b"<tck:CreateTicketRequest><tck:RequestId>r1</tck:RequestId>" in create_request("r1", "MO", "5", "ne", "Major")
    assert b"<tck:UpdateTicketRequest>" in osb.build_request(osb.UPDATE_TICKET, {"RequestId": "r1", "TicketId": "MO-000001", "Severity": "Minor"})
    assert b"<tck:GetTransactionResultRequest><tck:TransactionId>T-1</tck:TransactionId>" in osb.transaction_result_request("T-1")
    assert CREATE_TICKET.headers() == {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"CreateTicket"'}
    assert osb.SERVICE_PATH == "/osb/TicketingService"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: osb.search_request("XX", "ne"), "SearchTicket: the field TicketType is 'XX', not one of MO, PLM"),
        (lambda: osb.search_request("MO", " "), "SearchTicket: the field NetworkElement is empty"),
        (lambda: osb.search_request("MO", "ne", status="open"), "SearchTicket: the field Status is 'open', not one of Open, Closed"),
        (lambda: create_request("r1", "MO", "5", "ne", "Normal"), "CreateTicket: the field Severity is 'Normal'"),
        (lambda: create_request("r1", "MO", 5.0, "ne", "Major"), "CreateTicket: the field AlarmId is text, not float 5.0"),
        (
            lambda: osb.build_request(osb.UPDATE_TICKET, {"RequestId": "r1", "TicketId": "MO-1", "Severity": "Major", "Description": "bell \x07"}),
            "UpdateTicket: the field Description holds the character '\\x07'",
        ),
        (lambda: osb.build_request(CREATE_TICKET, {"RequestId": "r1"}), "CreateTicket: the field TicketType is required"),
        (lambda: osb.build_request(osb.CLOSE_TICKET, {"RequestId": "r", "TicketId": "t", "Colour": "x"}), "CloseTicket: unknown field 'Colour'"),
    ],
)
def test_a_request_that_cannot_be_built_names_the_field(build, message: str) -> None:
    with pytest.raises(OsbRequestError) as raised:
        build()
    assert str(raised.value).startswith(message)


# --------------------------------------------------------------------------------------------
# Answers

TICKET = (
    "<tck:Ticket><tck:TicketId>MO-000001</tck:TicketId><tck:TicketType>MO</tck:TicketType><tck:Status>Open</tck:Status>"
    "<tck:Severity>Major</tck:Severity><tck:NetworkElement>ne-1</tck:NetworkElement><tck:AlarmId>17</tck:AlarmId>"
    "<tck:PathDetails>a &gt; b</tck:PathDetails><tck:Description>down</tck:Description>"
    "<tck:CreatedTime>2026-03-01T00:00:00Z</tck:CreatedTime><tck:UpdatedTime>2026-03-01T00:01:00Z</tck:UpdatedTime></tck:Ticket>"
)


def test_a_search_answer_lists_the_tickets_found() -> None:
    body = answer(f"<tck:SearchTicketResponse><tck:Result>ACK</tck:Result><tck:Tickets>{TICKET}</tck:Tickets></tck:SearchTicketResponse>")
    found = osb.parse_search_response(body)
    assert found == [
        FoundTicket("MO-000001", "MO", "Open", "Major", "ne-1", "17", "a > b", "down", "2026-03-01T00:00:00Z", "2026-03-01T00:01:00Z")
    ]
    assert found[0].as_dict()["path_details"] == "a > b"
    empty = answer("<tck:SearchTicketResponse><tck:Result>ACK</tck:Result><tck:Tickets/></tck:SearchTicketResponse>")
    assert osb.parse_search_response(empty) == []


def test_a_refused_search_raises_its_reason() -> None:
    body = answer("<tck:SearchTicketResponse><tck:Result>NACK</tck:Result><tck:Reason>busy</tck:Reason></tck:SearchTicketResponse>")
    with pytest.raises(OsbNackError, match="SearchTicket: NACK: busy") as raised:
        osb.parse_search_response(body)
    assert raised.value.reason == "busy"


def test_ack_and_nack_of_a_create_update_or_close() -> None:
    ack = answer("<tck:CreateTicketResponse><tck:Result>ACK</tck:Result><tck:TransactionId>T-9</tck:TransactionId></tck:CreateTicketResponse>")
    assert osb.parse_ticket_response(ack, CREATE_TICKET) == OsbAck("T-9")
    nack = answer("<tck:CloseTicketResponse><tck:Result>NACK</tck:Result><tck:Reason>ticket closed</tck:Reason></tck:CloseTicketResponse>")
    assert osb.parse_ticket_response(nack, osb.CLOSE_TICKET) == OsbNack("ticket closed")


def test_transaction_results() -> None:
    def result(inner: str) -> TransactionResult:
        return osb.parse_transaction_result(answer(f"<tck:GetTransactionResultResponse>{inner}</tck:GetTransactionResultResponse>"))

    assert result("<tck:Status>PENDING</tck:Status>") == TransactionResult("PENDING")
    assert result("<tck:Status>COMPLETED</tck:Status><tck:TicketId>PLM-000002</tck:TicketId>") == TransactionResult("COMPLETED", "PLM-000002")
    assert result("<tck:Status>FAILED</tck:Status><tck:Reason>closed meanwhile</tck:Reason>") == TransactionResult("FAILED", reason="closed meanwhile")
    with pytest.raises(OsbAnswerError, match="GetTransactionResult: the answer \\(COMPLETED\\) has no TicketId"):
        result("<tck:Status>COMPLETED</tck:Status>")
    with pytest.raises(OsbAnswerError, match="Status is 'DONE', not one of PENDING, COMPLETED, FAILED"):
        result("<tck:Status>DONE</tck:Status>")


def test_a_soap_fault_raises_with_its_code_and_text() -> None:
    fault = answer("<soapenv:Fault><faultcode>soapenv:Client</faultcode><faultstring>TicketType is missing</faultstring></soapenv:Fault>")
    with pytest.raises(OsbFaultError, match=r"CreateTicket: the service answered a SOAP Fault \(soapenv:Client\): TicketType is missing") as raised:
        osb.parse_ticket_response(fault, CREATE_TICKET)
    assert raised.value.client_fault and raised.value.text == "TicketType is missing"
    server = answer("<soapenv:Fault><faultcode>soapenv:Server</faultcode><faultstring>oops</faultstring></soapenv:Fault>")
    with pytest.raises(OsbFaultError) as raised:
        osb.parse_search_response(server)
    assert not raised.value.client_fault


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "SearchTicket: the answer is empty"),
        (b"<html>502 Bad Gateway", "SearchTicket: the answer is not XML"),
        (b'{"result": "ACK"}', "SearchTicket: the answer is not XML"),
        (b"<Envelope/>", "SearchTicket: the answer is not a SOAP Envelope but <Envelope>"),
        (answer("").replace(b"<soapenv:Body></soapenv:Body>", b""), "SearchTicket: the answer has no SOAP Body"),
        (answer(""), "SearchTicket: the answer has an empty SOAP Body"),
        (answer("<tck:CreateTicketResponse/>"), "SearchTicket: the answer is <{urn:telenet:sam:ticketing:v1}CreateTicketResponse>, not SearchTicketResponse"),
        (answer("<SearchTicketResponse/>"), "SearchTicket: the answer is <SearchTicketResponse>, not SearchTicketResponse in urn:telenet"),
        (answer("<tck:SearchTicketResponse><tck:Result>ACK</tck:Result></tck:SearchTicketResponse>"), "SearchTicket: the answer has no Tickets"),
        (answer("<tck:SearchTicketResponse><tck:Result>OK</tck:Result></tck:SearchTicketResponse>"), "SearchTicket: the answer's Result is 'OK'"),
        (
            answer(f"<tck:SearchTicketResponse><tck:Result>ACK</tck:Result><tck:Tickets>{TICKET.replace('<tck:AlarmId>17</tck:AlarmId>', '')}</tck:Tickets></tck:SearchTicketResponse>"),
            "SearchTicket: the answer: Ticket 1 has no AlarmId",
        ),
        (
            answer(f"<tck:SearchTicketResponse><tck:Result>ACK</tck:Result><tck:Tickets>{TICKET.replace('>Open<', '>Gone<')}</tck:Tickets></tck:SearchTicketResponse>"),
            "SearchTicket: the answer: Ticket 1 (MO-000001): Status is 'Gone', not one of Open, Closed",
        ),
    ],
)
def test_an_answer_that_is_not_the_expected_xml_says_what_was_wrong(body: bytes, message: str) -> None:
    with pytest.raises(OsbAnswerError) as raised:
        osb.parse_search_response(body)
    assert str(raised.value).startswith(message)
    assert not isinstance(raised.value, OsbFaultError)


def test_an_answer_declaring_entities_is_refused_not_expanded() -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE lol [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>' + answer(
        "<tck:SearchTicketResponse><tck:Result>&lol2;</tck:Result><tck:Tickets/></tck:SearchTicketResponse>"
    )
    with pytest.raises(OsbAnswerError, match="SearchTicket: the answer was refused: it declares a DTD or entities"):
        osb.parse_search_response(bomb)
    doctype_only = b"<!DOCTYPE x>" + answer("<tck:SearchTicketResponse><tck:Result>ACK</tck:Result><tck:Tickets/></tck:SearchTicketResponse>")
    with pytest.raises(OsbAnswerError, match="declares a DTD"):
        osb.parse_search_response(doctype_only)



def test_a_field_is_its_text_before_any_child_element_as_xml_reads_it() -> None:
    def reason(inner: str) -> str | None:
        body = answer(f"<tck:GetTransactionResultResponse><tck:Status>FAILED</tck:Status>{inner}</tck:GetTransactionResultResponse>")
        return osb.parse_transaction_result(body).reason

    assert reason("<tck:Reason> closed<!-- a comment --> &amp; <![CDATA[<gone>]]>&#x21;<?pi x?> </tck:Reason>") == "closed & <gone>!"
    assert reason("<tck:Reason>closed<tck:Detail>by hand</tck:Detail> meanwhile</tck:Reason>") == "closed"
    long_reason = "closed & reopened\n" * 2_000  # longer than expat's buffer: it comes in pieces
    assert reason(f"<tck:Reason>{escape(long_reason)}</tck:Reason>") == long_reason.strip()

SEARCHED = answer("<tck:SearchTicketResponse><tck:Result>ACK</tck:Result><tck:Tickets/></tck:SearchTicketResponse>")


@pytest.mark.parametrize(
    ("declarations", "turned_off", "kind"),
    [
        (b'<!DOCTYPE x SYSTEM "http://example.invalid/x.dtd">', (), "DTDForbidden"),
        (b'<!DOCTYPE x [<!ENTITY lol "lol">]>', ("_refuse_doctype",), "EntitiesForbidden"),
        (b'<!DOCTYPE x [<!NOTATION gif SYSTEM "gif"><!ENTITY logo SYSTEM "logo.gif" NDATA gif>]>', ("_refuse_doctype",), "EntitiesForbidden"),
        (b'<!DOCTYPE x [<!ENTITY secret SYSTEM "file:///etc/passwd">]>', ("_refuse_doctype", "_refuse_entity"), "ExternalReferenceForbidden"),
    ],
)
def test_each_refusal_of_an_answer_holds_on_its_own(monkeypatch, declarations: bytes, turned_off: tuple[str, ...], kind: str) -> None:
    # The DOCTYPE refusal is the one an answer meets first; the entity and external reference
    # refusals behind it are checked here with the refusals before them turned off.
    for refusal in turned_off:
        monkeypatch.setattr(osb, refusal, lambda *_declaration: None)
    body = declarations + SEARCHED.replace(b">ACK<", b">&secret;<" if b"secret" in declarations else b">ACK<")
    with pytest.raises(OsbAnswerError, match=rf"SearchTicket: the answer was refused: it declares a DTD or entities \({kind}\)$"):
        osb.parse_search_response(body)


def test_snake_case_names_follow_the_wire_names() -> None:
    assert [osb.snake_case(name) for name in ("NetworkElement", "AlarmId", "TicketId", "PathDetails")] == [
        "network_element", "alarm_id", "ticket_id", "path_details",
    ]  # fmt: skip


# --------------------------------------------------------------------------------------------
# The Gateway, end to end against the OSB simulator over loopback, on a virtual clock

REPLIES: list[tuple[str, Reply]] = []  # (requester, reply) as the requesters' reply QAction heard them
SENT: list[tuple[str, str]] = []  # (requester, request id)


def send_ticket_request(protocol) -> None:
    request_id = protocol.send_request("Ticket Gateway", "Ticket Request", json.loads(protocol.trigger_value), "Ticket Reply")
    SENT.append((protocol.element_name, request_id))


def take_reply(protocol) -> None:
    REPLIES.append((protocol.element_name, Reply.from_json(protocol.trigger_value)))


class Requester(Protocol):
    """An element asking the Gateway, as a Ticket Client or a flow does."""

    name = "Gateway Test Requester"
    parameters = (
        Parameter(10, "Outgoing", String(), write=True, default=""),
        Parameter(20, "Ticket Reply", String(), write=True, default=""),
    )
    qactions = (QAction(1, send_ticket_request, triggers=(10,)), QAction(2, take_reply, triggers=(20,)))


@pytest.fixture(autouse=True)
def clear_messages() -> Iterator[None]:
    REPLIES.clear()
    SENT.clear()
    yield


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def osb_service(clock: VirtualClock) -> Iterator[OsbService]:
    with OsbService(clock=clock.now) as service:
        yield service


@pytest.fixture
def system(tmp_path: Path, clock: VirtualClock) -> Iterator[DataMinerSystem]:
    dms = DataMinerSystem(tmp_path / "dms", clock)
    yield dms
    dms.close()


def make_gateway(dms: DataMinerSystem, service: OsbService, **parameters: Any) -> Element:
    gateway = dms.create_element(
        TelenetTicketGateway, "Ticket Gateway", connection=Connection(port=service.port, bus_address=BYPASS_PROXY, timeout=5), parameters=parameters
    )
    gateway.raise_on_failure = True
    return gateway


@pytest.fixture
def gateway(system: DataMinerSystem, osb_service: OsbService) -> Element:
    return make_gateway(system, osb_service)


@pytest.fixture
def requester(system: DataMinerSystem, gateway: Element) -> Element:
    element = system.create_element(Requester, "Flow Requester")
    element.raise_on_failure = True
    return element


def ask(requester: Element, operation: str, ticket_type: str = "MO", **fields: Any) -> str:
    """Send a request from `requester`'s QAction; answers its id."""
    requester.set("Outgoing", json.dumps({"operation": operation, "ticket_type": ticket_type, "fields": fields}))
    return SENT[-1][1]


def replies_to(request_id: str) -> list[Reply]:
    return [reply for _, reply in REPLIES if reply.id == request_id]


def create_fields(alarm: int) -> dict[str, Any]:
    return {"alarm_id": alarm, "network_element": f"ne-{alarm}", "severity": "Major", "path_details": "a > b", "description": f"alarm {alarm}"}


def osb_operations(service: OsbService) -> list[str | None]:
    return [record.operation for record in service.requests()]


def test_a_create_is_acknowledged_then_its_result_is_replied(gateway: Element, requester: Element, osb_service: OsbService, clock: VirtualClock) -> None:
    request_id = ask(requester, "create", **create_fields(7))
    [ack] = replies_to(request_id)  # sent at once: the buffer was empty
    assert ack.ok and ack.body["stage"] == "ack"
    transaction_id = ack.body["transaction_id"]
    row = gateway.table("Request Buffer").row(request_id)
    assert (row["State"], row["Transaction ID"], row["Priority"], row["Requester"]) == (2, transaction_id, 1, "1/2/20")
    clock.advance(2)  # the Result Poll Interval
    assert [reply.body for reply in replies_to(request_id)][1:] == [{"stage": "result", "status": "COMPLETED", "ticket_id": "MO-000001"}]
    [ticket] = osb_service.tickets()
    assert (ticket.ticket_id, ticket.alarm_id, ticket.network_element, ticket.path_details) == ("MO-000001", "7", "ne-7", "a > b")
    row = gateway.table("Request Buffer").row(request_id)
    assert (row["State"], row["Ticket ID"], row["Attempts"]) == (3, "MO-000001", 1)
    assert osb_operations(osb_service) == ["CreateTicketRequest", "GetTransactionResultRequest"]
    communication = gateway.table("Communication").rows()
    assert [(r["Operation"], r["HTTP Status"], r["Result"]) for r in communication] == [
        ("CreateTicket", 200, f"ACK: transaction {transaction_id}"), ("GetTransactionResult", 200, "COMPLETED: MO-000001"),
    ]  # fmt: skip
    assert (gateway.get("API Status"), gateway.get("Last HTTP Status"), gateway.get("Done Requests"), gateway.get("Buffer Depth")) == (1, 200, 1, 0)


def test_answers_already_found_reach_their_requesters_even_when_the_next_send_fails(
    gateway: Element, requester: Element, clock: VirtualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    posts: list[bytes] = []
    post = ticket_gateway._Service.post

    def second_post_fails(service: Any, protocol: Any, operation: Any, body: bytes, then: Any) -> Any:
        posts.append(body)
        if len(posts) == 2:
            raise ConnectionSettingError("host 'osb.invalid' cannot be used", field="host", value="osb.invalid")  # as a bad selected service would
        return post(service, protocol, operation, body, then)

    monkeypatch.setattr(ticket_gateway._Service, "post", second_post_fails)
    first = json.dumps({"operation": "create", "ticket_type": "MO", "fields": create_fields(1)})
    requester.set("Outgoing", first, wait=False)  # sent at once; its answer is read while the next is buffered
    requester.set("Outgoing", json.dumps({"operation": "create", "ticket_type": "MO", "fields": create_fields(2)}), wait=False)
    first_id, second_id = (request_id for _, request_id in SENT)
    clock.advance(0.5)  # the first answer comes; sending the second fails
    assert len(posts) == 2
    assert [reply.body["stage"] for reply in replies_to(first_id)] == ["ack"]  # the ACK found before the failure was set
    assert any("failed: ConnectionSettingError" in entry.message for entry in gateway.logs(LogType.ERROR))
    assert gateway.table("Request Buffer").row(second_id)["State"] == 1  # Sent, not answered: it goes again
    clock.advance(1)  # the next Buffer Processing sends it
    assert [reply.body["stage"] for reply in replies_to(second_id)] == ["ack"]


def test_a_result_pending_upstream_is_asked_for_again(gateway: Element, requester: Element, osb_service: OsbService, clock: VirtualClock) -> None:
    osb_service.processing_delay = 5
    request_id = ask(requester, "create", **create_fields(1))
    clock.advance(4)  # polled at +2 and +4: PENDING
    assert len(replies_to(request_id)) == 1 and gateway.get("Awaiting Result Requests") == 1
    clock.advance(2)
    assert replies_to(request_id)[-1].body == {"stage": "result", "status": "COMPLETED", "ticket_id": "MO-000001"}
    assert osb_operations(osb_service).count("GetTransactionResultRequest") == 3


def test_update_and_close_reach_the_ticket(gateway: Element, requester: Element, osb_service: OsbService, clock: VirtualClock) -> None:
    ticket = osb_service.add_ticket("PLM", "ne-1", alarm_id="3")
    update = ask(requester, "update", "PLM", ticket_id=ticket.ticket_id, severity="Critical", description="worse")
    clock.advance(2)
    close = ask(requester, "close", "PLM", ticket_id=ticket.ticket_id, resolution="fixed")
    clock.advance(2)
    assert [reply.body["stage"] for reply in replies_to(update)] == ["ack", "result"]
    assert replies_to(close)[-1].body == {"stage": "result", "status": "COMPLETED", "ticket_id": ticket.ticket_id}
    [now] = osb_service.tickets()
    assert (now.severity, now.description, now.status, now.resolution) == ("Critical", "worse", "Closed", "fixed")


def test_a_search_is_replied_once_with_the_tickets_found(gateway: Element, requester: Element, osb_service: OsbService) -> None:
    first = osb_service.add_ticket("MO", "ne-1", alarm_id="5", description="down")
    osb_service.add_ticket("MO", "ne-2", alarm_id="6")
    request_id = ask(requester, "search", network_element="ne-1", status="Open")
    [reply] = replies_to(request_id)
    assert reply.body["stage"] == "result" and reply.body["status"] == "COMPLETED"
    [found] = reply.body["tickets"]
    assert (found["ticket_id"], found["alarm_id"], found["description"], found["status"]) == (first.ticket_id, "5", "down", "Open")
    assert set(found) == {"ticket_id", "ticket_type", "status", "severity", "network_element", "alarm_id", "path_details", "description", "created_time", "updated_time"}
    assert gateway.table("Request Buffer").row(request_id)["State"] == 3


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("MO", 'refused: the body is a JSON object with operation, ticket_type and fields, not "MO"'),
        ({"operation": "delete", "ticket_type": "MO", "fields": {}}, 'refused: operation "delete" is not one of create, update, close, search'),
        ({"operation": "search", "ticket_type": "TT", "fields": {}}, 'refused: ticket_type "TT" is not one of MO, PLM'),
        ({"operation": "search", "ticket_type": "MO", "fields": {"ne": "x"}}, "refused: unknown field 'ne' for search; its fields are network_element, alarm_id, status"),
        ({"operation": "close", "ticket_type": "MO", "fields": {}}, "refused: CloseTicket: the field TicketId is required"),
        ({"operation": "create", "ticket_type": "MO", "fields": {**create_fields(1), "severity": "Normal"}}, "refused: CreateTicket: the field Severity is 'Normal', not one of"),
        ({"operation": "update", "ticket_type": "MO", "fields": {"ticket_id": "MO-1", "severity": ["Major"]}}, 'refused: field severity is text, not ["Major"]'),
        ({"operation": "search", "ticket_type": "MO", "fields": {"network_element": "x"}, "priority": 1}, "refused: unknown key 'priority' in the body"),
        ({"operation": "search", "ticket_type": "MO", "fields": {"network_element": "x"}, "request_key": "k"}, "refused: request_key is for a create, update or close"),
        ({"operation": "create", "ticket_type": "MO", "fields": create_fields(1), "request_key": 7}, "refused: request_key is text of 1 to 200 characters, not 7"),
        ({"operation": "create", "ticket_type": "MO", "fields": create_fields(1), "request_key": " "}, 'refused: request_key is text of 1 to 200 characters, not " "'),
    ],
)
def test_a_bad_body_is_refused_at_once_naming_what_was_wrong(gateway: Element, requester: Element, osb_service: OsbService, body: Any, error: str) -> None:
    requester.set("Outgoing", json.dumps(body))
    [reply] = replies_to(SENT[-1][1])
    assert reply.error is not None and reply.error.startswith(error)
    assert len(gateway.table("Request Buffer")) == 0 and osb_service.requests() == []


def ask_keyed(requester: Element, key: str, operation: str, **fields: Any) -> str:
    """A request carrying the caller's request_key; answers its request id."""
    requester.set("Outgoing", json.dumps({"operation": operation, "ticket_type": "MO", "fields": fields, "request_key": key}))
    return SENT[-1][1]


def test_a_request_key_is_the_request_id_upstream_so_asking_again_finds_the_same_transaction(
    gateway: Element, requester: Element, osb_service: OsbService, clock: VirtualClock
) -> None:
    osb_service.processing_delay = 30
    first = ask_keyed(requester, "alarm-4-create", "create", **create_fields(4))
    again = ask_keyed(requester, "alarm-4-create", "create", **create_fields(4))  # as a caller that never heard the first
    [first_ack], [again_ack] = replies_to(first), replies_to(again)
    assert first != again and first_ack.body == again_ack.body
    clock.advance(30)
    assert replies_to(first)[-1].body == replies_to(again)[-1].body == {"stage": "result", "status": "COMPLETED", "ticket_id": "MO-000001"}
    assert len(osb_service.tickets()) == 1
    assert [transaction.request_id for transaction in osb_service.transactions()] == ["alarm-4-create"]


def test_a_nack_is_replied_as_an_error_and_not_retried(gateway: Element, requester: Element, osb_service: OsbService, clock: VirtualClock) -> None:
    request_id = ask(requester, "update", ticket_id="MO-000042", severity="Minor")
    clock.advance(60)
    [reply] = replies_to(request_id)
    assert reply.error == "NACK: unknown ticket 'MO-000042'"
    assert osb_operations(osb_service) == ["UpdateTicketRequest"]
    row = gateway.table("Request Buffer").row(request_id)
    assert (row["State"], row["Last Error"]) == (4, "NACK: unknown ticket 'MO-000042'")


def test_a_failed_result_is_replied_as_an_error(gateway: Element, requester: Element, osb_service: OsbService, clock: VirtualClock) -> None:
    osb_service.faults.add(Fault(api="osb", kind="fail", operation="CreateTicketRequest"))
    request_id = ask(requester, "create", **create_fields(2))
    clock.advance(2)
    ack, result = replies_to(request_id)
    assert ack.ok and result.error is not None and result.error.startswith("FAILED: simulated processing failure")
    assert gateway.get("Failed Requests") == 1


def test_creates_updates_and_closes_go_before_searches(system: DataMinerSystem, osb_service: OsbService, clock: VirtualClock) -> None:
    gateway = make_gateway(system, osb_service, **{"Search Rate": 0.5})
    requester = system.create_element(Requester, "Flow Requester")
    searches = [ask(requester, "search", network_element=f"ne-{n}") for n in range(3)]
    assert [len(replies_to(s)) for s in searches] == [1, 0, 0]  # one search every 2 s
    create = ask(requester, "create", **create_fields(9))
    assert len(replies_to(create)) == 1  # acknowledged before the searches queued ahead of it
    assert gateway.table("Request Buffer").column("State") == {searches[0]: 3, searches[1]: 0, searches[2]: 0, create: 2}
    clock.advance(4)
    assert osb_operations(osb_service) == [
        "SearchTicketRequest", "CreateTicketRequest", "GetTransactionResultRequest", "SearchTicketRequest", "SearchTicketRequest",
    ]  # fmt: skip


def test_searches_go_at_the_search_rate(system: DataMinerSystem, osb_service: OsbService, clock: VirtualClock) -> None:
    gateway = make_gateway(system, osb_service, **{"Search Rate": 2})
    requester = system.create_element(Requester, "Flow Requester")
    for n in range(7):
        ask(requester, "search", network_element=f"ne-{n}")
    sent = [len(osb_service.requests())]
    for _ in range(4):
        clock.advance(1)
        sent.append(len(osb_service.requests()))
    assert sent == [2, 4, 6, 7, 7]  # two a second
    with pytest.raises(InvalidValueError, match="Search Rate"):
        gateway.set("Search Rate", 0)
    with pytest.raises(InvalidValueError, match="Search Rate"):
        gateway.set("Search Rate", 1000)


FAULTS = {
    "drop": Fault(api="osb", kind="drop", operation="CreateTicketRequest", requests={1}),
    "503": Fault(api="osb", status=503, operation="CreateTicketRequest", requests={1}),
    "lost": Fault(api="osb", kind="lost", operation="CreateTicketRequest", requests={1}),
    "malformed": Fault(api="osb", kind="malformed", operation="CreateTicketRequest", requests={1}),
}


@pytest.mark.parametrize("fault", list(FAULTS), ids=list(FAULTS))
def test_a_create_without_an_answer_is_retried_and_makes_one_ticket(
    gateway: Element, requester: Element, osb_service: OsbService, clock: VirtualClock, fault: str
) -> None:
    osb_service.faults.add(FAULTS[fault])
    request_id = ask(requester, "create", **create_fields(4))
    assert replies_to(request_id) == [] and gateway.get("Sent Requests") == 1
    assert gateway.table("Request Buffer").row(request_id)["Last Error"] != ""
    clock.advance(5)  # the Retry Interval
    clock.advance(2)
    assert [reply.body["stage"] for reply in replies_to(request_id)] == ["ack", "result"]
    assert len(osb_service.tickets()) == 1
    assert gateway.table("Request Buffer").row(request_id)["Attempts"] == 2
    assert osb_operations(osb_service).count("CreateTicketRequest") == 2


def test_after_three_retries_the_requester_hears_the_last_error(
    gateway: Element, requester: Element, osb_service: OsbService, clock: VirtualClock
) -> None:
    osb_service.faults.add(Fault(api="osb", status=503))
    request_id = ask(requester, "create", **create_fields(4))
    clock.advance(60)
    [reply] = replies_to(request_id)
    assert reply.error is not None and reply.error.startswith("no answer after 4 attempts: HTTP 503 Service Unavailable: SOAP Fault soapenv:Server: simulated fault")
    assert osb_operations(osb_service).count("CreateTicketRequest") == 4
    assert (gateway.get("API Status"), gateway.get("Last HTTP Status")) == (4, 503)


def test_during_an_outage_nothing_is_lost_and_each_request_makes_one_ticket(
    gateway: Element, requester: Element, osb_service: OsbService, clock: VirtualClock
) -> None:
    osb_service.stop()
    requests_sent = [ask(requester, "create", **create_fields(n)) for n in range(3)]
    clock.advance(4)
    assert gateway.get("Buffer Depth") == 3 and gateway.get("API Status") == 3  # Connection Failed
    osb_service.start()
    clock.advance(10)
    assert all([reply.body["stage"] for reply in replies_to(r)] == ["ack", "result"] for r in requests_sent)
    assert sorted(t.alarm_id for t in osb_service.tickets()) == ["0", "1", "2"]


def test_a_restart_resends_the_buffer_with_the_same_request_ids(
    gateway: Element, requester: Element, osb_service: OsbService, clock: VirtualClock
) -> None:
    acknowledged = ask(requester, "create", **create_fields(1))  # ACKed; its result comes after the restart
    osb_service.processing_delay = 0
    osb_service.faults.add(Fault(api="osb", kind="lost", operation="CreateTicketRequest", requests={2}))
    lost = ask(requester, "create", **create_fields(2))  # created upstream, its answer lost
    assert gateway.table("Request Buffer").row(lost)["State"] == 1
    gateway.restart()
    clock.advance(3)  # sent again at the first Buffer Processing, its result asked for 2 s later
    assert [reply.body["stage"] for reply in replies_to(acknowledged)] == ["ack", "result"]
    assert [reply.body["stage"] for reply in replies_to(lost)] == ["ack", "result"]
    assert sorted(t.alarm_id for t in osb_service.tickets()) == ["1", "2"]  # the resend made no second ticket
    assert [r.fields["RequestId"] for r in osb_service.transactions()] == [acknowledged, lost]


def test_a_restart_resends_a_request_with_its_request_key(gateway: Element, requester: Element, osb_service: OsbService, clock: VirtualClock) -> None:
    osb_service.faults.add(Fault(api="osb", kind="lost", operation="CreateTicketRequest", requests={1}))
    keyed = ask_keyed(requester, "alarm-3-create", "create", **create_fields(3))  # created upstream, its answer lost
    assert gateway.table("Request Buffer").row(keyed)["State"] == 1
    gateway.restart()
    clock.advance(3)
    assert [reply.body["stage"] for reply in replies_to(keyed)] == ["ack", "result"]
    assert [t.alarm_id for t in osb_service.tickets()] == ["3"]
    assert [r.fields["RequestId"] for r in osb_service.transactions()] == ["alarm-3-create"]


def test_an_answer_its_requester_could_not_hear_is_set_again_once_it_is_back(
    gateway: Element, requester: Element, osb_service: OsbService, clock: VirtualClock
) -> None:
    osb_service.processing_delay = 10
    request_id = ask(requester, "create", **create_fields(5))
    requester.stop()  # the result comes while the requester is stopped
    clock.advance(10)
    row = gateway.table("Request Buffer").row(request_id)
    assert (row["State"], row["Ticket ID"]) == (5, "MO-000001")  # Reply Pending
    assert json.loads(row["Undelivered Reply"]) == {"answer": {"stage": "result", "status": "COMPLETED", "ticket_id": "MO-000001"}, "error": None}
    assert (gateway.get("Reply Pending Requests"), gateway.get("Buffer Depth"), gateway.get("Done Requests")) == (1, 1, 0)
    clock.advance(30)  # tried again every Retry Interval, in vain
    requester.start()
    clock.advance(5)
    assert [reply.body["stage"] for reply in replies_to(request_id)] == ["ack", "result"]
    assert replies_to(request_id)[-1].body["ticket_id"] == "MO-000001"
    row = gateway.table("Request Buffer").row(request_id)
    assert (row["State"], row["Undelivered Reply"]) == (3, "")
    assert (gateway.get("Reply Pending Requests"), gateway.get("Buffer Depth"), gateway.get("Done Requests")) == (0, 0, 1)
    assert osb_operations(osb_service).count("GetTransactionResultRequest") == 5  # asked until COMPLETED, never after
    assert any(f"the answer to request {request_id} was set on its requester" in entry.message for entry in gateway.logs())


def test_an_answer_never_heard_goes_with_the_finished_rows(system: DataMinerSystem, osb_service: OsbService, clock: VirtualClock) -> None:
    gateway = make_gateway(system, osb_service, **{"Finished Request Retention": 60})
    requester = system.create_element(Requester, "Flow Requester")
    osb_service.faults.add(Fault(api="osb", kind="nack", operation="CreateTicketRequest"))
    osb_service.stop()
    request_id = ask(requester, "create", **create_fields(6))
    requester.stop()
    osb_service.start()
    clock.advance(5)  # the NACK cannot be set on the stopped requester
    assert gateway.table("Request Buffer").row(request_id)["State"] == 5
    clock.advance(60)
    assert len(gateway.table("Request Buffer")) == 0 and gateway.get("Buffer Depth") == 0
    assert any(f"the answer to request {request_id} was never set on its requester: dropped after 60 s" in entry.message for entry in gateway.logs())


def test_the_buffer_survives_the_system_closing(tmp_path: Path, osb_service: OsbService, clock: VirtualClock) -> None:
    with DataMinerSystem(tmp_path / "dms", clock) as dms:
        make_gateway(dms, osb_service)
        requester = dms.create_element(Requester, "Flow Requester")
        osb_service.stop()
        queued = [ask(requester, "create", **create_fields(n)) for n in range(2)]
    osb_service.start()
    with DataMinerSystem(tmp_path / "dms", clock) as dms:
        clock.advance(3)
        assert all([reply.body["stage"] for reply in replies_to(r)] == ["ack", "result"] for r in queued)
        assert dms.find("Ticket Gateway").get("Done Requests") == 2
    assert len(osb_service.tickets()) == 2


def test_finished_requests_are_kept_a_while_and_the_communication_table_is_capped(system: DataMinerSystem, osb_service: OsbService, clock: VirtualClock) -> None:
    gateway = make_gateway(system, osb_service, **{"Finished Request Retention": 60, "Communication Max Rows": 3, "Search Rate": 100})
    requester = system.create_element(Requester, "Flow Requester")
    searches = [ask(requester, "search", network_element=f"ne-{n}") for n in range(5)]
    assert len(gateway.table("Request Buffer")) == 5
    assert [row["Request ID"] for row in gateway.table("Communication").rows()] == searches[2:]
    clock.advance(59)
    assert len(gateway.table("Request Buffer")) == 5
    clock.advance(1)
    assert len(gateway.table("Request Buffer")) == 0 and gateway.get("Done Requests") == 0


def test_a_request_the_service_cannot_read_is_not_sent_again(
    gateway: Element, requester: Element, osb_service: OsbService, clock: VirtualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    osb_service.stop()
    # What the service will call unreadable (here an operation it does not know) is a SOAP Client Fault.
    monkeypatch.setattr(TicketRequest, "xml", lambda self, request_id: osb.build_request(osb.Operation("ListTickets", ()), {}))
    request_id = ask(requester, "search", network_element="ne-1")  # buffered: the service is down
    osb_service.start()
    clock.advance(60)
    [reply] = replies_to(request_id)
    assert reply.error is not None and reply.error.startswith("HTTP 500 Internal Server Error: SOAP Fault soapenv:Client:")
    assert len(osb_service.requests()) == 1
    assert gateway.get("API Status") == 6  # Request Refused


def test_the_service_is_posted_to_over_one_kept_alive_stream_when_no_proxy_can_be_in_play(
    system: DataMinerSystem, gateway: Element, requester: Element, osb_service: OsbService, clock: VirtualClock
) -> None:
    request_id = ask(requester, "create", **create_fields(1))
    clock.advance(3)
    assert [reply.body["stage"] for reply in replies_to(request_id)] == ["ack", "result"]
    assert gateway.serial.connected  # the element's stream, kept open: no requests session per call
    heads = [record.headers for record in osb_service.requests()]
    assert len(heads) == 2 and all("python-requests" not in head.get("User-Agent", "") for head in heads)
    assert heads[0]["SOAPAction"] == '"CreateTicket"' and heads[0]["Content-Type"] == "text/xml; charset=utf-8"


# --------------------------------------------------------------------------------------------
# The Service Info Table and Service Selection


def test_requests_go_to_the_selected_service_and_to_the_own_connection_when_none_is(
    gateway: Element, requester: Element, osb_service: OsbService, clock: VirtualClock, tmp_path: Path
) -> None:
    with OsbService(clock=clock.now) as other:
        csv_path = tmp_path / "services.csv"
        write_service_csv(csv_path, [ServiceInfo("Main", "127.0.0.1", osb_service.port), ServiceInfo("Other", "127.0.0.1", other.port)])
        gateway.set("CSV File Path", str(csv_path))
        gateway.set("Import CSV", 1)
        assert gateway.table("Service Info Table").keys() == ["Main", "Other"]
        assert gateway.get("CSV Status") == f"Imported 2 services from {csv_path}"
        gateway.set("Service Selection", "Other")
        assert gateway.get("Active Service") == f"Other (127.0.0.1:{other.port}/osb/TicketingService)"
        first = ask(requester, "search", network_element="ne-1")
        assert replies_to(first)[-1].ok
        assert (len(other.requests()), len(osb_service.requests())) == (1, 0)
        with pytest.raises(QActionFailedError) as refused:
            gateway.set("Service Selection", "Nowhere")
        assert isinstance(refused.value.__cause__, ServiceSelectionError)
        assert (gateway.get("Service Selection"), gateway.get("Selected Service")) == ("Other", "Other")
        gateway.set("Service Selection", "")  # none: the element's own connection, as before
        clock.advance(1)
        second = ask(requester, "search", network_element="ne-2")
        assert replies_to(second)[-1].ok
        assert (len(other.requests()), len(osb_service.requests())) == (1, 1)
        exported = tmp_path / "exported.csv"
        gateway.set("CSV File Path", str(exported))
        gateway.set("Export CSV", 1)
        assert exported.read_text(encoding="utf-8") == csv_path.read_text(encoding="utf-8")


def test_the_suite_gives_the_gateway_and_every_client_the_same_services(
    system: DataMinerSystem, osb_service: OsbService, tmp_path: Path
) -> None:
    suite = create_telenet_suite(system, tmp_path / "suite", service=("127.0.0.1", osb_service.port), clients=2)
    services = suite.gateway.table("Service Info Table").rows()
    assert [row["Port"] for row in services] == [osb_service.port]
    for element in (suite.gateway, *suite.clients):
        assert element.table("Service Info Table").rows() == services
        assert element.get("Selected Service") == SERVICE_NAME


def test_due_result_polls_and_new_creates_take_turns(gateway: Element, requester: Element, osb_service: OsbService, clock: VirtualClock) -> None:
    acknowledged = [ask(requester, "create", **create_fields(n)) for n in range(3)]  # each sent and acknowledged at once
    clock.skip_to(clock.now() + 2)  # their results are due; the Buffer Processing has not looked yet
    late = ask(requester, "create", **create_fields(9))  # its round polls the results, and sends the create in turn
    assert osb_operations(osb_service)[3:] == [
        "GetTransactionResultRequest", "CreateTicketRequest", "GetTransactionResultRequest", "GetTransactionResultRequest",
    ]  # fmt: skip
    assert [reply.body["stage"] for reply in replies_to(late)] == ["ack"]
    assert all([reply.body["stage"] for reply in replies_to(request)] == ["ack", "result"] for request in acknowledged)


def test_an_answer_whose_handling_fails_still_leaves_its_exchange_recorded(
    gateway: Element, requester: Element, osb_service: OsbService, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = ticket_gateway._Buffer.set_state

    def failing_on_ack(buffer: Any, row: Any, state: int, now: float) -> None:
        if state == ticket_gateway.AWAITING_RESULT:
            raise RuntimeError("a bug while handling the ACK")
        original(buffer, row, state, now)

    monkeypatch.setattr(ticket_gateway._Buffer, "set_state", failing_on_ack)
    ask(requester, "create", **create_fields(5))
    assert [row["Result"] for row in gateway.table("Communication").rows()] == ["ACK: transaction TX-000001"]
    assert any("a bug while handling the ACK" in entry.message for entry in gateway.logs(LogType.ERROR))
