"""Shared fixtures: a DataMiner System on a virtual clock in a temporary state directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dmemu.protocol import DataMinerSystem, VirtualClock


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "dms-state"


@pytest.fixture
def dms(state_dir: Path, clock: VirtualClock) -> Iterator[DataMinerSystem]:
    system = DataMinerSystem(state_dir, clock)
    yield system
    system.close()
