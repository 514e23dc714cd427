"""State that must never be lost: saves while an element is always busy, registries that lost
their elements, saved rows a new protocol version refuses, two systems on one directory, and
missing element files.

Tests on the wall clock never assert on durations: they wait for a condition with a generous
deadline, so a broken engine fails the test after the deadline instead of hanging it.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dmemu.dms import DataMinerSystem, DuplicateElementError
from dmemu.protocol import (
    Column,
    Discrete,
    LogType,
    Number,
    Page,
    Parameter,
    Protocol,
    QAction,
    StateFileError,
    String,
    Table,
    Timer,
    VirtualClock,
)
from dmemu.protocol.storage import REGISTRY_FILE, ElementStore, element_path

DEADLINE = 20.0  # seconds a condition on the wall clock may take before the test fails


def wait_until(condition: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"not within {DEADLINE} s: {what}")
        time.sleep(0.01)


def saved_value(state_dir: Path, ids: tuple[int, int], pid: int) -> Any:
    return ElementStore(element_path(state_dir, *ids)).load().parameters.get(pid)


# -- 1. a busy element never stops the saves --------------------------------------------------

device_released = threading.Event()


def poll_slow_device(protocol: Any) -> None:
    """A poll slower than its timer: the element's queue is never idle while it runs."""
    protocol.set_parameter("Polls", protocol.get_parameter("Polls") + 1)
    device_released.wait(0.2)


class SlowPoller(Protocol):
    name = "Slow Poller"
    pages = (Page("General"),)
    parameters = (Parameter(10, "Polls", type=Number(), default=0, save=True, page="General"),)
    timers = (Timer(1, seconds=0.05, qactions=(100,)),)
    qactions = (QAction(100, poll_slow_device),)


class Setting(Protocol):
    name = "Setting"
    pages = (Page("General"),)
    parameters = (Parameter(10, "Level", type=Number(), default=0, write=True, save=True, page="General"),)


def test_a_busy_element_holds_up_no_save_and_is_saved_between_its_qactions(tmp_path: Path) -> None:
    device_released.clear()
    dms = DataMinerSystem(tmp_path, autosave_seconds=0.05)  # the wall clock: timers on workers
    try:
        slow = dms.create_element(SlowPoller, "Slow")
        other = dms.create_element(Setting, "Other")
        wait_until(lambda: slow.get("Polls") >= 2, "the slow element polls")
        other.set("Level", 42)
        # Another element's user set reaches the disk while the slow one is still busy...
        wait_until(lambda: saved_value(tmp_path, other.ids, 10) == 42, "the other element's set is saved")
        # ... and so do the slow element's own values, taken between its QActions.
        polls_now = slow.get("Polls")
        wait_until(lambda: (saved_value(tmp_path, slow.ids, 10) or 0) >= polls_now, "the busy element is saved")
        assert slow._queue.pending or slow._queue.lock.locked()  # it never went idle meanwhile
    finally:
        device_released.set()
        dms.close()
    assert saved_value(tmp_path, slow.ids, 10) == slow.get("Polls")


# -- 2. a registry that lost its elements ------------------------------------------------------


class Meter(Protocol):
    name = "Meter"
    pages = (Page("General"),)
    parameters = (Parameter(10, "Level", type=Number(), default=0, write=True, save=True, page="General"),)


def damage_registry(state_dir: Path, how: str) -> None:
    registry = state_dir / REGISTRY_FILE
    if how == "gone":
        registry.unlink()
    else:
        registry.write_text(how, encoding="utf-8")


@pytest.mark.parametrize("how", ["gone", "{}", '{"elements": {}}'])
def test_element_files_the_registry_does_not_name_are_reported_and_never_taken_over(
    tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    with DataMinerSystem(tmp_path, VirtualClock()) as dms:
        dms.create_element(Meter, "Meter").set("Level", 7)
    orphan = element_path(tmp_path, 1, 1)
    kept = orphan.read_bytes()
    damage_registry(tmp_path, how)
    with caplog.at_level(logging.WARNING, logger="dmemu.dms"), DataMinerSystem(tmp_path, VirtualClock()) as dms:
        assert dms.elements == []
        assert dms.unregistered_files == (orphan,)
        assert any(str(orphan) in record.getMessage() and "does not name" in record.getMessage() for record in caplog.records)
        again = dms.create_element(Meter, "Meter")
        assert again.ids == (1, 2)  # the lost element's id is not given out again
        with pytest.raises(DuplicateElementError, match=f"{orphan}.*kept"):
            dms.create_element(Meter, "Meter 1", element_id=1)
        again.set("Level", 8)
    assert orphan.read_bytes() == kept
    assert saved_value(tmp_path, (1, 1), 10) == 7


# -- 3. saved rows a new protocol version refuses -----------------------------------------------


def links_protocol(states: tuple[str, ...]) -> type[Protocol]:
    """The same protocol (same module:qualname) in versions with other discrete link states."""
    return type(
        "Links",
        (Protocol,),
        {
            "__module__": __name__,
            "__qualname__": "Links",
            "name": "Links",
            "pages": (Page("General"),),
            "parameters": (Parameter(10, "Label", type=String(), default="", write=True, save=True, page="General"),),
            "tables": (
                Table(1000, "Links", save=True, page="General", columns=(
                    Column(1001, "Key", key=True),
                    Column(1002, "State", type=Discrete({state: state for state in states})),
                    Column(1003, "Speed", type=Number()),
                )),
            ),
        },
    )


def fill_links(protocol: Any) -> None:
    protocol.fill_array("Links", [["a", "Up", 1], ["b", "Testing", 2], ["c", "Down", 3]])


def test_one_refused_saved_row_drops_that_row_only_and_is_kept_aside(tmp_path: Path) -> None:
    old = links_protocol(("Up", "Down", "Testing"))
    new = links_protocol(("Up", "Down"))  # the next version drops "Testing"
    with DataMinerSystem(tmp_path, VirtualClock(), protocols=[old]) as dms:
        element = dms.create_element(old, "Links")
        element._queue.run(fill_links, element._facade, wait=True)
        element.save()
    with DataMinerSystem(tmp_path, VirtualClock(), protocols=[new]) as dms:
        element = dms.element("Links")
        assert element.table("Links").keys() == ["a", "c"]
        errors = [entry.message for entry in element.logs(LogType.ERROR)]
        assert any("row ignored" in message and "'Testing'" in message for message in errors)
        element.set("Label", "unrelated")  # the next save writes the two good rows, nothing less
    with DataMinerSystem(tmp_path, VirtualClock(), protocols=[old]) as dms:
        assert dms.element("Links").table("Links").keys() == ["a", "c"]
    aside = json.loads(element_path(tmp_path, 1, 1).with_name("1-1.set-aside.json").read_text(encoding="utf-8"))
    records = list(aside["set_aside"].values())
    assert [(record["table"], record["row"]) for record in records] == [(1000, ["b", "Testing", 2])]
    assert "Testing" in records[0]["reason"]


# -- 4. one DataMiner System per state directory ------------------------------------------------


def test_a_second_system_on_an_open_state_directory_is_refused(tmp_path: Path) -> None:
    with DataMinerSystem(tmp_path, VirtualClock()) as first:
        first.create_element(Meter, "Meter")
        with pytest.raises(StateFileError, match=f"{tmp_path}.*in use by another DataMiner System"):
            DataMinerSystem(tmp_path, VirtualClock())
        assert [element.name for element in first.elements] == ["Meter"]
    with DataMinerSystem(tmp_path, VirtualClock()) as second:  # free again once the first closed
        assert [element.name for element in second.elements] == ["Meter"]


def test_a_system_in_another_process_holds_its_directory_until_that_process_dies(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys\n"
            "from dmemu.dms import DataMinerSystem\n"
            "from dmemu.protocol import VirtualClock\n"
            f"dms = DataMinerSystem({str(tmp_path)!r}, VirtualClock())\n"
            "print('open', flush=True)\n"
            "sys.stdin.readline()\n"
        )],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "open\n"
        with pytest.raises(StateFileError, match=f"in use by another DataMiner System \\(process {child.pid}\\)"):
            DataMinerSystem(tmp_path, VirtualClock())
    finally:
        child.kill()
        child.wait()
    with DataMinerSystem(tmp_path, VirtualClock()):  # a killed system never locks its directory for good
        pass


# -- 5. a missing or empty element file is said ------------------------------------------------


@pytest.mark.parametrize("damage", ["gone", "{}"])
def test_a_missing_or_empty_element_file_is_logged_and_written_again(tmp_path: Path, damage: str) -> None:
    with DataMinerSystem(tmp_path, VirtualClock()) as dms:
        dms.create_element(Meter, "Meter")  # never set: its file still exists from creation
    path = element_path(tmp_path, 1, 1)
    assert path.exists()
    if damage == "gone":
        path.unlink()
    else:
        path.write_text(damage, encoding="utf-8")
    with DataMinerSystem(tmp_path, VirtualClock()) as dms:
        errors = [entry.message for entry in dms.element("Meter").logs(LogType.ERROR)]
        assert len(errors) == 1 and str(path) in errors[0] and "starts from its defaults" in errors[0]
    with DataMinerSystem(tmp_path, VirtualClock()) as dms:  # written again: said once
        assert dms.element("Meter").logs(LogType.ERROR) == []
