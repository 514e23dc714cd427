"""The examples run as a user would run them, and the command line answers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dmemu import __version__
from dmemu.cli import main
from dmemu.protocol import DataMinerSystem, VirtualClock

ROOT = Path(__file__).resolve().parents[1]


def test_tiny_poller_example_prints_its_table():
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "run_tiny_poller.py")], capture_output=True, text=True, timeout=60, check=True
    )
    lines = result.stdout.splitlines()
    assert lines[0] == "Tiny Poller 1: 5 items, last HTTP status 200"
    assert [line.split()[0] for line in lines[1:]] == [f"item-{n}" for n in range(1, 6)]


def test_inventory_example_builds_the_cache_and_follows_a_day_of_changes():
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "inventory.py"), "--services", "300", "--carriers", "60", "--resources", "200"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    lines = result.stdout.splitlines()
    assert lines[0] == "SES Inventory: cache built at 2026-01-01T00:00:00Z"
    assert [line.split()[0] for line in lines[1:4]] == ["Services", "Carriers", "Resources"]
    assert all(line.endswith(": OK") for line in lines[1:4])
    assert [line.split(":")[0] for line in lines if not line.startswith(" ")][1:4] == ["Services", "Carriers", "Resources"]
    assert lines[-1].startswith("After a day: 72 update requests, last cycle 2026-01-02T00:00:00Z")
    assert result.stderr == ""


def test_cli_lists_the_elements_of_a_state_directory(tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    from tiny_poller import TinyPoller

    with DataMinerSystem(tmp_path, VirtualClock()) as dms:
        dms.create_element(TinyPoller, "Poller A", start=False)
        dms.create_element(TinyPoller, "Poller B", start=False).start()
    assert main(["elements", "--state", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["Poller", "A", "1/1", "Stopped", "tiny_poller:TinyPoller"]
    assert out[1].split()[2:4] == ["1/2", "Active"]


def test_cli_errors_are_one_line_with_a_non_zero_exit(tmp_path, capsys):
    assert main(["elements", "--state", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds no DataMiner System" in err
    (tmp_path / "dms.json").write_text("{broken")
    assert main(["elements", "--state", str(tmp_path)]) == 2
    assert "dms.json is corrupt" in capsys.readouterr().err


def test_cli_version_through_the_console_script():
    console_script = Path(sys.executable).parent / "dmemu"  # installed next to this Python by pip
    result = subprocess.run([str(console_script), "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == f"dmemu {__version__}"
