"""The simulators' clock as the simulator tests move it by hand."""

from __future__ import annotations

import datetime as dt

START = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc).timestamp()


class FakeTime:
    """The simulated clock, moved by the test."""

    def __init__(self, now: float = START) -> None:
        self.value = now

    def __call__(self) -> float:
        return self.value
