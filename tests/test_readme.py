"""The README's Python snippets run as written, in order, self-contained (their own device); its
pytest example passes under pytest, with the fixtures the installed plugin gives."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest_plugins = ["pytester"]

# The README's ```python blocks, in order of appearance.
SNIPPETS = ("declaration", "walk_through", "user_test", "serial", "simulators", "pytest_example", "service_problems", "telenet")


def python_snippets() -> dict[str, str]:
    found = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.DOTALL)
    assert len(found) == len(SNIPPETS), f"the README has {len(found)} python snippets; this test knows {SNIPPETS}"
    return dict(zip(SNIPPETS, found))


def test_the_readme_snippets_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # nothing may land in the current directory
    snippets = python_snippets()
    namespace = {"__name__": "readme"}  # self-contained: nothing given but what the README shows
    with monkeypatch.context() as proxied:
        proxied.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # BYPASS_PROXY is why it is not used
        exec(snippets["declaration"], namespace)
        exec(snippets["walk_through"], namespace)
        try:
            printed = capsys.readouterr().out.splitlines()
            assert printed[0] == "5"
            assert printed[1].startswith("['item-1', 'item-2', 'item-3', 'item-4', 'item-5'] {'ID': 'item-1', 'Name': 'Item 1'")
            assert (Path(namespace["state"]) / "dms.json").exists() and list(tmp_path.iterdir()) == []

            exec(snippets["user_test"], namespace)
            namespace["test_poller_fills_its_table"](tmp_path / "user-test")
        finally:
            namespace["device"].shutdown()
            namespace["device"].server_close()
            shutil.rmtree(namespace["state"])

    exec(snippets["serial"], {"__name__": "readme"})
    assert capsys.readouterr().out == "42.5 OK\n"
    exec(snippets["simulators"], {"__name__": "readme"})
    assert capsys.readouterr().out == "206 550 [206]\n"
    exec(snippets["service_problems"], {"__name__": "readme"})
    assert capsys.readouterr().out == "SP-0000001 INC0000001 2\n"
    exec(snippets["telenet"], {"__name__": "readme"})
    assert capsys.readouterr().out == "created MO-000001\nMO-000001 BRU-01/slot 1/port 1\n"


def test_the_readme_pytest_example_passes(pytester: pytest.Pytester):
    pytester.makepyfile(test_inventory=python_snippets()["pytest_example"])
    result = pytester.runpytest("--strict-markers", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
