import os
import platform
import sys

import pytest

from piwheels_builder import identity


@pytest.mark.parametrize("sysconfig_platform, pointer_bytes, expected", [
    ("linux-armv7l", 4, "linux_armv7l"),
    ("linux-armv6l", 4, "linux_armv6l"),
    ("linux-aarch64", 8, "linux_aarch64"),
    ("linux-aarch64", 4, "linux_armv7l"),  # 32-bit Raspberry Pi OS on a 64-bit kernel
    ("linux-x86_64", 8, "linux_x86_64"),
    ("linux-x86_64", 4, "linux_i686"),
    ("macosx-11.0-arm64", 8, "macosx_11_0_arm64"),
])
def test_platform_tag_is_normalised_like_wheel_tags(sysconfig_platform, pointer_bytes, expected):
    assert identity.platform_tag(sysconfig_platform, pointer_bytes) == expected


def test_abi_tag_of_this_cpython():
    assert identity.abi_tag() == "cp{}{}".format(*sys.version_info[:2])


def test_os_name_reads_pretty_name(tmp_path):
    release = tmp_path / "os-release"
    release.write_text(
        'NAME="Raspbian GNU/Linux"\nPRETTY_NAME="Raspbian GNU/Linux 12 (bookworm)"\nID=raspbian\n'
    )
    assert identity.os_name(str(release)) == "Raspbian GNU/Linux 12 (bookworm)"


def test_os_name_without_os_release_falls_back_to_platform(tmp_path):
    assert identity.os_name(str(tmp_path / "missing")) == platform.platform()


def test_detect_describes_this_machine_and_takes_overrides():
    # Compared with what other code says of this machine, not with the calls detect() makes.
    import os
    import sysconfig

    from packaging.tags import sys_tags

    found = identity.detect()
    assert found.abi == next(iter(sys_tags())).abi
    bits = 64 if sys.maxsize > 2**32 else 32
    expected_platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    if expected_platform == "linux_x86_64" and bits == 32:
        expected_platform = "linux_i686"
    assert found.platform == expected_platform
    assert found.python_version == "{}.{}.{}".format(*sys.version_info[:3])
    assert found.os
    codename = ""
    if os.path.exists("/etc/os-release"):
        for line in open("/etc/os-release"):
            if line.startswith("VERSION_CODENAME="):
                codename = line.split("=", 1)[1].strip().strip('"')
    if codename:
        assert found.os_release == codename
    libc = platform.libc_ver()
    if libc[0] == "glibc":
        assert found.glibc == ".".join(libc[1].split(".")[:2])
    forced = identity.detect(abi="cp39", plat="linux_armv7l", os_release="bullseye",
                             glibc="2.31")
    assert (forced.abi, forced.platform) == ("cp39", "linux_armv7l")
    assert forced.as_claim() == {
        "abi": "cp39", "platform": "linux_armv7l",
        "python_version": platform.python_version(), "os": found.os,
        "os_release": "bullseye", "glibc": "2.31",
    }


@pytest.mark.parametrize("text, expected", [
    ('VERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=raspbian\n', "bookworm"),
    ('VERSION_CODENAME="bullseye"\n', "bullseye"),
    ('VERSION="11 (Bullseye)"\n', "bullseye"),  # no VERSION_CODENAME: from VERSION
    ('NAME="Arch Linux"\nID=arch\n', ""),  # rolling: no codename
    ("VERSION_CODENAME=no such name\n", ""),  # not one the farm accepts
])
def test_os_codename_reads_version_codename(tmp_path, text, expected):
    release = tmp_path / "os-release"
    release.write_text(text)
    assert identity.os_codename(str(release)) == expected


def test_os_codename_without_os_release_is_empty(tmp_path):
    assert identity.os_codename(str(tmp_path / "missing")) == ""


def test_glibc_version_is_the_running_glibc():
    lib, version = platform.libc_ver()
    if lib != "glibc":
        assert identity.glibc_version() == ""
    else:
        major, minor = version.split(".")[:2]
        assert identity.glibc_version() == f"{int(major)}.{int(minor)}"
        assert os.confstr("CS_GNU_LIBC_VERSION") == f"glibc {identity.glibc_version()}"


def test_probe_of_another_python_agrees_with_packaging():
    # The same interpreter seen from outside (as --python sees it) gives the same answers
    # as packaging's tags and the version this process reports.
    from packaging.tags import sys_tags

    abi, plat, version = identity.probe(sys.executable)
    assert abi == next(iter(sys_tags())).abi
    assert plat == identity.detect().platform
    assert version == "{}.{}.{}".format(*sys.version_info[:3])
