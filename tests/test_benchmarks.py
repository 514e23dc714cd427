"""Every benchmark still runs, at a tiny size, and prints its figures in the agreed form.

The figures themselves are not judged here (a tiny size on a shared machine says nothing about
speed; the benchmarks are run at their default size for that): this catches a benchmark broken
by a change elsewhere, which otherwise goes unseen until someone next measures.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = sorted(path for path in (ROOT / "benchmarks").glob("*.py") if not path.name.startswith("remote_"))
# "<figure>: ratio <x> (target <= <t>)", optionally followed by the spread over rounds
FIGURE = re.compile(r"^(?P<figure>[^#:][^:]*): ratio (?P<ratio>\d+(\.\d+)?) \(target (<=|>=) (?P<target>\d+(\.\d+)?)\)( \[.*\])?$")


def test_the_benchmarks_are_found() -> None:
    assert len(BENCHMARKS) >= 5, [path.name for path in BENCHMARKS]


@pytest.mark.parametrize("script", BENCHMARKS, ids=[path.stem for path in BENCHMARKS])
def test_benchmark_runs_at_a_tiny_size(script: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    finished = subprocess.run(
        [sys.executable, str(script), "--scale", "0.01", "--repeat", "1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert finished.returncode == 0, finished.stderr[-3000:]
    lines = [line for line in finished.stdout.splitlines() if line.strip() and not line.startswith("#")]
    assert lines, f"{script.name} printed no figure:\n{finished.stdout}"
    badly_formed = [line for line in lines if not FIGURE.match(line)]
    assert not badly_formed, f"{script.name}: lines not in the form '<figure>: ratio <x> (target <= <t>)': {badly_formed}"
