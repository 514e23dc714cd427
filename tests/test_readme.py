"""The README's Python snippets run as written, in order, against the example's device."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def python_snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.DOTALL)


def test_the_readme_snippets_run(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    monkeypatch.chdir(tmp_path)  # the walk-through keeps its state in ./state/
    from run_tiny_poller import running_device

    declaration, walk_through, user_test, simulators = python_snippets()
    with running_device() as device_port:
        namespace = {"device_port": device_port, "__name__": "readme"}
        exec(declaration, namespace)
        exec(walk_through, namespace)
        printed = capsys.readouterr().out.splitlines()
        assert printed[0] == "5"
        assert printed[1].startswith("['item-1', 'item-2', 'item-3', 'item-4', 'item-5'] {'ID': 'item-1', 'Name': 'Item 1'")
        assert (tmp_path / "state" / "dms.json").exists()

        exec(user_test, namespace)
        namespace["test_poller_fills_its_table"](tmp_path / "user-test")

    exec(simulators, {"__name__": "readme"})
    assert capsys.readouterr().out == "206 550 [206]\n"
