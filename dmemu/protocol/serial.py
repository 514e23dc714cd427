"""An element's serial connection over IP: a TCP stream carrying commands and framed answers.

As DataMiner's serial connections do, a command is sent and one answer is read back, its end
found by a framing (a trailer, a fixed length, or an HTTP/1.1 response). The socket opens on
first use and stays open between exchanges; one exchange runs at a time. A connection the peer
closed while it was idle is seen before the command goes and opened again; a command whose
connection closes once it went out is never resent (a device command may not be idempotent):
that exchange fails with `SerialConnectionError`. A timeout closes the socket, so a late answer is never read as the next command's. The target can
change at run time (DataMiner's "dynamic ip" parameter option).

`exchange` and `http_exchange` wait for the answer. `start_exchange` and `start_http_exchange`
send the command and return: the answer (or the failure) goes to a callback when it comes, as
DataMiner's own communication hands a response to the protocol, so an element waiting for its
device does not hold up the others. The port's `runner` (the clock of the element's DMS) says
where the waiting happens: a virtual clock watches the sockets of every exchange in flight
itself and moves no time until their answers came, a real clock waits on a worker thread.
Exchanges started while one is in flight go out after it, in order.
"""

from __future__ import annotations

import contextlib
import math
import re
import socket
import threading
import time
import typing
from collections import deque
from collections.abc import Callable, Mapping

import attrs
from requests.structures import CaseInsensitiveDict

from .clock import Clock
from .errors import SerialConnectionError, SerialTimeoutError
from .http import Connection

DEFAULT_SERIAL_PORT = 8650
MAX_HTTP_HEAD = 64 * 1024  # an answer whose status line and headers never end is refused past this
MAX_HTTP_BODY = 16 * 1024 * 1024  # an answer announcing a longer body is refused before reading it
_RECEIVE_SIZE = 64 * 1024
_STATUS_LINE = re.compile(r"HTTP/1\.[01] (\d{3})(?: (.*))?")


class FramingError(ValueError):
    """Bytes received cannot be the start of an answer of this framing."""


class Framing(typing.Protocol):
    """Where an answer ends in the bytes received so far."""

    def answer_end(self, received: bytes) -> int | None:
        """The length of the complete answer at the start of `received`, or None while more
        bytes are needed. Raises `FramingError` when `received` cannot begin an answer."""


@attrs.frozen
class TrailerFraming:
    """The answer ends with `trailer` (included in the answer)."""

    trailer: bytes

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.trailer, bytes) or not self.trailer:
            raise ValueError(f"TrailerFraming trailer={self.trailer!r}: the trailer is non-empty bytes")

    def answer_end(self, received: bytes) -> int | None:
        found = received.find(self.trailer)
        return None if found < 0 else found + len(self.trailer)


@attrs.frozen
class LengthFraming:
    """The answer is exactly `size` bytes."""

    size: int

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 1:
            raise ValueError(f"LengthFraming size={self.size!r}: the size is a whole number of bytes, at least 1")

    def answer_end(self, received: bytes) -> int | None:
        return self.size if len(received) >= self.size else None


@attrs.frozen
class HttpAnswer:
    """An HTTP/1.1 response read from a serial port."""

    status: int
    reason: str
    headers: CaseInsensitiveDict[str]
    body: bytes

    @classmethod
    def of(cls, answer: bytes, head: _HttpHead | None = None) -> HttpAnswer:
        """The complete answer `HttpFraming` found, as status, reason, headers and body (its
        `head` parsed already, or parsed here)."""
        if head is None:
            head = _http_head(answer)
            if head is None:
                raise FramingError("the HTTP answer is incomplete")
        head_size, body_size, status, reason, fields = head
        return cls(status, reason, CaseInsensitiveDict(fields), answer[head_size : head_size + body_size])

    @property
    def text(self) -> str:
        """The body decoded with the charset of its Content-Type (UTF-8 if none is named)."""
        charset = re.search(r"charset=\"?([\w.:-]+)", self.headers.get("Content-Type", ""))
        return self.body.decode(charset.group(1) if charset else "utf-8", errors="replace")


@attrs.frozen
class HttpFraming:
    """The answer is an HTTP/1.1 response: status line and headers up to an empty line, then
    Content-Length bytes of body (no chunked transfer coding)."""

    def answer_end(self, received: bytes) -> int | None:
        head = _http_head(received)
        return None if head is None else head[0] + head[1]

    @staticmethod
    def parse(answer: bytes) -> HttpAnswer:
        """The answer `answer_end` found complete, as status, reason, headers and body."""
        return HttpAnswer.of(answer)


_HttpHead = tuple[int, int, int, str, dict[str, str]]  # head size, body size, status, reason, headers as sent


def _http_head(received: bytes) -> _HttpHead | None:
    """The answer's head, or None until the whole answer came."""
    head = _http_head_only(received)
    if head is None or len(received) < head[0] + head[1]:
        return None
    return head


def _http_head_only(received: bytes) -> _HttpHead | None:
    """The answer's head, or None until the head (status line and headers) came."""
    end = received.find(b"\r\n\r\n")
    if end < 0:
        if len(received) > MAX_HTTP_HEAD:
            raise FramingError(f"no end of the HTTP headers in the first {MAX_HTTP_HEAD} bytes")
        return None
    status_line, *lines = received[:end].decode("latin-1").split("\r\n")
    match = _STATUS_LINE.fullmatch(status_line)
    if match is None:
        raise FramingError(f"not an HTTP/1.1 status line: {status_line[:80]!r}")
    headers: dict[str, str] = {}
    length = None
    for line in lines:
        name, colon, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if not colon or not name:
            raise FramingError(f"not an HTTP header line: {line[:80]!r}")
        headers[name] = value
        lowered = name.lower()
        if lowered == "content-length":
            length = value
        elif lowered == "transfer-encoding" and "chunked" in value.lower():
            raise FramingError("a chunked HTTP answer is not supported; the answer needs a Content-Length")
    status = int(match.group(1))
    if length is None:
        if status < 200 or status in (204, 304):
            return end + 4, 0, status, match.group(2) or "", headers  # these never have a body
        raise FramingError(f"the HTTP {status} answer has no Content-Length")
    if not length.isdigit():
        raise FramingError(f"Content-Length {length!r} is not a number of bytes")
    body_size = int(length)
    if body_size > MAX_HTTP_BODY:
        raise FramingError(f"Content-Length {body_size} exceeds MAX_HTTP_BODY ({MAX_HTTP_BODY} bytes)")
    return end + 4, body_size, status, match.group(2) or "", headers


class _PeerClosed(Exception):
    """The peer closed or reset the connection after `received` bytes of the answer; `sent`
    whether the command had gone out (then the peer may have acted on it)."""

    def __init__(self, received: int, cause: str, *, sent: bool = True) -> None:
        super().__init__(cause)
        self.received = received
        self.sent = sent


class SerialPort:
    """A TCP stream to a device or service: `exchange` sends a command and reads one framed answer.

    Every exchange (connecting included) ends within the connection's timeout unless the call
    gives its own. Safe to call from several threads: exchanges take turns."""

    def __init__(
        self,
        connection: Connection,
        *,
        default_port: int = DEFAULT_SERIAL_PORT,
        framing: Framing | None = None,
        runner: Clock | None = None,
        deliver: Callable[[Callable[..., None], object], None] | None = None,
    ) -> None:
        self.framing = framing  # the default for exchanges that name none
        self.timeout = connection.timeout
        self._connection = connection
        self._target = (connection.host, connection.port if connection.port is not None else default_port)
        self._socket: socket.socket | None = None
        self._lock = threading.RLock()  # held while the socket or the exchanges in flight change, and by a waiting exchange
        self._runner = runner  # where started exchanges wait for their answers (None: at once, here)
        self._deliver = deliver  # how an answer reaches its callback (None: called where the answer came)
        self._in_flight: _StartedExchange | None = None
        self._waiting: deque[_StartedExchange] = deque()  # started while one was in flight

    def __repr__(self) -> str:
        state = "open" if self._socket is not None else "closed"
        return f"<SerialPort {self._address} {state}>"

    @property
    def target(self) -> tuple[str, int]:
        """The (host, port) the next exchange talks to."""
        return self._target

    @property
    def connected(self) -> bool:
        """Whether a socket is open (the next exchange reuses it)."""
        return self._socket is not None

    def set_target(self, host: str, port: int) -> None:
        """Talk to `host`:`port` from the next exchange on (a dynamic IP address). An open
        connection to another target is closed. A bad host or port raises
        `ConnectionSettingError` naming it."""
        if type(host) is str and type(port) is int and (host, port) == self._target:
            return  # checked when it became the target; set before every exchange by some elements
        attrs.evolve(self._connection, host=host, port=port)  # the connection's own checks
        with self._lock:
            if (host, port) != self._target:
                self._drop()
                self._target = (host, port)

    def close(self) -> None:
        """Close the socket, if open; the next exchange connects again. Started exchanges not
        answered yet end with `SerialConnectionError` (their callbacks hear it)."""
        with self._lock:
            started = [self._in_flight, *self._waiting] if self._in_flight is not None else list(self._waiting)
            self._in_flight = None
            self._waiting.clear()
            cancelled = [exchange for exchange in started if exchange.cancel()]
            self._drop()  # a worker waiting for the answer wakes (the socket is shut down)
        for exchange in cancelled:
            exchange.deliver(SerialConnectionError(f"{self._address}: the connection was closed before the answer came", target=self._target))

    def start_exchange(
        self, data: bytes, then: Callable[..., None], framing: Framing | None = None, *, timeout: float | None = None
    ) -> None:
        """Send `data` (after the exchanges already started) and return; the answer `framing`
        (else the port's) finds complete, or the `SerialTimeoutError` / `SerialConnectionError`
        that ended the exchange, goes to `then` when it comes. On an element's port `then` runs
        like a QAction, on the element's queue: ``then(protocol, answer_or_error)``."""
        self._start(_StartedExchange(self, data, self._framing(framing), self._seconds(timeout), then))

    def start_http_exchange(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        *,
        then: Callable[..., None],
        timeout: float | None = None,
    ) -> None:
        """`http_exchange` started as `start_exchange` starts one: `then` gets the `HttpAnswer`
        or the error. The request's Host is the target it goes to."""
        seconds = self._seconds(timeout)
        with self._lock:
            request = self._http_request(method, path, body, headers)
        self._start(_StartedExchange(self, request, HttpFraming(), seconds, then, http=True))

    def exchange(self, data: bytes, framing: Framing | None = None, *, timeout: float | None = None) -> bytes:
        """Send `data` and answer the response `framing` (else the port's framing) finds complete.

        Raises `SerialTimeoutError` when no complete answer came within the timeout and
        `SerialConnectionError` when the connection is refused, reset or closed mid-answer."""
        framing = self._framing(framing)
        seconds = self._seconds(timeout)
        while True:
            self._finish_started()  # exchanges started earlier go first (waited for without the lock)
            with self._lock:
                if self._in_flight is None:
                    return self._exchange_now(data, framing, seconds)

    def _exchange_now(self, data: bytes, framing: Framing, seconds: float) -> bytes:
        with self._lock:
            deadline = time.monotonic() + seconds
            sock = self._send(data, deadline, seconds)
            try:
                return self._read(sock, framing, deadline, seconds)
            except _PeerClosed as closed:
                self._drop()
                raise SerialConnectionError(f"{self._address}: {closed}", target=self._target) from None
            except BaseException:
                self._drop()  # the stream is out of step with the commands: start afresh
                raise

    def _send(self, data: bytes, deadline: float, seconds: float) -> socket.socket:
        """Connect if need be and send `data`; answers the socket to read the answer from."""
        if self._socket is not None and _closed_by_peer(self._socket):
            self._drop()
        try:
            while True:
                fresh = self._socket is None
                sock = self._socket or self._connect(deadline, seconds)
                try:
                    _send_all(sock, data, deadline)
                    return sock
                except _PeerClosed as closed:
                    self._drop()
                    # Sent again only when the command could not go out on a connection left
                    # open since the last exchange: once sent, the peer may have acted on it.
                    if fresh or closed.sent:
                        raise SerialConnectionError(f"{self._address}: {closed}", target=self._target) from None
                except TimeoutError:
                    raise self._timed_out(seconds, _Reading(HttpFraming())) from None
                except OSError as error:
                    lost = _PeerClosed(0, f"the connection was lost after 0 bytes of the answer: {error}")
                    raise SerialConnectionError(f"{self._address}: {lost}", target=self._target) from None
        except BaseException:
            self._drop()
            raise

    def http_exchange(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        *,
        timeout: float | None = None,
    ) -> HttpAnswer:
        """Send an HTTP/1.1 request (with Host and Content-Length) and read its answer."""
        seconds = self._seconds(timeout)
        while True:
            self._finish_started()  # exchanges started earlier go first (waited for without the lock)
            with self._lock:  # the Host header names the target this request goes to
                if self._in_flight is None:
                    request = self._http_request(method, path, body, headers)
                    return self._http_answer(self._exchange_now(request, HttpFraming(), seconds))

    # -- internals ------------------------------------------------------------------------

    def _framing(self, framing: Framing | None) -> Framing:
        framing = framing or self.framing
        if framing is None:
            raise TypeError("no framing for this exchange: pass framing=, or declare one on the protocol's SerialConnection")
        return framing

    def _seconds(self, timeout: float | None) -> float:
        seconds = self.timeout if timeout is None else timeout
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 < seconds < math.inf:
            raise ValueError(f"timeout={seconds!r}: a timeout is a positive, finite number of seconds")
        return seconds

    def _http_request(self, method: str, path: str, body: bytes, headers: Mapping[str, str] | None) -> bytes:
        # Names are case-insensitive: a name given again replaces the value (and the spelling)
        # where the name first came, as requests' CaseInsensitiveDict does.
        fields: dict[str, tuple[str, str]] = {"host": ("Host", self._address)}
        for name, value in (headers or {}).items():
            fields[name.lower()] = (name, value)
        fields["content-length"] = ("Content-Length", str(len(body)))
        head = "".join(f"{name}: {value}\r\n" for name, value in fields.values())
        return f"{method} {path} HTTP/1.1\r\n{head}\r\n".encode("latin-1") + body

    def _http_answer(self, raw: bytes, head: _HttpHead | None = None) -> HttpAnswer:
        answer = HttpAnswer.of(raw, head)
        if answer.headers.get("Connection", "").lower() == "close":
            self._drop()
        return answer

    def _start(self, started: _StartedExchange) -> None:
        with self._lock:
            if self._in_flight is not None:
                self._waiting.append(started)
                return
            self._in_flight = started
        self._go(started)

    def _go(self, started: _StartedExchange) -> None:
        runner = self._runner
        if runner is None:
            started.run_blocking()
        else:
            runner.start_exchange(started)

    def _finished(self, started: _StartedExchange) -> _StartedExchange | None:
        """`started` ended (the caller holds the lock): the next one is in flight now, and
        answered to be sent once `started`'s outcome is delivered."""
        if self._in_flight is not started:
            return None  # cancelled by a close meanwhile
        self._in_flight = following = self._waiting.popleft() if self._waiting else None
        return following

    def _finish_started(self) -> None:
        """A waiting exchange (`exchange`) goes after those started before it: they end first."""
        while (started := self._in_flight) is not None:
            if self._runner is not None:
                self._runner.wait_exchange(started)
            else:  # run on another thread that started it
                started.done.wait()

    @property
    def _address(self) -> str:
        host, port = self._target
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def _drop(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.shutdown(socket.SHUT_RDWR)  # wakes a thread waiting on it (close alone does not)
            self._socket.close()
            self._socket = None

    def _connect(self, deadline: float, seconds: float) -> socket.socket:
        try:
            sock = socket.create_connection(self._target, timeout=_remaining(deadline))
        except TimeoutError:
            raise SerialTimeoutError(f"{self._address}: no connection within {seconds} s", target=self._target) from None
        except OSError as error:
            raise SerialConnectionError(f"cannot connect to {self._address}: {error}", target=self._target) from error
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # a command goes out whole, now
        self._socket = sock
        return sock

    def _read(self, sock: socket.socket, framing: Framing, deadline: float, seconds: float) -> bytes:
        """Read until `framing` finds the answer complete (waiting on `sock`)."""
        reading = _Reading(framing)
        try:
            answer = reading.first()
            while answer is None:
                sock.settimeout(_remaining(deadline))
                answer = reading.feed(sock.recv(_RECEIVE_SIZE))
            return answer
        except TimeoutError:
            raise self._timed_out(seconds, reading) from None
        except FramingError as error:
            raise self._unreadable(error) from None
        except OSError as error:  # reset, broken pipe
            raise reading.lost(error) from None

    def _timed_out(self, seconds: float, reading: _Reading) -> SerialTimeoutError:
        return SerialTimeoutError(f"{self._address}: no complete answer within {seconds} s ({len(reading.received)} bytes received)", target=self._target)

    def _unreadable(self, error: FramingError) -> SerialConnectionError:
        return SerialConnectionError(f"{self._address}: the answer cannot be read: {error}", target=self._target)


class _Reading:
    """The bytes of one answer as they come, until its framing finds it complete. An HTTP
    answer's head is parsed once, when it is complete (`head`), not again for every chunk."""

    __slots__ = ("framing", "received", "head")

    def __init__(self, framing: Framing) -> None:
        self.framing = framing
        self.received = b""
        self.head: _HttpHead | None = None

    def first(self) -> bytes | None:
        """The answer when the framing finds it complete before any byte came (asked before the
        first read, as each read is preceded by asking)."""
        end = self._end()
        return None if end is None else self.received[:end]

    def _end(self) -> int | None:
        if type(self.framing) is not HttpFraming:
            return self.framing.answer_end(self.received)
        head = self.head
        if head is None:
            head = self.head = _http_head_only(self.received)
            if head is None:
                return None
        end = head[0] + head[1]
        return end if len(self.received) >= end else None

    def feed(self, chunk: bytes) -> bytes | None:
        """The complete answer once `chunk` completes it, else None. An empty chunk (the peer
        closed) raises `_PeerClosed`; bytes past the answer were asked for by no command: dropped."""
        if not chunk:
            raise _PeerClosed(len(self.received), f"the connection was closed after {len(self.received)} bytes of the answer")
        self.received += chunk
        end = self._end()
        return None if end is None else self.received[:end]

    def lost(self, error: OSError) -> _PeerClosed:
        return _PeerClosed(len(self.received), f"the connection was lost after {len(self.received)} bytes of the answer: {error}")


def _send_all(sock: socket.socket, data: bytes, deadline: float) -> None:
    try:
        if sock.gettimeout() == 0.0:  # non-blocking (looked at for a close): a command mostly fits the send buffer at once
            try:
                data = data[sock.send(data) :]
            except BlockingIOError:
                pass
            if not data:
                return
        sock.settimeout(_remaining(deadline))
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError) as error:  # the peer's close, seen before the command went
        raise _PeerClosed(0, f"the connection was closed before the command went out: {error}", sent=False) from None


class _Ended:
    """`threading.Event`'s set, is_set and wait, for an exchange's end: an Event costs ten times
    as much to make and set (a Condition each), one per exchange, and a waiter is rare (a
    blocking exchange behind a started one, another thread's wait on a virtual clock).

    The lock is held from the start and released by `set`; a waiter takes it and gives it back
    at once, so every waiter passes once it is set. A second `set` (or a waiter's release after
    it) finds the lock free already: that is ignored, as setting an Event twice is."""

    __slots__ = ("_set", "_lock")

    def __init__(self) -> None:
        self._set = False
        self._lock = threading.Lock()
        self._lock.acquire()

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        _release_if_held(self._lock)

    def wait(self, timeout: float | None = None) -> bool:
        if not self._set and self._lock.acquire(timeout=-1 if timeout is None else timeout):
            _release_if_held(self._lock)
        return self._set


def _release_if_held(lock: threading.Lock) -> None:
    try:
        lock.release()
    except RuntimeError:
        pass  # released already: set twice, or by a `set` while a waiter held it


class _StartedExchange:
    """One exchange started by `SerialPort.start_exchange`: sent, then read as its bytes come.
    It ends once (answered, failed, or cancelled by a close: `ended`, under the port's lock),
    and its outcome is delivered then; `done` is set once the port has moved on to the next."""

    __slots__ = ("port", "data", "framing", "seconds", "then", "http", "deadline", "reading", "socket", "ended", "done", "sent", "reader")

    def __init__(self, port: SerialPort, data: bytes, framing: Framing, seconds: float, then: Callable[..., None], *, http: bool = False) -> None:
        self.port = port
        self.data = data
        self.framing = framing
        self.seconds = seconds
        self.then = then
        self.http = http
        self.deadline = math.inf  # set when it is sent (time.monotonic)
        self.reading = _Reading(framing)
        self.socket: socket.socket | None = None  # while its answer is awaited
        self.ended = False
        self.done = _Ended()
        self.sent = False  # begun: a command goes out once, whoever waits for it
        self.reader = threading.Lock()  # held by the thread reading its answer

    def run_blocking(self) -> None:
        """Send, then wait for the answer on this thread (a worker's, or the caller's). The
        port's lock is not held while waiting: a close meanwhile ends the exchange at once."""
        if self.begin() is not None:
            self.read_blocking()

    def begin(self) -> socket.socket | None:
        """Send the command; answers the socket its answer comes on, or None when the exchange
        ended already (it could not be sent: its callback hears why)."""
        port = self.port
        with port._lock:
            if port._in_flight is not self or self.ended or self.sent:
                return None  # closed before its turn, or sent by another thread already
            self.sent = True
            self.deadline = time.monotonic() + self.seconds
            outcome: object = None
            try:
                sock = port._send(self.data, self.deadline, self.seconds)
                answer = self.reading.first()
            except (SerialTimeoutError, SerialConnectionError) as error:
                outcome = error
            except FramingError as error:
                outcome = port._unreadable(error)
            else:
                if answer is None:
                    self.socket = sock
                    return sock
                outcome = self._outcome(answer)
        self.end(outcome)
        return None

    def readable(self) -> None:
        """Read what came on the (non-blocking) socket; the exchange ends once the answer is
        complete (or broken)."""
        sock = self.socket
        if sock is None or not self.reader.acquire(blocking=False):
            return  # ended meanwhile, or another thread reads it (`read_blocking`)
        try:
            try:
                if sock.gettimeout() != 0.0:
                    sock.setblocking(False)
                answer = self.reading.feed(sock.recv(_RECEIVE_SIZE))
            except BlockingIOError:
                return
            except (_PeerClosed, FramingError, OSError) as error:
                self.end(self._failure(error), broken=True)
                return
        finally:
            self.reader.release()
        if answer is not None:
            self.end(self._outcome(answer))

    def expire(self) -> None:
        """No complete answer before the deadline: the socket is closed (a late answer is never read)."""
        self.end(self.port._timed_out(self.seconds, self.reading), broken=True)

    def read_blocking(self) -> None:
        """Wait for the rest of the answer on this thread."""
        sock = self.socket
        if sock is None:
            return
        with self.reader:
            if self.ended:
                return
            try:
                sock.settimeout(_remaining(self.deadline))
                while (answer := self.reading.feed(sock.recv(_RECEIVE_SIZE))) is None:
                    sock.settimeout(_remaining(self.deadline))
            except TimeoutError:
                outcome: object = self.port._timed_out(self.seconds, self.reading)
                broken = True
            except (_PeerClosed, FramingError, OSError) as error:
                outcome, broken = self._failure(error), True
            else:
                outcome, broken = self._outcome(answer), False
        self.end(outcome, broken=broken)

    def cancel(self) -> bool:
        """Its port closes before the answer came (the caller holds the port's lock and
        delivers the error); False when it had ended already."""
        if self.ended:
            return False
        self.ended = True
        self._forget()
        return True

    def end(self, outcome: object, *, broken: bool = False) -> None:
        """Deliver the outcome, then send the port's next started exchange. `broken`: the
        stream is out of step with the commands, so its socket is closed."""
        port = self.port
        with port._lock:
            if self.ended:
                return  # cancelled by a close meanwhile (which told the callback)
            self.ended = True
            sock = self._forget()
            if broken and sock is not None and port._socket is sock:
                port._drop()
            following = port._finished(self)
        self.deliver(outcome)
        if following is not None:
            port._go(following)

    def _forget(self) -> socket.socket | None:
        """No longer wait on the socket (before it may be closed: its descriptor may be reused)."""
        sock, self.socket = self.socket, None
        runner = self.port._runner
        if sock is not None and runner is not None:
            runner.forget_exchange(self, sock)
        return sock

    def deliver(self, outcome: object) -> None:
        self.done.set()
        deliver = self.port._deliver
        if deliver is None:
            self.then(outcome)
        else:
            deliver(self.then, outcome)

    def _outcome(self, answer: bytes) -> object:
        if not self.http:
            return answer
        try:
            return self.port._http_answer(answer, self.reading.head)
        except FramingError as error:
            return self.port._unreadable(error)

    def _failure(self, error: BaseException) -> Exception:
        port = self.port
        if isinstance(error, FramingError):
            return port._unreadable(error)
        closed = error if isinstance(error, _PeerClosed) else self.reading.lost(error)  # type: ignore[arg-type]
        return SerialConnectionError(f"{port._address}: {closed}", target=port._target)


def _remaining(deadline: float) -> float:
    """Seconds left before `deadline` (time.monotonic); `TimeoutError` when none are."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError
    return remaining


def _closed_by_peer(sock: socket.socket) -> bool:
    """Whether the peer closed the idle connection; bytes it sent unasked are dropped."""
    try:
        if sock.gettimeout() != 0.0:  # a socket a started exchange read is non-blocking already
            sock.setblocking(False)
        while sock.recv(_RECEIVE_SIZE):
            pass
        return True  # an empty read: the peer's end is closed
    except BlockingIOError:
        return False
    except OSError:
        return True
