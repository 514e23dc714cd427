"""The simulators in a process of their own, for benchmarks: the remote system is remote.

In the benchmark's own process the server's threads would share the interpreter (its lock and
its garbage collector) with the client being measured, so the client's figures would carry the
server's housekeeping and the other way round. Here they do not.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from dmemu.simulators.inventory import InventorySpec


def _serve(spec: InventorySpec, credentials: Mapping[str, tuple[str, str]], ports: Any, stop: Any) -> None:
    from dmemu.simulators.server import Simulators

    with Simulators(spec, credentials=credentials) as simulators:
        ports.put(simulators.port)
        stop.wait()


@contextmanager
def remote_simulators(spec: InventorySpec, credentials: Mapping[str, tuple[str, str]] | None = None) -> Iterator[str]:
    """Simulators serving `spec` on the wall clock in a child process; gives their base URL."""
    context = multiprocessing.get_context("spawn")
    ports, stop = context.Queue(), context.Event()
    process = context.Process(target=_serve, args=(spec, dict(credentials or {}), ports, stop), daemon=True)
    process.start()
    try:
        yield f"http://127.0.0.1:{ports.get(timeout=60)}"
    finally:
        stop.set()
        process.join(timeout=10)
        if process.is_alive():
            process.kill()


def _serve_osb(settings: Mapping[str, Any], ports: Any, stop: Any) -> None:
    from dmemu.simulators import OsbService

    with OsbService(**settings) as osb:
        ports.put(osb.port)
        stop.wait()


@contextmanager
def remote_osb(**settings: Any) -> Iterator[int]:
    """The OSB ticketing service (`OsbService(**settings)`, on the wall clock) in a child
    process; gives its port on 127.0.0.1."""
    context = multiprocessing.get_context("spawn")
    ports, stop = context.Queue(), context.Event()
    process = context.Process(target=_serve_osb, args=(dict(settings), ports, stop), daemon=True)
    process.start()
    try:
        yield int(ports.get(timeout=60))
    finally:
        stop.set()
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
