"""Which upstream wheels install on the farm's targets (packaging.tags), and Requires-Python."""
import pytest

from lib.tags import abi_python, covering_wheel, python_excluded

ARMV7 = ["linux_armv7l"]
BOTH = ["linux_armv7l", "linux_aarch64"]
BULLSEYE = (2, 31)


@pytest.mark.parametrize("filenames, abi, platforms, expected", [
    (["six-1.16.0-py2.py3-none-any.whl"], "cp311", ARMV7, 0),
    (["x-1.0-py3-none-any.whl"], "pypy39_pp73", ARMV7, 0),
    (["x-1.0-cp311-cp311-manylinux_2_17_armv7l.manylinux2014_armv7l.whl"], "cp311", ARMV7, 0),
    (["x-1.0-cp38-abi3-manylinux_2_28_armv7l.whl"], "cp311", ARMV7, 0),
    (["x-1.0-cp37-cp37m-manylinux2014_armv7l.whl"], "cp37m", ARMV7, 0),
    # needs a newer glibc than Bullseye's 2.31
    (["x-1.0-cp311-cp311-manylinux_2_34_armv7l.whl"], "cp311", ARMV7, None),
    # abi3 does not serve a free-threaded build
    (["x-1.0-cp38-abi3-manylinux_2_28_armv7l.whl"], "cp313t", ARMV7, None),
    # another Python, another platform, an sdist-like name, musl
    (["x-1.0-cp310-cp310-manylinux_2_17_armv7l.whl"], "cp311", ARMV7, None),
    (["x-1.0-cp311-cp311-manylinux_2_17_aarch64.whl"], "cp311", ARMV7, None),
    (["x-1.0-cp311-cp311-musllinux_1_1_armv7l.whl"], "cp311", ARMV7, None),
    (["x-1.0-py2-none-any.whl"], "cp311", ARMV7, None),
    (["not-a-wheel.whl"], "cp311", ARMV7, None),
    # every target platform must be served, by one wheel or several
    (["x-1.0-cp311-cp311-manylinux_2_17_aarch64.whl"], "cp311", BOTH, None),
    (["x-1.0-cp311-cp311-manylinux_2_17_aarch64.whl",
      "x-1.0-cp311-cp311-manylinux_2_17_armv7l.whl"], "cp311", BOTH, 1),
    ([], "cp311", ARMV7, None),
])
def test_covering_wheel(filenames, abi, platforms, expected):
    found = covering_wheel(filenames, abi, platforms, BULLSEYE)
    assert found == (None if expected is None else filenames[expected])


@pytest.mark.parametrize("spec, abi, excluded", [
    (">=3.12", "cp311", True),
    ("<3", "cp311", True),
    ("!=3.11.*", "cp311", True),
    (">=3.11.2", "cp311", False),  # some 3.11 releases qualify
    ("<3.11.5", "cp311", False),
    (">=3.8", "cp311", False),
    ("", "cp311", False),
    ("not a specifier", "cp311", False),  # unreadable: let the build say
    (">=3.10", "cp39", True),
    (">=3.10", "pypy39_pp73", True),
])
def test_python_excluded(spec, abi, excluded):
    assert python_excluded(spec, abi) is excluded


def test_abi_python_reads_cpython_and_pypy_tags():
    assert abi_python("cp311") == ("cp", (3, 11))
    assert abi_python("cp37m") == ("cp", (3, 7))
    assert abi_python("cp313t") == ("cp", (3, 13))
    assert abi_python("pypy39_pp73") == ("pp", (3, 9))
    assert abi_python("none") is None
