"""An element's serial (TCP stream) connection: framings, timeouts, reconnects and a moving target.

Every device is a loopback server the test starts, each accepted connection served by a script
in a thread. Pieces of an answer are sent one at a time, each only once the port has looked at
the bytes before it, so "an answer split across packets" is what the port really receives. No
test sleeps; the timeout tests wait 0.2 s on a socket.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dmemu.dms import DataMinerSystem
from dmemu.protocol import (
    Connection,
    ConnectionSettingError,
    DefinitionError,
    HttpFraming,
    LengthFraming,
    Parameter,
    Protocol,
    QAction,
    SerialConnection,
    SerialConnectionError,
    SerialPort,
    SerialTimeoutError,
    String,
    Timer,
    TrailerFraming,
    VirtualClock,
)
from dmemu.protocol.serial import MAX_HTTP_BODY

SHORT_TIMEOUT = 0.2
HANG_LIMIT = 5.0  # a script waiting for the test gives up after this if the test never says
CRLF = TrailerFraming(b"\r\n")

Script = Callable[[socket.socket, int], None]  # serves one accepted connection (0-based index)


class Device:
    """A loopback TCP server; connection n is served by scripts[n] (the last one serves the rest)."""

    def __init__(self, *scripts: Script) -> None:
        self.scripts = scripts
        self.commands: list[tuple[int, bytes]] = []  # (connection index, command) as received
        self.closed_by_client: list[int] = []  # connections whose client end closed
        self._changed = threading.Condition()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._connections: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    @property
    def port(self) -> int:
        return self._listener.getsockname()[1]

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    def connection(self, **settings: Any) -> Connection:
        return Connection(host="127.0.0.1", port=self.port, **settings)

    def read_command(self, conn: socket.socket, index: int, trailer: bytes = b"\r\n") -> bytes | None:
        """The next command on `conn` (up to `trailer`), or None when the client closed it."""
        received = b""
        while not received.endswith(trailer):
            try:
                chunk = conn.recv(1)
            except OSError:
                chunk = b""
            if not chunk:
                with self._changed:
                    self.closed_by_client.append(index)
                    self._changed.notify_all()
                return None
            received += chunk
        self.commands.append((index, received))
        return received

    def saw_client_close(self, index: int) -> bool:
        """Whether the client closed connection `index` (waiting for the news, within limits)."""
        with self._changed:
            return self._changed.wait_for(lambda: index in self.closed_by_client, HANG_LIMIT)

    def wait_closed_by_client(self, conn: socket.socket, index: int) -> None:
        conn.settimeout(HANG_LIMIT)
        while self.read_command(conn, index) is not None:
            pass

    def close(self) -> None:
        self._listener.close()
        for conn in self._connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)  # wakes a script waiting on it, as close does not
            conn.close()
        for thread in self._threads:
            thread.join(HANG_LIMIT)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # closed at the end of the test
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.settimeout(HANG_LIMIT)
            index = len(self._connections)
            self._connections.append(conn)
            script = self.scripts[min(index, len(self.scripts) - 1)]
            thread = threading.Thread(target=self._serve, args=(script, conn, index), daemon=True)
            thread.start()
            self._threads.append(thread)  # once started: a close meanwhile joins only started threads

    @staticmethod
    def _serve(script: Script, conn: socket.socket, index: int) -> None:
        try:
            script(conn, index)
        except OSError:
            pass  # the client went away; what the test checks is what the port did
        finally:
            conn.close()


@pytest.fixture
def devices() -> Iterator[Callable[..., Device]]:
    started: list[Device] = []

    def start(*scripts: Script) -> Device:
        started.append(Device(*scripts))
        return started[-1]

    yield start
    for device in started:
        device.close()


@pytest.fixture(autouse=True)
def no_sleeping(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_sleep(seconds: float) -> None:
        raise AssertionError(f"time.sleep({seconds}) called: tests must not sleep")

    monkeypatch.setattr(time, "sleep", no_sleep)


def echo(device_of: Callable[[], Device]) -> Script:
    """Answers every command with ``ok <command>``."""

    def script(conn: socket.socket, index: int) -> None:
        while (command := device_of().read_command(conn, index)) is not None:
            conn.sendall(b"ok " + command)

    return script


def echo_device(devices: Callable[..., Device]) -> Device:
    holder: list[Device] = []
    holder.append(devices(echo(lambda: holder[0])))
    return holder[0]


def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        return listener.getsockname()[1]


# -- framings --------------------------------------------------------------------------------


class SteppingFraming:
    """Wraps a framing; each look at the bytes received lets the device send its next piece."""

    def __init__(self, framing: Any) -> None:
        self.framing = framing
        self.looked_at: list[int] = []
        self.turns = threading.Semaphore(0)

    def answer_end(self, received: bytes) -> int | None:
        self.looked_at.append(len(received))
        self.turns.release()
        return self.framing.answer_end(received)


HTTP_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: 12\r\n\r\n<a>\xc3\xa9t\xc3\xa9</a>"


@pytest.mark.parametrize(
    ("framing", "pieces"),
    [
        (CRLF, [b"VAL", b"UE 4", b"2\r", b"\n"]),  # the trailer itself split in two
        (LengthFraming(6), [b"\x01", b"\x02\x03", b"\x04\x05", b"\x06"]),
        (HttpFraming(), [HTTP_ANSWER[:7], HTTP_ANSWER[7:40], HTTP_ANSWER[40:75], HTTP_ANSWER[75:80], HTTP_ANSWER[80:]]),
    ],
    ids=["trailer", "length", "http"],
)
def test_an_answer_split_across_small_packets_is_read_whole(
    devices: Callable[..., Device], framing: Any, pieces: list[bytes]
) -> None:
    stepping = SteppingFraming(framing)

    def script(conn: socket.socket, index: int) -> None:
        device.read_command(conn, index)
        for piece in pieces:
            assert stepping.turns.acquire(timeout=HANG_LIMIT)  # the port has read all before it
            conn.sendall(piece)
        device.wait_closed_by_client(conn, index)

    device = devices(script)
    port = SerialPort(device.connection(timeout=HANG_LIMIT))
    assert port.exchange(b"GET VALUE\r\n", stepping) == b"".join(pieces)
    sizes = [sum(map(len, pieces[:n])) for n in range(len(pieces) + 1)]
    assert stepping.looked_at == sizes  # each piece arrived on its own
    port.close()


def test_the_port_answers_with_its_own_framing_unless_the_exchange_names_one(devices: Callable[..., Device]) -> None:
    device = echo_device(devices)
    port = SerialPort(device.connection(timeout=HANG_LIMIT), framing=CRLF)
    assert port.exchange(b"one\r\n") == b"ok one\r\n"
    assert port.exchange(b"two\r\n", LengthFraming(4)) == b"ok t"
    assert port._socket is not None and port._socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)  # no Nagle wait
    port.close()
    with pytest.raises(TypeError, match="no framing"):
        SerialPort(device.connection()).exchange(b"x\r\n")


def test_http_exchange_sends_host_and_length_and_parses_the_answer(devices: Callable[..., Device]) -> None:
    requests_seen: list[bytes] = []

    def script(conn: socket.socket, index: int) -> None:
        while (head := device.read_command(conn, index, b"\r\n\r\n")) is not None:
            length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")).split(b":")[1])
            body = b""
            while len(body) < length:
                body += conn.recv(length - len(body))
            requests_seen.append(head + body)
            closing = b"Connection: close\r\n" if body == b"last" else b""
            conn.sendall(HTTP_ANSWER.replace(b"\r\n\r\n", b"\r\n" + closing + b"\r\n", 1))

    device = devices(script)
    port = SerialPort(device.connection(timeout=HANG_LIMIT))
    answer = port.http_exchange("POST", "/osb/TicketingService", b"<x/>", {"SOAPAction": '"Search"'})
    assert (answer.status, answer.reason, answer.text) == (200, "OK", "<a>été</a>")
    assert answer.headers["content-type"] == "text/xml; charset=utf-8"
    assert requests_seen[0] == (
        b"POST /osb/TicketingService HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nSOAPAction: \"Search\"\r\n"
        b"Content-Length: 4\r\n\r\n<x/>" % device.port
    )
    port.http_exchange("POST", "/", b"last")
    assert not port.connected  # the service said it closes the connection
    assert port.http_exchange("POST", "/", b"again").status == 200
    assert device.connection_count == 2


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nno length", "has no Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n", "chunked"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP/1.1 status line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (MAX_HTTP_BODY + 1), f"Content-Length {MAX_HTTP_BODY + 1} exceeds MAX_HTTP_BODY"),
    ],
)
def test_an_answer_that_is_no_http_is_refused_naming_the_service(devices: Callable[..., Device], answer: bytes, why: str) -> None:
    def script(conn: socket.socket, index: int) -> None:
        device.read_command(conn, index, b"\r\n\r\n")
        conn.sendall(answer)
        device.wait_closed_by_client(conn, index)

    device = devices(script)
    port = SerialPort(device.connection(timeout=HANG_LIMIT))
    with pytest.raises(SerialConnectionError, match=f"127.0.0.1:{device.port}: the answer cannot be read: .*{why}"):
        port.http_exchange("GET", "/")
    assert not port.connected


def test_framings_refuse_settings_that_frame_nothing() -> None:
    with pytest.raises(ValueError, match="trailer"):
        TrailerFraming(b"")
    with pytest.raises(ValueError, match="size"):
        LengthFraming(0)


# -- timeouts and failures -------------------------------------------------------------------


def late_answering_device(devices: Callable[..., Device]) -> tuple[Device, threading.Event, threading.Event]:
    """A device whose first connection answers only once `timed_out` is set (then `late_sent`
    is set), and whose next connection answers every command at once."""
    timed_out = threading.Event()
    late_sent = threading.Event()

    def silent_then_late(conn: socket.socket, index: int) -> None:
        device.read_command(conn, index)
        assert timed_out.wait(HANG_LIMIT)
        try:
            conn.sendall(b"late answer\r\n")
        finally:
            late_sent.set()
        device.wait_closed_by_client(conn, index)

    def prompt(conn: socket.socket, index: int) -> None:
        while device.read_command(conn, index) is not None:
            conn.sendall(b"fresh answer\r\n")

    device = devices(silent_then_late, prompt)
    return device, timed_out, late_sent


def test_a_device_that_never_answers_times_out_and_its_late_answer_is_never_read(devices: Callable[..., Device]) -> None:
    device, timed_out, late_sent = late_answering_device(devices)
    port = SerialPort(device.connection(timeout=HANG_LIMIT), framing=CRLF)
    with pytest.raises(SerialTimeoutError, match=f"127.0.0.1:{device.port}: no complete answer within 0.2 s") as caught:
        port.exchange(b"first\r\n", timeout=SHORT_TIMEOUT)
    assert caught.value.target == ("127.0.0.1", device.port)
    assert not port.connected  # closed, so nothing late can be read on it
    timed_out.set()
    assert late_sent.wait(HANG_LIMIT)
    assert port.exchange(b"second\r\n") == b"fresh answer\r\n"
    assert device.commands == [(0, b"first\r\n"), (1, b"second\r\n")]


def test_the_connections_timeout_applies_when_the_exchange_gives_none(devices: Callable[..., Device]) -> None:
    def silent(conn: socket.socket, index: int) -> None:
        device.wait_closed_by_client(conn, index)

    device = devices(silent)
    port = SerialPort(device.connection(timeout=SHORT_TIMEOUT), framing=CRLF)
    with pytest.raises(SerialTimeoutError, match="within 0.2 s"):
        port.exchange(b"anyone?\r\n")
    with pytest.raises(ValueError, match="timeout=0"):
        port.exchange(b"x\r\n", timeout=0)


def test_a_refused_connection_names_host_and_port() -> None:
    port_number = closed_port()
    port = SerialPort(Connection(port=port_number, timeout=HANG_LIMIT), framing=CRLF)
    with pytest.raises(SerialConnectionError, match=f"cannot connect to 127.0.0.1:{port_number}") as caught:
        port.exchange(b"hello\r\n")
    assert isinstance(caught.value, ConnectionError)


def test_a_connection_the_peer_closed_while_idle_is_reopened(devices: Callable[..., Device]) -> None:
    closed = threading.Event()

    def answer_once(conn: socket.socket, index: int) -> None:
        device.read_command(conn, index)
        conn.sendall(b"ok\r\n")
        conn.close()  # an idle timeout on the device's side
        closed.set()

    device = devices(answer_once)
    port = SerialPort(device.connection(timeout=HANG_LIMIT), framing=CRLF)
    assert port.exchange(b"one\r\n") == b"ok\r\n"
    assert closed.wait(HANG_LIMIT)
    assert port.exchange(b"two\r\n") == b"ok\r\n"
    assert device.commands == [(0, b"one\r\n"), (1, b"two\r\n")]


def test_a_command_whose_connection_closes_after_it_went_out_is_not_sent_again(devices: Callable[..., Device]) -> None:
    # The peer may have acted on the command before closing: a device command need not be
    # idempotent, so the exchange fails instead of sending it twice.
    def answer_one_drop_the_next(conn: socket.socket, index: int) -> None:
        device.read_command(conn, index)
        conn.sendall(b"ok\r\n")
        device.read_command(conn, index)  # closes as the command arrives: never answered

    device = devices(answer_one_drop_the_next)
    port = SerialPort(device.connection(timeout=HANG_LIMIT), framing=CRLF)
    assert port.exchange(b"one\r\n") == b"ok\r\n"
    with pytest.raises(SerialConnectionError, match=f"127.0.0.1:{device.port}: the connection was closed after 0 bytes"):
        port.exchange(b"two\r\n")
    assert device.commands == [(0, b"one\r\n"), (0, b"two\r\n")]
    assert device.connection_count == 1


def test_a_new_connection_closed_before_any_answer_is_not_tried_again(devices: Callable[..., Device]) -> None:
    def drop(conn: socket.socket, index: int) -> None:
        device.read_command(conn, index)

    device = devices(drop)
    port = SerialPort(device.connection(timeout=HANG_LIMIT), framing=CRLF)
    with pytest.raises(SerialConnectionError, match=f"127.0.0.1:{device.port}: the connection was closed after 0 bytes"):
        port.exchange(b"one\r\n")
    assert device.commands == [(0, b"one\r\n")]


def test_a_peer_closing_mid_answer_fails_the_exchange_without_sending_it_again(devices: Callable[..., Device]) -> None:
    def half_answer(conn: socket.socket, index: int) -> None:
        device.read_command(conn, index)
        conn.sendall(b"ok\r\n")
        device.read_command(conn, index)
        conn.sendall(b"VALUE 4")  # and closes

    device = devices(half_answer)
    port = SerialPort(device.connection(timeout=HANG_LIMIT), framing=CRLF)
    assert port.exchange(b"one\r\n") == b"ok\r\n"
    with pytest.raises(SerialConnectionError, match=f"127.0.0.1:{device.port}: the connection was closed after 7 bytes"):
        port.exchange(b"two\r\n")
    assert not port.connected
    assert device.connection_count == 1


def test_bytes_sent_unasked_between_exchanges_are_not_taken_for_the_next_answer(devices: Callable[..., Device]) -> None:
    chattered = threading.Event()

    def chatty(conn: socket.socket, index: int) -> None:
        device.read_command(conn, index)
        conn.sendall(b"ok\r\nstray\r\n")  # one answer too many ...
        conn.sendall(b"noise\r\n")  # ... and a notice nobody asked for
        chattered.set()
        while device.read_command(conn, index) is not None:
            conn.sendall(b"answer\r\n")

    device = devices(chatty)
    port = SerialPort(device.connection(timeout=HANG_LIMIT), framing=CRLF)
    assert port.exchange(b"one\r\n") == b"ok\r\n"
    assert chattered.wait(HANG_LIMIT)
    assert port.exchange(b"two\r\n") == b"answer\r\n"
    assert device.connection_count == 1


def test_exchanges_from_several_threads_take_turns(devices: Callable[..., Device]) -> None:
    device = echo_device(devices)
    port = SerialPort(device.connection(timeout=HANG_LIMIT), framing=CRLF)
    wrong: list[tuple[bytes, bytes]] = []

    def talk(name: str) -> None:
        for n in range(100):
            command = f"{name} {n}\r\n".encode()
            answer = port.exchange(command)
            if answer != b"ok " + command:
                wrong.append((command, answer))

    threads = [threading.Thread(target=talk, args=(name,)) for name in ("a", "b", "c")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(HANG_LIMIT * 4)
    assert wrong == []
    assert len(device.commands) == 300 and device.connection_count == 1


# -- a target that changes at run time -------------------------------------------------------


def test_set_target_moves_the_next_exchange_to_another_service(devices: Callable[..., Device]) -> None:
    first, second = echo_device(devices), echo_device(devices)
    port = SerialPort(first.connection(timeout=HANG_LIMIT), framing=CRLF)
    assert port.target == ("127.0.0.1", first.port)
    assert port.exchange(b"to first\r\n") == b"ok to first\r\n"
    port.set_target("127.0.0.1", first.port)  # the same target keeps its connection
    assert port.connected
    port.set_target("127.0.0.1", second.port)
    assert port.target == ("127.0.0.1", second.port) and not port.connected
    assert port.exchange(b"to second\r\n") == b"ok to second\r\n"
    assert first.commands == [(0, b"to first\r\n")] and second.commands == [(0, b"to second\r\n")]
    with pytest.raises(ConnectionSettingError, match="port=70000") as caught:
        port.set_target("127.0.0.1", 70000)
    assert caught.value.field == "port" and port.target == ("127.0.0.1", second.port)
    with pytest.raises(ConnectionSettingError, match="host=''"):
        port.set_target("", 8650)
    port.close()


def test_the_port_defaults_to_the_protocols_port_when_the_connection_names_none() -> None:
    assert SerialPort(Connection(host="service")).target == ("service", 8650)
    assert SerialPort(Connection(host="service"), default_port=9000).target == ("service", 9000)


# -- an element with a serial connection -----------------------------------------------------


def ask(protocol: Any) -> None:
    protocol.set_parameter("Answer", protocol.serial.exchange(protocol.get_parameter("Command").encode()).decode().strip())


def move(protocol: Any) -> None:
    host, _, port = protocol.get_parameter("Service Address").rpartition(":")
    protocol.serial.set_target(host, int(port))


def poll(protocol: Any) -> None:
    protocol.set_parameter("Polled", protocol.serial.exchange(b"status\r\n").decode().strip())


class SerialProbe(Protocol):
    name = "Serial Probe"
    connection = SerialConnection(framing=CRLF)
    parameters = (
        Parameter(1, "Command", type=String(), write=True),
        Parameter(2, "Answer", type=String()),
        Parameter(3, "Service Address", type=String(), write=True),
        Parameter(4, "Polled", type=String()),
    )
    timers = (Timer(1, seconds=60, qactions=(12,), at_startup=False),)
    qactions = (QAction(10, ask, triggers=(1,)), QAction(11, move, triggers=(3,)), QAction(12, poll))


def test_an_element_talks_over_its_serial_connection_from_qactions_and_its_timer(
    dms: DataMinerSystem, dmemu_clock: VirtualClock, devices: Callable[..., Device]
) -> None:
    first, second = echo_device(devices), echo_device(devices)
    element = dms.create_element(SerialProbe, "probe", connection=first.connection(timeout=HANG_LIMIT))
    element.set("Command", "hello\r\n")
    assert element.get("Answer") == "ok hello"

    element.set("Service Address", f"127.0.0.1:{second.port}")  # the dynamic IP of the help pages
    dmemu_clock.advance(60)
    assert element.get("Polled") == "ok status"
    assert second.commands == [(0, b"status\r\n")]
    assert first.saw_client_close(0)  # moving closed the connection to the first service


def test_stopping_the_element_closes_its_socket(dms: DataMinerSystem, devices: Callable[..., Device]) -> None:
    device = echo_device(devices)
    element = dms.create_element(SerialProbe, "probe", connection=device.connection(timeout=HANG_LIMIT))
    element.set("Command", "hello\r\n")
    port = element.serial
    assert port.connected
    element.stop()
    assert not port.connected and device.saw_client_close(0)
    element.start()
    assert element.serial is not port and element.serial.target == ("127.0.0.1", device.port)


def test_a_protocol_connection_is_http_or_serial(caplog: pytest.LogCaptureFixture, dms: DataMinerSystem) -> None:
    with pytest.raises(DefinitionError, match="must be an HttpConnection or a SerialConnection"):
        type("Odd", (Protocol,), {"name": "Odd", "connection": "tcp://x"})
    with pytest.raises(DefinitionError, match="is no framing"):
        type("Odd", (Protocol,), {"name": "Odd", "connection": SerialConnection(framing=b"\r\n")})  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="dmemu.dms"):
        dms.create_element(SerialProbe, "nowhere")
    assert "so it talks to 127.0.0.1:8650;" in caplog.records[0].getMessage()
