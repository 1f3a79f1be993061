"""What a wheel's name claims is checked against its compiled code (builds/wheels.py
served_name, lib/manylinux.py) on import and upload: real ARM objects from Debian's cross
compiler, read by auditwheel's analysis and policy data."""
import hashlib
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.management import CommandError, call_command

from builds import wheels
from builds.models import Build, File
from builds.storage import file_path
from tests.api.conftest import BuilderClient
from tests.armelf import CROSS_GCC, needs_cross_compiler
from tests.factories import _record_hash, _zip, make_abi, make_build, make_project, make_version

pytestmark = [needs_cross_compiler, pytest.mark.django_db]

FAKE = "int pw_fake(int x) { return x * 3; }\n"
USER = "int pw_fake(int x);\nint use(int x) { return pw_fake(x) + 1; }\n"
# dlopen has the symbol version GLIBC_2.34 since glibc 2.34 merged libdl into libc.
DLOPEN = "#include <dlfcn.h>\nvoid *load(const char *p) { return dlopen(p, RTLD_NOW); }\n"
PLAIN = "int add(int a, int b) { return a + b; }\n"


def gcc(directory, name, source, *flags):
    (directory / f"{name}.c").write_text(source)
    out = directory / name
    subprocess.run([CROSS_GCC, "-shared", "-fPIC", "-O2", "-o", str(out),
                    str(directory / f"{name}.c"), *flags], check=True, capture_output=True)
    return out.read_bytes()


@pytest.fixture(scope="module")
def objects(tmp_path_factory):
    """ARM shared objects: plain (libc only), one loading libpwfake.so.1 (a library no
    policy has), the library itself, and one needing GLIBC_2.34 (dlopen)."""
    d = tmp_path_factory.mktemp("arm")
    fake = gcc(d, "libpwfake.so.1", FAKE, "-Wl,-soname,libpwfake.so.1")
    (d / "libpwfake.so").symlink_to("libpwfake.so.1")
    return {
        "plain": gcc(d, "plain.so", PLAIN),
        "user": gcc(d, "user.so", USER, f"-L{d}", "-lpwfake",
                    "-Wl,-rpath,$ORIGIN/../foo.libs"),
        "fake": fake,
        "dlopen": gcc(d, "dlopen.so", DLOPEN),
    }


def write(tmp_path, tag, members):
    """A wheel of foo 1.0 tagged TAG: foo/__init__.py and MEMBERS ({path under foo/, or
    under foo.libs/ for a library it carries: bytes})."""
    dist_info = "foo-1.0.dist-info"
    files = {
        "foo/__init__.py": b"",
        **{(p if p.startswith("foo.libs/") else f"foo/{p}"): d for p, d in members.items()},
        f"{dist_info}/METADATA": b"Metadata-Version: 2.1\nName: foo\nVersion: 1.0\n",
        f"{dist_info}/WHEEL": (f"Wheel-Version: 1.0\nGenerator: piwheels-tests\n"
                               f"Root-Is-Purelib: false\nTag: {tag}\n").encode(),
    }
    record = "".join(f"{p},{_record_hash(d)},{len(d)}\n" for p, d in files.items())
    files[f"{dist_info}/RECORD"] = (record + f"{dist_info}/RECORD,,\n").encode()
    path = tmp_path / f"foo-1.0-{tag}.whl"
    path.write_bytes(_zip(files))
    return path


@pytest.fixture
def api(builder):
    return BuilderClient(builder.token)


def run_import(*args):
    return call_command("import_wheels", *map(str, args))


@pytest.fixture
def foo(data_dir):
    make_abi("cp311")
    return make_version(make_project("foo"), "1.0")


def test_import_reads_the_glibc_from_the_objects_and_names_it_manylinux(foo, objects,
                                                                        tmp_path):
    path = write(tmp_path, "cp311-cp311-linux_armv7l", {"plain.so": objects["plain"]})
    run_import(path)  # no --glibc: INTERFACES.md's form works for ARM wheels
    row = File.objects.get()
    # Its code needs nothing newer than the oldest armv7l policy (glibc 2.17).
    assert row.filename == "foo-1.0-cp311-cp311-manylinux_2_17_armv7l.whl"
    assert (row.platform_tag, row.glibc, row.build.glibc) == (
        "manylinux_2_17_armv7l", "2.17", "2.17")
    assert file_path("foo", row.filename).is_file()


def test_import_with_glibc_names_it_for_that_glibc(foo, objects, tmp_path):
    path = write(tmp_path, "cp311-cp311-linux_armv7l", {"dlopen.so": objects["dlopen"]})
    run_import("--glibc", "2.36", "--os-release", "bookworm", path)
    row = File.objects.get()
    assert (row.filename, row.glibc) == ("foo-1.0-cp311-cp311-manylinux_2_36_armv7l.whl",
                                         "2.36")


def test_a_wheel_loading_a_library_outside_the_policy_is_served_as_linux(foo, objects,
                                                                         tmp_path):
    path = write(tmp_path, "cp311-cp311-linux_armv7l", {"user.so": objects["user"]})
    run_import("--glibc", "2.36", path)
    row = File.objects.get()
    assert (row.filename, row.platform_tag) == (path.name, "linux_armv7l")
    assert row.portable_note == (
        "manylinux_2_36_armv7l does not hold: it loads libpwfake.so.1 from the system, "
        "outside the manylinux_2_36_armv7l policy, and does not carry it")
    assert file_path("foo", path.name).read_bytes() == path.read_bytes()  # as built
    assert row.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_wheel_carrying_the_library_keeps_the_manylinux_name(foo, objects, tmp_path):
    path = write(tmp_path, "cp311-cp311-manylinux_2_36_armv7l",
                 {"user.so": objects["user"], "foo.libs/libpwfake.so.1": objects["fake"]})
    run_import(path)
    row = File.objects.get()
    assert (row.filename, row.glibc) == (path.name, "2.36")


@pytest.mark.parametrize("tag, members, error", [
    ("cp311-cp311-manylinux_2_36_armv7l", {"user.so": "user"},
     "claims more than it keeps: manylinux_2_36_armv7l does not hold: it loads "
     "libpwfake.so.1 from the system, outside the manylinux_2_36_armv7l policy, and does "
     "not carry it"),
    ("cp311-cp311-manylinux_2_31_armv7l", {"dlopen.so": "dlopen"},
     "claims more than it keeps: manylinux_2_31_armv7l does not hold: it needs "
     "GLIBC_2.34, newer than glibc 2.31"),
    ("cp311-cp311-manylinux2014_armv7l", {"dlopen.so": "dlopen"},
     "manylinux_2_17_armv7l does not hold: it needs GLIBC_2.34, newer than glibc 2.17"),
])
def test_a_name_claiming_more_than_the_code_keeps_is_refused(foo, objects, tmp_path, tag,
                                                             members, error):
    path = write(tmp_path, tag, {k: objects[v] for k, v in members.items()})
    with pytest.raises(CommandError) as refused:
        run_import(path)
    assert error in str(refused.value)
    assert not Build.objects.exists() and not File.objects.exists()


def claim_and_upload(api, job, path, glibc="2.36"):
    response = api.claim(platform="linux_armv7l", python_version="3.11.2", os="Debian 12",
                         os_release="bookworm", glibc=glibc)
    assert response.status_code == 200, response.content
    data = path.read_bytes()
    response = api.upload(job.id, path.name, data)
    return response, data


@pytest.fixture
def job(foo):
    return make_build(foo, state=Build.State.QUEUED)


def test_an_upload_is_renamed_manylinux_only_when_its_code_keeps_it(api, job, objects,
                                                                    tmp_path, client):
    portable = write(tmp_path, "cp311-cp311-linux_armv7l", {"plain.so": objects["plain"]})
    response, data = claim_and_upload(api, job, portable)
    assert response.status_code == 201, response.content
    other = tmp_path / "other"
    other.mkdir()
    linked = write(other, "cp311-cp311-linux_armv7l", {"user.so": objects["user"]})
    # Two wheels of one build under one name cannot be: the second is a separate build.
    files = [{"filename": portable.name, "size": len(data),
              "sha256": hashlib.sha256(data).hexdigest(), "dependencies": []}]
    response = api.finish(job.id, success=True, duration=1.0, output="", files=files)
    assert response.status_code == 200, response.content
    assert File.objects.get().filename == "foo-1.0-cp311-cp311-manylinux_2_36_armv7l.whl"

    second = make_build(job.version, state=Build.State.QUEUED)
    Build.objects.filter(id=job.id).update(state=Build.State.SUCCEEDED)
    response, data = claim_and_upload(api, second, linked)
    assert response.status_code == 201, response.content
    files = [{"filename": linked.name, "size": len(data),
              "sha256": hashlib.sha256(data).hexdigest(), "dependencies": ["libpwfake1"]}]
    response = api.finish(second.id, success=True, duration=1.0, output="", files=files)
    assert response.status_code == 200, response.content
    row = File.objects.get(build=second)
    assert (row.filename, row.platform_tag, row.dependencies) == (
        linked.name, "linux_armv7l", ["libpwfake1"])
    # Why it is not manylinux, kept from its receipt and said on the project page.
    why = ("manylinux_2_36_armv7l does not hold: it loads libpwfake.so.1 from the system, "
           "outside the manylinux_2_36_armv7l policy, and does not carry it")
    assert row.portable_note == why
    assert File.objects.get(build=job).portable_note == ""
    page = client.get("/project/foo/").content.decode()
    assert f"not manylinux: {why}" in page and page.count("not manylinux:") == 1
    files = [f for v in client.get("/project/foo/json/").json()["versions"] for f in v["files"]]
    assert sorted(f["not_manylinux_because"] for f in files) == ["", why]


def test_an_upload_claiming_more_than_it_keeps_is_refused_400(api, job, objects, tmp_path):
    path = write(tmp_path, "cp311-cp311-manylinux_2_36_armv7l", {"user.so": objects["user"]})
    response, _ = claim_and_upload(api, job, path)
    assert response.status_code == 400
    assert "claims more than it keeps" in response.json()["detail"]
    assert "libpwfake.so.1" in response.json()["detail"]


def test_wheels_read_at_once_by_many_threads_leave_the_working_directory_alone(objects,
                                                                               tmp_path):
    # auditwheel changes directory while it reads a wheel: threads of one web server,
    # each reading an upload in-process, once left it in a deleted directory (issue 19).
    path = write(tmp_path, "cp311-cp311-linux_armv7l", {"plain.so": objects["plain"]})
    before = os.getcwd()
    with ThreadPoolExecutor(max_workers=6) as pool:
        served = list(pool.map(lambda _: wheels.served_name(path, path.name, "2.36"),
                               range(12)))
    assert os.getcwd() == before
    assert {s.filename for s in served} == {"foo-1.0-cp311-cp311-manylinux_2_36_armv7l.whl"}
