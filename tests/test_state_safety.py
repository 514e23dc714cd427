"""State that must never be lost: saves while an element is always busy, registries that lost
their elements, saved rows a new protocol version refuses, two systems on one directory, and
missing element files.

Tests on the wall clock never assert on durations: they wait for a condition with a generous
deadline, so a broken engine fails the test after the deadline instead of hanging it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dmemu.dms import DataMinerSystem
from dmemu.protocol import Number, Page, Parameter, Protocol, QAction, Timer
from dmemu.protocol.storage import ElementStore, element_path

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
