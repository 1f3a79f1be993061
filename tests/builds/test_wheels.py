import pytest

from builds.wheels import InvalidWheel, inspect
from tests.factories import make_wheel

DI = "foo-1.0.dist-info"
GOOD = {
    f"{DI}/METADATA": b"Metadata-Version: 2.1\nName: foo\nVersion: 1.0\n",
    f"{DI}/WHEEL": b"Wheel-Version: 1.0\n",
    f"{DI}/RECORD": b"",
}


def without(member):
    return {k: v for k, v in GOOD.items() if not k.endswith(member)}


def test_inspect_reads_tags_metadata_and_requires_python(tmp_path):
    path = make_wheel(tmp_path, "Foo_Bar", "1.0", requires_python=">=3.9")
    info = inspect(path, expected_name="foo-bar", expected_version="1.0", expected_abi="cp311")
    assert (info.name, info.version) == ("foo-bar", "1.0")
    assert (info.python_tag, info.abi_tag, info.platform_tag) == ("cp311", "cp311", "linux_armv7l")
    assert info.requires_python == ">=3.9"
    assert info.metadata.startswith(b"Metadata-Version: 2.1\nName: Foo_Bar\n")
    assert len(info.metadata_sha256) == 64


@pytest.mark.parametrize("tags", ["py3-none-any", "cp311-abi3-linux_armv7l"])
def test_pure_and_stable_abi_wheels_suit_any_abi_job(tmp_path, tags):
    path = make_wheel(tmp_path, tags=tags)
    assert inspect(path, "foo", "1.0", "cp39").abi_tag == tags.split("-")[1]


def test_versions_compare_as_pep_440(tmp_path):
    path = make_wheel(tmp_path, version="1.0")
    assert inspect(path, "foo", "1.0.0").version == "1.0"


@pytest.mark.parametrize("members, error", [
    ({f"{DI}/WHEEL": b"Wheel-Version: 1.0\n", f"{DI}/RECORD": b""}, "has no foo-1.0.dist-info/METADATA"),
    (without("WHEEL"), "has no foo-1.0.dist-info/WHEEL"),
    (without("RECORD"), "has no foo-1.0.dist-info/RECORD"),
    ({"foo/__init__.py": b""}, "has 0 .dist-info directories"),
    ({**GOOD, "bar-1.0.dist-info/METADATA": b""}, "has 2 .dist-info directories"),
    ({k.replace("foo-1.0", "bar-1.0"): v for k, v in GOOD.items()}, "which does not match it"),
    ({**GOOD, f"{DI}/METADATA": b"Name: bar\nVersion: 1.0\n"}, "has METADATA for 'bar'"),
    ({**GOOD, f"{DI}/METADATA": b"Name: foo\nVersion: 2.0\n"}, "has METADATA for version"),
    ({**GOOD, f"{DI}/WHEEL": b"Generator: x\n"}, "WHEEL file without Wheel-Version"),
])
def test_inspect_refuses_broken_dist_info(tmp_path, members, error):
    path = make_wheel(tmp_path, members=members)
    with pytest.raises(InvalidWheel, match=error):
        inspect(path, "foo", "1.0", "cp311")


def test_inspect_refuses_a_file_that_is_not_a_zip(tmp_path):
    path = tmp_path / "foo-1.0-cp311-cp311-linux_armv7l.whl"
    path.write_bytes(b"#!/bin/sh\necho not a wheel\n")
    with pytest.raises(InvalidWheel, match="is not a zip file"):
        inspect(path)


@pytest.mark.parametrize("filename, expect, error", [
    ("bar-1.0-cp311-cp311-linux_armv7l.whl", {}, "is not a wheel of foo"),
    ("foo-2.0-cp311-cp311-linux_armv7l.whl", {}, "is not a wheel of version 1.0"),
    ("foo-1.0-cp39-cp39-linux_armv7l.whl", {}, "tagged for ABI cp39, not cp311"),
    ("foo-1.0.tar.gz", {}, "is not a valid wheel filename"),
    ("foo-1.0-cp311-linux_armv7l.whl", {}, "is not a valid wheel filename"),
    ("../foo-1.0-cp311-cp311-linux_armv7l.whl", {}, "path or control character"),
    ("..\\foo-1.0-cp311-cp311-linux_armv7l.whl", {}, "path or control character"),
    ("sub/foo-1.0-cp311-cp311-linux_armv7l.whl", {}, "path or control character"),
    ("foo-1.0-cp311-cp311-linux_armv7l.whl\x00.txt", {}, "path or control character"),
    (".foo-1.0-cp311-cp311-linux_armv7l.whl", {}, "starts with a dot"),
])
def test_inspect_refuses_filenames_that_do_not_match_the_job(tmp_path, filename, expect, error):
    path = make_wheel(tmp_path)
    with pytest.raises(InvalidWheel, match=error):
        inspect(path, "foo", "1.0", "cp311", filename=filename)
