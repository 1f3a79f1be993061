import io
import shutil
import subprocess

import pytest

from lib import elfarm
from tests.armelf import (
    ARMV6,
    ARMV6_VFPV3,
    ARMV7_NEON,
    ARMV7_VFPV3,
    arm_wheel,
    compile_so,
    needs_cross_compiler,
)


@needs_cross_compiler
@pytest.mark.parametrize("flags, attributes, runs", [
    (ARMV6, (6, 2, 0), True),  # v6, VFPv2, no NEON: a Pi Zero runs it
    (ARMV7_NEON, (10, 3, 1), False),
    (ARMV7_VFPV3, (10, 4, 0), False),  # no NEON, but ARMv7 and VFPv3-D16
    (ARMV6_VFPV3, (6, 3, 0), False),  # ARMv6, but VFPv3
])
def test_reads_the_arm_attributes_of_real_objects(tmp_path, flags, attributes, runs):
    data = compile_so(tmp_path, "m", flags)
    found = elfarm.arm_attributes(io.BytesIO(data))
    assert (found.cpu_arch, found.fp_arch, found.simd_arch) == attributes
    assert found.runs_on_armv6 is runs
    assert elfarm.object_runs_on_armv6(io.BytesIO(data)) is runs


@needs_cross_compiler
def test_a_wheel_runs_on_armv6_only_when_every_object_does(tmp_path):
    v6, v7 = compile_so(tmp_path, "v6", ARMV6), compile_so(tmp_path, "v7", ARMV7_NEON)
    good = tmp_path / "good.whl"
    good.write_bytes(arm_wheel("demo", "1.0", "cp311-cp311-linux_armv7l",
                               {"_a.so": v6, "sub/_b.cpython-311-arm-linux-gnueabihf.so": v6,
                                "README.txt": b"text, not ELF"}).content)
    mixed = tmp_path / "mixed.whl"
    # The NEON object hides under a name that does not say .so: found by its magic.
    mixed.write_bytes(arm_wheel("demo", "1.0", "cp311-cp311-linux_armv7l",
                                {"_a.so": v6, "libs/helper.bin": v7}).content)
    assert elfarm.first_non_armv6_object(good) is None and elfarm.wheel_runs_on_armv6(good)
    assert elfarm.first_non_armv6_object(mixed) == "demo/libs/helper.bin"
    assert not elfarm.wheel_runs_on_armv6(mixed)


def test_a_wheel_without_compiled_code_runs_anywhere(tmp_path):
    path = tmp_path / "pure.whl"
    path.write_bytes(arm_wheel("demo", "1.0", "py3-none-linux_armv7l", {}).content)
    assert elfarm.wheel_runs_on_armv6(path)


@pytest.mark.skipif(not shutil.which("gcc"), reason="needs gcc")
def test_objects_that_are_not_arm_or_not_whole_are_not_armv6(tmp_path):
    source = tmp_path / "x.c"
    source.write_text("int f(void) { return 1; }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(tmp_path / "x.so"), str(source)],
                   check=True)
    native = (tmp_path / "x.so").read_bytes()
    assert elfarm.arm_attributes(io.BytesIO(native)) is None  # x86-64, say
    assert not elfarm.object_runs_on_armv6(io.BytesIO(native))
    assert not elfarm.object_runs_on_armv6(io.BytesIO(native[:64]))  # cut short
    assert not elfarm.object_runs_on_armv6(io.BytesIO(b"\x7fELF" + b"\x00" * 10))
