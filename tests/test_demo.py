"""`dmemu demo`, the main job, run as a user runs it: the console script in a subprocess."""

from __future__ import annotations

import io
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import attrs
import pytest

from dmemu import demo as demo_module  # imported once, under another stdout than any test's
from dmemu.dms import DataMinerSystem, SavedSystem
from dmemu.protocol import VirtualClock
from dmemu.simulators import InventorySpec, Simulators

DMEMU = str(Path(sys.executable).parent / "dmemu")  # installed next to this Python by pip
SMALL = ["--services", "150", "--carriers", "30", "--resources", "120", "--width", "120"]


def demo(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DMEMU, "demo", *SMALL, *args], capture_output=True, text=True, timeout=timeout)


def test_the_demo_builds_the_cache_and_prints_every_page() -> None:
    result = demo()
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no progress bar drawn when stderr is not a terminal
    out = result.stdout
    assert out.startswith("simulators on http://127.0.0.1:")
    assert out.splitlines()[1] == "  a temporary directory, deleted at exit (--state DIR keeps one)"
    for page in ("General", "Services", "Carriers", "Resources", "Configuration"):
        assert f"SES Inventory (1/1) | SES Inventory Management | Active | page {page}" in out
    # At 120 columns the Cache Progress table is one block per type: its dates and counts whole.
    progress = [line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith(("Type:", "Cache State:", "Result:"))]
    assert progress == ["Services", "Complete", "OK", "Carriers", "Complete", "OK", "Resources", "Complete", "OK"]
    assert out.count("Last Good Read Start:   2026-01-01 00:00:00") == 3 and "1767225600" not in out
    assert "Last Completed Buildup  2026-01-01 00:00:00" in out
    assert "demo-services" not in out and "demo-resources" not in out  # passwords are never printed
    assert "TMF 638 Password" in out and "********" in out


def test_a_kept_state_comes_back_with_its_tables(tmp_path: Path) -> None:
    state = tmp_path / "kept"
    first = demo("--state", str(state))
    assert first.returncode == 0, first.stderr
    saved = SavedSystem(state).element("SES Inventory")
    port = saved.connection.port
    rows = len(saved.table("Services"))
    assert rows > 0
    assert "picked up" not in first.stdout and "deleted at exit" not in first.stdout
    second = demo("--state", str(state))
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines()[1] == (
        "  picked up the kept element 'SES Inventory' with its saved tables (its start-up work runs again)"
    )
    assert f"simulators on http://127.0.0.1:{port};" in second.stdout  # where the element expects them
    assert f"Services: {rows:,} rows" in second.stdout
    assert [element.name for element in SavedSystem(state).elements] == ["SES Inventory"]


def test_start_up_work_left_undone_is_said_and_fails_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    create = demo_module._create_inventory

    def wrong_password(dms: Any, sim: Any) -> Any:
        element = create(dms, sim)
        element._set_initial({102: "not-the-password"})  # TMF 638 Password
        return element

    monkeypatch.setattr(demo_module, "CONNECTORS", tuple(attrs.evolve(c, create=wrong_password) for c in demo_module.CONNECTORS))
    settings = demo_module.DemoSettings(services=40, carriers=10, resources=30, width=120)
    assert demo_module.run_demo(settings) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith("simulators on http://127.0.0.1:")  # the stdout of the call, not of the import
    err = captured.err.splitlines()
    assert err == [
        "dmemu: start-up work not finished: SES Inventory: Services: Failed: TMF 638 service offset 0: 401 Unauthorized: "
        "check the TMF 638 username and password",
        "dmemu: start-up work not finished: SES Inventory: Carriers: Failed: TMF 638 service offset 0: 401 Unauthorized: "
        "check the TMF 638 username and password",
    ]


def test_a_kept_state_refuses_another_port(tmp_path: Path) -> None:
    state = tmp_path / "kept"
    assert demo("--state", str(state)).returncode == 0
    port = SavedSystem(state).element("SES Inventory").connection.port
    other = demo("--state", str(state), "--port", str(port + 1 if port < 65535 else port - 1))
    assert other.returncode == 2 and other.stderr.count("\n") == 1
    assert f"expect the simulators on port {port}" in other.stderr


def test_user_errors_end_with_one_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        in_use = demo("--port", str(port))
    assert in_use.returncode == 2 and in_use.stdout == ""
    assert in_use.stderr.count("\n") == 1 and f"cannot listen on 127.0.0.1:{port}" in in_use.stderr
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    unwritable = demo("--state", str(blocker / "state"))
    assert unwritable.returncode == 2 and unwritable.stderr.count("\n") == 1
    assert "cannot use state directory" in unwritable.stderr and unwritable.stdout == ""  # said before anything starts
    bad_size = demo("--services", "-5")
    assert bad_size.returncode == 2 and bad_size.stderr.count("\n") == 1
    assert "--services: -5 is not between 0 and 1,000,000" in bad_size.stderr


def test_a_state_directory_another_system_has_open_is_said_before_anything_starts(tmp_path: Path) -> None:
    state = tmp_path / "busy"
    with DataMinerSystem(state, VirtualClock()):  # another DMS (a running demo) holds it
        busy = demo("--state", str(state))
    assert busy.returncode == 2 and busy.stdout == "" and busy.stderr.count("\n") == 1
    assert f"state directory {state} is in use by another DataMiner System (process {os.getpid()})" in busy.stderr


def drained(lines: queue.Queue[str]) -> list[str]:
    taken = []
    while not lines.empty():
        taken.append(lines.get_nowait())
    return taken


@pytest.mark.skipif(os.name != "posix", reason="sends SIGINT as Ctrl-C does")
def test_real_time_keeps_polling_until_interrupted(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [DMEMU, "demo", *SMALL, "--real-time", "--state", str(tmp_path / "live")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        lines: queue.Queue[str] = queue.Queue()  # read on a thread: a hung demo cannot hang the test
        reader = threading.Thread(target=lambda: [lines.put(line) for line in iter(process.stdout.readline, "")], daemon=True)
        reader.start()
        seen = []
        deadline = time.monotonic() + 60
        while not (seen and seen[-1].startswith("polling on the wall clock")):
            seen.append(lines.get(timeout=max(0.1, deadline - time.monotonic())))
        assert process.poll() is None  # still running
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
        reader.join(timeout=30)  # it ends at the end of the output
        out, err = "".join(seen) + "".join(drained(lines)), process.stderr.read() if process.stderr else ""
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert out.strip().endswith("stopped")
    assert len(SavedSystem(tmp_path / "live").element("SES Inventory").table("Resources")) > 0


def test_polling_goes_on_cycle_after_cycle(dmemu_state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The polling loop of --real-time, each of its one-second sleeps standing in for an hour (a
    cache update is due hourly) on a virtual clock: it says every cycle until Ctrl-C."""
    clock = VirtualClock()
    spec = InventorySpec(services=40, carriers=10, resources=30, churn_per_day=0.5)
    sleeps: list[float] = []

    def an_hour_passes(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 4:
            raise KeyboardInterrupt  # Ctrl-C
        clock.advance(3600)

    monkeypatch.setattr(demo_module, "time", SimpleNamespace(sleep=an_hour_passes))
    out = io.StringIO()
    with Simulators(spec, credentials=demo_module.DEMO_CREDENTIALS, now=clock.now) as sim, DataMinerSystem(dmemu_state_dir, clock) as dms:
        demo_module._create_inventory(dms, sim).start()
        built = dms.element("SES Inventory").get("Last Cache Cycle")
        demo_module._poll_until_interrupted(dms, out)
        last = dms.element("SES Inventory").get("Last Cache Cycle")
        shown = dms.element("SES Inventory").display("Last Cache Cycle")
    lines = out.getvalue().splitlines()
    assert lines[:2] == ["", "polling on the wall clock; Ctrl-C stops"] and lines[-1] == "stopped"
    cycles = lines[2:-1]
    # The first sleep only notes where the cache is; each later one sees the cycle run meanwhile.
    assert len(cycles) == 2 and sleeps == [1, 1, 1, 1]
    assert all(line.startswith("SES Inventory: cache cycle at ") for line in cycles)
    # the time as the pages show it, not epoch seconds
    assert cycles[1].startswith(f"SES Inventory: cache cycle at {shown}: "), cycles[1]
    assert cycles[0] != cycles[1]  # two cycles, each said once
    assert last == built + 3 * 3600  # an hourly cycle after each of the three hours that passed
