"""What every simulated remote system's HTTP side shares: a loopback server that a harness can take
away and bring back (`LoopbackService`), and a request handler (`SimulatorHandler`) that reads
bodies, answers in one write, plays the `FaultPlan`'s faults and keeps the request log.

Each service supplies its own routing, answers and error body (a TMF JSON error, a SOAP Fault):
`server.Simulators` and `osb_server.OsbService` are the two.

Accepted sockets get ``TCP_NODELAY``: without it, HTTP/1.1 keep-alive answers wait ~40 ms
for the client's delayed ACK (REFERENCE §5).
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, TypeVar, cast
from urllib.parse import parse_qsl, urlsplit

import attrs

from .faults import Fault, FaultPlan, RequestRecord, logged_body, masked_headers

_logger = logging.getLogger("dmemu.simulators")

MAX_CHUNK_LINE = 1024  # a chunk-size line longer than this is not one
MAX_BODY = 16 * 1024 * 1024  # bytes: far above any create or patch, far below what hurts


class RequestBodyError(Exception):
    """A request body that cannot be read (a bad length or chunking, or too large): the HTTP
    `status` and `reason` to answer, and `message` saying why. Each simulator answers it in its
    own API's error format."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


def read_chunked(stream: Any) -> bytes:
    """A chunked request body (RFC 9112 section 7.1): sizes in hex, each chunk followed by CRLF,
    a last chunk of size 0, then trailer lines up to an empty one. `RequestBodyError` (400, or
    413 past `MAX_BODY`) for anything else."""
    body = bytearray()
    while True:
        line = stream.readline(MAX_CHUNK_LINE + 1)
        if not line.endswith(b"\n") or len(line) > MAX_CHUNK_LINE:
            raise RequestBodyError(400, "Bad Request", "chunked body: a chunk-size line is missing or too long")
        size_text = line.split(b";", 1)[0].strip()  # chunk extensions are ignored
        try:
            if not size_text or size_text.startswith((b"-", b"+", b"0x", b"0X")):
                raise ValueError
            size = int(size_text, 16)
        except ValueError:
            raise RequestBodyError(400, "Bad Request", f"chunked body: chunk size {size_text.decode('latin-1')!r} is not a hexadecimal number") from None
        if size == 0:
            break
        if len(body) + size > MAX_BODY:
            raise RequestBodyError(413, "Content Too Large", f"a request body is at most {MAX_BODY} bytes")
        chunk = stream.read(size)
        if len(chunk) != size or stream.read(2) != b"\r\n":
            raise RequestBodyError(400, "Bad Request", f"chunked body: a chunk of {size} bytes is cut short or not followed by CRLF")
        body += chunk
    while True:  # trailer fields, which nothing here reads
        line = stream.readline(MAX_CHUNK_LINE + 1)
        if not line.endswith(b"\n"):
            raise RequestBodyError(400, "Bad Request", "chunked body: the trailer does not end with an empty line")
        if line in (b"\r\n", b"\n"):
            return bytes(body)


class LoopbackHttpServer(ThreadingHTTPServer):
    """The simulators' threaded HTTP server: TCP_NODELAY on accepted sockets, every open
    connection tracked so `close_connections` can end them (an outage)."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # with socketserver's 5, clients connecting together wait for SYN retries, or are reset

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], service: LoopbackService) -> None:
        self.service = service
        self._connections: set[socket.socket] = set()  # open ones, closed by `close_connections`
        self.closing = False  # set by `LoopbackService.stop`: a request still waiting out a latency is dropped
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._connections_lock:
            self._connections.add(connection)
        return connection, address

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End every open connection: its handler reads end-of-stream and finishes."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # the client closed it first

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that goes away mid-answer (or a stop) is no error; anything else is a bug, logged.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            _logger.exception("simulator connection from %s failed", client_address)


_Service = TypeVar("_Service", bound="LoopbackService")


class LoopbackService:
    """A simulated remote system on a `LoopbackHttpServer` of its own, started in-process:
    `handler` answers its requests, `faults` is its `FaultPlan` (drawn from `seed`, the request
    log keeping the newest `log_limit` requests), `thread_name` names its serving thread.

    `stop()` is an outage: it closes the listening socket and every open connection (a client's
    next request on a kept-alive connection fails); `start()` again listens on the same port with
    everything stored kept, so a harness can take the remote system away and back.
    """

    def __init__(self, handler: type[SimulatorHandler[Any]], *, host: str, port: int, seed: int, log_limit: int, thread_name: str) -> None:
        self.faults = FaultPlan(seed, log_limit=log_limit)
        self._handler = handler
        self._thread_name = thread_name
        self._server = LoopbackHttpServer((host, port), handler, self)
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

    def start(self: _Service) -> _Service:
        """Serve (again, after `stop`, on the same port; OSError if something else took it)."""
        if not self._listening:
            self._server = LoopbackHttpServer(self._server.server_address[:2], self._handler, self)
            self._listening = True
        if self._thread is None:
            # A short poll interval: `stop()` waits for the serving loop to look up (an idle wake-up
            # every 10 ms costs next to nothing; tests start and stop hundreds of servers).
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, name=self._thread_name, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """An outage: the listening socket and every open connection close; what is stored stays."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()
        self._server.closing = True
        self._server.close_connections()
        self._listening = False

    def __enter__(self: _Service) -> _Service:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@attrs.frozen
class ReceivedRequest:
    """A request as the handler read it, before any routing."""

    method: str
    path: str  # without the query string or a trailing "/"
    query: list[tuple[str, str]]  # in order, blank values kept
    body: bytes
    arrived: float  # epoch seconds (wall clock)


# (status, payload, extra headers, the fault that still shapes the answer): what a service's
# answer gives `SimulatorHandler._answer_with_faults`, and what that gives back to send.
Answer = tuple[int, Any, dict[str, str], Fault | None]


class SimulatorHandler(BaseHTTPRequestHandler, Generic[_Service]):
    """The mechanics every simulator's handler shares: the methods it takes to `_handle`, the
    body (``Content-Length`` or chunked) read or refused, ``/_admin`` paths told apart, the
    `FaultPlan`'s faults played, the request log kept, and answers written head and body at once.

    `service` is the service it answers for. A service's handler supplies its routing
    (`_answer_request`, `_answer_admin`), its error body (`_refusal`, `_fault_refusal`) and how it
    sends a payload (`_send_answer`); a payload is whatever that takes.
    """

    protocol_version = "HTTP/1.1"
    server: LoopbackHttpServer
    malformed_tail: bytes  # what a "malformed" fault puts after half the answer, in the service's own format

    def log_message(self, format: str, *args: Any) -> None:  # the request log is kept in FaultPlan
        pass

    @property
    def service(self) -> _Service:
        return cast(_Service, self.server.service)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # -- what a service supplies ------------------------------------------------------------

    def _answer_request(self, request: ReceivedRequest) -> None:
        """Answer a request to any path but ``/_admin...`` (its body is read)."""
        raise NotImplementedError

    def _answer_admin(self, method: str, path: str, query: list[tuple[str, str]], body: bytes) -> None:
        raise NotImplementedError

    def _refusal(self, status: int, reason: str, message: str, headers: dict[str, str]) -> tuple[int, Any]:
        """(status, payload) of an error answer in the service's format; adds the headers it needs."""
        raise NotImplementedError

    def _fault_refusal(self, fault: Fault, number: int, headers: dict[str, str]) -> tuple[int, Any]:
        """(status, payload) of the error a "status" or "rate_limit" `fault` answers request `number` with."""
        raise NotImplementedError

    def _send_answer(self, status: int, payload: Any, headers: Mapping[str, str], fault: Fault | None) -> None:
        """Send `payload` with `status` and `headers`, spoiled as a "malformed" or "truncated" `fault` says."""
        raise NotImplementedError

    def _sleep(self, seconds: float) -> None:
        """A latency fault's wait (a service's module waits with its own `time`, which tests hold)."""
        raise NotImplementedError

    # -- the shared mechanics ---------------------------------------------------------------

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (a bad request line, a URI or header too long, an unknown
        method) in the service's error format too, not its HTML page."""
        self.close_connection = True
        self._answer_http09_with_head()  # a request line it could not read: answer with a head all the same
        code = int(code)  # an HTTPStatus, which Python 3.10 writes as "HTTPStatus.NOT_FOUND"
        reason = self.responses.get(code, ("Error",))[0]
        self._send_refusal(code, reason, explain or message or reason, {"Connection": "close"})

    def _send_refusal(self, status: int, reason: str, message: str, headers: dict[str, str]) -> None:
        status, payload = self._refusal(status, reason, message, headers)
        self._send_answer(status, payload, headers, None)

    def _answer_http09_with_head(self) -> None:
        # http.server answers HTTP/0.9 (and request lines it could not read) with no head; every client here wants one.
        if self.request_version == "HTTP/0.9":
            self.request_version = self.protocol_version

    def _handle(self, method: str) -> None:
        arrived = time.time()
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        query = parse_qsl(parts.query, keep_blank_values=True)
        body = self._body_or_refusal()
        if body is None:
            return
        if path.startswith("/_admin"):
            self._answer_admin(method, path, query, body)
        else:
            self._answer_request(ReceivedRequest(method, path, query, body, arrived))

    def _body_or_refusal(self) -> bytes | None:
        """The request body, or None once an error went out for an unreadable one."""
        try:
            return self._read_body()
        except RequestBodyError as error:
            self.close_connection = True  # the stream cannot be trusted past a bad length or chunk
            self._send_refusal(error.status, error.reason, error.message, {})
            return None

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():  # RFC 9112: chunked wins over a length
            return read_chunked(self.rfile)
        text = self.headers.get("Content-Length") or "0"
        if not (text.isascii() and text.isdigit()):  # str.isdigit() also takes "²", which int() does not
            raise RequestBodyError(400, "Bad Request", f"Content-Length {text!r} is not a length")
        length = int(text)
        if length > MAX_BODY:
            raise RequestBodyError(413, "Content Too Large", f"a request body is at most {MAX_BODY} bytes")
        return self.rfile.read(length) if length else b""

    def _record(self, request: ReceivedRequest, api: str, number: int, status: int, fault: Fault | None, **details: Any) -> None:
        """Request `number` of `api` into the log, answered with `status` (0: none); `details` are
        the service's own `RequestRecord` fields."""
        self.service.faults.record(
            RequestRecord(
                number, api, request.method, self.path, status, fault.kind if fault else None,
                headers=masked_headers(self.headers.items()), body=logged_body(request.body), time=request.arrived, **details,
            )
        )  # fmt: skip

    def _answer_with_faults(
        self, request: ReceivedRequest, api: str, number: int, fault: Fault | None, answer: Callable[[Fault | None], Answer], **details: Any
    ) -> Answer | None:
        """Request `number` of `api` under `fault` (None: no fault), logged: the `Answer` to send,
        or None when no answer goes out (the connection is closed instead).

        A latency waits first, and a request still waiting when the service stops never takes
        effect; a drop is never answered; a status or rate limit is refused; otherwise `answer`
        (called with the fault) gives the service's answer, and the fault it still has to shape
        it (None for a request it refused: that is answered whole). A lost answer takes effect
        and is not sent."""
        if fault is not None and fault.latency:
            self._sleep(fault.latency)
            if self.server.closing:  # the outage began while it waited: it never takes effect
                self._record(request, api, number, 0, fault, **details)
                self.close_connection = True
                return None
        headers: dict[str, str] = {}
        if fault is not None and fault.kind == "drop":
            status, payload = 0, None
        elif fault is not None and fault.kind in ("status", "rate_limit"):
            retry_after = fault.retry_after_header
            if retry_after is not None:
                headers["Retry-After"] = retry_after
            status, payload = self._fault_refusal(fault, number, headers)
        else:
            status, payload, headers, fault = answer(fault)
        # Logged before answering, so a client that has its answer finds it in the log.
        self._record(request, api, number, status, fault, **details)
        if status == 0 or (fault is not None and fault.kind == "lost"):
            self.close_connection = True  # no answer at all (a lost one took effect all the same)
            return None
        return status, payload, headers, fault

    def _write_answer(self, status: int, data: bytes, headers: Mapping[str, str], fault: Fault | None, content_type: str | None) -> None:
        """Head and body in one write, with ``Content-Length``; a "malformed" or "truncated"
        `fault` spoils the body (a truncated one then ends the connection)."""
        self._answer_http09_with_head()
        if fault is not None and fault.kind == "malformed":
            data = data[: max(1, len(data) // 2)] + self.malformed_tail
        declared = len(data)
        if fault is not None and fault.kind == "truncated":
            data = data[: len(data) // 2]
            self.close_connection = True
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(declared))
        # Head and body in one write: two writes wake the client twice (once for the head
        # alone), which on loopback costs more than writing the page does.
        self._headers_buffer.append(b"\r\n" + data)
        self.flush_headers()
