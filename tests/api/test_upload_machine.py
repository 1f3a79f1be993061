"""A wheel's compiled code must be for the machine its builder said it builds for
(lib/elfmachine.py, builds.wheels.check_machine): an x86_64 object from a builder that
claimed linux_armv7l is refused at upload, with a reason, and nothing is kept."""
import shutil
import subprocess

import pytest

from builds import storage
from builds.models import Upload
from lib import elfmachine
from tests.armelf import ARMV6, arm_wheel, compile_so, needs_cross_compiler

pytestmark = pytest.mark.django_db
NAME = "foo_bar-1.0-cp311-cp311-linux_armv7l.whl"


def native_so(directory, compiler):
    path = shutil.which(compiler)
    if path is None:
        pytest.skip(f"needs {compiler}")
    source = directory / "native.c"
    source.write_text("int add(int a, int b) { return a + b; }\n")
    out = directory / f"{compiler}.so"
    subprocess.run([path, "-shared", "-fPIC", "-nostdlib", "-o", str(out), str(source)],
                   check=True, capture_output=True)
    return out.read_bytes()


def claim_as(api, platform):
    response = api.claim(platform=platform)
    assert response.status_code == 200, response.content
    return response.json()["build_id"]


@pytest.mark.parametrize("compiler, what", [
    ("gcc", "64-bit x86-64"),  # this machine's: x86_64 in CI
    ("aarch64-linux-gnu-gcc", "64-bit AArch64"),
])
def test_code_for_another_machine_than_the_claimed_platform_is_refused(
        api, job, data_dir, tmp_path, compiler, what):
    build_id = claim_as(api, "linux_armv7l")
    data = native_so(tmp_path, compiler)
    if elfmachine.header_machine(data[:20]) == elfmachine.MACHINES["armv7l"]:
        pytest.skip("this machine is 32-bit ARM")
    wheel = arm_wheel("Foo_Bar", "1.0", "cp311-cp311-linux_armv7l", {"_speed.so": data})

    response = api.upload(build_id, NAME, wheel.content)

    assert response.status_code == 400
    assert response.json() == {"detail": (
        f"{NAME}: Foo_Bar/_speed.so is {what} code, but this builder builds for linux_armv7l")}
    assert not Upload.objects.exists()
    assert not (storage.incoming_dir(build_id) / NAME).exists()


@needs_cross_compiler
def test_arm_code_from_an_armv7l_builder_is_taken(api, job, data_dir, tmp_path):
    build_id = claim_as(api, "linux_armv7l")
    wheel = arm_wheel("Foo_Bar", "1.0", "cp311-cp311-linux_armv7l",
                      {"_speed.so": compile_so(tmp_path, "v6", ARMV6)})
    assert api.upload(build_id, NAME, wheel.content).status_code == 201
    assert Upload.objects.get().filename == NAME


def test_a_builder_that_named_no_platform_is_held_to_the_wheels_own(api, job, data_dir,
                                                                     tmp_path):
    build_id = claim_as(api, "")
    wheel = arm_wheel("Foo_Bar", "1.0", "cp311-cp311-linux_armv7l",
                      {"_speed.so": native_so(tmp_path, "gcc")})
    response = api.upload(build_id, NAME, wheel.content)
    assert response.status_code == 400
    assert "but this builder builds for linux_armv7l" in response.json()["detail"]
    assert not Upload.objects.exists()


@pytest.mark.parametrize("platform, machine", [
    ("linux_armv7l", (40, 1)), ("linux_armv6l", (40, 1)),
    ("manylinux_2_36_armv7l", (40, 1)), ("manylinux2014_aarch64", (183, 2)),
    ("linux_x86_64", (62, 2)), ("musllinux_1_2_x86_64", (62, 2)),
    ("manylinux_2_17_x86_64.manylinux2014_x86_64", (62, 2)),
    ("any", None), ("macosx_11_0_arm64", None), ("", None),
])
def test_platform_tags_name_their_machine(platform, machine):
    assert elfmachine.platform_machine(platform) == machine
