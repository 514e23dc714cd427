"""The Telenet Ticket Gateway and the OSB ticketing service's XML (client side).

The XML part works on plain bytes; the Gateway runs end to end against the OSB simulator over
loopback, on a virtual clock."""

from __future__ import annotations

import pytest

from dmemu.elements.telenet import osb_messages as osb
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


def test_optional_fields_left_out_are_not_sent() -> None:
    assert b"AlarmId" not in osb.search_request("PLM", "ne-1")
    assert b"Resolution" not in osb.close_request("r1", "MO-000001")
    assert b"<tck:Resolution>fixed</tck:Resolution>" in osb.close_request("r1", "MO-000001", "fixed")


def test_each_operation_has_its_request_element_and_soap_action() -> None:
    assert b"<tck:CreateTicketRequest><tck:RequestId>r1</tck:RequestId>" in osb.create_request("r1", "MO", "5", "ne", "Major", "", "")
    assert b"<tck:UpdateTicketRequest>" in osb.update_request("r1", "MO-000001", "Minor")
    assert b"<tck:GetTransactionResultRequest><tck:TransactionId>T-1</tck:TransactionId>" in osb.transaction_result_request("T-1")
    assert CREATE_TICKET.headers() == {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"CreateTicket"'}
    assert osb.SERVICE_PATH == "/osb/TicketingService"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: osb.search_request("XX", "ne"), "SearchTicket: the field TicketType is 'XX', not one of MO, PLM"),
        (lambda: osb.search_request("MO", " "), "SearchTicket: the field NetworkElement is empty"),
        (lambda: osb.search_request("MO", "ne", status="open"), "SearchTicket: the field Status is 'open', not one of Open, Closed"),
        (lambda: osb.create_request("r1", "MO", "5", "ne", "Normal", "", ""), "CreateTicket: the field Severity is 'Normal'"),
        (lambda: osb.create_request("r1", "MO", 5.0, "ne", "Major", "", ""), "CreateTicket: the field AlarmId is text, not float 5.0"),
        (lambda: osb.update_request("r1", "MO-1", "Major", "bell \x07"), "UpdateTicket: the field Description holds the character '\\x07'"),
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


def test_snake_case_names_follow_the_wire_names() -> None:
    assert [osb.snake_case(name) for name in ("NetworkElement", "AlarmId", "TicketId", "PathDetails")] == [
        "network_element", "alarm_id", "ticket_id", "path_details",
    ]  # fmt: skip
