"""repair.py: the policy chosen for a builder, and auditwheel's repair of a real wheel
(a C extension linking libyaml, built here with pip)."""
import sys
import zipfile

import pytest

from piwheels_builder import identity, repair


@pytest.mark.parametrize("arch, glibc, name", [
    ("armv7l", "2.36", "manylinux_2_36_armv7l"),  # Bookworm
    ("aarch64", "2.41", "manylinux_2_41_aarch64"),  # Trixie
    ("armv7l", "2.33", "manylinux_2_31_armv7l"),  # no 2.33 policy: the one below
    ("armv7l", "2.99", "manylinux_2_41_armv7l"),  # newer than any: the newest known
    ("armv7l", "2.5", None),  # older than every armv7l policy
    ("armv7l", "", None),  # not glibc
])
def test_the_policy_is_the_newest_not_newer_than_the_builders_glibc(arch, glibc, name):
    known = [(2, 17), (2, 31), (2, 34), (2, 36), (2, 41)]
    assert repair.policy_name(arch, glibc, known) == name


def test_auditwheels_own_policies_include_the_pis():
    assert (2, 36) in repair.known_policies("armv7l")
    assert (2, 36) in repair.known_policies("aarch64")
    assert repair.known_policies("armv6l") == []


@pytest.mark.parametrize("filename, tag", [
    ("foo-1.0-cp311-cp311-linux_armv7l.whl", "linux_armv7l"),
    ("foo-1.0-py3-none-any.whl", None),
    ("foo-1.0-cp311-cp311-manylinux_2_36_armv7l.whl", None),  # already named
])
def test_only_linux_wheels_are_repaired(filename, tag):
    assert repair.platform_wheel_tag(filename) == tag


def test_a_pure_wheel_is_left_alone(tmp_path):
    path = tmp_path / "foo-1.0-py3-none-any.whl"
    path.write_bytes(b"not even read")
    assert repair.repair(path, "2.36") == repair.Repaired(path, "")


def test_a_wheel_linking_libyaml_is_repaired_and_carries_it(yaml_wheel, tmp_path):
    wheel = tmp_path / yaml_wheel.name
    wheel.write_bytes(yaml_wheel.read_bytes())
    glibc = identity.glibc_version()
    plat = repair.policy_name("x86_64", glibc)
    result = repair.repair(wheel, glibc, strip=True)
    assert result.path.name == wheel.name.replace("linux_x86_64", plat)
    assert not wheel.exists()  # replaced by the repaired one
    (carried,) = repair.grafted_libraries(result.path)
    assert carried.startswith("libyaml-0-")
    assert result.note == f"repaired as {plat} (copied in {carried}, stripped)"
    with zipfile.ZipFile(result.path) as zf:
        assert f"Tag: cp3{sys.version_info[1]}-cp3{sys.version_info[1]}-{plat}" in zf.read(
            "yamlv-1.0.dist-info/WHEEL").decode()


def test_a_wheel_that_cannot_meet_the_policy_is_kept_with_the_reason(yaml_wheel, tmp_path):
    wheel = tmp_path / yaml_wheel.name
    wheel.write_bytes(yaml_wheel.read_bytes())
    # Built on glibc 2.36, it uses symbol versions manylinux_2_5 (glibc 2.5) lacks.
    result = repair.repair(wheel, "2.5")
    assert result.path == wheel and wheel.read_bytes() == yaml_wheel.read_bytes()
    assert result.note.startswith("not repaired for manylinux_2_5_x86_64: ")
    assert "too-recent versioned symbols" in result.note or "GLIBC" in result.note, result.note
