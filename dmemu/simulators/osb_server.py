"""The OSB ticketing service on a loopback HTTP/1.1 server: ``POST /osb/TicketingService``.

    with OsbService(clock=now, processing_delay=5) as osb:
        requests.post(osb.url, data=envelope, headers={"Content-Type": "text/xml; charset=utf-8"})

The operations are `osb`'s; this is the HTTP side: faults (`FaultPlan`, api ``osb``, narrowed
to an ``operation`` if wanted), the request log, and answers that always carry Content-Length
on a kept-alive connection. It runs on the TMF simulators' server (`server.LoopbackHttpServer`): TCP_NODELAY
on accepted sockets, and `stop()` ends every open connection, as an outage does; `start()` again
listens on the same port with every ticket and transaction kept.

``/_admin/faults`` (GET, POST, DELETE), ``/_admin/requests`` (GET, DELETE) and
``/_admin/tickets`` (GET) take and give JSON, for a person running ``dmemu simulate --osb``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import attrs

from .faults import LOG_LIMIT, RATE_LIMITED, Fault, FaultPlan, RequestRecord, logged_body, masked_headers
from .osb import CONTENT_TYPE, ENDPOINT, OsbTicket, OsbTickets, OsbTransaction, SoapFault, parse_request
from .server import MAX_BODY, LoopbackHttpServer, RequestBodyError, read_chunked

API = "osb"  # how faults and the request log name the service
_logger = logging.getLogger("dmemu.simulators")


class OsbService:
    """The Telenet OSB ticketing service, started in-process on `host`:`port` (0: a free port).

    `clock` is the simulated time (epoch seconds; pass the DMS clock's ``now`` to keep the two in
    step); a create, update or close is processed `processing_delay` seconds of it after its ACK.
    `seed` draws the probabilistic faults; the request log keeps the newest `log_limit` requests.
    """

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
        self.faults = FaultPlan(seed, log_limit=log_limit)
        self._server = LoopbackHttpServer((host, port), _Handler, self)  # type: ignore[arg-type]  # it keeps the service as `simulators`
        self._listening = True  # False once stop() closed the socket: start() binds a new one
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        """The port the server listens on: the one asked for, or the free one the system chose for port 0."""
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

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

    def start(self) -> OsbService:
        """Serve (again, after `stop`, on the same port; OSError if something else took it)."""
        if not self._listening:
            self._server = LoopbackHttpServer(self._server.server_address[:2], _Handler, self)  # type: ignore[arg-type]
            self._listening = True
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, name="dmemu-osb", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """An outage: the listening socket and every open connection close; the tickets stay."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()
        self._server.closing = True
        self._server.close_connections()
        self._listening = False

    def __enter__(self) -> OsbService:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LoopbackHttpServer

    def log_message(self, format: str, *args: Any) -> None:  # the request log is kept in FaultPlan
        pass

    @property
    def service(self) -> OsbService:
        return self.server.simulators  # type: ignore[return-value]

    def do_POST(self) -> None:
        self._handle("POST")

    def do_GET(self) -> None:
        self._handle("GET")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (a bad request line, a header too long, an unknown method)
        as SOAP Faults too, not its HTML page."""
        self.close_connection = True
        if self.request_version == "HTTP/0.9":  # a request line it could not read: answer with a head all the same
            self.request_version = self.protocol_version
        code = int(code)
        self._send(code, SoapFault(explain or message or self.responses.get(code, ("Error",))[0], status=code).xml(), {"Connection": "close"})

    def _handle(self, method: str) -> None:
        service = self.service
        arrived = time.time()
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        body = self._body_or_refusal()
        if body is None:
            return
        if path.startswith("/_admin"):
            self._answer_admin(method, path, parse_qsl(parts.query), body)
            return
        number = service.faults.next_number(API)
        operation: str | None = None

        def record(status: int, fault: Fault | None) -> None:
            service.faults.record(
                RequestRecord(
                    number, API, method, self.path, status, fault.kind if fault else None,
                    headers=masked_headers(self.headers.items()), body=logged_body(body), time=arrived, operation=operation,
                )
            )  # fmt: skip

        if path != ENDPOINT or method != "POST":  # logged too: a client calling wrongly is worth seeing
            refusal = (
                SoapFault(f"no service at {path}; the OSB ticketing service is at {ENDPOINT}", status=404)
                if path != ENDPOINT
                else SoapFault(f"{method} is not supported: post the SOAP envelope", status=405)
            )
            record(refusal.status, None)
            self._send(refusal.status, refusal.xml(), {"Allow": "POST"} if refusal.status == 405 else {})
            return
        try:
            request = parse_request(body)
            operation, unreadable = request.operation, None
        except SoapFault as error:
            request, unreadable, operation = None, error, error.operation
        fault = service.faults.fault_for(API, method, number, None, operation=operation, now=service.clock())
        if fault is not None and fault.latency:
            time.sleep(fault.latency)
            if self.server.closing:  # the outage began while it waited: it never takes effect
                record(0, fault)
                self.close_connection = True
                return
        headers: dict[str, str] = {}
        if fault is not None and fault.kind == "drop":
            status, data = 0, b""
        elif fault is not None and fault.kind in ("status", "rate_limit"):
            retry_after = fault.retry_after_header
            if retry_after is not None:
                headers["Retry-After"] = retry_after
            if fault.kind == "rate_limit":
                refusal = SoapFault(f"more than {fault.limit} requests in {fault.per:g} s", status=RATE_LIMITED, code="soapenv:Server")
            else:
                refusal = SoapFault(f"simulated fault on request {number}", status=fault.status, code="soapenv:Server")
            status, data = refusal.status, refusal.xml()
        elif request is None:
            assert unreadable is not None
            status, data, fault = unreadable.status, unreadable.xml(), None  # a refused request is answered whole
        else:
            nack = f"simulated refusal of request {number}" if fault is not None and fault.kind == "nack" else None
            failure = f"simulated processing failure of request {number}" if fault is not None and fault.kind == "fail" else None
            try:
                status, data = 200, service.store.answer(request, nack=nack, failure=failure)
            except Exception as error:  # a simulator bug still answers, as a SOAP Server fault, and is logged
                _logger.exception("OSB simulator failed on %s", operation)
                failed = SoapFault(f"{type(error).__name__}: {error}", code="soapenv:Server")
                status, data, fault = failed.status, failed.xml(), None
        record(status, fault)  # before answering, so a client that has its answer finds it in the log
        if status == 0 or (fault is not None and fault.kind == "lost"):
            self.close_connection = True  # no answer at all (a lost one took effect all the same)
            return
        self._send(status, data, headers, fault)

    def _body_or_refusal(self) -> bytes | None:
        """The request body, or None once a SOAP Fault went out for an unreadable one."""
        try:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():  # RFC 9112: chunked wins over a length
                return read_chunked(self.rfile)
            text = self.headers.get("Content-Length") or "0"
            if not (text.isascii() and text.isdigit()):
                raise RequestBodyError(400, "Bad Request", f"Content-Length {text!r} is not a length")
            length = int(text)
            if length > MAX_BODY:
                raise RequestBodyError(413, "Content Too Large", f"a request body is at most {MAX_BODY} bytes")
            return self.rfile.read(length) if length else b""
        except RequestBodyError as error:
            self.close_connection = True  # the stream cannot be trusted past a bad length or chunk
            self._send(error.status, SoapFault(error.message, status=error.status).xml(), {})
            return None

    def _send(self, status: int, data: bytes, headers: dict[str, str], fault: Fault | None = None, content_type: str = CONTENT_TYPE) -> None:
        if fault is not None and fault.kind == "malformed":
            data = data[: max(1, len(data) // 2)] + b"<<not xml"
        declared = len(data)
        if fault is not None and fault.kind == "truncated":
            data = data[: len(data) // 2]
            self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(declared))
        # Head and body in one write: two writes wake the client twice (REFERENCE §5).
        self._headers_buffer.append(b"\r\n" + data)
        self.flush_headers()

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
        self._send(status, data, {}, content_type="application/json")
