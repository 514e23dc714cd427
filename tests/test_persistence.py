"""Persistence of the engine: state directory, restarts, batched atomic writes, corrupt files.

The rules under test (from the issue):

* A DataMiner System has a state directory; `save` parameters and tables survive an element
  restart and a process restart, through tinydb.
* Writes are batched (at the end of a tick and on stop), never one per set.
* Every write is atomic (temp file, fsync, rename), so a kill at any instant leaves the last
  complete snapshot.
* A corrupt or unreadable state file gives an error naming the file, never a silent empty state.

No test sleeps: child processes are driven by blocking reads of their pipes, and a watchdog
only kills a child that stops answering so a broken engine fails the test instead of hanging it.
"""

from __future__ import annotations

import errno
import json
import math
import os
import random
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from tinydb import Query, TinyDB

import dmemu.protocol.storage as storage
from dmemu.dms import AlarmTemplate, DataMinerSystem, Severity, Thresholds
from dmemu.protocol import (
    Button,
    Column,
    Connection,
    Discrete,
    Element,
    ElementState,
    ElementStateError,
    HttpConnection,
    InvalidValueError,
    LogType,
    Number,
    Parameter,
    Protocol,
    QAction,
    RetryPolicy,
    StateFileError,
    String,
    Table,
    Timer,
    VirtualClock,
)
from dmemu.protocol.storage import AtomicJSONStorage, ElementStore, RegistryStore
from dmemu.protocol.tables import TableData

CHILD_TIMEOUT = 60.0  # seconds before the watchdog kills a child that stopped answering

# -- protocols used in this process ------------------------------------------------------------

SETPOINT, LABEL, SAVED_READING, LIVE_READING, START_COUNT, MODE, SITE, OFFSET = 10, 11, 12, 13, 14, 15, 16, 17
FILL, TRY_BAD, FILL_NON_FINITE = 20, 21, 22
SAVED_ITEMS, LIVE_ITEMS = 1000, 2000


def fill_tables(protocol: Any) -> None:
    """QAction 100: fill both tables and both read parameters (one saved, one not)."""
    base = protocol.get_parameter("Setpoint")
    protocol.fill_array("Saved Items", [[f"k{i}", f"item {i} é☃", base + i * 1.5] for i in range(3)])
    protocol.fill_array("Live Items", [["x", "volatile row"]])
    protocol.set_parameter("Saved Reading", base * 2)
    protocol.set_parameter("Live Reading", 7)


def count_start(protocol: Any) -> None:
    """QAction 101, after startup: proves a (re)started element ran its start-up QActions."""
    protocol.set_parameter("Start Count", protocol.get_parameter("Start Count") + 1)


def try_bad_values(protocol: Any) -> None:
    """QAction 102: every way a QAction could push a value JSON cannot hold into saved state."""
    bad = object()
    attempts: dict[str, Callable[[], Any]] = {
        "fill_array": lambda: protocol.fill_array("Saved Items", [["ok", "fine", 1], ["bad", bad, 2]]),
        "fill_array_no_delete": lambda: protocol.fill_array_no_delete("Saved Items", [["bad", "x", bad]]),
        "add_row": lambda: protocol.add_row("Saved Items", ["bad", bad, 1]),
        "set_row": lambda: protocol.set_row("Saved Items", "k0", [None, bad]),
    }
    for name, attempt in attempts.items():
        try:
            attempt()
        except InvalidValueError as error:
            protocol.log(f"{name} refused: {error}")
        else:
            protocol.log(f"{name} ACCEPTED")
    protocol.log(f"set_parameter status: {protocol.set_parameter('Saved Reading', bad).value}")
    protocol.log(f"set_cell status: {protocol.set_cell('Saved Items', 'k0', 'Name', bad).value}")


def fill_non_finite(protocol: Any) -> None:
    """QAction 103: NaN and infinity are floats, but not JSON (the storage writes strict JSON)."""
    try:
        protocol.fill_array("Saved Items", [["nan", "not a number", math.nan], ["inf", "infinite", math.inf]])
    except InvalidValueError as error:
        protocol.log(f"non-finite refused: {error}")


class Keeper(Protocol):
    name = "Persistence Keeper"
    connection = HttpConnection(default_port=8080, credentials=True)
    parameters = (
        Parameter(SETPOINT, "Setpoint", type=Number(0, 1_000_000), write=True, save=True, default=0),
        Parameter(LABEL, "Label", type=String(), write=True, default="unnamed"),
        Parameter(SAVED_READING, "Saved Reading", type=Number(), save=True, default=0),
        Parameter(LIVE_READING, "Live Reading", type=Number(), default=-1),
        Parameter(START_COUNT, "Start Count", type=Number(0), save=True, default=0),
        Parameter(MODE, "Mode", type=Discrete({0: "Off", 1: "On"}), write=True, save=True, default=0),
        Parameter(SITE, "Site", type=String(), write=True, save=True, default=""),
        Parameter(OFFSET, "Offset", type=Number(), write=True, save=True, default=0),
        Parameter(FILL, "Fill", type=Button(), write=True),
        Parameter(TRY_BAD, "Try Bad Values", type=Button(), write=True),
        Parameter(FILL_NON_FINITE, "Fill Non Finite", type=Button(), write=True),
    )
    tables = (
        Table(SAVED_ITEMS, "Saved Items", save=True, columns=(
            Column(1001, "ID", key=True), Column(1002, "Name"), Column(1003, "Value", type=Number()),
        )),
        Table(LIVE_ITEMS, "Live Items", columns=(Column(2001, "ID", key=True), Column(2002, "Name"))),
    )
    qactions = (
        QAction(100, fill_tables, triggers=(FILL,)),
        QAction(101, count_start, after_startup=True),
        QAction(102, try_bad_values, triggers=(TRY_BAD,)),
        QAction(103, fill_non_finite, triggers=(FILL_NON_FINITE,)),
    )


def tick(protocol: Any) -> None:
    """QAction 200, every second: several changes to saved state within one tick."""
    count = protocol.get_parameter("Ticks") + 1
    for step in range(3):
        protocol.set_parameter("Ticks", count)
        protocol.fill_array("History", [[f"t{i}", count * 10 + step] for i in range(5)])


class Ticker(Protocol):
    name = "Persistence Ticker"
    parameters = (Parameter(30, "Ticks", type=Number(0), save=True, default=0),)
    tables = (Table(3000, "History", save=True, columns=(Column(3001, "ID", key=True), Column(3002, "N", type=Number()))),)
    timers = (Timer(1, seconds=1, qactions=(200,)),)
    qactions = (QAction(200, tick),)


# -- helpers ---------------------------------------------------------------------------------


def element_path(state_dir: Path, element: Element) -> Path:
    return state_dir / "elements" / f"{element.agent_id}-{element.element_id}.json"


def saved_on_disk(state_dir: Path, element: Element) -> storage.ElementSnapshot:
    return ElementStore(element_path(state_dir, element)).load()


def error_messages(element: Element) -> list[str]:
    return [entry.message for entry in element.logs(LogType.ERROR)]


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every completed state-file write, by path, in order."""
    done: list[Path] = []
    original = AtomicJSONStorage.write_encoded  # every write ends there

    def counting_write(self: AtomicJSONStorage, document: str) -> None:
        original(self, document)
        done.append(self.path)

    monkeypatch.setattr(AtomicJSONStorage, "write_encoded", counting_write)
    return done


# -- restarts --------------------------------------------------------------------------------


def test_saved_values_survive_element_restart_and_the_rest_is_reset(
    dms: DataMinerSystem, dmemu_state_dir: Path
) -> None:
    element = dms.create_element(Keeper, "Keeper")
    assert element.get(START_COUNT) == 1
    element.set(SETPOINT, 40)
    element.set(LABEL, "changed")
    element.set(MODE, "On")
    element.set(SITE, "Zürich ☃")
    element.set(FILL, 1)
    saved_rows = element.table(SAVED_ITEMS).rows()
    assert len(saved_rows) == 3 and len(element.table(LIVE_ITEMS)) == 1
    assert (element.get(SAVED_READING), element.get(LIVE_READING)) == (80, 7)

    element.stop()
    # Stopping saves at once, without waiting for a tick.
    on_disk = saved_on_disk(dmemu_state_dir, element)
    assert on_disk.parameters == {SETPOINT: 40, SAVED_READING: 80, START_COUNT: 1, MODE: 1, SITE: "Zürich ☃", OFFSET: 0}
    assert [row[0] for row in on_disk.tables[SAVED_ITEMS]] == ["k0", "k1", "k2"]
    assert LIVE_ITEMS not in on_disk.tables and LIVE_READING not in on_disk.parameters

    element.start()
    assert element.state is ElementState.ACTIVE
    assert element.get(START_COUNT) == 2  # the after-startup QAction ran on the saved count
    assert (element.get(SETPOINT), element.get(MODE), element.get(SITE), element.get(SAVED_READING)) == (40, 1, "Zürich ☃", 80)
    assert element.table(SAVED_ITEMS).rows() == saved_rows
    assert element.get(LABEL) == "unnamed"  # not saved: back to its default
    assert element.get(LIVE_READING) == -1
    assert len(element.table(LIVE_ITEMS)) == 0  # not saved: empty

    element.set(SETPOINT, 41)
    element.set(LABEL, "again")
    element.restart()
    assert element.get(START_COUNT) == 3
    assert element.get(SETPOINT) == 41
    assert element.get(LABEL) == "unnamed"
    assert saved_on_disk(dmemu_state_dir, element).parameters[SETPOINT] == 41


def test_everything_survives_a_process_restart_in_the_same_interpreter(dmemu_state_dir: Path) -> None:
    connection = Connection(
        host="10.1.2.3",
        port=8443,
        bus_address="BypassProxy",
        username="admin",
        password="pa55-wörd",
        scheme="https",
        timeout=12.5,
        retry=RetryPolicy(attempts=4, backoff_seconds=0.25, statuses={500, 503}, methods={"GET", "POST"}),
    )
    clock = VirtualClock()
    first = DataMinerSystem(dmemu_state_dir, clock, agent_ids=(1, 7))
    alpha = first.create_element(Keeper, "Alpha", connection=connection, agent_id=7, element_id=42)
    alpha.set(SETPOINT, 1234.5)
    alpha.set(LABEL, "volatile")
    alpha.set(FILL, 1)
    alpha_rows = alpha.table(SAVED_ITEMS).rows()
    beta = first.create_element(Keeper, "Beta")
    beta.set(SETPOINT, 2)
    beta.pause()
    gamma = first.create_element(Keeper, "Gamma")
    gamma.set(SETPOINT, 3)
    gamma.stop()
    ids = {e.name: e.ids for e in first.elements}
    first.close()  # no tick ever happened: close must write what changed

    clock = VirtualClock()
    with DataMinerSystem(dmemu_state_dir, clock) as second:
        assert {e.name: e.ids for e in second.elements} == ids
        alpha, beta, gamma = (second.element(name) for name in ("Alpha", "Beta", "Gamma"))
        assert second.element((7, 42)) is alpha
        assert 7 in second.agent_ids

        assert alpha.connection == connection
        assert alpha.connection.password == "pa55-wörd"
        assert alpha.protocol is Keeper

        assert alpha.state is ElementState.ACTIVE
        assert alpha.get(START_COUNT) == 2  # started again: its after-startup QAction ran
        assert alpha.get(SETPOINT) == 1234.5
        assert alpha.get(SAVED_READING) == 2469
        assert alpha.table(SAVED_ITEMS).rows() == alpha_rows
        assert alpha.get(LABEL) == "unnamed" and alpha.get(LIVE_READING) == -1
        assert len(alpha.table(LIVE_ITEMS)) == 0

        assert beta.state is ElementState.PAUSED
        assert gamma.state is ElementState.STOPPED
        clock.advance(60)
        assert (beta.get(START_COUNT), beta.get(SETPOINT)) == (1, 2)  # nothing ran while paused
        assert (gamma.get(START_COUNT), gamma.get(SETPOINT)) == (1, 3)
        with pytest.raises(ElementStateError):
            beta.set(SETPOINT, 9)
        beta.start()
        gamma.start()
        assert (beta.get(START_COUNT), gamma.get(START_COUNT)) == (2, 2)
        assert (beta.get(SETPOINT), gamma.get(SETPOINT)) == (2, 3)


# -- real processes --------------------------------------------------------------------------

PROTOCOL_MODULE = '''
"""Protocols for child processes (importable by module name in both processes)."""

from dmemu.protocol import Button, Column, HttpConnection, Number, Parameter, Protocol, QAction, String, Table

ROWS = 50_000


def fill_rows(protocol):
    protocol.fill_array("Rows", [[f"{i:05d}", 0, f"payload-{i:05d}"] for i in range(ROWS)])


class Bulk(Protocol):
    name = "Bulk Saver"
    parameters = (
        Parameter(10, "Generation", type=Number(0), write=True, save=True, default=0),
        Parameter(11, "Fill Rows", type=Button(), write=True),
    )
    tables = (
        Table(100, "Rows", save=True, columns=(
            Column(101, "Key", key=True), Column(102, "Counter", type=Number(0), write=True), Column(103, "Payload"),
        )),
    )
    qactions = (QAction(1, fill_rows, triggers=(11,)),)


def fill_items(protocol):
    protocol.fill_array("Items", [["a", "first", 1], ["b", "second", 2.5]])
    protocol.fill_array("Scratch", [["s", "gone after restart"]])


def count_start(protocol):
    protocol.set_parameter("Start Count", protocol.get_parameter("Start Count") + 1)


class Remote(Protocol):
    name = "Remote Keeper"
    connection = HttpConnection(default_port=8443, credentials=True)
    parameters = (
        Parameter(10, "Setpoint", type=Number(0, 10_000), write=True, save=True, default=0),
        Parameter(11, "Label", type=String(), write=True, default="unnamed"),
        Parameter(14, "Start Count", type=Number(0), save=True, default=0),
        Parameter(20, "Fill", type=Button(), write=True),
    )
    tables = (
        Table(1000, "Items", save=True, columns=(
            Column(1001, "ID", key=True), Column(1002, "Name"), Column(1003, "Value", type=Number()),
        )),
        Table(2000, "Scratch", columns=(Column(2001, "ID", key=True), Column(2002, "Note"))),
    )
    qactions = (QAction(1, fill_items, triggers=(20,)), QAction(2, count_start, after_startup=True))
'''

REMOTE_CHILD = '''
import sys

from dmemu.protocol import Connection, RetryPolicy, VirtualClock

from dmemu.dms import AlarmTemplate, DataMinerSystem, Severity, Thresholds
from {module} import Remote

dms = DataMinerSystem(sys.argv[1], VirtualClock(), agent_ids=(1, 7))
alpha = dms.create_element(Remote, "Alpha", agent_id=7, element_id=42, connection=Connection(
    host="device.example", port=9443, bus_address="BypassProxy", username="admin", password="s3cret-ü",
    timeout=12.5, retry=RetryPolicy(attempts=4, statuses={{500, 503}}),
))
alpha.set("Setpoint", 1234.5)
alpha.set("Label", "volatile")
alpha.set("Fill", 1)
beta = dms.create_element(Remote, "Beta")
beta.set("Setpoint", 2)
beta.pause()
gamma = dms.create_element(Remote, "Gamma")
gamma.set("Setpoint", 3)
gamma.stop()
dms.close()
print("done", flush=True)
'''

SAVER_CHILD = '''
"""Save a 50,000-row table over and over; optionally hold inside one write until killed.

argv: state_dir, mode, n. Modes: "after" (just save; the parent kills after n saves), "write"
(write half the temporary file), "fsync-file" (temporary file written, not synced),
"replace" (synced, not renamed), "fsync-dir" (renamed, directory not synced): in those the
n-th save of this process prints "in-write" and waits on stdin for the parent's SIGKILL.
"registry" holds inside the rename of dms.json while the element is being paused.
"""
import os
import sys

from dmemu.protocol import VirtualClock

from dmemu.dms import AlarmTemplate, DataMinerSystem, Severity, Thresholds
from {module} import Bulk

state_dir, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
real_write, real_fsync, real_replace = os.write, os.fsync, os.replace
armed = False
fsyncs = 0


def hold(where):
    print("in-write", where, flush=True)
    sys.stdin.readline()  # the parent kills this process while it waits here
    os._exit(3)


def write(fd, data):
    if armed and mode == "write":
        real_write(fd, bytes(data[: len(data) // 2]))
        hold(mode)
    return real_write(fd, data)


def fsync(fd):
    global fsyncs
    if armed:
        fsyncs += 1
        if (mode, fsyncs) in (("fsync-file", 1), ("fsync-dir", 2)):
            hold(mode)
    return real_fsync(fd)


def replace(source, target):
    if armed and (mode == "replace" or (mode == "registry" and os.path.basename(target) == "dms.json")):
        hold(mode)
    return real_replace(source, target)


os.write, os.fsync, os.replace = write, fsync, replace

dms = DataMinerSystem(state_dir, VirtualClock())
element = dms.find("Bulk")
if element is None:
    element = dms.create_element(Bulk, "Bulk")
    dms.flush()  # a creation is written with the next batch: write it now
if len(element.table("Rows")) == 0:
    element.set("Fill Rows", 1)
generation = element.get("Generation")
print("ready", generation, flush=True)
if mode == "registry":
    armed = True
    element.pause()  # a pause is written to the element list at once
    print("registry saved without holding", flush=True)
    os._exit(4)
saves = 0
while saves < 500:
    generation += 1
    element.set("Generation", generation)
    element.set_cell("Rows", "00000", "Counter", generation)
    element.set_cell("Rows", "49999", "Counter", generation)
    saves += 1
    armed = mode != "after" and saves == n
    element.save()
    armed = False
    print("saved", generation, flush=True)
os._exit(5)
'''

BULK_ROWS = 50_000


@pytest.fixture
def child_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, dict[str, str]]]:
    """A protocol module importable here and in child processes: (module name, child env)."""
    name = f"persist_protocols_{uuid.uuid4().hex[:12]}"
    (tmp_path / f"{name}.py").write_text(PROTOCOL_MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(tmp_path), env.get("PYTHONPATH", "")) if p)
    env["PYTHONIOENCODING"] = "utf-8"
    yield name, env
    sys.modules.pop(name, None)


def test_values_survive_a_real_process_restart(
    tmp_path: Path, dmemu_state_dir: Path, child_module: tuple[str, dict[str, str]]
) -> None:
    module, env = child_module
    script = tmp_path / "remote_child.py"
    script.write_text(REMOTE_CHILD.format(module=module), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script), str(dmemu_state_dir)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=CHILD_TIMEOUT,
    )
    assert done.returncode == 0 and done.stdout == "done\n", done.stderr

    remote = __import__(module).Remote
    clock = VirtualClock()
    with DataMinerSystem(dmemu_state_dir, clock) as dms:
        assert {e.name: e.ids for e in dms.elements} == {"Alpha": (7, 42), "Beta": (1, 1), "Gamma": (1, 2)}
        alpha = dms.element("Alpha")
        assert alpha.protocol is remote
        assert alpha.connection == Connection(
            host="device.example", port=9443, bus_address="BypassProxy", username="admin", password="s3cret-ü",
            timeout=12.5, retry=RetryPolicy(attempts=4, statuses={500, 503}),
        )
        assert alpha.connection.password == "s3cret-ü"
        assert alpha.state is ElementState.ACTIVE
        assert alpha.get("Start Count") == 2  # once in the child, once here
        assert alpha.get("Setpoint") == 1234.5
        assert alpha.table("Items").rows() == [
            {"ID": "a", "Name": "first", "Value": 1},
            {"ID": "b", "Name": "second", "Value": 2.5},
        ]
        assert alpha.get("Label") == "unnamed"
        assert len(alpha.table("Scratch")) == 0

        beta, gamma = dms.element("Beta"), dms.element("Gamma")
        assert (beta.state, beta.get("Setpoint"), beta.get("Start Count")) == (ElementState.PAUSED, 2, 1)
        assert (gamma.state, gamma.get("Setpoint"), gamma.get("Start Count")) == (ElementState.STOPPED, 3, 1)
        beta.start()
        assert beta.get("Start Count") == 2


class Saver:
    """Runs SAVER_CHILD and kills it with SIGKILL at a chosen moment."""

    def __init__(self, tmp_path: Path, state_dir: Path, module: str, env: dict[str, str]) -> None:
        self.script = tmp_path / "saver_child.py"
        self.script.write_text(SAVER_CHILD.format(module=module), encoding="utf-8")
        self.state_dir = state_dir
        self.env = env
        self.cwd = tmp_path
        self.stderr = tmp_path / "saver_child.err"

    def run(self, mode: str, n: int) -> tuple[int, int, str]:
        """(generation loaded at start, last generation the child reported saved, hold point)."""
        with open(self.stderr, "wb") as errors:
            child = subprocess.Popen(
                [sys.executable, str(self.script), str(self.state_dir), mode, str(n)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors,
                env=self.env, cwd=self.cwd, text=True,
            )
        watchdog = threading.Timer(CHILD_TIMEOUT, child.kill)
        watchdog.start()
        try:
            assert child.stdout is not None
            first = child.stdout.readline().split()
            assert first[:1] == ["ready"], self.failure(first)
            loaded = last_saved = int(first[1])
            held = ""
            completed = 0
            while True:
                line = child.stdout.readline()
                words = line.split()
                if words[:1] == ["saved"]:
                    last_saved = int(words[1])
                    completed += 1
                    if mode == "after" and completed == n:
                        break
                elif words[:1] == ["in-write"]:
                    held = words[1]
                    break
                else:
                    raise AssertionError(self.failure(line))
            child.kill()
            rest = child.stdout.read()  # lines printed between our last read and the kill
            assert child.wait() == -9, self.failure("not killed")
        finally:
            watchdog.cancel()
            if child.poll() is None:
                child.kill()
                child.wait()
            for pipe in (child.stdin, child.stdout):
                if pipe is not None:
                    pipe.close()
        for line in rest.splitlines():
            words = line.split()
            assert words[:1] == ["saved"], self.failure(line)
            last_saved = int(words[1])
        return loaded, last_saved, held

    def failure(self, what: object) -> str:
        return f"child said {what!r}; stderr:\n{self.stderr.read_text(errors='replace')}"


def assert_complete_snapshot(path: Path, allowed: set[int]) -> int:
    """The file loads and holds one whole save: its generation everywhere, every row intact."""
    snapshot = ElementStore(path).load()
    generation = snapshot.parameters[10]
    assert generation in allowed
    rows = snapshot.tables[100]
    assert len(rows) == BULK_ROWS
    assert rows[0] == ["00000", generation, "payload-00000"]
    assert rows[-1] == ["49999", generation, "payload-49999"]
    assert [row[0] for row in rows] == [f"{i:05d}" for i in range(BULK_ROWS)]
    assert all(row[1] == 0 and row[2] == f"payload-{row[0]}" for row in rows[1:-1])
    return generation


@pytest.fixture
def saver(tmp_path: Path, dmemu_state_dir: Path, child_module: tuple[str, dict[str, str]]) -> Saver:
    module, env = child_module
    return Saver(tmp_path, dmemu_state_dir, module, env)


@pytest.mark.parametrize(
    ("hold_in", "expect_new"),
    [("write", False), ("fsync-file", False), ("replace", False), ("fsync-dir", True)],
)
def test_process_killed_inside_a_write_leaves_the_previous_or_the_new_snapshot(
    saver: Saver, dmemu_state_dir: Path, hold_in: str, expect_new: bool
) -> None:
    path = dmemu_state_dir / "elements" / "1-1.json"
    loaded, last_saved, held = saver.run(hold_in, 3)  # killed inside its 3rd save
    assert (loaded, last_saved, held) == (0, 2, hold_in)
    before_kill = 3 if expect_new else 2
    assert assert_complete_snapshot(path, {before_kill}) == before_kill
    if not expect_new:
        assert path.with_name(".1-1.json.tmp").exists()  # the interrupted write was under way

    # The next process starts from exactly that snapshot, past any leftover temporary file.
    loaded, last_saved, _ = saver.run("after", 1)
    assert loaded == before_kill
    assert assert_complete_snapshot(path, {last_saved, last_saved + 1}) >= before_kill + 1


def test_process_killed_after_completed_saves_never_leaves_a_broken_file(
    saver: Saver, dmemu_state_dir: Path, child_module: tuple[str, dict[str, str]]
) -> None:
    path = dmemu_state_dir / "elements" / "1-1.json"
    # Killed inside the very first save of values: only the creation's snapshot (no values yet;
    # written so that a file gone missing later is noticed) was complete, and the DMS registry
    # (the child flushed it right after creating the element) still loads.
    assert saver.run("fsync-file", 1) == (0, 0, "fsync-file")
    created = ElementStore(path).load()
    assert created.missing is None and not any(created.tables.values())
    assert [r["name"] for r in RegistryStore(dmemu_state_dir / "dms.json").load()] == ["Bulk"]

    generation = 0
    for completed in (1, 2, 3, 1, 5):
        # Killed just after the child reported `completed` saves: while it is writing the next.
        loaded, last_saved, _ = saver.run("after", completed)
        assert loaded == generation
        assert last_saved >= loaded + completed
        generation = assert_complete_snapshot(path, {last_saved, last_saved + 1})

    # A kill inside the registry's own write leaves its previous state (Active).
    assert saver.run("registry", 0) == (generation, generation, "registry")
    assert [r["state"] for r in RegistryStore(dmemu_state_dir / "dms.json").load()] == ["Active"]

    module, _ = child_module
    with DataMinerSystem(dmemu_state_dir, VirtualClock()) as dms:
        element = dms.element("Bulk")
        assert element.protocol is __import__(module).Bulk
        assert element.state is ElementState.ACTIVE
        assert element.get("Generation") == generation
        assert len(element.table("Rows")) == BULK_ROWS
        assert element.table("Rows").cell("49999", "Counter") == generation


# Both tests below abandon a DMS without closing it: for the files this is the same as a kill,
# since an explicit save and a stop wait for the writer thread. The element list must be on disk
# before an element file it names, and a stop must be on disk when stop() returns.
def test_an_element_saved_before_any_tick_is_there_after_a_kill(dmemu_state_dir: Path) -> None:
    first = DataMinerSystem(dmemu_state_dir, VirtualClock())
    element = first.create_element(Keeper, "Keeper")
    element.set(SETPOINT, 5)
    element.save()  # documented as: write now
    assert saved_on_disk(dmemu_state_dir, element).parameters[SETPOINT] == 5
    first._lock.release()  # killed here: the OS lets go of a dead process's lock
    with DataMinerSystem(dmemu_state_dir, VirtualClock()) as second:
        assert second.element("Keeper").get(SETPOINT) == 5


def test_a_kill_right_after_stop_leaves_the_element_stopped(dmemu_state_dir: Path) -> None:
    clock = VirtualClock()
    first = DataMinerSystem(dmemu_state_dir, clock)
    element = first.create_element(Keeper, "Keeper")
    clock.advance(5)
    element.set(SETPOINT, 5)
    element.stop()  # the issue: writes happen at the end of a tick and on stop
    first._lock.release()  # killed here: the OS lets go of a dead process's lock
    with DataMinerSystem(dmemu_state_dir, VirtualClock()) as second:
        again = second.element("Keeper")
        assert (again.state, again.get(SETPOINT), again.get(START_COUNT)) == (ElementState.STOPPED, 5, 1)


# -- batching --------------------------------------------------------------------------------


def test_many_sets_write_nothing_until_the_end_of_a_tick(
    dmemu_state_dir: Path, dmemu_clock: VirtualClock, writes: list[Path]
) -> None:
    registry = dmemu_state_dir / "dms.json"
    with DataMinerSystem(dmemu_state_dir, dmemu_clock) as dms:
        element = dms.create_element(Keeper, "Keeper")
        path = element_path(dmemu_state_dir, element)
        writes.clear()  # creating may or may not have written the registry at once
        for value in range(1000):
            element.set(SETPOINT, value)
        element.set(FILL, 1)  # a QAction changing a saved table and a saved read parameter
        assert writes == []
        assert not path.exists()

        dmemu_clock.advance(1)  # time passing ends a tick: the element once (and the registry at most once)
        assert Counter(writes)[path] == 1 and Counter(writes)[registry] <= 1 and len(set(writes)) == len(writes)
        assert saved_on_disk(dmemu_state_dir, element).parameters[SETPOINT] == 999
        assert len(saved_on_disk(dmemu_state_dir, element).tables[SAVED_ITEMS]) == 3
        writes.clear()

        dmemu_clock.advance(60)  # nothing changed: nothing written
        assert writes == []

        element.set(SETPOINT, 5)
        element.set(LABEL, "not saved")
        assert writes == []
    assert writes == [path]  # close wrote the pending change, once
    assert ElementStore(path).load().parameters[SETPOINT] == 5


def test_a_set_of_an_unsaved_parameter_makes_no_write(
    dms: DataMinerSystem, dmemu_clock: VirtualClock, writes: list[Path]
) -> None:
    element = dms.create_element(Keeper, "Keeper")
    dmemu_clock.advance(5)
    writes.clear()
    for value in range(100):
        element.set(LABEL, f"label {value}")
    dmemu_clock.advance(60)
    assert writes == []
    element.stop()
    dmemu_clock.advance(5)
    assert writes == [dms.state_dir / "dms.json"]  # only the state change, in the registry


def test_one_write_per_dirty_element_per_tick(dmemu_state_dir: Path, dmemu_clock: VirtualClock, writes: list[Path]) -> None:
    with DataMinerSystem(dmemu_state_dir, dmemu_clock, batch_gap_seconds=0) as dms:  # a batch after every tick
        first = dms.create_element(Ticker, "Ticker 1")
        second = dms.create_element(Ticker, "Ticker 2")
        keeper = dms.create_element(Keeper, "Keeper")  # dirty once, from its start-up QAction
        writes.clear()

        fired = dmemu_clock.advance(10)  # ten ticks
        assert fired == 2 * 10
        per_file = Counter(writes)
        assert per_file.pop(dmemu_state_dir / "dms.json", 0) <= 1  # three new elements: one registry write at most
        assert per_file == {element_path(dmemu_state_dir, first): 10, element_path(dmemu_state_dir, second): 10, element_path(dmemu_state_dir, keeper): 1}
        snapshot = saved_on_disk(dmemu_state_dir, first)
        assert snapshot.parameters == {30: 11}  # one run at start-up and ten on the timer
        assert snapshot.tables[3000][0] == ["t0", 112]  # the last of three fills in the last tick


def test_ticks_within_the_batch_gap_are_written_together_when_the_clock_call_returns(
    dmemu_state_dir: Path, dmemu_clock: VirtualClock, writes: list[Path]
) -> None:
    # A gap no test outlasts: only the first tick's batch and the one when advance returns.
    with DataMinerSystem(dmemu_state_dir, dmemu_clock, batch_gap_seconds=3600) as dms:
        ticker = dms.create_element(Ticker, "Ticker")
        path = element_path(dmemu_state_dir, ticker)
        writes.clear()

        dmemu_clock.advance(10)  # ten ticks: the first batched at once, the other nine when advance returns
        assert Counter(writes)[path] == 2
        dmemu_clock.advance(10)  # within the gap: one batch, when it returns
        assert Counter(writes)[path] == 3
        dmemu_clock.run_until(lambda: ticker.get(30) >= 26)  # run_until too
        assert Counter(writes)[path] == 4
        for _ in range(3):
            dmemu_clock.advance(1)  # time passes with one tick each: the changes are there when each returns
            assert saved_on_disk(dmemu_state_dir, ticker).parameters == {30: ticker.get(30)}
        assert Counter(writes)[path] == 7
        assert ticker.get(30) == 29


def test_a_batch_syncs_each_directory_once_not_once_per_file(
    dms: DataMinerSystem, dmemu_state_dir: Path, dmemu_clock: VirtualClock, monkeypatch: pytest.MonkeyPatch, writes: list[Path]
) -> None:
    tickers = [dms.create_element(Ticker, f"Ticker {n}") for n in range(1, 5)]
    dmemu_clock.advance(1)
    dms.flush()  # the creations' batch is written by the writer thread: not counted below
    synced: list[Path] = []
    original = storage._fsync_directory
    monkeypatch.setattr(storage, "_fsync_directory", lambda directory: (synced.append(directory), original(directory)))
    writes.clear()

    dmemu_clock.advance(1)  # one tick: every ticker changed
    assert dms.flush() == []  # the tick's batch is written by the writer thread: wait for it
    assert sorted(writes) == sorted(element_path(dmemu_state_dir, ticker) for ticker in tickers)
    assert synced == [dmemu_state_dir / "elements"]  # the four renames made durable together
    assert saved_on_disk(dmemu_state_dir, tickers[0]).parameters == {30: 3}


def test_a_save_encodes_only_the_rows_that_changed_and_writes_what_json_would(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = ElementStore(tmp_path / "1-1.json")
    rows = [(f"k{i}", f"item {i} é☃", i * 1.5, i % 2 == 0, None) for i in range(50)]
    store.save({10: 1}, {SAVED_ITEMS: list(rows), LIVE_ITEMS: []}, saved_at=12.5)
    encoded: list[Any] = []
    original = AtomicJSONStorage.encode
    monkeypatch.setattr(AtomicJSONStorage, "encode", lambda self, value: (encoded.append(value), original(self, value))[1])

    store.save({10: 2}, {SAVED_ITEMS: list(rows), LIVE_ITEMS: []}, saved_at=13.0)  # rows unchanged (the same tuples)
    assert not [value for value in encoded if isinstance(value, tuple)]
    # The first save was of a table filled afresh: one encode of the whole list, no text per row.
    # The first save that finds most rows unchanged makes each row's text once...
    rows[7] = ("k7", "changed", 0.25, False, 3)
    store.save({10: 3}, {SAVED_ITEMS: list(rows), LIVE_ITEMS: []}, saved_at=13.5)
    assert [value for value in encoded if isinstance(value, tuple)] == rows
    # ...and from then on only the rows that changed are encoded.
    encoded.clear()
    rows[7] = ("k7", "changed again", 0.25, False, 3)
    store.save({10: 3}, {SAVED_ITEMS: list(rows), LIVE_ITEMS: []}, saved_at=14.0)
    assert [value for value in encoded if isinstance(value, tuple)] == [rows[7]]
    expected = {
        "parameters": {"1": {"values": {"10": 3}}},
        "tables": {"1": {"id": SAVED_ITEMS, "rows": [list(row) for row in rows]}, "2": {"id": LIVE_ITEMS, "rows": []}},
        "saved": {"1": {"at": 14.0}},
    }
    assert store.path.read_text() == json.dumps(expected, separators=(",", ":"))
    assert store.load().tables[SAVED_ITEMS][7] == ["k7", "changed again", 0.25, False, 3]


def test_a_table_filled_afresh_is_encoded_whole_and_every_save_writes_what_json_would(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A table whose rows are mostly new is encoded as one list (row by row, 100,000 small rows
    took twice as long to save); whichever way, the file is what json.dumps writes."""
    store = ElementStore(tmp_path / "1-1.json")
    encoded: list[Any] = []
    original = AtomicJSONStorage.encode
    monkeypatch.setattr(AtomicJSONStorage, "encode", lambda self, value: (encoded.append(value), original(self, value))[1])
    rows = [(f"k{i}", i, None) for i in range(10)]
    for step, fresh in enumerate([rows, [(f"n{i}", i, "new") for i in range(10)], rows[:4] + [("z", 0.5, True)] * 6]):
        encoded.clear()
        store.save({}, {SAVED_ITEMS: list(fresh), LIVE_ITEMS: []}, saved_at=float(step))
        assert list(fresh) in encoded and not [value for value in encoded if isinstance(value, tuple)]
        written = json.loads(store.path.read_text())
        assert written["tables"]["1"]["rows"] == [list(row) for row in fresh]


def _expected_document(parameters: dict[int, Any], tables: dict[int, Any], saved_at: float) -> str:
    """What json.dumps writes for an element snapshot: the file must hold exactly this."""
    document = {
        "parameters": {"1": {"values": {str(pid): value for pid, value in parameters.items()}}},
        "tables": {str(n): {"id": tid, "rows": [list(row) for row in rows]} for n, (tid, rows) in enumerate(tables.items(), start=1)},
        "saved": {"1": {"at": saved_at}},
    }
    return json.dumps(document, separators=(",", ":"))


def test_a_table_tells_the_save_which_rows_changed_and_only_those_are_encoded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = ElementStore(tmp_path / "1-1.json")
    saved, live = TableData(Keeper.model.tables[SAVED_ITEMS]), TableData(Keeper.model.tables[LIVE_ITEMS])
    saved.fill([(f"k{i}", f"item {i} é☃", i * 1.5) for i in range(50)])
    live.fill([("x", "never changes")])
    encoded: list[Any] = []
    original = AtomicJSONStorage.encode
    monkeypatch.setattr(AtomicJSONStorage, "encode", lambda self, value: (encoded.append(value), original(self, value))[1])

    def save(at: float) -> list[Any]:
        encoded.clear()
        tables = {SAVED_ITEMS: saved.rows.take_changes(), LIVE_ITEMS: live.rows.take_changes()}
        store.save({10: 1}, tables, saved_at=at)
        assert store.path.read_text() == _expected_document({10: 1}, {SAVED_ITEMS: saved.rows.values(), LIVE_ITEMS: live.rows.values()}, at)
        return [value for value in encoded if isinstance(value, (tuple, list))]

    assert save(1.0) == [list(saved.rows.values()), [("x", "never changes")]]  # filled: each table in one encode
    saved.set_cell("k3", 2, 0.5)
    assert save(2.0) == list(saved.rows.values())  # the first save changing a few makes each row's text once
    saved.set_cell("k7", 1, "changed")
    saved.rows.pop("k9")
    saved.add(("new", "added", 2))
    assert sorted(save(3.0)) == [saved.rows["k7"], saved.rows["new"]]  # only the rows that changed, however changed
    assert save(4.0) == []  # nothing changed: nothing encoded


def test_every_save_of_changed_tables_writes_what_json_dumps_writes(tmp_path: Path) -> None:
    """Random adds, updates, deletes, fills and restores, saved incrementally (some snapshots
    written out of order or never): the file is always json.dumps of the snapshot written."""
    generator = random.Random(13)
    store = ElementStore(tmp_path / "1-1.json")
    saved, live = TableData(Keeper.model.tables[SAVED_ITEMS]), TableData(Keeper.model.tables[LIVE_ITEMS])

    def row(key: str) -> tuple[Any, ...]:
        return (key, generator.choice(["a", "é☃ \"q\"", "", None, f"text {generator.random()}"]), generator.choice([None, 0, -2.5, 1e-7, 10**20]))

    def change() -> None:
        keys = list(saved.rows)
        action = generator.randrange(11)
        key = f"k{generator.randrange(40)}"
        if action == 0:
            saved.fill([row(f"k{i}") for i in generator.sample(range(40), generator.randrange(30))])
        elif action == 1:
            saved.restore([list(row(f"k{i}")) for i in range(generator.randrange(5))])
        elif action == 2:
            saved.fill_no_delete([row(f"k{generator.randrange(40)}") for _ in range(3)])
        elif action == 3 and keys:
            saved.rows.pop(generator.choice(keys))
        elif action == 4 and keys:
            del saved.rows[generator.choice(keys)]
        elif action == 5:
            saved.rows = {}
        elif action == 6 and keys:
            saved.set_cell(generator.choice(keys), 1, "set cell")
        elif action == 7 and keys:
            saved.update(generator.choice(keys), [None, None, 3.25])
        elif action == 8:
            live.add(row(key)[:2])
        else:
            saved.add(row(key))

    pending: list[tuple[float, dict[int, Any], dict[int, list[Any]]]] = []
    for step in range(400):
        for _ in range(generator.randrange(4)):
            change()
        tables = {SAVED_ITEMS: saved.rows.take_changes(), LIVE_ITEMS: live.rows.take_changes()}
        pending.append((float(step), tables, {tid: list(rows) for tid, rows in tables.items()}))
        if generator.random() < 0.2:
            continue  # saved later (after a newer one), or never
        if len(pending) > 1 and generator.random() < 0.5:
            pending.reverse()
        for at, tables, rows in pending[-2:]:
            store.save({10: step}, tables, saved_at=at)
            assert store.path.read_text() == _expected_document({10: step}, rows, at)
        pending.clear()


def test_a_record_store_writes_what_json_dumps_writes(tmp_path: Path) -> None:
    store = storage.RecordStore(tmp_path / "records.json", "records")
    for count in (0, 1, 2, 1500, 3):  # the numbered keys are made once, for the most records yet
        records = [{"id": number, "text": f"record {number} é☃ \"q\"", "value": [number * 0.5, None, True]} for number in range(count)]
        store.save(records)
        expected = {"records": {str(number): record for number, record in enumerate(records, start=1)}}
        assert store.path.read_text() == json.dumps(expected, separators=(",", ":"))
        assert store.load() == records


def test_saved_values_are_encoded_as_json_dumps_encodes_them() -> None:
    storage = AtomicJSONStorage("unused.json")
    values = ["é☃ \"quoted\"\n", {"a": [1, 2.5, None, True], "b": {"c": "d"}}, (1, "x"), [], {}, 10**30, -0.0, 1e-7]
    for value in values:
        assert storage.encode(value) == json.dumps(value, separators=(",", ":"), allow_nan=False)
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    for refused in (float("nan"), float("inf"), object(), cyclic, deep):
        with pytest.raises(StateFileError, match="cannot save state file"):
            storage.encode(refused)


def test_stop_and_close_each_write_once(dms: DataMinerSystem, dmemu_state_dir: Path, writes: list[Path]) -> None:
    stopping = dms.create_element(Keeper, "Stopping")
    closing = dms.create_element(Keeper, "Closing")
    idle = dms.create_element(Keeper, "Idle")
    dms.flush()
    writes.clear()
    for value in range(500):
        stopping.set(SETPOINT, value)
        closing.set(SETPOINT, value + 1)
    assert writes == []

    registry = dmemu_state_dir / "dms.json"
    stopping.stop()
    assert [w for w in writes if w != registry] == [element_path(dmemu_state_dir, stopping)]
    assert saved_on_disk(dmemu_state_dir, stopping).parameters[SETPOINT] == 499
    stopped_registry_writes = writes.count(registry)
    writes.clear()

    dms.close()
    # The idle element was clean: not rewritten. The registry is written once, at stop or here.
    assert [w for w in writes if w != registry] == [element_path(dmemu_state_dir, closing)]
    assert stopped_registry_writes + writes.count(registry) == 1
    assert saved_on_disk(dmemu_state_dir, closing).parameters[SETPOINT] == 500
    assert saved_on_disk(dmemu_state_dir, idle).parameters[START_COUNT] == 1
    states = {r["name"]: r["state"] for r in RegistryStore(registry).load()}
    assert states == {"Stopping": "Stopped", "Closing": "Active", "Idle": "Active"}


# -- atomic writes ---------------------------------------------------------------------------


def test_a_write_goes_through_a_synced_temporary_file_and_a_rename(
    dms: DataMinerSystem, dmemu_state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    element = dms.create_element(Keeper, "Keeper")
    path = element_path(dmemu_state_dir, element)
    temporary = path.with_name(f".{path.name}.tmp")
    element.set(SETPOINT, 11)
    element.save()
    element.set(SETPOINT, 12)
    events: list[tuple[str, str]] = []
    opened: dict[int, str] = {}
    real_open, real_write, real_fsync, real_replace = os.open, os.write, os.fsync, os.replace

    def recording_open(file: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        descriptor = real_open(file, flags, *args, **kwargs)
        opened[descriptor] = str(file)
        events.append(("open", str(file)))
        return descriptor

    def recording_write(descriptor: int, data: Any) -> int:
        events.append(("write", opened.get(descriptor, "?")))
        assert b'"10":11' in path.read_bytes()  # the previous snapshot stays in place while writing
        return real_write(descriptor, data)

    def recording_fsync(descriptor: int) -> None:
        events.append(("fsync", opened.get(descriptor, "?")))
        real_fsync(descriptor)

    def recording_replace(source: Any, target: Any) -> None:
        events.append(("replace", f"{source} -> {target}"))
        real_replace(source, target)

    monkeypatch.setattr(os, "open", recording_open)
    monkeypatch.setattr(os, "write", recording_write)
    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(os, "replace", recording_replace)
    element.save()
    monkeypatch.undo()

    assert events[0] == ("open", str(temporary))
    assert set(events[1:-4]) == {("write", str(temporary))}
    assert events[-4:] == [
        ("fsync", str(temporary)),
        ("replace", f"{temporary} -> {path}"),
        ("open", str(path.parent)),
        ("fsync", str(path.parent)),  # the rename itself is made durable
    ]
    assert not temporary.exists()
    assert ElementStore(path).load().parameters[SETPOINT] == 12


@pytest.mark.parametrize(
    ("function", "failure"),
    [
        ("replace", OSError(errno.EXDEV, "Invalid cross-device link")),
        ("fsync", OSError(errno.EIO, "Input/output error")),
        ("write", OSError(errno.ENOSPC, "No space left on device")),
        ("open", PermissionError(errno.EACCES, "Permission denied")),
    ],
)
def test_a_failed_write_keeps_the_previous_snapshot_and_is_retried(
    dms: DataMinerSystem, dmemu_state_dir: Path, dmemu_clock: VirtualClock, monkeypatch: pytest.MonkeyPatch, function: str, failure: OSError
) -> None:
    element = dms.create_element(Keeper, "Keeper")
    path = element_path(dmemu_state_dir, element)
    element.set(SETPOINT, 1)
    dmemu_clock.advance(5)
    dms.flush()  # the tick's batch is written by the writer thread: wait for it
    previous = path.read_bytes()
    element.set(SETPOINT, 2)

    real = getattr(os, function)

    def failing(*args: Any, **kwargs: Any) -> Any:
        if str(args[0]).endswith(".tmp") or function in ("fsync", "write"):
            raise failure
        return real(*args, **kwargs)

    monkeypatch.setattr(os, function, failing)
    with pytest.raises(StateFileError) as raised:
        element.save()
    assert str(path) in str(raised.value)
    assert failure.strerror in str(raised.value)
    assert path.read_bytes() == previous
    assert not path.with_name(f".{path.name}.tmp").exists()  # the half-written temporary file is removed

    dmemu_clock.advance(5)  # the tick's batch fails the same way on the writer thread...
    reported = dms.flush()  # ...and the next flush, which waits for the writer, reports it
    monkeypatch.undo()
    assert reported and all(str(path) in str(error) for error in reported)
    assert any(str(path) in message for message in error_messages(element))
    assert path.read_bytes() == previous
    assert ElementStore(path).load().parameters[SETPOINT] == 1

    dmemu_clock.advance(5)  # the next batch writes the change that failed
    assert ElementStore(path).load().parameters[SETPOINT] == 2


def test_a_leftover_temporary_file_longer_than_the_new_snapshot_cannot_corrupt_it(tmp_path: Path) -> None:
    """A write killed half-way leaves its temporary file; the next, shorter write must not keep
    that file's tail (the temporary file is truncated when opened, not only overwritten)."""
    path = tmp_path / "elements" / "1-1.json"
    store = ElementStore(path)
    store.save({SETPOINT: 1}, {SAVED_ITEMS: [[f"k{i}", "a long row " * 20, i] for i in range(100)]})
    leftover = path.with_name(f".{path.name}.tmp")
    leftover.write_bytes(path.read_bytes())  # as a killed write of that big snapshot leaves it
    leftover_size = leftover.stat().st_size
    smaller = storage.ElementSnapshot({SETPOINT: 2}, {SAVED_ITEMS: [["k0", "short", 0]]})

    store.save(smaller.parameters, smaller.tables)

    assert store.load() == smaller  # not `corrupt: Extra data`, the leftover's tail after the new snapshot
    assert path.stat().st_size < leftover_size // 10
    assert not leftover.exists()


def test_a_snapshot_json_cannot_hold_is_refused_before_touching_the_file(tmp_path: Path) -> None:
    path = tmp_path / "elements" / "1-1.json"
    store = ElementStore(path)
    store.save({SETPOINT: 1}, {SAVED_ITEMS: [["a", "x", 1]]})
    previous = path.read_bytes()
    for bad in (object(), math.nan, {1, 2}):
        with pytest.raises(StateFileError) as raised:
            store.save({SETPOINT: bad}, {})
        assert str(path) in str(raised.value)
        assert path.read_bytes() == previous
    assert not path.with_name(".1-1.json.tmp").exists()
    assert store.load() == storage.ElementSnapshot({SETPOINT: 1}, {SAVED_ITEMS: [["a", "x", 1]]})


# -- values JSON cannot hold -----------------------------------------------------------------


def test_values_json_cannot_hold_never_get_into_saved_state(
    dms: DataMinerSystem, dmemu_state_dir: Path, dmemu_clock: VirtualClock
) -> None:
    element = dms.create_element(Keeper, "Keeper")
    element.set(FILL, 1)
    rows = element.table(SAVED_ITEMS).rows()
    with pytest.raises(InvalidValueError):
        element.set(SITE, object())
    element.set(TRY_BAD, 1)

    messages = [entry.message for entry in element.logs()]
    assert not [m for m in messages if "ACCEPTED" in m]
    refused = {}
    for name in ("fill_array", "fill_array_no_delete", "add_row", "set_row"):
        (refused[name],) = [m for m in messages if m.startswith(f"{name} refused: ")]
        assert "table 1000 'Saved Items'" in refused[name], name
    assert "row 1" in refused["fill_array"] and "1002 'Name'" in refused["fill_array"]
    assert "set_parameter status: invalid value" in messages
    assert "set_cell status: invalid value" in messages
    assert element.table(SAVED_ITEMS).rows() == rows  # nothing half-applied

    element.set(SETPOINT, 77)
    dmemu_clock.advance(5)
    assert not [m for m in error_messages(element) if "state file" in m]
    snapshot = saved_on_disk(dmemu_state_dir, element)
    assert snapshot.parameters[SETPOINT] == 77
    assert [row[0] for row in snapshot.tables[SAVED_ITEMS]] == ["k0", "k1", "k2"]


# NaN and inf cannot be held by a JSON state file: they are refused on the way in.
def test_an_infinite_parameter_value_cannot_break_later_flushes(
    dmemu_state_dir: Path, dmemu_clock: VirtualClock
) -> None:
    with DataMinerSystem(dmemu_state_dir, dmemu_clock) as dms:  # closed inside the test: close re-raises the save error
        element = dms.create_element(Keeper, "Keeper")
        try:
            element.set(OFFSET, math.inf)
        except InvalidValueError:
            pass
        element.set(SETPOINT, 5)
        dmemu_clock.advance(5)
        assert not [m for m in error_messages(element) if "state file" in m]
        assert saved_on_disk(dmemu_state_dir, element).parameters[SETPOINT] == 5


def test_non_finite_cells_cannot_break_later_flushes(dmemu_state_dir: Path, dmemu_clock: VirtualClock) -> None:
    with DataMinerSystem(dmemu_state_dir, dmemu_clock) as dms:  # closed inside the test: close re-raises the save error
        element = dms.create_element(Keeper, "Keeper")
        element.set(FILL_NON_FINITE, 1)
        element.set(SETPOINT, 5)
        dmemu_clock.advance(5)
        assert not [m for m in error_messages(element) if "state file" in m]
        assert saved_on_disk(dmemu_state_dir, element).parameters[SETPOINT] == 5


# -- corrupt and unreadable state files ------------------------------------------------------


def make_state(state_dir: Path) -> tuple[Path, Path]:
    """A closed DMS with one saved element: (registry path, element path)."""
    with DataMinerSystem(state_dir, VirtualClock()) as dms:
        element = dms.create_element(Keeper, "Keeper")
        element.set(SETPOINT, 3)
        element.set(FILL, 1)
        path = element_path(state_dir, element)
    assert path.exists()
    return state_dir / "dms.json", path


ELEMENT_DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "garbage bytes": lambda good: b"\x00\x9f\xff garbage \x00" * 10,
    "truncated": lambda good: good[: len(good) // 2],
    "empty": lambda good: b"",
    "not utf-8": lambda good: good.replace(b"item", b"\xff\xfe"),
    "a list": lambda good: b"[1, 2, 3]",
    "null": lambda good: b"null",
    "tables not objects": lambda good: b'{"parameters": [1, 2], "tables": {}}',
    "document id not a number": lambda good: b'{"parameters": {"one": {"values": {}}}, "tables": {}}',
    "document not an object": lambda good: b'{"parameters": {"1": 5}, "tables": {}}',
    "values not an object": lambda good: b'{"parameters": {"1": {"values": [10, 20]}}, "tables": {}}',
    "parameter id not a number": lambda good: b'{"parameters": {"1": {"values": {"ten": 1}}}, "tables": {}}',
    "rows missing": lambda good: b'{"parameters": {}, "tables": {"1": {"id": 1000}}}',
    "rows not a list": lambda good: b'{"parameters": {}, "tables": {"1": {"id": 1000, "rows": 5}}}',
    "row not a list": lambda good: b'{"parameters": {}, "tables": {"1": {"id": 1000, "rows": [5]}}}',
    "cell not a scalar": lambda good: b'{"parameters": {}, "tables": {"1": {"id": 1000, "rows": [["k", {"a": 1}, 1]]}}}',
}


@pytest.mark.parametrize("damage", list(ELEMENT_DAMAGE))
def test_a_corrupt_element_file_is_an_error_naming_it(dmemu_state_dir: Path, damage: str) -> None:
    _, path = make_state(dmemu_state_dir)
    broken = ELEMENT_DAMAGE[damage](path.read_bytes())
    path.write_bytes(broken)

    with pytest.raises(StateFileError) as raised:
        ElementStore(path).load()
    assert str(path) in str(raised.value)
    with pytest.raises(StateFileError) as raised:
        DataMinerSystem(dmemu_state_dir, VirtualClock())
    assert str(path) in str(raised.value)
    assert path.read_bytes() == broken  # nothing replaced it


def edit_record(change: Callable[[dict[str, Any]], None]) -> Callable[[bytes], bytes]:
    """Damage that keeps the file valid JSON and a tinydb document: one record field goes wrong."""

    def damage(good: bytes) -> bytes:
        document = json.loads(good)
        change(document["elements"]["1"])
        return json.dumps(document).encode()

    return damage


REGISTRY_DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "garbage bytes": lambda good: bytes(range(256)),
    "truncated": lambda good: good[: len(good) // 2],
    "empty": lambda good: b"",
    "a list": lambda good: b"[]",
    "elements not an object": lambda good: b'{"elements": [1]}',
    "record not an object": lambda good: b'{"elements": {"1": 5}}',
    "record id not a number": lambda good: json.dumps({"elements": {"x": json.loads(good)["elements"]["1"]}}).encode(),
    "record lacks fields": edit_record(lambda record: record.pop("element_id")),
    "agent id not a number": edit_record(lambda record: record.update(agent_id="one")),
    "name not a string": edit_record(lambda record: record.update(name=None)),
    "unknown state": edit_record(lambda record: record.update(state="Running")),
    "connection not an object": edit_record(lambda record: record.update(connection=[record["connection"]])),
    "bad connection field": edit_record(lambda record: record["connection"].update(hostname="x")),
    "protocol not importable": edit_record(lambda record: record.update(protocol="no_such_module_xyz:Keeper")),
}


@pytest.mark.parametrize("damage", list(REGISTRY_DAMAGE))
def test_a_corrupt_registry_is_an_error_naming_it(dmemu_state_dir: Path, damage: str) -> None:
    path, element_file = make_state(dmemu_state_dir)
    good = path.read_bytes()
    broken = REGISTRY_DAMAGE[damage](good)
    assert broken != good
    path.write_bytes(broken)
    element_bytes = element_file.read_bytes()

    with pytest.raises(StateFileError) as raised:
        DataMinerSystem(dmemu_state_dir, VirtualClock())
    assert str(path) in str(raised.value)
    assert path.read_bytes() == broken
    assert element_file.read_bytes() == element_bytes


@pytest.mark.parametrize("which", ["element", "registry"])
@pytest.mark.parametrize("how", ["a directory in its place", "a read error"])
def test_a_state_file_that_cannot_be_read_is_an_error_naming_it(
    dmemu_state_dir: Path, monkeypatch: pytest.MonkeyPatch, which: str, how: str
) -> None:
    """Runs as root too: a directory where the file should be, or a read that fails with EACCES."""
    registry, element_file = make_state(dmemu_state_dir)
    path = registry if which == "registry" else element_file
    if how == "a directory in its place":
        path.unlink()
        path.mkdir()
    else:
        real_read_bytes = Path.read_bytes

        def read_bytes(self: Path) -> bytes:
            if self == path:
                raise PermissionError(errno.EACCES, "Permission denied", str(self))
            return real_read_bytes(self)

        monkeypatch.setattr(Path, "read_bytes", read_bytes)
    with pytest.raises(StateFileError) as raised:
        DataMinerSystem(dmemu_state_dir, VirtualClock())
    assert str(path) in str(raised.value)
    monkeypatch.undo()
    assert path.is_dir() if how == "a directory in its place" else path.exists()


# -- the files are tinydb documents ----------------------------------------------------------


def test_state_files_are_tinydb_documents(dmemu_state_dir: Path) -> None:
    registry, element_file = make_state(dmemu_state_dir)
    before = (registry.read_bytes(), element_file.read_bytes())

    with TinyDB(element_file, access_mode="r") as database:
        parameters = database.table("parameters").all()
        assert len(parameters) == 1
        assert parameters[0]["values"] == {"10": 3, "12": 6, "14": 1, "15": 0, "16": "", "17": 0}
        (items,) = database.table("tables").search(Query().id == SAVED_ITEMS)
        assert items["rows"] == [["k0", "item 0 é☃", 3], ["k1", "item 1 é☃", 4.5], ["k2", "item 2 é☃", 6.0]]
        assert database.table("tables").search(Query().id == LIVE_ITEMS) == []

    with TinyDB(registry, access_mode="r") as database:
        (record,) = database.table("elements").search(Query().name == "Keeper")
        assert (record["agent_id"], record["element_id"], record["state"]) == (1, 1, "Active")
        assert record["protocol"].endswith(":Keeper")
        assert record["connection"]["port"] == 8080

    assert (registry.read_bytes(), element_file.read_bytes()) == before


def versioned_protocol(maximum: int) -> type[Protocol]:
    """The same protocol (same module:qualname) in two versions, the second with a narrower range."""
    return type(
        "Versioned",
        (Protocol,),
        {
            "__module__": __name__,
            "__qualname__": "Versioned",
            "name": "Versioned",
            "parameters": (Parameter(1, "Level", type=Number(0, maximum), write=True, save=True, default=0),),
        },
    )


def test_a_saved_value_the_protocol_no_longer_accepts_is_logged_with_the_file(dmemu_state_dir: Path) -> None:
    wide, narrow = versioned_protocol(100), versioned_protocol(10)
    with DataMinerSystem(dmemu_state_dir, VirtualClock(), protocols=[wide]) as dms:
        dms.create_element(wide, "Meter").set("Level", 50)
    with DataMinerSystem(dmemu_state_dir, VirtualClock(), protocols=[narrow]) as dms:
        meter = dms.element("Meter")
        assert meter.get("Level") == 0
        message = meter.logs(LogType.ERROR)[0].message
        assert str(element_path(dmemu_state_dir, meter)) in message and "50 is out of range" in message


# -- the clock on a reopened state directory ---------------------------------------------------


def strip_saved_times(state_dir: Path) -> None:
    """Make the state files look as they did before files kept the time they were saved at."""
    for path in state_dir.rglob("*.json"):
        document = json.loads(path.read_text())
        if document.pop(storage.SAVED_AT_TABLE, None) is not None:
            path.write_text(json.dumps(document))


def run_a_day_and_close(state_dir: Path) -> float:
    """A DMS that saves a value a day after the default start, then closes; answers that time."""
    clock = VirtualClock()
    with DataMinerSystem(state_dir, clock) as dms:
        element = dms.create_element(Keeper, "Keeper")
        clock.advance(86400)
        element.set(SETPOINT, 42)
        clock.advance(5)  # the value is written at the end of this tick
        return clock.now()


def test_a_clock_without_a_chosen_start_continues_after_the_saved_time(dmemu_state_dir: Path) -> None:
    saved_at = run_a_day_and_close(dmemu_state_dir)
    clock = VirtualClock()
    with DataMinerSystem(dmemu_state_dir, clock) as dms:
        assert clock.now() == saved_at  # not back at the default start
        assert dms.element("Keeper").get(SETPOINT) == 42


def test_the_registry_keeps_the_time_when_no_element_file_says_later(dmemu_state_dir: Path) -> None:
    clock = VirtualClock()
    with DataMinerSystem(dmemu_state_dir, clock) as dms:
        clock.advance(3600)
        dms.create_element(Ticker, "Ticker", start=False)  # only the registry is written
        clock.advance(1)  # at the end of this tick
        written_at = clock.now()
    assert RegistryStore(dmemu_state_dir / "dms.json").saved_at() == written_at
    again = VirtualClock()
    with DataMinerSystem(dmemu_state_dir, again):
        assert again.now() == written_at


def test_a_clock_started_earlier_on_purpose_keeps_its_time_with_a_warning(
    dmemu_state_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    saved_at = run_a_day_and_close(dmemu_state_dir)
    chosen = VirtualClock(saved_at - 3600)
    with DataMinerSystem(dmemu_state_dir, chosen):
        assert chosen.now() == saved_at - 3600
    assert f"state directory {dmemu_state_dir} was saved at 2026-01-02T00:00:05+00:00, later than its clock's time" in caplog.text
    caplog.clear()
    later = VirtualClock(saved_at + 60)  # a start after the saved time: nothing to say
    with DataMinerSystem(dmemu_state_dir, later):
        assert later.now() == saved_at + 60
    assert "later than its clock's time" not in caplog.text


def test_state_files_from_before_saved_times_were_kept_still_load(dmemu_state_dir: Path) -> None:
    run_a_day_and_close(dmemu_state_dir)
    strip_saved_times(dmemu_state_dir)
    clock = VirtualClock()
    with DataMinerSystem(dmemu_state_dir, clock) as dms:
        assert dms.element("Keeper").get(SETPOINT) == 42
        assert clock.now() == VirtualClock().now()  # nothing says when: the default start


def test_a_saved_time_that_is_no_time_names_the_file(dmemu_state_dir: Path) -> None:
    run_a_day_and_close(dmemu_state_dir)
    registry = dmemu_state_dir / "dms.json"
    document = json.loads(registry.read_text())
    document[storage.SAVED_AT_TABLE] = {"1": {"at": "yesterday"}}
    registry.write_text(json.dumps(document))
    with pytest.raises(StateFileError, match=f"state file {registry}: the time it was saved at is 'yesterday'"):
        DataMinerSystem(dmemu_state_dir, VirtualClock())


# -- the writer thread -----------------------------------------------------------------------
# A tick's batch hands encoded snapshots to one writer thread and goes on; whatever must be
# durable waits for it. The writer is held inside a write here by patching the os functions it
# calls (`held_writer`), so what is queued behind it is seen before anything more is written.

BATCHES_CHILD = '''
"""Hand batches to the writer while it is held inside a write, then wait for the parent's kill.

argv: state_dir, hold ("write": half the temporary file written; "replace": synced, not renamed).
"""
import os
import sys
import threading

from dmemu.protocol import VirtualClock

from dmemu.dms import AlarmTemplate, DataMinerSystem, Severity, Thresholds
from {module} import Bulk

state_dir, hold = sys.argv[1], sys.argv[2]
real_write, real_replace = os.write, os.replace
armed = False


def say(line):
    sys.stdout.write(line + "\\n")  # one write per line: two threads print
    sys.stdout.flush()


def held(where):
    say(f"in-write {{where}} {{threading.current_thread().name}}")
    sys.stdin.readline()  # the parent kills this process while it waits here
    os._exit(3)


def write(fd, data):
    if armed and hold == "write":
        real_write(fd, bytes(data[: len(data) // 2]))
        held(hold)
    return real_write(fd, data)


def replace(source, target):
    if armed and hold == "replace" and os.path.basename(target) == "1-1.json":
        held(hold)
    return real_replace(source, target)


os.write, os.replace = write, replace

clock = VirtualClock()
dms = DataMinerSystem(state_dir, clock)
element = dms.create_element(Bulk, "Bulk")
element.set("Fill Rows", 1)
element.set("Generation", 1)
dms.flush()  # generation 1 is on disk
say("ready")
armed = True
for generation in (2, 3, 4):
    element.set("Generation", generation)
    element.set_cell("Rows", "49999", "Counter", generation)
    clock.advance(1)  # the tick's batch is handed over: generation 2 is held, 3 and 4 queue behind it
    say(f"handed {{generation}}")
sys.stdin.readline()
os._exit(4)
'''


@pytest.mark.parametrize("hold_in", ["write", "replace"])
def test_a_kill_while_batches_wait_for_the_writer_leaves_the_last_written_snapshot(
    tmp_path: Path, dmemu_state_dir: Path, child_module: tuple[str, dict[str, str]], hold_in: str
) -> None:
    module, env = child_module
    script = tmp_path / "batches_child.py"
    script.write_text(BATCHES_CHILD.format(module=module), encoding="utf-8")
    child = subprocess.Popen(
        [sys.executable, str(script), str(dmemu_state_dir), hold_in],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path, text=True,
    )
    watchdog = threading.Timer(CHILD_TIMEOUT, child.kill)
    watchdog.start()
    try:
        assert child.stdout is not None
        lines = [child.stdout.readline().split()]
        assert lines[0] == ["ready"], lines
        while len(lines) < 5:  # the writer's hold and the clock thread's three batches, in any order
            lines.append(child.stdout.readline().split())
        child.kill()
        child.wait()
    finally:
        watchdog.cancel()
        if child.poll() is None:
            child.kill()
            child.wait()
        stderr = child.stderr.read() if child.stderr else ""
        for pipe in (child.stdin, child.stdout, child.stderr):
            if pipe is not None:
                pipe.close()
    # The clock thread went on handing batches over while the writer thread was held in a write.
    assert sorted(lines[1:]) == [["handed", "2"], ["handed", "3"], ["handed", "4"], ["in-write", hold_in, "dmemu", "state", "file", "writer"]], stderr
    path = dmemu_state_dir / "elements" / "1-1.json"
    assert assert_complete_snapshot_of(path) == 1  # the batches not written are lost, nothing is broken
    assert [r["name"] for r in RegistryStore(dmemu_state_dir / "dms.json").load()] == ["Bulk"]


def assert_complete_snapshot_of(path: Path) -> int:
    snapshot = ElementStore(path).load()
    generation = snapshot.parameters[10]
    rows = snapshot.tables[100]
    assert len(rows) == BULK_ROWS
    assert rows[-1] == ["49999", 0, "payload-49999"]
    return generation


@attrs.define
class HeldWriter:
    """The writer thread's first rename of a file named `name` sets `held` and waits for
    `release`; `written` lists every file the writer renamed into place, with its bytes."""

    name: str = "a.json"
    held: threading.Event = attrs.Factory(threading.Event)
    release: threading.Event = attrs.Factory(threading.Event)
    written: list[tuple[str, bytes]] = attrs.Factory(list)


@pytest.fixture
def held_writer(monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldWriter]:
    writer = HeldWriter()
    real_replace = os.replace

    def replace(source: Any, target: Any) -> None:
        if Path(target).name == writer.name and not writer.held.is_set():
            writer.held.set()
            writer.release.wait(CHILD_TIMEOUT)  # a watchdog only: the test releases it
        writer.written.append((Path(target).name, Path(source).read_bytes()))
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    yield writer
    writer.release.set()
    storage.wait_for_writes()


def test_a_newer_document_replaces_a_queued_one_of_the_same_file(tmp_path: Path, held_writer: HeldWriter) -> None:
    first, second = AtomicJSONStorage(tmp_path / "a.json"), AtomicJSONStorage(tmp_path / "b.json")
    failures: list[storage.HandedWrite] = []
    with storage.deferred_writes(failures.append):
        first.write_encoded('{"n":0}')
    assert held_writer.held.wait(CHILD_TIMEOUT)
    for n in (1, 2, 3):  # three batches while the writer is busy: only the newest is written
        with storage.deferred_writes(failures.append):
            second.write_encoded(f'{{"n":{n}}}')
    assert held_writer.written == []  # handed over, none written yet: the callers did not wait
    held_writer.release.set()
    storage.wait_for_writes()
    assert held_writer.written == [("a.json", b'{"n":0}'), ("b.json", b'{"n":3}')]
    assert failures == []
    assert json.loads((tmp_path / "b.json").read_text()) == {"n": 3}


def test_a_document_never_overtakes_a_registry_write_queued_before_it(tmp_path: Path, held_writer: HeldWriter) -> None:
    element, registry = AtomicJSONStorage(tmp_path / "x.json"), AtomicJSONStorage(tmp_path / "dms.json")
    registry.sync_at_once = True
    failures: list[storage.HandedWrite] = []
    with storage.deferred_writes(failures.append):
        AtomicJSONStorage(tmp_path / "a.json").write_encoded("{}")
    assert held_writer.held.wait(CHILD_TIMEOUT)
    with storage.deferred_writes(failures.append):
        element.write_encoded('{"n":1}')
        registry.write_encoded('{"r":1}')
    with storage.deferred_writes(failures.append):
        element.write_encoded('{"n":2}')  # its older document is queued before the registry's: not replaced
    held_writer.release.set()
    storage.wait_for_writes()
    assert held_writer.written == [("a.json", b"{}"), ("x.json", b'{"n":1}'), ("dms.json", b'{"r":1}'), ("x.json", b'{"n":2}')]
    assert failures == []


def test_the_registry_is_durable_before_the_file_of_an_element_created_after_it(
    dms: DataMinerSystem, dmemu_state_dir: Path, dmemu_clock: VirtualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    dms.create_element(Keeper, "Keeper")
    dms.flush()
    events: list[tuple[str, str]] = []
    real_replace, real_fsync_directory = os.replace, storage._fsync_directory
    monkeypatch.setattr(os, "replace", lambda source, target: (events.append(("replace", Path(target).name)), real_replace(source, target))[1])
    monkeypatch.setattr(storage, "_fsync_directory", lambda directory: (events.append(("sync", directory.name)), real_fsync_directory(directory))[1])
    created = dms.create_element(Keeper, "Created")
    dmemu_clock.advance(1)  # the batch: the registry naming it, then its first file
    assert dms.flush() == []
    created_file = element_path(dmemu_state_dir, created).name
    assert events.index(("replace", "dms.json")) < events.index(("sync", dmemu_state_dir.name)) < events.index(("replace", created_file))


def saved_setpoint_on_disk(path: Path) -> Any:
    """What the file holds now, read without waiting for the writer (as another process would)."""
    return json.loads(path.read_bytes())["parameters"]["1"]["values"][str(SETPOINT)]


def test_a_batch_does_not_wait_for_the_disk_and_flush_waits_for_everything_handed_over(
    dms: DataMinerSystem, dmemu_state_dir: Path, dmemu_clock: VirtualClock, held_writer: HeldWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    keeper = dms.create_element(Keeper, "Keeper")
    other = dms.create_element(Keeper, "Other")
    dms.flush()
    path, other_path = element_path(dmemu_state_dir, keeper), element_path(dmemu_state_dir, other)
    held_writer.name = path.name
    keeper.set(SETPOINT, 42)
    other.set(SETPOINT, 43)
    dmemu_clock.advance(1)  # the batch is handed over and the clock's thread goes on
    assert held_writer.held.wait(CHILD_TIMEOUT)
    assert saved_setpoint_on_disk(path) == 0  # held in its rename
    real_wait_for = storage._writer.wait_for

    def waiting(position: int) -> None:
        held_writer.release.set()  # someone waits for the writer: let it go on
        real_wait_for(position)

    monkeypatch.setattr(storage._writer, "wait_for", waiting)
    assert dms.flush() == []
    assert (saved_setpoint_on_disk(path), saved_setpoint_on_disk(other_path)) == (42, 43)


def test_a_failed_write_of_a_service_file_is_reported_by_the_next_flush_and_retried(
    dms: DataMinerSystem, dmemu_state_dir: Path, dmemu_clock: VirtualClock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    keeper = dms.create_element(Keeper, "Keeper")
    dms.flush()
    alarms = dmemu_state_dir / "alarms.json"
    real_replace = os.replace

    def failing(source: Any, target: Any) -> None:
        if Path(target) == alarms:
            raise OSError(errno.EIO, "Input/output error")
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", failing)
    dms.alarms.assign_template(keeper, AlarmTemplate("Keeper", {"Setpoint": Thresholds(high={Severity.MAJOR: 80})}))
    dmemu_clock.advance(1)  # the batch's write of alarms.json fails on the writer thread
    reported = dms.flush()
    monkeypatch.undo()
    assert reported and all(str(alarms) in str(error) and "Input/output error" in str(error) for error in reported)
    assert any(str(alarms) in record.getMessage() for record in caplog.records if record.name == "dmemu.dms")
    assert not alarms.exists() or "Keeper" not in alarms.read_text()

    dmemu_clock.advance(1)  # the next batch writes it again
    assert dms.flush() == []
    assert "Keeper" in alarms.read_text()


def test_a_failed_write_is_not_retried_over_a_newer_document_of_its_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    held, release = threading.Event(), threading.Event()
    failing = {"b.json"}
    real_replace = os.replace

    def replace(source: Any, target: Any) -> None:
        name = Path(target).name
        if name == "a.json":
            held.set()
            release.wait(CHILD_TIMEOUT)  # a watchdog only: the test releases it
        if name in failing:
            failing.discard(name)
            raise OSError(errno.EIO, "Input/output error")
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    first, second, third = (AtomicJSONStorage(tmp_path / name) for name in ("a.json", "b.json", "c.json"))
    failures: list[storage.HandedWrite] = []
    try:
        with storage.deferred_writes(failures.append):
            first.write_encoded("{}")
        assert held.wait(CHILD_TIMEOUT)
        with storage.deferred_writes(failures.append):
            second.write_encoded('{"n":1}')  # fails
        with storage.deferred_writes(failures.append):
            third.write_encoded("{}")
            second.write_encoded('{"n":2}')  # queued behind a file of its own batch: not replacing n=1
    finally:
        release.set()
        storage.wait_for_writes()
    assert [(write.path.name, write.payload) for write in failures] == [("b.json", b'{"n":1}')]
    assert "Input/output error" in str(failures[0].error)
    failures[0].retry()  # as the DMS does with the next batch: the newer document stays
    storage.wait_for_writes()
    assert json.loads((tmp_path / "b.json").read_text()) == {"n": 2}


def test_the_batch_gap_is_a_number_of_seconds(dmemu_state_dir: Path, dmemu_clock: VirtualClock) -> None:
    for gap in (-1, math.nan, math.inf, True, "1"):
        with pytest.raises(ValueError, match="batch_gap_seconds"):
            DataMinerSystem(dmemu_state_dir, dmemu_clock, batch_gap_seconds=gap)  # type: ignore[arg-type]
