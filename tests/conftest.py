"""Fixtures the simulator tests share (a test module's own fixture of the same name wins)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from simulated_time import FakeTime


@pytest.fixture
def now() -> FakeTime:
    return FakeTime()


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.trust_env = False  # loopback only, whatever the environment's proxies
        yield session
