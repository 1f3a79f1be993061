import io
import time
import tracemalloc
import zipfile

import pytest

from builds.wheels import InvalidWheel, inspect
from tests.builds.bad_wheels import CASES, GIB, TAG, bomb, crafted, lying_wheel_file, parts
from tests.factories import make_wheel, wheel_members, with_record


def write(tmp_path, filename, data):
    path = tmp_path / "in"
    path.mkdir(exist_ok=True)
    path = path / filename
    path.write_bytes(data)
    return path


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


def test_a_wheel_with_compressed_tags_directories_and_a_signature_is_accepted(tmp_path):
    filename, members = wheel_members("foo", "1.0", "py2.py3-none-any")
    dist_info = "foo-1.0.dist-info"
    members[f"{dist_info}/WHEEL"] = (b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\n"
                                     b"Tag: py2-none-any\nTag: py3-none-any\n")
    members = with_record({"foo/": b"", **members}, f"{dist_info}/RECORD")
    members[f"{dist_info}/RECORD.jws"] = b"{}"  # signatures are not listed in RECORD
    data = crafted(members, {"foo/": {"mode": 0o040755}})
    assert inspect(write(tmp_path, filename, data), "foo", "1.0", "cp311").abi_tag == "none"


def test_a_zip64_wheel_written_by_zipfile_is_accepted(tmp_path):
    filename, members = wheel_members("foo", "1.0", TAG)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            with zf.open(name, "w", force_zip64=True) as out:
                out.write(data)
    assert b"PK\x06\x06" not in buffer.getvalue()  # ZIP64 extras only, at this size
    assert inspect(write(tmp_path, filename, buffer.getvalue()), "foo", "1.0").name == "foo"


@pytest.mark.parametrize("case", sorted(CASES))
def test_inspect_refuses_each_bad_wheel(tmp_path, case):
    make, error = CASES[case]
    filename, data = make("foo", "1.0", TAG)
    path = write(tmp_path, "upload.part", data)
    with pytest.raises(InvalidWheel, match=None) as refused:
        inspect(path, "foo", "1.0", "cp311", filename=filename)
    assert error in str(refused.value)


def test_a_refused_zip_says_why_in_one_sentence(tmp_path):
    filename, data = CASES["data-after"][0]("foo", "1.0", TAG)
    with pytest.raises(InvalidWheel) as refused:
        inspect(write(tmp_path, filename, data))
    assert str(refused.value) == (
        f"{filename} is not a zip file the farm accepts: it does not end with a zip end "
        "record (a comment or data after it?)")


def test_inspect_refuses_a_file_that_is_not_a_zip(tmp_path):
    path = tmp_path / "foo-1.0-cp311-cp311-linux_armv7l.whl"
    path.write_bytes(b"#!/bin/sh\necho not a wheel\n")
    with pytest.raises(InvalidWheel, match="is not a zip file"):
        inspect(path)


@pytest.mark.parametrize("make", [bomb(honest=False), lying_wheel_file],
                         ids=["member", "WHEEL"])
def test_a_lying_bomb_is_stopped_within_its_first_chunk(tmp_path, make):
    """1 GiB of zeros behind a small declared size: refused without inflating it (which
    takes seconds and, whole, a gigabyte), in little memory."""
    filename, data = make("foo", "1.0", TAG)
    path = write(tmp_path, filename, data)
    del data
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(InvalidWheel, match="inflates past its declared"):
            inspect(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * 1024**2
    assert time.monotonic() - started < 2  # inflating it all takes several seconds


@pytest.mark.parametrize("setting, value, error", [
    ("PIWHEELS_WHEEL_MAX_MEMBER_SIZE", 15, "over the limit of 15"),
    ("PIWHEELS_WHEEL_MAX_UNPACKED", 100, "unpacks to"),
    ("PIWHEELS_WHEEL_MAX_MEMBERS", 3, "it has 4 members, over the limit of 3"),
    ("PIWHEELS_WHEEL_MAX_METADATA", 20, "over the METADATA limit"),
])
def test_limits_come_from_settings(tmp_path, settings, setting, value, error):
    path = make_wheel(tmp_path)
    assert inspect(path).name == "foo"
    setattr(settings, setting, value)
    with pytest.raises(InvalidWheel, match=error):
        inspect(path)


def test_the_ratio_limit_applies_to_the_whole_wheel_too(tmp_path, settings):
    """Many members each under the ratio's size threshold, together over it."""
    filename, members, dist_info = parts("foo", "1.0", TAG)
    members = with_record({**members, **{f"foo/z{i}.bin": bytes(8192) for i in range(16)}},
                          f"{dist_info}/RECORD")
    path = write(tmp_path, filename, crafted(members))
    settings.PIWHEELS_WHEEL_RATIO_MIN_SIZE = 10_000  # over each member, under their sum
    settings.PIWHEELS_WHEEL_MAX_RATIO = 20
    with pytest.raises(InvalidWheel, match=f"{filename} unpacks to .* a ratio over 20"):
        inspect(path)


def test_an_honest_bomb_is_refused_from_its_headers(tmp_path):
    filename, data = bomb(honest=True)("foo", "1.0", TAG)
    with pytest.raises(InvalidWheel, match=f"foo/zeros.bin unpacks to {GIB} bytes from"):
        inspect(write(tmp_path, filename, data))


@pytest.mark.parametrize("filename, error", [
    ("bar-1.0-cp311-cp311-linux_armv7l.whl", "is not a wheel of foo"),
    ("foo-2.0-cp311-cp311-linux_armv7l.whl", "is not a wheel of version 1.0"),
    ("foo-1.0-cp39-cp39-linux_armv7l.whl", "tagged for ABI cp39, not cp311"),
    ("foo-1.0.tar.gz", "is not a valid wheel filename"),
    ("foo-1.0-cp311-linux_armv7l.whl", "is not a valid wheel filename"),
    ("../foo-1.0-cp311-cp311-linux_armv7l.whl", "path or control character"),
    ("..\\foo-1.0-cp311-cp311-linux_armv7l.whl", "path or control character"),
    ("sub/foo-1.0-cp311-cp311-linux_armv7l.whl", "path or control character"),
    ("foo-1.0-cp311-cp311-linux_armv7l.whl\x00.txt", "path or control character"),
    (".foo-1.0-cp311-cp311-linux_armv7l.whl", "starts with a dot"),
    ("Foo-1.0-cp311-cp311-linux_armv7l.whl", "that would be 'foo-1.0-cp311-cp311-linux"),
    ("foo.bar-1.0-py3-none-any.whl", "that would be 'foo_bar-1.0-py3-none-any.whl'"),
    ("foo-1.0-py3-none-any.whl.whl", "that would be 'foo-1.0-py3-none-any.whl'"),
    ("foo-1.0-py3.py3-none-any.whl", "that would be 'foo-1.0-py3-none-any.whl'"),
    ("foo-1.0-py3-none-any .whl", "that would be 'foo-1.0-py3-none-any.whl'"),
    ("foo-1.0-py3-none-any" + "-x" * 200 + ".whl", "over the limit of 240"),
    ("f\u00f6o-1.0-py3-none-any.whl", "is not a valid project name"),
])
def test_inspect_refuses_filenames_that_do_not_match_the_job(tmp_path, filename, error):
    path = make_wheel(tmp_path)
    with pytest.raises(InvalidWheel, match=None) as refused:
        inspect(path, "foo", "1.0", "cp311", filename=filename)
    assert error in str(refused.value)


def _with_metadata(tmp_path, extra, metadata_version="2.1"):
    """A wheel of foo 1.0 whose METADATA is of METADATA_VERSION with the lines EXTRA."""
    filename, members = wheel_members("foo", "1.0", TAG)
    dist_info = "foo-1.0.dist-info"
    members[f"{dist_info}/METADATA"] = (
        f"Metadata-Version: {metadata_version}\nName: foo\nVersion: 1.0\n{extra}").encode()
    return make_wheel(tmp_path, members=with_record(members, f"{dist_info}/RECORD"),
                      filename=filename)


@pytest.mark.parametrize("metadata_version", ["2.1", "2.2", "2.3"])
def test_license_file_under_an_older_metadata_version_is_accepted_as_pypi_does(
        tmp_path, metadata_version):
    """setuptools 56 to 76 wrote License-File under Metadata-Version 2.1 or 2.2 (2.3: others);
    twine leaves it out of what PyPI validates, and PyPI stores such wheels as they are."""
    path = _with_metadata(tmp_path, "License-File: LICENSE\nLicense-File: AUTHORS.rst\n",
                          metadata_version)
    info = inspect(path, "foo", "1.0", "cp311")
    assert b"License-File: LICENSE\n" in info.metadata  # kept and served as it is


@pytest.mark.parametrize("metadata_version, extra, error", [
    ("2.1", "Frobnicate: yes\n", "unrecognized or malformed field 'frobnicate'"),
    ("2.1", "Requires-Dist: foo >= \n", "requires-dist"),
    ("2.3", "License-Expression: MIT\n", "license-expression introduced in metadata "
                                          "version 2.4, not 2.3"),
    ("2.4", "License-Expression: MIT OR\n", "invalid for 'license-expression'"),
    ("2.4", "License-File: ../LICENSE\n", "license-file"),
    ("2.4", "License-File: /etc/passwd\n", "license-file"),
    ("2.1", "Dynamic: Version\n", "dynamic introduced in metadata version 2.2, not 2.1"),
    ("2.2", "Dynamic: Name\n", "dynamic"),
    ("3.0", "", "not a valid metadata version"),
])
def test_metadata_pypi_refuses_is_refused(tmp_path, metadata_version, extra, error):
    path = _with_metadata(tmp_path, extra, metadata_version)
    with pytest.raises(InvalidWheel, match="not valid core metadata") as refused:
        inspect(path, "foo", "1.0", "cp311")
    assert error.lower() in str(refused.value).lower(), refused.value
