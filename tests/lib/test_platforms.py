import pytest

from lib import platforms


@pytest.mark.parametrize("filename, glibc, served", [
    # Every linux_<arch> wheel of a manylinux architecture, whatever its ABI.
    ("foo-1.0-cp311-cp311-linux_armv7l.whl", "2.36",
     "foo-1.0-cp311-cp311-manylinux_2_36_armv7l.whl"),
    ("foo-1.0-cp39-abi3-linux_armv7l.whl", "2.31", "foo-1.0-cp39-abi3-manylinux_2_31_armv7l.whl"),
    ("foo-1.0-py3-none-linux_aarch64.whl", "2.36", "foo-1.0-py3-none-manylinux_2_36_aarch64.whl"),
    ("foo-1.0-2-cp311-cp311-linux_armv7l.whl", "2.36",
     "foo-1.0-2-cp311-cp311-manylinux_2_36_armv7l.whl"),  # the build tag stays
    # A tag set: only its linux_ tag changes, no tag twice.
    ("foo-1.0-cp311-cp311-manylinux_2_17_armv7l.linux_armv7l.whl", "2.36",
     "foo-1.0-cp311-cp311-manylinux_2_17_armv7l.manylinux_2_36_armv7l.whl"),
    ("foo-1.0-cp311-cp311-linux_armv7l.linux_armv7l.whl", "2.36",
     "foo-1.0-cp311-cp311-manylinux_2_36_armv7l.whl"),
    # Kept: pure wheels, armv6l (pip and uv accept only linux_armv6l there), no glibc.
    ("foo-1.0-py3-none-any.whl", "2.36", "foo-1.0-py3-none-any.whl"),
    ("foo-1.0-cp311-cp311-linux_armv6l.whl", "2.36", "foo-1.0-cp311-cp311-linux_armv6l.whl"),
    ("foo-1.0-cp311-cp311-linux_armv7l.whl", "", "foo-1.0-cp311-cp311-linux_armv7l.whl"),
    ("foo-1.0-cp311-cp311-linux_armv7l.whl", "musl", "foo-1.0-cp311-cp311-linux_armv7l.whl"),
])
def test_served_filename_versions_linux_tags_by_glibc(filename, glibc, served):
    assert platforms.served_filename(filename, glibc) == served


@pytest.mark.parametrize("filename, abi, armv6l", [
    ("foo-1.0-cp311-cp311-manylinux_2_36_armv7l.whl", "cp311",
     "foo-1.0-cp311-cp311-linux_armv6l.whl"),
    ("foo-1.0-cp39-cp39-linux_armv7l.whl", "cp39", "foo-1.0-cp39-cp39-linux_armv6l.whl"),
    # abi3 and none: narrowed to the Python of the ABI that built it, so that an older
    # release's Python (3.9 on Bullseye) does not take Bookworm's (3.11) build.
    ("foo-1.0-cp39-abi3-manylinux_2_36_armv7l.whl", "cp311",
     "foo-1.0-cp311-abi3-linux_armv6l.whl"),
    ("foo-1.0-cp39-abi3-manylinux_2_31_armv7l.whl", "cp39",
     "foo-1.0-cp39-abi3-linux_armv6l.whl"),
    ("foo-1.0-py3-none-manylinux_2_36_armv7l.whl", "cp311",
     "foo-1.0-py311-none-linux_armv6l.whl"),
    ("foo-1.0-py2.py3-none-linux_armv7l.whl", "cp313", "foo-1.0-py313-none-linux_armv6l.whl"),
    # Never widened: a tag newer than the building ABI stays.
    ("foo-1.0-cp312-abi3-linux_armv7l.whl", "cp311", "foo-1.0-cp312-abi3-linux_armv6l.whl"),
    ("foo-1.0-1-cp311-cp311-manylinux_2_36_armv7l.whl", "cp311",
     "foo-1.0-1-cp311-cp311-linux_armv6l.whl"),
    ("foo-1.0-cp311-cp311-manylinux_2_17_armv7l.manylinux_2_36_armv7l.whl", "cp311",
     "foo-1.0-cp311-cp311-linux_armv6l.whl"),
    # Not armv7l, or already armv6l.
    ("foo-1.0-cp311-cp311-manylinux_2_36_aarch64.whl", "cp311", None),
    ("foo-1.0-py3-none-any.whl", "cp311", None),
    ("foo-1.0-cp311-cp311-linux_armv7l.linux_armv6l.whl", "cp311", None),
    ("not-a-wheel.tar.gz", "cp311", None),
])
def test_armv6l_filename(filename, abi, armv6l):
    assert platforms.armv6l_filename(filename, abi) == armv6l


@pytest.mark.parametrize("platform, needs", [
    ("linux_armv7l", True), ("linux_x86_64", True), ("manylinux_2_17_armv7l.linux_armv7l", True),
    ("linux_armv6l", False), ("any", False), ("manylinux_2_36_armv7l", False),
])
def test_needs_glibc(platform, needs):
    assert platforms.needs_glibc(platform) is needs


@pytest.mark.parametrize("value, ok", [
    ("bookworm", True), ("bullseye", True), ("trixie", True), ("jammy-1", True),
    ("Bookworm", False), ("", False), ("1bookworm", False), ("a" * 33, False),
    ("book worm", False),
])
def test_os_release_codenames(value, ok):
    assert bool(platforms.OS_RELEASE.match(value)) is ok


@pytest.mark.parametrize("platform, job, wheel", [
    ("linux_armv7l", "armv7l", "armv7l"),
    ("linux_aarch64", "aarch64", "aarch64"),
    ("linux_x86_64", "x86_64", "x86_64"),
    # armv6l wheels come from armv7l jobs; a claim that says nothing is the old farm's
    ("linux_armv6l", "armv7l", "armv7l"),
    ("", "armv7l", ""),
    ("manylinux_2_17_aarch64.manylinux2014_aarch64", "aarch64", "aarch64"),
    ("any", "", ""),
    ("macosx_11_0_arm64", "", ""),
])
def test_the_architecture_of_a_platform(platform, job, wheel):
    assert platforms.job_arch(platform) == job
    assert platforms.wheel_arch(platform) == wheel
