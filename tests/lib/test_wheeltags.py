import base64
import csv
import hashlib
import io
import zipfile

import pytest

from builds import wheels
from lib import wheeltags
from tests.factories import wheel_archive


def _members(path):
    with zipfile.ZipFile(path) as zf:
        return {info.filename: (info, zf.read(info)) for info in zf.infolist()}


def _check_record(members):
    """Every RECORD line's hash and size match its member (RECORD itself has none)."""
    record_name = next(n for n in members if n.endswith(".dist-info/RECORD"))
    rows = list(csv.reader(io.StringIO(members[record_name][1].decode())))
    listed = {row[0] for row in rows}
    assert listed == set(members)
    for name, digest, size in rows:
        if name == record_name:
            assert (digest, size) == ("", "")
            continue
        data = members[name][1]
        expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
        assert (digest, size) == (f"sha256={expected.decode()}", str(len(data)))


def test_retag_rewrites_wheel_and_record_and_copies_the_rest(tmp_path):
    built = wheel_archive("Foo", "1.0", "cp39-abi3-linux_armv7l")
    src = tmp_path / built.filename
    src.write_bytes(built.content)
    out = tmp_path / "out"
    out.mkdir()

    path = wheeltags.retag(src, out, "foo-1.0-cp39-abi3-manylinux_2_36_armv7l.whl")

    assert path == out / "foo-1.0-cp39-abi3-manylinux_2_36_armv7l.whl"
    assert [p.name for p in out.iterdir()] == [path.name]  # no temporary left
    old, new = _members(src), _members(path)
    assert list(old) == list(new)  # same members, same order
    wheel_text = new["foo-1.0.dist-info/WHEEL"][1].decode()
    assert "Tag: cp39-abi3-manylinux_2_36_armv7l\n" in wheel_text
    assert "linux_armv7l" not in wheel_text.replace("manylinux_2_36_armv7l", "")
    assert "Generator: piwheels-tests" in wheel_text and "Build:" not in wheel_text
    for name in ("foo/__init__.py", "foo-1.0.dist-info/METADATA"):
        assert new[name][1] == old[name][1]
        assert new[name][0].date_time == old[name][0].date_time
        assert new[name][0].compress_type == old[name][0].compress_type
    _check_record(new)
    # The farm's upload check accepts the result under its new name.
    info = wheels.inspect(path, "Foo", "1.0", "cp311")
    assert info.platform_tag == "manylinux_2_36_armv7l"


def test_retag_sets_a_build_tag_and_expands_tag_sets(tmp_path):
    built = wheel_archive("foo", "1.0", "py2.py3-none-linux_armv7l")
    src = tmp_path / built.filename
    src.write_bytes(built.content)
    path = wheeltags.retag(src, tmp_path, "foo-1.0-2-py2.py3-none-manylinux_2_31_armv7l.whl")
    text = _members(path)["foo-1.0.dist-info/WHEEL"][1].decode()
    assert text.strip().splitlines()[-2:] == ["Tag: py3-none-manylinux_2_31_armv7l", "Build: 2"]
    assert "Tag: py2-none-manylinux_2_31_armv7l" in text
    _check_record(_members(path))


@pytest.mark.parametrize("filename, error", [
    ("bar-1.0-py3-none-any.whl", "names another project or version"),
    ("foo-2.0-py3-none-any.whl", "names another project or version"),
    ("foo-1.0-py3-none.whl", "cannot name a wheel"),
])
def test_retag_refuses_another_project_or_a_bad_name(tmp_path, filename, error):
    built = wheel_archive("foo", "1.0")
    src = tmp_path / built.filename
    src.write_bytes(built.content)
    with pytest.raises(wheeltags.RetagError, match=error):
        wheeltags.retag(src, tmp_path, filename)
    assert [p.name for p in tmp_path.iterdir()] == [built.filename]
