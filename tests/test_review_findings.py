"""Reviewer's failing tests for the h-lead change (bugs shown, not fixed)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

from test_serial import HANG_LIMIT, Device, devices, no_sleeping

from dmemu.protocol import RealClock, SerialPort

__all__ = ["devices", "no_sleeping"]


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
    from test_serial import CRLF

    from dmemu.protocol import VirtualClock

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
    from test_serial_started import probe

    from dmemu.dms import DataMinerSystem

    asked, released = threading.Event(), threading.Event()

    def answer_when_released(conn: socket.socket, index: int) -> None:
        while (command := device.read_command(conn, index)) is not None:
            asked.set()
            released.wait(HANG_LIMIT * 2)
            conn.sendall(b"ok " + command)

    device = devices(answer_when_released)
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
    from test_serial import CRLF

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
