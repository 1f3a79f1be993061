import hashlib
import shutil
import subprocess
import zipfile

import pytest

from piwheels_builder import wheels

METADATA = """\
Metadata-Version: 2.1
Name: foo
Version: 1.0
Requires-Python: >=3.9, <4
Description-Content-Type: text/markdown

# foo

Requires-Python: not a header, part of the description
"""


def make_wheel(path, extra=None, metadata=METADATA):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("foo/__init__.py", "")
        zf.writestr("foo-1.0.dist-info/METADATA", metadata)
        zf.writestr("foo-1.0.dist-info/WHEEL",
                    "Wheel-Version: 1.0\nTag: cp311-cp311-linux_x86_64\n")
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return path


def test_requires_python_comes_from_the_headers_only():
    assert wheels.requires_python(METADATA) == ">=3.9, <4"
    assert wheels.requires_python("Metadata-Version: 2.1\nName: foo\n\nbody\n") == ""


def test_inspect_a_pure_python_wheel(tmp_path):
    path = make_wheel(tmp_path / "foo-1.0-py3-none-any.whl")
    data = path.read_bytes()
    assert wheels.inspect(path) == {
        "filename": "foo-1.0-py3-none-any.whl",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "requires_python": ">=3.9, <4",
        "dependencies": [],
    }


def test_wheel_without_metadata_is_refused(tmp_path):
    path = tmp_path / "foo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("foo/__init__.py", "")
    with pytest.raises(ValueError, match="no .dist-info/METADATA"):
        wheels.inspect(path)


@pytest.mark.skipif(not (shutil.which("gcc") and shutil.which("dpkg") and shutil.which("ldd")),
                    reason="needs gcc, ldd and dpkg")
def test_compiled_module_dependencies_map_to_debian_packages(tmp_path):
    source = tmp_path / "mod.c"
    source.write_text('#include <yaml.h>\n#include <zlib.h>\n'
                      'const char *v(void) { return yaml_get_version_string(); }\n'
                      'const char *z(void) { return zlibVersion(); }\n')
    so = tmp_path / "_mod.cpython-311-x86_64-linux-gnu.so"
    built = subprocess.run(["gcc", "-shared", "-fPIC", str(source), "-o", str(so), "-lyaml",
                            "-lz"], capture_output=True, text=True)
    if built.returncode:  # .ci/run installs libyaml-dev
        pytest.skip(f"cannot compile against libyaml and zlib here: {built.stderr.strip()}")
    path = make_wheel(tmp_path / "foo-1.0-cp311-cp311-linux_x86_64.whl",
                      {"foo/_mod.cpython-311-x86_64-linux-gnu.so": so.read_bytes()})

    # libyaml-0-2 provides libyaml-0.so.2; zlib1g (libz.so.1) and libc6 (libc.so.6) are
    # on every Debian system and left out.
    assert wheels.inspect(path)["dependencies"] == ["libyaml-0-2"]


@pytest.mark.skipif(not (shutil.which("gcc") and shutil.which("dpkg") and shutil.which("ldd")),
                    reason="needs gcc, ldd and dpkg")
def test_what_a_carried_library_asks_of_the_system_is_listed_and_not_what_that_loads(
        tmp_path):
    # As a repaired pycairo: the module loads a library the wheel carries (foo.libs/,
    # through its RUNPATH), which asks the system for libxslt; libxslt loads libxml2,
    # libicu, liblzma, libgcrypt... in turn, which `apt install libxslt1.1` brings.
    (tmp_path / "carried.c").write_text(
        '#include <libxslt/xsltutils.h>\n'
        'const char *engine(void) { return xsltEngineVersion; }\n')
    (tmp_path / "mod.c").write_text('const char *engine(void);\n'
                                    'const char *v(void) { return engine(); }\n')
    libs = tmp_path / "foo.libs"
    libs.mkdir()
    carried = libs / "libcarried-0123abcd.so.1"
    built = subprocess.run(
        ["gcc", "-shared", "-fPIC", "-I/usr/include/libxml2", str(tmp_path / "carried.c"),
         "-o", str(carried), "-Wl,-soname,libcarried-0123abcd.so.1", "-lxslt"],
        capture_output=True, text=True)
    if built.returncode:
        pytest.skip(f"cannot compile against libxslt here (libxslt1-dev): {built.stderr}")
    so = tmp_path / "_mod.cpython-311-x86_64-linux-gnu.so"
    subprocess.run(["gcc", "-shared", "-fPIC", str(tmp_path / "mod.c"), "-o", str(so),
                    "-L", str(libs), "-l:libcarried-0123abcd.so.1",
                    "-Wl,-rpath,$ORIGIN/../foo.libs"], check=True)
    path = make_wheel(tmp_path / "foo-1.0-cp311-cp311-manylinux_2_36_x86_64.whl", {
        "foo/_mod.cpython-311-x86_64-linux-gnu.so": so.read_bytes(),
        "foo.libs/libcarried-0123abcd.so.1": carried.read_bytes(),
    })
    behind = wheels.debian_packages(
        [p for _, p in wheels.linked_libraries(carried)]) - {"libc6", "libxslt1.1"}
    assert "libxml2" in behind  # what ldd lists behind libxslt

    assert wheels.inspect(path)["dependencies"] == ["libxslt1.1"]


@pytest.mark.skipif(not shutil.which("dpkg"), reason="needs dpkg")
def test_libraries_no_package_owns_are_skipped_beside_those_one_does():
    from pathlib import Path

    libz = next((str(p) for pattern in ("/usr/lib/*/libz.so.1", "/lib/*/libz.so.1")
                 for p in Path("/").glob(pattern.lstrip("/"))), None)
    if libz is None:
        pytest.skip("no libz.so.1 on this machine")
    assert wheels.debian_packages(["/nonexistent/libnothing.so.1", libz]) == {"zlib1g"}


@pytest.mark.parametrize("size, text", [
    (0, "0 bytes"), (999, "999 bytes"), (12_345, "12.3 kB"), (4_500_000, "4.5 MB"),
])
def test_human_size(size, text):
    from piwheels_builder.farm import human_size
    assert human_size(size) == text


@pytest.mark.parametrize("written, canonical", [
    ("foo-1.0-py3-none-any.whl", "foo-1.0-py3-none-any.whl"),
    ("Foo_Bar-1.0-cp311-cp311-linux_armv7l.whl", "foo_bar-1.0-cp311-cp311-linux_armv7l.whl"),
    ("foo.bar-1.00-1-PY3-none-any.whl", "foo_bar-1.0-1-py3-none-any.whl"),
    ("PyYAML-6.0_post1-cp311-cp311-linux_armv7l.whl",
     "pyyaml-6.0.post1-cp311-cp311-linux_armv7l.whl"),
    ("not a wheel.whl", "not a wheel.whl"),
])
def test_a_built_wheel_is_renamed_as_packaging_names_it(tmp_path, written, canonical):
    path = make_wheel(tmp_path / written)
    data = path.read_bytes()
    renamed = wheels.with_canonical_name(path)
    assert renamed == tmp_path / canonical
    assert renamed.read_bytes() == data
    assert [p.name for p in tmp_path.iterdir()] == [canonical]
