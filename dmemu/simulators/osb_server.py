"""The OSB ticketing service on a loopback HTTP/1.1 server: ``POST /osb/TicketingService``.

    with OsbService(clock=now, processing_delay=5) as osb:
        requests.post(osb.url, data=envelope, headers={"Content-Type": "text/xml; charset=utf-8"})

The operations are `osb`'s; this is the HTTP side: faults (`FaultPlan`, api ``osb``, narrowed
to an ``operation`` if wanted), the request log, and answers that always carry Content-Length
on a kept-alive connection. It runs on the server every simulator shares (`http_service`): TCP_NODELAY
on accepted sockets, and `stop()` ends every open connection, as an outage does; `start()` again
listens on the same port with every ticket and transaction kept.

``/_admin/faults`` (GET, POST, DELETE), ``/_admin/requests`` (GET, DELETE) and
``/_admin/tickets`` (GET) take and give JSON, for a person running ``dmemu simulate --osb``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from .faults import LOG_LIMIT, RATE_LIMITED, Fault, RequestRecord
from .http_service import Answer, LoopbackService, ReceivedRequest, SimulatorHandler
from .osb import CONTENT_TYPE, ENDPOINT, OsbTicket, OsbTickets, OsbTransaction, SoapFault, parse_request

API = "osb"  # how faults and the request log name the service
_logger = logging.getLogger("dmemu.simulators")


class OsbService(LoopbackService):
    """The Telenet OSB ticketing service, started in-process on `host`:`port` (0: a free port).

    `clock` is the simulated time (epoch seconds; pass the DMS clock's ``now`` to keep the two in
    step); a create, update or close is processed `processing_delay` seconds of it after its ACK.
    `seed` draws the probabilistic faults; the request log keeps the newest `log_limit` requests.
    """

    apis: tuple[str, ...] = ("osb",)  # what its faults and request log name (`Fault.api`)

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] | None = None,
        processing_delay: float = 0.0,
        seed: int = 1,
        log_limit: int = LOG_LIMIT,
    ) -> None:
        self.clock = clock or time.time
        self.store = OsbTickets(self.clock, processing_delay)
        super().__init__(_Handler, host=host, port=port, seed=seed, log_limit=log_limit, thread_name="dmemu-osb")

    @property
    def url(self) -> str:
        """The service's endpoint, where every operation is posted."""
        return self.base_url + ENDPOINT

    @property
    def processing_delay(self) -> float:
        return self.store.processing_delay

    @processing_delay.setter
    def processing_delay(self, seconds: float) -> None:
        self.store.processing_delay = seconds  # for what is ACKed from now on

    def tickets(self) -> list[OsbTicket]:
        """Every ticket, in id order, as it stands now (what is due by the clock processed)."""
        return self.store.tickets()

    def transactions(self) -> list[OsbTransaction]:
        """Every transaction (acknowledged create, update or close) so far, in order."""
        return self.store.transactions()

    def add_ticket(self, ticket_type: str, network_element: str, **details: str) -> OsbTicket:
        """Seed a ticket that was there before (see `OsbTickets.add_ticket`)."""
        return self.store.add_ticket(ticket_type, network_element, **details)

    def requests(self) -> list[RequestRecord]:
        """The request log: the newest `log_limit` requests, with their answer and any fault."""
        return self.faults.requests()


class _Handler(SimulatorHandler[OsbService]):
    malformed_tail = b"<<not xml"

    def _sleep(self, seconds: float) -> None:
        time.sleep(seconds)  # this module's `time`: tests hold a latency's wait by replacing it

    def do_PUT(self) -> None:
        self._handle("PUT")

    def _refusal(self, status: int, reason: str, message: str, headers: dict[str, str]) -> tuple[int, Any]:
        return status, SoapFault(message, status=status).xml()  # a SOAP Fault has no place for the reason phrase

    def _fault_refusal(self, fault: Fault, number: int, headers: dict[str, str]) -> tuple[int, Any]:
        if fault.kind == "rate_limit":
            refusal = SoapFault(f"more than {fault.limit} requests in {fault.per:g} s", status=RATE_LIMITED, code="soapenv:Server")
        else:
            refusal = SoapFault(f"simulated fault on request {number}", status=fault.status, code="soapenv:Server")
        return refusal.status, refusal.xml()

    def _answer_request(self, received: ReceivedRequest) -> None:
        service = self.service
        method, path, body = received.method, received.path, received.body
        number = service.faults.next_number(API)
        if path != ENDPOINT or method != "POST":  # logged too: a client calling wrongly is worth seeing
            refusal = (
                SoapFault(f"no service at {path}; the OSB ticketing service is at {ENDPOINT}", status=404)
                if path != ENDPOINT
                else SoapFault(f"{method} is not supported: post the SOAP envelope", status=405)
            )
            self._record(received, API, number, refusal.status, None)
            self._send_answer(refusal.status, refusal.xml(), {"Allow": "POST"} if refusal.status == 405 else {}, None)
            return
        try:
            request = parse_request(body)
            operation, unreadable = request.operation, None
        except SoapFault as error:
            request, unreadable, operation = None, error, error.operation
        fault = service.faults.fault_for(API, method, number, None, operation=operation, now=service.clock())

        def answer(fault: Fault | None) -> Answer:
            if request is None:
                assert unreadable is not None
                return unreadable.status, unreadable.xml(), {}, None  # a refused request is answered whole
            nack = f"simulated refusal of request {number}" if fault is not None and fault.kind == "nack" else None
            failure = f"simulated processing failure of request {number}" if fault is not None and fault.kind == "fail" else None
            try:
                return 200, service.store.answer(request, nack=nack, failure=failure), {}, fault
            except Exception as error:  # a simulator bug still answers, as a SOAP Server fault, and is logged
                _logger.exception("OSB simulator failed on %s", operation)
                failed = SoapFault(f"{type(error).__name__}: {error}", code="soapenv:Server")
                return failed.status, failed.xml(), {}, None

        outcome = self._answer_with_faults(received, API, number, fault, answer, operation=operation)
        if outcome is not None:
            self._send_answer(*outcome)

    def _send_answer(self, status: int, payload: Any, headers: Mapping[str, str], fault: Fault | None) -> None:
        self._write_answer(status, payload, headers, fault, CONTENT_TYPE)

    def _answer_admin(self, method: str, path: str, query: list[tuple[str, str]], body: bytes) -> None:
        service = self.service
        status: int = 200
        try:
            if path == "/_admin/faults" and method == "GET":
                payload: Any = [f.to_json() for f in service.faults.faults]
            elif path == "/_admin/faults" and method == "POST":
                data = json.loads(body or b"null")
                service.faults.add(*[Fault.from_json(entry) for entry in (data if isinstance(data, list) else [data])])
                status, payload = 201, [f.to_json() for f in service.faults.faults]
            elif path == "/_admin/faults" and method == "DELETE":
                service.faults.clear()
                status, payload = 204, None
            elif path == "/_admin/requests" and method == "GET":
                payload = [attrs.asdict(r) for r in service.requests()]
            elif path == "/_admin/requests" and method == "DELETE":
                service.faults.clear_log()
                status, payload = 204, None
            elif path == "/_admin/tickets" and method == "GET":
                payload = [attrs.asdict(t) for t in service.tickets()]
            else:
                status, payload = 404, {"error": f"no admin endpoint {method} {path}"}
        except (TypeError, ValueError) as error:  # a body that is not JSON, or not a fault
            status, payload = 400, {"error": f"bad fault: {error}"}
        data = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode()
        self._write_answer(status, data, {}, None, "application/json")
