"""The OSB ticketing service simulator over real loopback HTTP: operations, ACK/NACK, the
asynchronous results on a hand-moved clock, idempotent RequestIds, SOAP Faults, faults, outages."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from xml.etree import ElementTree

import pytest
import requests
from simulated_time import START

import dmemu
from dmemu.simulators import Fault, OsbService
from dmemu.simulators import osb_server as osb_server_module
from dmemu.simulators.osb import SOAP_NS, TICKETING_NS

SOAP = f"{{{SOAP_NS}}}"
TCK = f"{{{TICKETING_NS}}}"
CREATE_FIELDS = {
    "TicketType": "MO",
    "AlarmId": "12/345/6",
    "NetworkElement": "ne-gent-01",
    "Severity": "Major",
    "PathDetails": "ring A > node 3",
    "Description": "Link down",
}


@pytest.fixture
def osb(now):
    with OsbService(clock=now) as service:
        yield service


def envelope(operation: str, fields: dict[str, str] | None = None, *, raw_fields: str = "") -> bytes:
    inner = "".join(f"<tck:{name}>{_escape(value)}</tck:{name}>" for name, value in (fields or {}).items()) + raw_fields
    return (
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_NS}" xmlns:tck="{TICKETING_NS}">'
        f"<soapenv:Body><tck:{operation}>{inner}</tck:{operation}></soapenv:Body></soapenv:Envelope>"
    ).encode()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def post(http: requests.Session, osb: OsbService, body: bytes, **kwargs) -> requests.Response:
    return http.post(osb.url, data=body, headers={"Content-Type": "text/xml; charset=utf-8"}, timeout=10, **kwargs)


def call(http: requests.Session, osb: OsbService, operation: str, **fields: str) -> dict:
    """The answer's fields by name (``Tickets``: a list of ticket dicts), from an HTTP 200."""
    answer = post(http, osb, envelope(operation, fields))
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == "text/xml; charset=utf-8"
    (response,) = ElementTree.fromstring(answer.content).find(f"{SOAP}Body")
    assert response.tag == f"{TCK}{operation.removesuffix('Request')}Response"
    found: dict = {}
    for child in response:
        name = child.tag.removeprefix(TCK)
        if name == "Tickets":
            found[name] = [{field.tag.removeprefix(TCK): field.text or "" for field in ticket} for ticket in child]
        else:
            found[name] = child.text or ""
    return found


def soap_fault(answer: requests.Response) -> tuple[str, str]:
    """(faultcode, faultstring) of an answer carrying a SOAP Fault."""
    fault = ElementTree.fromstring(answer.content).find(f"{SOAP}Body/{SOAP}Fault")
    assert fault is not None, answer.text
    return fault.findtext("faultcode"), fault.findtext("faultstring")


def create(http, osb, request_id: str = "req-1", **changes: str) -> dict:
    return call(http, osb, "CreateTicketRequest", RequestId=request_id, **{**CREATE_FIELDS, **changes})


def result(http, osb, transaction_id: str) -> dict:
    return call(http, osb, "GetTransactionResultRequest", TransactionId=transaction_id)


def search(http, osb, ticket_type: str = "MO", network_element: str = "ne-gent-01", **filters: str) -> list[dict]:
    answer = call(http, osb, "SearchTicketRequest", TicketType=ticket_type, NetworkElement=network_element, **filters)
    assert answer["Result"] == "ACK"
    return answer["Tickets"]


class TestOperations:
    def test_create_update_and_close_a_ticket(self, osb, http, now):
        acked = create(http, osb, Description="Link down & <flapping>")
        assert acked == {"Result": "ACK", "TransactionId": "TX-000001"}
        assert result(http, osb, "TX-000001") == {"Status": "COMPLETED", "TicketId": "MO-000001"}
        (ticket,) = search(http, osb)
        assert ticket == {
            "TicketId": "MO-000001", "TicketType": "MO", "Status": "Open", "Severity": "Major", "NetworkElement": "ne-gent-01",
            "AlarmId": "12/345/6", "PathDetails": "ring A > node 3", "Description": "Link down & <flapping>",
            "CreatedTime": "2026-03-01T00:00:00Z", "UpdatedTime": "2026-03-01T00:00:00Z",
        }  # fmt: skip

        now.value += 60
        updated = call(http, osb, "UpdateTicketRequest", RequestId="req-2", TicketId="MO-000001", Severity="Critical")
        assert updated == {"Result": "ACK", "TransactionId": "TX-000002"}
        assert result(http, osb, "TX-000002") == {"Status": "COMPLETED", "TicketId": "MO-000001"}
        (ticket,) = search(http, osb)
        assert (ticket["Severity"], ticket["Description"], ticket["UpdatedTime"]) == ("Critical", "Link down & <flapping>", "2026-03-01T00:01:00Z")
        call(http, osb, "UpdateTicketRequest", RequestId="req-3", TicketId="MO-000001", Severity="Minor", Description="")
        assert search(http, osb)[0]["Description"] == ""  # an empty Description is one

        now.value += 60
        closed = call(http, osb, "CloseTicketRequest", RequestId="req-4", TicketId="MO-000001", Resolution="fibre spliced")
        assert closed == {"Result": "ACK", "TransactionId": "TX-000004"}
        assert result(http, osb, "TX-000004") == {"Status": "COMPLETED", "TicketId": "MO-000001"}
        assert search(http, osb, Status="Open") == []
        assert [t["Status"] for t in search(http, osb, Status="Closed")] == ["Closed"]
        assert osb.tickets()[0].resolution == "fibre spliced" and osb.tickets()[0].created_time == START

    def test_ticket_types_count_apart_and_a_search_filters_and_orders_by_id(self, osb, http):
        for number in range(11):
            create(http, osb, f"mo-{number}", AlarmId=f"alarm-{number % 2}")
        create(http, osb, "plm-1", TicketType="PLM")
        osb.add_ticket("MO", "ne-other", alarm_id="alarm-0")
        assert [t.ticket_id for t in osb.tickets()][-3:] == ["MO-000011", "MO-000012", "PLM-000001"]
        found = search(http, osb)
        assert [t["TicketId"] for t in found] == [f"MO-{n:06d}" for n in range(1, 12)]
        assert [t["TicketId"] for t in search(http, osb, AlarmId="alarm-1")] == ["MO-000002", "MO-000004", "MO-000006", "MO-000008", "MO-000010"]
        assert [t["TicketId"] for t in search(http, osb, "PLM")] == ["PLM-000001"]
        assert [t["TicketId"] for t in search(http, osb, network_element="ne-other", AlarmId="alarm-0")] == ["MO-000012"]
        assert search(http, osb, network_element="nowhere") == []
        assert len(search(http, osb, AlarmId="", Status=" ")) == 11  # an optional filter given empty is "any"

    def test_a_seeded_ticket_is_found_and_closed(self, osb, http):
        seeded = osb.add_ticket("PLM", "ne-9", alarm_id="a-9", severity="Minor", description="planned")
        assert seeded.ticket_id == "PLM-000001" and seeded.status == "Open"
        assert search(http, osb, "PLM", "ne-9")[0]["Description"] == "planned"
        call(http, osb, "CloseTicketRequest", RequestId="r", TicketId="PLM-000001")
        assert osb.tickets()[0].status == "Closed"
        with pytest.raises(ValueError, match="severity 'Huge' is not one of Critical, Major, Minor, Warning"):
            osb.add_ticket("MO", "ne-9", severity="Huge")

    def test_business_refusals_are_nacks_naming_the_reason(self, osb, http):
        create(http, osb)
        assert call(http, osb, "UpdateTicketRequest", RequestId="u", TicketId="MO-000099", Severity="Minor") == {
            "Result": "NACK", "Reason": "unknown ticket 'MO-000099'"
        }  # fmt: skip
        call(http, osb, "CloseTicketRequest", RequestId="c1", TicketId="MO-000001")
        result(http, osb, "TX-000002")
        closed = {"Result": "NACK", "Reason": "ticket MO-000001 is closed"}
        assert call(http, osb, "UpdateTicketRequest", RequestId="u2", TicketId="MO-000001", Severity="Minor") == closed
        assert call(http, osb, "CloseTicketRequest", RequestId="c2", TicketId="MO-000001") == closed
        reused = call(http, osb, "CloseTicketRequest", RequestId="req-1", TicketId="MO-000001")
        assert reused == {"Result": "NACK", "Reason": "RequestId 'req-1' was already used for another request (CreateTicketRequest, TX-000001)"}
        assert len(osb.transactions()) == 2  # no NACK made one

    def test_a_repeated_request_id_gets_the_same_transaction_and_creates_nothing(self, osb, http):
        first = create(http, osb)
        assert create(http, osb) == first  # before it is processed
        assert result(http, osb, first["TransactionId"])["TicketId"] == "MO-000001"
        assert create(http, osb) == first  # and after
        assert [t.ticket_id for t in osb.tickets()] == ["MO-000001"]
        assert [t.transaction_id for t in osb.transactions()] == ["TX-000001"]
        other = create(http, osb, "req-1", Severity="Minor")  # the same id, another request
        assert other["Result"] == "NACK" and "RequestId 'req-1' was already used" in other["Reason"]

    def test_an_unknown_transaction_is_failed_naming_it(self, osb, http):
        assert result(http, osb, "TX-999") == {"Status": "FAILED", "Reason": "unknown TransactionId 'TX-999'"}


class TestAsynchronousResults:
    def test_a_create_is_pending_until_the_processing_delay_passes_on_the_simulator_clock(self, now, http):
        with OsbService(clock=now, processing_delay=30) as osb:
            transaction_id = create(http, osb)["TransactionId"]
            now.value += 29
            assert result(http, osb, transaction_id) == {"Status": "PENDING"}
            assert search(http, osb) == [] and osb.tickets() == []
            now.value += 1
            assert result(http, osb, transaction_id) == {"Status": "COMPLETED", "TicketId": "MO-000001"}
            (ticket,) = search(http, osb)
            assert ticket["CreatedTime"] == "2026-03-01T00:00:30Z"  # when it was processed

    def test_the_delay_can_change_for_what_is_acked_next(self, now, http):
        with OsbService(clock=now) as osb:
            osb.processing_delay = 10
            transaction_id = create(http, osb)["TransactionId"]
            assert result(http, osb, transaction_id)["Status"] == "PENDING"
            with pytest.raises(ValueError, match="processing_delay -1 is not a number of seconds from 0"):
                osb.processing_delay = -1

    def test_an_update_or_close_of_a_ticket_closed_meanwhile_fails(self, now, http):
        with OsbService(clock=now, processing_delay=5) as osb:
            osb.add_ticket("MO", "ne-1")
            first_close = call(http, osb, "CloseTicketRequest", RequestId="c1", TicketId="MO-000001")["TransactionId"]
            update = call(http, osb, "UpdateTicketRequest", RequestId="u1", TicketId="MO-000001", Severity="Critical")["TransactionId"]
            second_close = call(http, osb, "CloseTicketRequest", RequestId="c2", TicketId="MO-000001")["TransactionId"]
            assert {result(http, osb, t)["Status"] for t in (first_close, update, second_close)} == {"PENDING"}
            now.value += 5
            assert result(http, osb, first_close) == {"Status": "COMPLETED", "TicketId": "MO-000001"}
            meanwhile = {"Status": "FAILED", "Reason": "ticket MO-000001 was closed meanwhile"}
            assert result(http, osb, update) == meanwhile and result(http, osb, second_close) == meanwhile
            (ticket,) = osb.tickets()
            assert (ticket.status, ticket.severity) == ("Closed", "Major")  # the failed update changed nothing


BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10 if n > 1 else "&lol;" * 10}">'.encode() for n in range(1, 10))
    + b"]>"
    + envelope("SearchTicketRequest", raw_fields="<tck:TicketType>MO</tck:TicketType><tck:NetworkElement>&lol9;</tck:NetworkElement>")
)


class TestUnreadableRequests:
    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (b"", "the body is empty"),
            (b"{not xml", "the body is not XML"),
            (b"<Envelope/>", "the root element is Envelope, not a SOAP Envelope"),
            (f'<s:Envelope xmlns:s="{SOAP_NS}"/>'.encode(), "the Envelope holds 0 Body elements"),
            (envelope("DeleteTicketRequest"), "unknown operation 'DeleteTicketRequest'"),
            (envelope("CreateTicketRequest", {"RequestId": "r"}), "CreateTicketRequest: TicketType, AlarmId, NetworkElement, Severity, PathDetails, Description are missing"),
            (envelope("UpdateTicketRequest", {"RequestId": "r", "TicketId": "MO-000001"}), "UpdateTicketRequest: Severity is missing"),
            (envelope("SearchTicketRequest", {"TicketType": "XX", "NetworkElement": "n"}), "SearchTicketRequest: TicketType 'XX' is not one of MO, PLM"),
            (envelope("SearchTicketRequest", {"TicketType": "MO", "NetworkElement": "n", "Status": "Gone"}), "Status 'Gone' is not one of Open, Closed"),
            (envelope("GetTransactionResultRequest", {"TransactionId": "  "}), "GetTransactionResultRequest: TransactionId is empty"),
            (envelope("CloseTicketRequest", {"RequestId": "r", "TicketId": "t", "Reason": "x"}), "CloseTicketRequest has no field 'Reason'"),
            (envelope("GetTransactionResultRequest", {"TransactionId": "a"}, raw_fields="<tck:TransactionId>b</tck:TransactionId>"), "TransactionId is given twice"),
            (envelope("SearchTicketRequest", {"TicketType": "MO", "NetworkElement": "n", "AlarmId": ""}, raw_fields="<tck:AlarmId>a</tck:AlarmId>"), "AlarmId is given twice"),
            (envelope("GetTransactionResultRequest", raw_fields="<TransactionId>a</TransactionId>"), "field 'TransactionId' is in namespace 'none'"),
            (envelope("GetTransactionResultRequest", raw_fields="<tck:TransactionId><tck:x/></tck:TransactionId>"), "TransactionId holds elements"),
        ],
    )  # fmt: skip
    def test_a_request_the_service_cannot_read_is_a_soap_fault_naming_the_culprit(self, osb, http, body, message):
        answer = post(http, osb, body)
        assert answer.status_code == 500
        code, text = soap_fault(answer)
        assert code == "soapenv:Client" and message in text
        assert osb.transactions() == [] and osb.tickets() == []

    def test_a_billion_laughs_is_refused_without_expanding_an_entity(self, osb, http):
        answer = post(http, osb, BILLION_LAUGHS)  # expanded, it would be 10^9 "lol"s: this answer would never come
        assert answer.status_code == 500
        assert soap_fault(answer) == ("soapenv:Client", "a DOCTYPE or entity declaration is not allowed (DTDForbidden)")
        assert len(answer.content) < 1000

    def test_an_external_entity_is_never_read(self, osb, http):
        body = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY secret SYSTEM "file:///etc/passwd">]>' + envelope(
            "SearchTicketRequest", raw_fields="<tck:TicketType>MO</tck:TicketType><tck:NetworkElement>&secret;</tck:NetworkElement>"
        )
        answer = post(http, osb, body)
        assert answer.status_code == 500 and "DOCTYPE" in soap_fault(answer)[1] and b"root:" not in answer.content

    def test_a_wrong_path_or_method_is_a_soap_fault_too(self, osb, http):
        wrong_path = http.post(f"{osb.base_url}/osb/Other", data=envelope("SearchTicketRequest"))
        assert wrong_path.status_code == 404 and "the OSB ticketing service is at /osb/TicketingService" in soap_fault(wrong_path)[1]
        wrong_method = http.get(osb.url)
        assert wrong_method.status_code == 405 and wrong_method.headers["Allow"] == "POST"
        assert "GET is not supported" in soap_fault(wrong_method)[1]
        assert [(r.method, r.status) for r in osb.requests()] == [("POST", 404), ("GET", 405)]

    def test_a_bad_content_length_is_a_soap_fault_and_the_connection_closes(self, osb):
        connection = http.client.HTTPConnection(osb.host, osb.port, timeout=10)
        connection.putrequest("POST", "/osb/TicketingService")
        connection.putheader("Content-Length", "-5")
        connection.endheaders()
        answer = connection.getresponse()
        assert answer.status == 400 and b"Content-Length '-5' is not a length" in answer.read()
        assert answer.getheader("Connection") is None or answer.will_close
        connection.close()

    def test_a_request_line_http_server_cannot_read_is_a_soap_fault(self, osb):
        with socket.create_connection((osb.host, osb.port), timeout=10) as raw:
            raw.sendall(b"NOT A REQUEST\r\n\r\n")
            chunks = []
            while chunk := raw.recv(65536):
                chunks.append(chunk)
        head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400 ") and b"Content-Type: text/xml; charset=utf-8" in head
        assert b"<faultcode>soapenv:Client</faultcode><faultstring>Bad request version ('REQUEST')</faultstring>" in body

    def test_an_http_0_9_request_is_answered_with_a_head(self, osb):
        """A request line without a version is HTTP/0.9, which http.server answers with no head;
        the service answers it like any other (it used to fail with no answer at all)."""
        with socket.create_connection((osb.host, osb.port), timeout=10) as raw:
            raw.sendall(b"GET /osb/TicketingService\r\n\r\n")
            chunks = []
            while chunk := raw.recv(65536):
                chunks.append(chunk)
        head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 405 ") and b"Content-Type: text/xml; charset=utf-8" in head
        assert b"<faultcode>soapenv:Client</faultcode>" in body

    def test_a_chunked_body_is_read(self, osb, http):
        body = envelope("SearchTicketRequest", {"TicketType": "MO", "NetworkElement": "n"})
        answer = http.post(osb.url, data=iter([body[:50], body[50:]]), headers={"Content-Type": "text/xml; charset=utf-8"})
        assert answer.status_code == 200 and b"<tck:Result>ACK</tck:Result>" in answer.content


class HeldTime:
    """The server's time module; each sleep is recorded, then waits for the test's word."""

    def __init__(self) -> None:
        self.slept: list[float] = []
        self.sleeping = threading.Semaphore(0)
        self.release = threading.Semaphore(0)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.sleeping.release()
        assert self.release.acquire(timeout=10)

    def __getattr__(self, name: str) -> object:
        return getattr(time, name)


class TestFaults:
    def test_a_status_fault_answers_a_server_fault_with_retry_after_and_takes_no_effect(self, osb, http):
        osb.faults.add(Fault(api="osb", status=503, retry_after=2.5, requests={1}))
        answer = post(http, osb, envelope("CreateTicketRequest", {"RequestId": "r", **CREATE_FIELDS}))
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "3"
        assert soap_fault(answer) == ("soapenv:Server", "simulated fault on request 1")
        assert osb.transactions() == []
        assert create(http, osb, "r")["TransactionId"] == "TX-000001"

    def test_a_fault_narrowed_to_an_operation_leaves_the_others_alone(self, osb, http):
        osb.faults.add(Fault(api="osb", operation="CreateTicketRequest"))
        assert search(http, osb) == []
        assert post(http, osb, envelope("CreateTicketRequest", {"RequestId": "r", **CREATE_FIELDS})).status_code == 503
        assert [(r.operation, r.status, r.fault) for r in osb.requests()] == [("SearchTicketRequest", 200, None), ("CreateTicketRequest", 503, "status")]

    def test_latency_delays_the_real_answer(self, now, http, monkeypatch):
        held = HeldTime()
        monkeypatch.setattr(osb_server_module, "time", held)
        with OsbService(clock=now) as osb:
            osb.faults.add(Fault(api="osb", kind="latency", latency=0.4, requests={1}))
            answers: list[dict] = []
            caller = threading.Thread(target=lambda: answers.append(create(http, osb)))
            caller.start()
            assert held.sleeping.acquire(timeout=10)  # the server waits out the latency...
            caller.join(0.2)
            assert caller.is_alive() and answers == [] and osb.transactions() == []  # ...the create with it
            held.release.release()
            caller.join(10)
            assert answers == [{"Result": "ACK", "TransactionId": "TX-000001"}] and held.slept == [0.4]
            assert search(http, osb)[0]["TicketId"] == "MO-000001" and held.slept == [0.4]

    def test_a_dropped_create_never_happened(self, osb, http):
        osb.faults.add(Fault(api="osb", kind="drop", requests={1}))
        with pytest.raises(requests.ConnectionError):
            create(http, osb)
        assert osb.transactions() == []
        assert create(http, osb)["TransactionId"] == "TX-000001"
        assert [(r.status, r.fault) for r in osb.requests()] == [(0, "drop"), (200, None)]

    def test_a_lost_create_happened_and_its_repeated_request_id_answers_the_same_transaction(self, osb, http):
        osb.faults.add(Fault(api="osb", kind="lost", operation="CreateTicketRequest", requests={1}))
        with pytest.raises(requests.ConnectionError):
            create(http, osb)
        assert [t.transaction_id for t in osb.transactions()] == ["TX-000001"]  # done, the answer never came
        assert create(http, osb) == {"Result": "ACK", "TransactionId": "TX-000001"}
        assert result(http, osb, "TX-000001")["Status"] == "COMPLETED"
        assert [t.ticket_id for t in osb.tickets()] == ["MO-000001"]  # one ticket, not two
        assert [(r.status, r.fault) for r in osb.requests()] == [(200, "lost"), (200, None), (200, None)]

    def test_broken_answers(self, osb, http):
        osb.faults.add(Fault(api="osb", kind="malformed", requests={1}), Fault(api="osb", kind="truncated", requests={2}))
        malformed = post(http, osb, envelope("SearchTicketRequest", {"TicketType": "MO", "NetworkElement": "n"}))
        assert malformed.status_code == 200 and malformed.content.endswith(b"<<not xml")
        with pytest.raises(ElementTree.ParseError):
            ElementTree.fromstring(malformed.content)
        with pytest.raises(requests.exceptions.ChunkedEncodingError):  # the declared length never arrives
            post(http, osb, envelope("SearchTicketRequest", {"TicketType": "MO", "NetworkElement": "n"}))

    def test_a_nack_fault_refuses_without_effect(self, osb, http):
        osb.faults.add(Fault(api="osb", kind="nack", requests={1, 2}))
        assert create(http, osb) == {"Result": "NACK", "Reason": "simulated refusal of request 1"}
        answer = call(http, osb, "SearchTicketRequest", TicketType="MO", NetworkElement="n")
        assert answer == {"Result": "NACK", "Reason": "simulated refusal of request 2"}
        assert osb.transactions() == []
        assert create(http, osb) == {"Result": "ACK", "TransactionId": "TX-000001"}  # the same RequestId, taken now

    def test_a_fail_fault_acks_then_fails_the_transaction(self, now, http):
        with OsbService(clock=now, processing_delay=2) as osb:
            osb.faults.add(Fault(api="osb", kind="fail", requests={1}))
            transaction_id = create(http, osb)["TransactionId"]
            assert result(http, osb, transaction_id) == {"Status": "PENDING"}
            now.value += 2
            assert result(http, osb, transaction_id) == {"Status": "FAILED", "Reason": "simulated processing failure of request 1"}
            assert osb.tickets() == []

    def test_business_fault_kinds_hit_only_the_operations_they_can_answer(self, osb, http):
        osb.faults.add(Fault(api="osb", kind="nack"), Fault(api="osb", kind="fail"))
        assert result(http, osb, "TX-1")["Status"] == "FAILED"  # answered as usual: no Result to NACK
        assert osb.requests()[0].fault is None
        with pytest.raises(ValueError, match="fault kind 'nack' is for the OSB ticketing service"):
            Fault(api="tmf656", kind="nack")
        with pytest.raises(ValueError, match="fault operation is for the OSB ticketing service"):
            Fault(api="tmf656", operation="CreateTicketRequest")

    def test_a_rate_limit_answers_429_until_the_window_moves_on_the_simulator_clock(self, osb, http, now):
        osb.faults.add(Fault(api="osb", kind="rate_limit", limit=2, per=10))
        assert search(http, osb) == [] and search(http, osb) == []
        refused = post(http, osb, envelope("SearchTicketRequest", {"TicketType": "MO", "NetworkElement": "n"}))
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "10"
        assert soap_fault(refused) == ("soapenv:Server", "more than 2 requests in 10 s")
        now.value += 10
        assert search(http, osb) == []

    def test_probabilistic_faults_are_reproducible_from_the_seed(self, now, http):
        def outcomes(seed: int) -> list[int]:
            with OsbService(clock=now, seed=seed) as osb:
                osb.faults.add(Fault(api="osb", probability=0.5))
                return [post(http, osb, envelope("GetTransactionResultRequest", {"TransactionId": "t"})).status_code for _ in range(20)]

        assert outcomes(3) == outcomes(3) and {200, 503} <= set(outcomes(3))


class TestOutages:
    def test_stop_ends_kept_alive_connections_and_start_comes_back_with_the_tickets(self, now, http):
        osb = OsbService(clock=now, processing_delay=5).start()
        try:
            osb.add_ticket("MO", "ne-gent-01")
            transaction_id = create(http, osb, NetworkElement="ne-gent-01")["TransactionId"]
            port = osb.port
            osb.stop()
            with pytest.raises(requests.ConnectionError):
                search(http, osb)  # the same session: its connection is gone too
            now.value += 5
            osb.start()
            assert osb.port == port
            assert result(http, osb, transaction_id) == {"Status": "COMPLETED", "TicketId": "MO-000002"}
            assert [t["TicketId"] for t in search(http, osb)] == ["MO-000001", "MO-000002"]
            assert create(http, osb)["TransactionId"] == transaction_id  # its RequestId is remembered too
        finally:
            osb.stop()

    def test_a_request_waiting_out_a_latency_when_the_service_stops_never_takes_effect(self, now, monkeypatch):
        held = HeldTime()
        monkeypatch.setattr(osb_server_module, "time", held)
        osb = OsbService(clock=now).start()
        try:
            osb.faults.add(Fault(api="osb", kind="latency", latency=1, requests={1}))
            outcome: list[object] = []

            def create_once() -> None:
                with requests.Session() as session:
                    session.trust_env = False
                    try:
                        outcome.append(create(session, osb))
                    except requests.ConnectionError:
                        outcome.append("ConnectionError")

            caller = threading.Thread(target=create_once)
            caller.start()
            assert held.sleeping.acquire(timeout=10)
            osb.stop()
            caller.join(10)
            assert outcome == ["ConnectionError"]
            held.release.release()
            deadline = time.monotonic() + 10
            while not osb.requests() and time.monotonic() < deadline:  # the handler wakes after the wait
                time.sleep(0.01)
            assert [(r.status, r.fault) for r in osb.requests()] == [(0, "latency")] and osb.transactions() == []
        finally:
            osb.stop()


class TestConnectionAndLog:
    def test_one_kept_alive_connection_carries_many_requests_with_content_length(self, osb):
        connection = http.client.HTTPConnection(osb.host, osb.port, timeout=10)
        try:
            sockets = []
            for number in range(3):
                body = envelope("CreateTicketRequest", {"RequestId": f"r{number}", **CREATE_FIELDS})
                connection.request("POST", "/osb/TicketingService", body, {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"CreateTicketRequest"'})
                answer = connection.getresponse()
                data = answer.read()
                assert answer.status == 200 and int(answer.getheader("Content-Length")) == len(data) and not answer.will_close
                sockets.append(connection.sock)
            assert sockets[0] is not None and sockets == [sockets[0]] * 3  # never reconnected
        finally:
            connection.close()
        assert len(osb.tickets()) == 3

    def test_the_log_keeps_operation_headers_body_and_status(self, osb, http):
        create(http, osb)
        post(http, osb, b"not xml")
        created, refused = osb.requests()
        assert (created.number, created.api, created.method, created.path, created.status, created.operation) == (
            1, "osb", "POST", "/osb/TicketingService", 200, "CreateTicketRequest"
        )  # fmt: skip
        assert "<tck:RequestId>req-1</tck:RequestId>" in created.body and created.headers["Content-Type"] == "text/xml; charset=utf-8"
        assert (refused.number, refused.status, refused.operation, refused.body) == (2, 500, None, "not xml")

    def test_concurrent_creates_get_distinct_tickets(self, osb):
        def create_some(worker: int) -> None:
            with requests.Session() as session:
                session.trust_env = False
                for number in range(10):
                    transaction_id = create(session, osb, f"w{worker}-{number}")["TransactionId"]
                    assert result(session, osb, transaction_id)["Status"] == "COMPLETED"

        workers = [threading.Thread(target=create_some, args=(worker,)) for worker in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(30)
        assert sorted(t.ticket_id for t in osb.tickets()) == [f"MO-{n:06d}" for n in range(1, 41)]

    def test_the_admin_endpoints_set_faults_and_show_the_log_and_tickets(self, osb, http):
        added = http.post(f"{osb.base_url}/_admin/faults", json={"api": "osb", "kind": "nack", "operation": "CreateTicketRequest"})
        assert added.status_code == 201 and added.json()[0]["operation"] == "CreateTicketRequest"
        assert create(http, osb)["Result"] == "NACK"
        assert http.delete(f"{osb.base_url}/_admin/faults").status_code == 204
        create(http, osb)
        assert [r["fault"] for r in http.get(f"{osb.base_url}/_admin/requests").json()] == ["nack", None]
        assert [t["ticket_id"] for t in http.get(f"{osb.base_url}/_admin/tickets").json()] == ["MO-000001"]
        bad = http.post(f"{osb.base_url}/_admin/faults", json={"kind": "sometimes"})
        assert bad.status_code == 400 and "fault kind 'sometimes'" in bad.json()["error"]


def test_dmemu_simulate_osb_serves_the_ticketing_service(http):
    worktree = Path(dmemu.__file__).parent.parent  # the dmemu under test, not an installed one
    environment = {**os.environ, "PYTHONPATH": str(worktree)}
    command = [sys.executable, "-m", "dmemu.cli", "simulate", "--services", "1", "--carriers", "0", "--resources", "0", "--osb", "--osb-delay", "60"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=environment)
    try:
        assert process.stdout is not None
        url = ""
        while not url:
            line = process.stdout.readline()
            assert line, "dmemu simulate ended before printing the OSB's URL"
            if line.strip().startswith("osb (Telenet OSB ticketing):"):
                url = line.split()[-1]
        answer = http.post(url, data=envelope("CreateTicketRequest", {"RequestId": "r", **CREATE_FIELDS}), timeout=10)
        assert answer.status_code == 200 and b"<tck:TransactionId>TX-000001</tck:TransactionId>" in answer.content
        pending = http.post(url, data=envelope("GetTransactionResultRequest", {"TransactionId": "TX-000001"}), timeout=10)
        assert b"<tck:Status>PENDING</tck:Status>" in pending.content  # a minute of processing
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0
    finally:
        process.kill()


def test_dmemu_simulate_refuses_an_osb_port_in_use_and_a_bad_delay(capsys):
    from dmemu.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["simulate", "--services", "1", "--carriers", "0", "--resources", "0", "--osb", "--osb-port", str(port)]) == 2
    assert f"dmemu: cannot listen on 127.0.0.1:{port} for the OSB" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["simulate", "--osb", "--osb-delay", "-1"])
    assert "-1 is not a number of seconds from 0 to 86,400" in capsys.readouterr().err
