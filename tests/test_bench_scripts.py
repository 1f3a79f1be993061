import py_compile
from pathlib import Path

import pytest

BENCH = sorted((Path(__file__).resolve().parent.parent / "bench").glob("*.py"))


def test_there_is_a_benchmark_for_each_issue():
    assert {p.stem for p in BENCH} >= {"sync", "queue", "index", "builder", "pages_bench"}


@pytest.mark.parametrize("script", BENCH, ids=lambda p: p.name)
def test_benchmark_scripts_compile(script):
    py_compile.compile(str(script), doraise=True)
