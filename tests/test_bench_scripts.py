"""Each bench script starts: it imports what it measures (so a moved module breaks this
test, not the next person's measurement) and parses its arguments."""
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = sorted((Path(__file__).resolve().parent.parent / "bench").glob("*.py"))


def test_there_is_a_benchmark_for_each_issue():
    assert {p.stem for p in BENCH} >= {"sync", "queue", "index", "builder", "pages_bench"}


@pytest.mark.parametrize("script", BENCH, ids=lambda p: p.name)
def test_benchmark_scripts_start(script):
    run = subprocess.run([sys.executable, str(script), "--help"], capture_output=True,
                         text=True, timeout=60, cwd=script.parent.parent)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("usage:"), run.stdout
