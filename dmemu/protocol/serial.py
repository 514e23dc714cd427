"""An element's serial connection over IP: a TCP stream carrying commands and framed answers.

As DataMiner's serial connections do, a command is sent and one answer is read back, its end
found by a framing (a trailer, a fixed length, or an HTTP/1.1 response). The socket opens on
first use and stays open between exchanges; one exchange runs at a time. A connection the peer
closed while it was idle is seen before the command goes and opened again; a command whose
connection closes once it went out is never resent (a device command may not be idempotent):
that exchange fails with `SerialConnectionError`. A timeout closes the socket, so a late answer is never read as the next command's. The target can
change at run time (DataMiner's "dynamic ip" parameter option).
"""

from __future__ import annotations

import math
import re
import socket
import threading
import time
import typing
from collections.abc import Mapping

import attrs
from requests.structures import CaseInsensitiveDict

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
        head = _http_head(answer)
        if head is None:
            raise FramingError("the HTTP answer is incomplete")
        head_size, body_size, status, reason, headers = head
        return HttpAnswer(status, reason, headers, answer[head_size : head_size + body_size])


def _http_head(received: bytes) -> tuple[int, int, int, str, CaseInsensitiveDict[str]] | None:
    """(head size, body size, status, reason, headers), or None until the head is complete."""
    end = received.find(b"\r\n\r\n")
    if end < 0:
        if len(received) > MAX_HTTP_HEAD:
            raise FramingError(f"no end of the HTTP headers in the first {MAX_HTTP_HEAD} bytes")
        return None
    status_line, *lines = received[:end].decode("latin-1").split("\r\n")
    match = _STATUS_LINE.fullmatch(status_line)
    if match is None:
        raise FramingError(f"not an HTTP/1.1 status line: {status_line[:80]!r}")
    headers: CaseInsensitiveDict[str] = CaseInsensitiveDict()
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise FramingError(f"not an HTTP header line: {line[:80]!r}")
        headers[name.strip()] = value.strip()
    status = int(match.group(1))
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        raise FramingError("a chunked HTTP answer is not supported; the answer needs a Content-Length")
    length = headers.get("Content-Length")
    if length is None:
        if status < 200 or status in (204, 304):
            return end + 4, 0, status, match.group(2) or "", headers  # these never have a body
        raise FramingError(f"the HTTP {status} answer has no Content-Length")
    if not length.isdigit():
        raise FramingError(f"Content-Length {length!r} is not a number of bytes")
    body_size = int(length)
    if body_size > MAX_HTTP_BODY:
        raise FramingError(f"Content-Length {body_size} exceeds MAX_HTTP_BODY ({MAX_HTTP_BODY} bytes)")
    if len(received) < end + 4 + body_size:
        return None
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

    def __init__(self, connection: Connection, *, default_port: int = DEFAULT_SERIAL_PORT, framing: Framing | None = None) -> None:
        self.framing = framing  # the default for exchanges that name none
        self.timeout = connection.timeout
        self._connection = connection
        self._target = (connection.host, connection.port if connection.port is not None else default_port)
        self._socket: socket.socket | None = None
        self._lock = threading.RLock()  # one exchange at a time; http_exchange holds it around one

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
        """Close the socket, if open; the next exchange connects again."""
        with self._lock:
            self._drop()

    def exchange(self, data: bytes, framing: Framing | None = None, *, timeout: float | None = None) -> bytes:
        """Send `data` and answer the response `framing` (else the port's framing) finds complete.

        Raises `SerialTimeoutError` when no complete answer came within the timeout and
        `SerialConnectionError` when the connection is refused, reset or closed mid-answer."""
        framing = framing or self.framing
        if framing is None:
            raise TypeError("no framing for this exchange: pass framing=, or declare one on the protocol's SerialConnection")
        seconds = self.timeout if timeout is None else timeout
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 < seconds < math.inf:
            raise ValueError(f"timeout={seconds!r}: a timeout is a positive, finite number of seconds")
        with self._lock:
            deadline = time.monotonic() + seconds
            if self._socket is not None and _closed_by_peer(self._socket):
                self._drop()
            try:
                while True:
                    fresh = self._socket is None
                    sock = self._socket or self._connect(deadline, seconds)
                    try:
                        return self._send_and_read(sock, data, framing, deadline, seconds)
                    except _PeerClosed as closed:
                        self._drop()
                        # Sent again only when the command could not go out on a connection left
                        # open since the last exchange: once sent, the peer may have acted on it.
                        if fresh or closed.sent:
                            raise SerialConnectionError(f"{self._address}: {closed}", target=self._target) from None
            except BaseException:
                self._drop()  # the stream is out of step with the commands: start afresh
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
        with self._lock:  # the Host header names the target this request goes to
            fields: CaseInsensitiveDict[str] = CaseInsensitiveDict({"Host": self._address})
            fields.update(headers or {})
            fields["Content-Length"] = str(len(body))
            head = "".join(f"{name}: {value}\r\n" for name, value in fields.items())
            request = f"{method} {path} HTTP/1.1\r\n{head}\r\n".encode("latin-1") + body
            answer = HttpFraming.parse(self.exchange(request, HttpFraming(), timeout=timeout))
            if answer.headers.get("Connection", "").lower() == "close":
                self._drop()
        return answer

    # -- internals ------------------------------------------------------------------------

    @property
    def _address(self) -> str:
        host, port = self._target
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def _drop(self) -> None:
        if self._socket is not None:
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

    def _send_and_read(self, sock: socket.socket, data: bytes, framing: Framing, deadline: float, seconds: float) -> bytes:
        received = b""
        try:
            sock.settimeout(_remaining(deadline))
            try:
                sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError) as error:  # the peer's close, seen before the command went
                raise _PeerClosed(0, f"the connection was closed before the command went out: {error}", sent=False) from None
            while (end := framing.answer_end(received)) is None:
                sock.settimeout(_remaining(deadline))
                chunk = sock.recv(_RECEIVE_SIZE)
                if not chunk:
                    raise _PeerClosed(len(received), f"the connection was closed after {len(received)} bytes of the answer")
                received += chunk
        except TimeoutError:
            raise SerialTimeoutError(
                f"{self._address}: no complete answer within {seconds} s ({len(received)} bytes received)", target=self._target
            ) from None
        except FramingError as error:
            raise SerialConnectionError(f"{self._address}: the answer cannot be read: {error}", target=self._target) from None
        except OSError as error:  # reset, broken pipe
            raise _PeerClosed(len(received), f"the connection was lost after {len(received)} bytes of the answer: {error}") from None
        # Bytes past the answer were asked for by no command; the next exchange drops them.
        return received[:end]


def _remaining(deadline: float) -> float:
    """Seconds left before `deadline` (time.monotonic); `TimeoutError` when none are."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError
    return remaining


def _closed_by_peer(sock: socket.socket) -> bool:
    """Whether the peer closed the idle connection; bytes it sent unasked are dropped."""
    try:
        sock.setblocking(False)
        while sock.recv(_RECEIVE_SIZE):
            pass
        return True  # an empty read: the peer's end is closed
    except BlockingIOError:
        return False
    except OSError:
        return True
