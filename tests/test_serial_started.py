"""Exchanges that answer later (`SerialPort.start_exchange`, `start_http_exchange`), end to end.

The devices are test_serial's loopback servers. On a virtual clock nothing sleeps: the clock
waits on the sockets of the exchanges in flight before a tick ends (`settle`). The real-clock
test waits on threading.Events, and the timeout tests wait 0.2 s on a socket.
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from test_serial import (
    CRLF,
    HANG_LIMIT,
    SHORT_TIMEOUT,
    Device,
    closed_port,
    devices,
    echo_device,
    late_answering_device,
    no_sleeping,
)

from dmemu.dms import DataMinerSystem
from dmemu.protocol import (
    Connection,
    HttpAnswer,
    LogType,
    Parameter,
    Protocol,
    QAction,
    RealClock,
    SerialConnection,
    SerialConnectionError,
    SerialPort,
    SerialTimeoutError,
    String,
    Timer,
    VirtualClock,
)
from dmemu.protocol.queue import WorkQueue

__all__ = ["devices", "no_sleeping"]  # test_serial's fixtures, used here too


class Heard(NamedTuple):
    """One call of an answer handler."""

    element: str
    outcome: object
    time: float  # the DMS clock when it ran
    thread: int


HEARD: list[Heard] = []


@pytest.fixture(autouse=True)
def nothing_heard_yet() -> Iterator[None]:
    HEARD.clear()
    yield
    HEARD.clear()


def note_answer(protocol: Any, outcome: object) -> None:
    """The answer handler: notes the call and shows the answer (or the failure) in parameters."""
    HEARD.append(Heard(protocol.element_name, outcome, protocol.now(), threading.get_ident()))
    if isinstance(outcome, Exception):
        protocol.set_parameter("Failure", f"{type(outcome).__name__}: {outcome}")
    else:
        text = outcome.text if isinstance(outcome, HttpAnswer) else outcome.decode()
        protocol.set_parameter("Answer", text.strip())


def explode(protocol: Any, outcome: object) -> None:
    raise RuntimeError(f"cannot handle {outcome!r}")


def ask(protocol: Any) -> None:
    protocol.serial.start_exchange(protocol.trigger_value.encode(), note_answer)


def poll(protocol: Any) -> None:
    protocol.serial.start_exchange(b"status\r\n", note_answer)


def burst(protocol: Any) -> None:
    for command in (b"one\r\n", b"two\r\n", b"three\r\n"):
        protocol.serial.start_exchange(command, note_answer)
    protocol.set_parameter("Blocking", protocol.serial.exchange(b"blocking\r\n").decode().strip())


def ask_and_explode(protocol: Any) -> None:
    protocol.serial.start_exchange(b"boom\r\n", explode)


def get_page(protocol: Any) -> None:
    protocol.serial.start_http_exchange("GET", protocol.trigger_value, then=note_answer)


class StartedProbe(Protocol):
    name = "Started Probe"
    connection = SerialConnection(framing=CRLF)
    parameters = (
        Parameter(1, "Command", type=String(), write=True),
        Parameter(2, "Answer", type=String(), save=True),
        Parameter(3, "Failure", type=String()),
        Parameter(4, "Burst", type=String(), write=True),
        Parameter(5, "Blocking", type=String()),
        Parameter(6, "Explode", type=String(), write=True),
        Parameter(7, "Page", type=String(), write=True),
    )
    timers = (Timer(1, seconds=60, qactions=(12,), at_startup=False),)
    qactions = (
        QAction(10, ask, triggers=(1,)),
        QAction(12, poll),
        QAction(13, burst, triggers=(4,)),
        QAction(14, ask_and_explode, triggers=(6,)),
        QAction(15, get_page, triggers=(7,)),
    )


def probe(dms: DataMinerSystem, device: Device, name: str = "probe", timeout: float = HANG_LIMIT) -> Any:
    return dms.create_element(StartedProbe, name, connection=device.connection(timeout=timeout))


# -- a virtual clock ---------------------------------------------------------------------------


def held_device(devices: Callable[..., Device]) -> tuple[Device, threading.Event, threading.Event]:
    """A device that answers each command once `released` is set (`asked` is set when one came)."""
    asked, released = threading.Event(), threading.Event()

    def answer_when_released(conn: socket.socket, index: int) -> None:
        while (command := device.read_command(conn, index)) is not None:
            asked.set()
            released.wait(HANG_LIMIT * 2)
            conn.sendall(b"ok " + command)

    device = devices(answer_when_released)
    return device, asked, released


def test_exchanges_of_two_elements_are_in_flight_at_once_and_answered_within_one_advance(
    dms: DataMinerSystem, dmemu_clock: VirtualClock, devices: Callable[..., Device]
) -> None:
    # The device answers only once both commands came: one element waiting for its answer
    # before the other's command goes out would never see it.
    both_asked = threading.Barrier(2, timeout=HANG_LIMIT)

    def answer_once_both_asked(conn: socket.socket, index: int) -> None:
        while (command := device.read_command(conn, index)) is not None:
            try:
                both_asked.wait()
            except threading.BrokenBarrierError:
                return  # closes: the exchange fails
            conn.sendall(b"ok " + command)

    device = devices(answer_once_both_asked)
    first, second = probe(dms, device, "first"), probe(dms, device, "second")
    started = dmemu_clock.now()
    assert dmemu_clock.advance(60) == 2  # both timers, one tick
    assert (first.get("Answer"), second.get("Answer")) == ("ok status", "ok status")
    assert sorted((heard.element, heard.time) for heard in HEARD) == [("first", started + 60), ("second", started + 60)]
    assert device.connection_count == 2


def test_virtual_time_stands_still_while_an_exchange_is_in_flight_and_the_batch_save_comes_after_its_answer(
    dms: DataMinerSystem, dmemu_clock: VirtualClock, devices: Callable[..., Device], monkeypatch: pytest.MonkeyPatch
) -> None:
    element = probe(dms, echo_device(devices))
    saves: list[tuple[float | None, Any]] = []
    real_save = element._store.save

    def noting_save(parameters: Any, tables: Any, *, saved_at: float | None = None) -> None:
        saves.append((saved_at, dict(parameters).get(2)))
        real_save(parameters, tables, saved_at=saved_at)

    monkeypatch.setattr(element._store, "save", noting_save)
    started = dmemu_clock.now()
    dmemu_clock.advance(90)  # the poll at 60 starts the exchange; time goes on to 90 after its answer
    assert [heard.time for heard in HEARD] == [started + 60]
    assert saves[0] == (started + 60, "ok status")  # the tick's batch save has the answer


def test_a_users_set_returns_once_the_exchange_its_qaction_started_was_answered(
    dms: DataMinerSystem, dmemu_clock: VirtualClock, devices: Callable[..., Device]
) -> None:
    element = probe(dms, echo_device(devices))
    element.set("Command", "hello\r\n")
    assert element.get("Answer") == "ok hello"
    assert [(heard.outcome, heard.time) for heard in HEARD] == [(b"ok hello\r\n", dmemu_clock.now())]


def test_exchanges_started_back_to_back_go_in_order_and_a_blocking_exchange_goes_after_them(
    dms: DataMinerSystem, devices: Callable[..., Device]
) -> None:
    device = echo_device(devices)
    element = probe(dms, device)
    element.set("Burst", "go")
    assert [command for _, command in device.commands] == [b"one\r\n", b"two\r\n", b"three\r\n", b"blocking\r\n"]
    assert [heard.outcome for heard in HEARD] == [b"ok one\r\n", b"ok two\r\n", b"ok three\r\n"]
    assert element.get("Blocking") == "ok blocking"
    assert device.connection_count == 1


def test_an_http_exchange_started_by_an_element_answers_an_http_answer(
    dms: DataMinerSystem, devices: Callable[..., Device]
) -> None:
    def script(conn: socket.socket, index: int) -> None:
        while (head := device.read_command(conn, index, b"\r\n\r\n")) is not None:
            closing = b"Connection: close\r\n" if b"/last " in head else b""
            conn.sendall(b"HTTP/1.1 200 OK\r\n" + closing + b"Content-Length: 5\r\n\r\nhello")

    device = devices(script)
    element = probe(dms, device)
    element.set("Page", "/first")
    assert element.get("Answer") == "hello"
    (heard,) = HEARD
    assert isinstance(heard.outcome, HttpAnswer) and heard.outcome.status == 200
    assert device.commands[0][1].startswith(b"GET /first HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % device.port)
    assert element.serial.connected
    element.set("Page", "/last")
    assert not element.serial.connected  # the service said it closes the connection


def test_a_started_exchange_times_out_naming_the_device_and_its_late_answer_is_never_read(
    dms: DataMinerSystem, devices: Callable[..., Device]
) -> None:
    device, timed_out, late_sent = late_answering_device(devices)
    element = probe(dms, device, timeout=SHORT_TIMEOUT)
    element.set("Command", "first\r\n")
    (heard,) = HEARD
    assert isinstance(heard.outcome, SerialTimeoutError) and heard.outcome.target == ("127.0.0.1", device.port)
    assert element.get("Failure") == f"SerialTimeoutError: 127.0.0.1:{device.port}: no complete answer within 0.2 s (0 bytes received)"
    assert not element.serial.connected  # closed, so nothing late can be read on it
    timed_out.set()
    assert late_sent.wait(HANG_LIMIT)
    element.set("Command", "second\r\n")
    assert element.get("Answer") == "fresh answer"
    assert device.commands == [(0, b"first\r\n"), (1, b"second\r\n")]


def test_a_peer_closing_mid_answer_fails_the_started_exchange(dms: DataMinerSystem, devices: Callable[..., Device]) -> None:
    def half_answer(conn: socket.socket, index: int) -> None:
        device.read_command(conn, index)
        conn.sendall(b"ok\r\n")
        device.read_command(conn, index)
        conn.sendall(b"VALUE 4")  # and closes

    device = devices(half_answer)
    element = probe(dms, device)
    element.set("Command", "one\r\n")
    assert element.get("Answer") == "ok"
    element.set("Command", "two\r\n")
    assert isinstance(HEARD[-1].outcome, SerialConnectionError)
    assert element.get("Failure") == f"SerialConnectionError: 127.0.0.1:{device.port}: the connection was closed after 7 bytes of the answer"
    assert not element.serial.connected
    assert device.connection_count == 1  # not sent again: the device may have acted on it


def test_a_started_exchange_on_a_connection_the_peer_closed_while_idle_goes_on_a_new_one(
    dms: DataMinerSystem, devices: Callable[..., Device]
) -> None:
    closed = threading.Event()

    def answer_once(conn: socket.socket, index: int) -> None:
        device.read_command(conn, index)
        conn.sendall(b"ok\r\n")
        conn.close()  # an idle timeout on the device's side
        closed.set()

    device = devices(answer_once)
    element = probe(dms, device)
    element.set("Command", "one\r\n")
    assert closed.wait(HANG_LIMIT)
    element.set("Command", "two\r\n")
    assert [heard.outcome for heard in HEARD] == [b"ok\r\n", b"ok\r\n"]
    assert device.commands == [(0, b"one\r\n"), (1, b"two\r\n")]


# -- the element's state when the answer comes --------------------------------------------------


def test_an_answer_that_comes_while_the_element_is_paused_is_handled_when_it_resumes(
    dms: DataMinerSystem, dmemu_clock: VirtualClock, devices: Callable[..., Device]
) -> None:
    element = probe(dms, echo_device(devices))
    element.set("Command", "hello\r\n", wait=False)  # in flight: nobody waited for the answer
    element.pause()
    dmemu_clock.advance(1)  # the answer comes
    assert HEARD == [] and element.get("Answer") is None
    element.start()
    assert element.get("Answer") == "ok hello"
    assert [heard.outcome for heard in HEARD] == [b"ok hello\r\n"]


def test_an_answer_held_while_paused_is_dropped_by_a_stop(
    dms: DataMinerSystem, dmemu_clock: VirtualClock, devices: Callable[..., Device]
) -> None:
    element = probe(dms, echo_device(devices))
    element.set("Command", "hello\r\n", wait=False)
    element.pause()
    dmemu_clock.advance(1)
    element.stop()
    element.start()
    dmemu_clock.advance(1)
    assert HEARD == [] and element.get("Answer") is None


def asked_silent_device(dms: DataMinerSystem, devices: Callable[..., Device]) -> tuple[Device, Any]:
    """A probe whose command is in flight to a device that never answers (not settled: wait=False)."""

    def silent(conn: socket.socket, index: int) -> None:
        device.wait_closed_by_client(conn, index)

    device = devices(silent)
    element = probe(dms, device)
    element.set("Command", "hello\r\n", wait=False)
    return device, element


def test_a_stop_while_an_exchange_is_in_flight_delivers_nothing_to_the_element(
    dms: DataMinerSystem, dmemu_clock: VirtualClock, devices: Callable[..., Device]
) -> None:
    device, element = asked_silent_device(dms, devices)
    element.stop()  # closes the port: the exchange ends with a SerialConnectionError nobody hears
    assert device.saw_client_close(0)
    dmemu_clock.advance(1)
    element.start()
    dmemu_clock.advance(1)
    assert HEARD == [] and element.get("Failure") is None


def test_the_answer_a_stop_ends_with_is_dropped_even_when_a_worker_gets_to_it_after_the_restart(
    dms: DataMinerSystem, dmemu_clock: VirtualClock, devices: Callable[..., Device], monkeypatch: pytest.MonkeyPatch
) -> None:
    device, element = asked_silent_device(dms, devices)
    late: list[Callable[[], Any]] = []  # the answer's work, as a busy real clock's worker would get to it: later
    queue_answer = WorkQueue.run_soon
    monkeypatch.setattr(WorkQueue, "run_soon", lambda queue, work: late.append(work) if queue is element._queue else queue_answer(queue, work))
    element.stop()  # closes the port: the exchange ends with a SerialConnectionError
    monkeypatch.undo()
    element.start()
    assert len(late) == 1
    late[0]()  # the restarted element must not take the last run's answer for its own
    assert HEARD == [] and element.get("Failure") is None


def test_an_answer_handler_that_raises_is_logged_and_the_element_goes_on(
    dms: DataMinerSystem, devices: Callable[..., Device]
) -> None:
    element = probe(dms, echo_device(devices))
    element.set("Explode", "now")
    (error,) = [entry.message for entry in element.logs(LogType.ERROR)]
    assert re.fullmatch(r"the answer handler explode failed: RuntimeError: cannot handle b'ok boom\\r\\n' \(.*test_serial_started\.py:\d+\)", error)
    element.set("Command", "hello\r\n")
    assert element.get("Answer") == "ok hello"


# -- other runners -------------------------------------------------------------------------------


def test_on_a_real_clock_the_answer_is_handled_on_a_worker_after_the_set_returned(
    dmemu_state_dir: Path, devices: Callable[..., Device]
) -> None:
    released = threading.Event()

    def answer_when_released(conn: socket.socket, index: int) -> None:
        while (command := device.read_command(conn, index)) is not None:
            released.wait(HANG_LIMIT)
            conn.sendall(b"ok " + command)

    device = devices(answer_when_released)
    handled = threading.Event()
    with DataMinerSystem(dmemu_state_dir, RealClock()) as dms:
        element = probe(dms, device, timeout=HANG_LIMIT * 2)
        element.add_value_watcher(2, lambda *_: handled.set())
        element.set("Command", "hello\r\n")
        assert not handled.is_set() and HEARD == []  # the set did not wait for the device
        released.set()
        assert handled.wait(HANG_LIMIT)
        assert element.get("Answer") == "ok hello"
        (heard,) = HEARD
        assert heard.thread != threading.get_ident()


def test_on_a_real_clock_a_blocking_exchange_goes_after_the_started_ones(devices: Callable[..., Device]) -> None:
    device = echo_device(devices)
    clock = RealClock()
    clock.start()
    port = SerialPort(device.connection(timeout=HANG_LIMIT), framing=CRLF, runner=clock)
    heard: list[object] = []
    blocking: list[bytes] = []

    def talk() -> None:
        for command in (b"one\r\n", b"two\r\n", b"three\r\n"):
            port.start_exchange(command, heard.append)
        blocking.append(port.exchange(b"blocking\r\n"))

    talking = threading.Thread(target=talk, daemon=True)
    talking.start()
    talking.join(HANG_LIMIT)
    stuck = talking.is_alive()
    if stuck:  # unblock the waiting exchange (it holds the port's lock), so that the threads end
        port._runner = None
        if port._in_flight is not None:
            port._in_flight.done.set()
        talking.join(HANG_LIMIT)
    clock.stop()
    port.close()
    assert not stuck, "the blocking exchange never returned"
    assert blocking == [b"ok blocking\r\n"]
    assert heard == [b"ok one\r\n", b"ok two\r\n", b"ok three\r\n"]
    assert [command for _, command in device.commands] == [b"one\r\n", b"two\r\n", b"three\r\n", b"blocking\r\n"]


def test_a_virtual_clocks_port_closed_with_exchanges_in_flight_tells_each_of_them(devices: Callable[..., Device]) -> None:
    def silent(conn: socket.socket, index: int) -> None:
        device.wait_closed_by_client(conn, index)

    device = devices(silent)
    clock = VirtualClock()
    port = SerialPort(device.connection(timeout=HANG_LIMIT), framing=CRLF, runner=clock)
    heard: list[object] = []
    port.start_exchange(b"one\r\n", heard.append)
    port.start_exchange(b"two\r\n", heard.append)
    port.close()
    assert [str(outcome) for outcome in heard] == [f"127.0.0.1:{device.port}: the connection was closed before the answer came"] * 2
    assert all(isinstance(outcome, SerialConnectionError) for outcome in heard)
    clock.settle()  # returns at once: nothing is in flight any more
    assert device.saw_client_close(0) and device.commands == [(0, b"one\r\n")]


def test_a_port_without_a_runner_answers_before_start_exchange_returns(devices: Callable[..., Device]) -> None:
    port = SerialPort(echo_device(devices).connection(timeout=HANG_LIMIT), framing=CRLF)
    heard: list[object] = []
    port.start_exchange(b"hello\r\n", heard.append)
    assert heard == [b"ok hello\r\n"]
    port.close()
    refused_port = closed_port()
    refused = SerialPort(Connection(port=refused_port, timeout=HANG_LIMIT), framing=CRLF)
    refused.start_exchange(b"hello\r\n", heard.append)  # the failure goes to the callback
    assert isinstance(heard[1], SerialConnectionError) and f"cannot connect to 127.0.0.1:{refused_port}" in str(heard[1])


def test_on_a_real_clock_a_stop_while_an_exchange_is_in_flight_does_not_wait_for_the_device(
    dmemu_state_dir: Path, devices: Callable[..., Device]
) -> None:
    device, asked, released = held_device(devices)
    with DataMinerSystem(dmemu_state_dir, RealClock()) as dms:
        element = probe(dms, device, timeout=HANG_LIMIT * 2)
        element.set("Command", "hello\r\n")
        assert asked.wait(HANG_LIMIT)  # in flight now
        stopping = threading.Thread(target=element.stop, daemon=True)
        stopping.start()
        stopping.join(HANG_LIMIT)
        stuck = stopping.is_alive()
        released.set()  # a stop still waiting ends once the device answers
        stopping.join(HANG_LIMIT)
        assert not stuck, "stop() waited for the device's answer"
        assert device.saw_client_close(0)
        assert HEARD == []


def test_on_a_real_clock_a_blocking_http_exchange_goes_after_a_started_one(devices: Callable[..., Device]) -> None:
    def script(conn: socket.socket, index: int) -> None:
        while (head := device.read_command(conn, index, b"\r\n\r\n")) is not None:
            if b"/started" in head:
                threading.Event().wait(0.3)  # answers once the blocking exchange waits behind it
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")

    device = devices(script)
    clock = RealClock()
    clock.start()
    port = SerialPort(device.connection(timeout=HANG_LIMIT), runner=clock)
    heard: list[object] = []
    blocking: list[object] = []

    def talk() -> None:
        port.start_http_exchange("GET", "/started", then=heard.append)
        blocking.append(port.http_exchange("GET", "/blocking").status)

    talking = threading.Thread(target=talk, daemon=True)
    talking.start()
    talking.join(HANG_LIMIT)
    stuck = talking.is_alive()
    if stuck:  # http_exchange holds the port's RLock while Clock.wait_exchange waits on done
        started, port._in_flight = port._in_flight, None
        if started is not None:
            started.done.set()
        talking.join(HANG_LIMIT)
    clock.stop()
    port.close()
    assert not stuck, "http_exchange never returned: it waits for the worker while holding the port's lock"
    assert blocking == [200]


def test_on_a_virtual_clock_two_threads_waiting_behind_a_started_exchange_do_not_send_it_twice(devices: Callable[..., Device]) -> None:
    def script(conn: socket.socket, index: int) -> None:
        while (command := device.read_command(conn, index)) is not None:
            if command == b"slow\r\n":
                threading.Event().wait(0.3)  # both blocking exchanges wait behind it by then
            conn.sendall(b"ok " + command)

    device = devices(script)
    clock = VirtualClock()
    port = SerialPort(device.connection(timeout=HANG_LIMIT), framing=CRLF, runner=clock)
    heard: list[object] = []
    port.start_exchange(b"slow\r\n", heard.append)
    answers: list[bytes] = []
    threads = [threading.Thread(target=lambda c=c: answers.append(port.exchange(c)), daemon=True) for c in (b"a\r\n", b"b\r\n")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(HANG_LIMIT)
    port.close()
    assert [command for _, command in device.commands].count(b"slow\r\n") == 1, device.commands


def test_on_a_real_clock_closing_the_dms_while_an_exchange_is_in_flight_does_not_wait_for_the_device(
    dmemu_state_dir, devices: Callable[..., Device]
) -> None:
    device, asked, released = held_device(devices)
    dms = DataMinerSystem(dmemu_state_dir, RealClock())
    element = probe(dms, device, timeout=HANG_LIMIT * 2)
    element.set("Command", "hello\r\n")
    assert asked.wait(HANG_LIMIT)  # in flight now
    closing = threading.Thread(target=dms.close, daemon=True)
    closing.start()
    closing.join(HANG_LIMIT)
    stuck = closing.is_alive()
    released.set()
    closing.join(HANG_LIMIT)
    assert not stuck, "DataMinerSystem.close() waited for the device's answer (RealClock.stop joins the worker reading it)"


def test_on_a_real_clock_exchanges_waiting_for_their_answers_do_not_hold_up_timers(devices: Callable[..., Device]) -> None:
    def silent(conn: socket.socket, index: int) -> None:
        device.wait_closed_by_client(conn, index)

    device = devices(silent)
    clock = RealClock(workers=2)
    clock.start()
    ports = [SerialPort(device.connection(timeout=HANG_LIMIT), framing=CRLF, runner=clock) for _ in range(2)]
    for port in ports:  # two devices slow to answer: each started exchange takes a worker while it waits
        port.start_exchange(b"status\r\n", lambda outcome: None)
    fired = threading.Event()
    clock.call_later(0.01, fired.set)
    timer_ran = fired.wait(HANG_LIMIT / 2)
    for port in ports:
        port.close()
    clock.stop()
    assert timer_ran, "a timer waited for the slow devices: the started exchanges held every worker of the pool"


def test_an_exchanges_end_flag_lets_every_waiter_pass_once_set() -> None:
    from dmemu.protocol.serial import _Ended

    ended = _Ended()
    assert not ended.is_set() and ended.wait(0.01) is False
    passed: list[bool] = []
    waiters = [threading.Thread(target=lambda: passed.append(ended.wait(30))) for _ in range(3)]
    for waiter in waiters:
        waiter.start()
    ended.set()
    for waiter in waiters:
        waiter.join(30)
    assert passed == [True, True, True]
    ended.set()  # twice is harmless, as an Event's
    assert ended.is_set() and ended.wait() is True and ended.wait(0) is True
