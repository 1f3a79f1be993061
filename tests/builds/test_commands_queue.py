import hashlib
import io
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command

from builds import storage, wheels
from builds.models import Abi, Build, Builder, File, hash_token
from tests.factories import (
    make_abi,
    make_build,
    make_builder,
    make_project,
    make_version,
    make_wheel,
)
from tests.live import ROOT, database_url

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def run(*args):
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().strip()


def test_create_builder_prints_a_token_stored_only_hashed():
    line = run("create_builder", "pi4-1")
    assert line.startswith("created builder pi4-1; its token (shown only now): ")
    token = line.rsplit(" ", 1)[1]
    builder = Builder.objects.get(name="pi4-1")
    assert builder.token_hash == hash_token(token) != token
    with pytest.raises(CommandError, match="a builder named 'pi4-1' exists already"):
        run("create_builder", "pi4-1")


@pytest.mark.parametrize("name", ["", "   "])
def test_create_builder_refuses_a_blank_name(name):
    proc = subprocess.run(
        [sys.executable, "manage.py", "create_builder", name], cwd=ROOT,
        env=dict(os.environ, DATABASE_URL=database_url()), capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "CommandError: a builder needs a name: give one that is not blank, e.g. pi4-cp311-1"]
    assert not Builder.objects.exists()


def test_add_abi_queues_the_backlog():
    make_project("foo", versions=["1.0", "2.0"])
    assert run("add_abi", "cp313") == "building for cp313 (armv7l): queued 2 backlog builds"
    assert Abi.objects.get(tag="cp313").active
    assert Build.objects.filter(abi__tag="cp313", state="queued").count() == 2
    with pytest.raises(CommandError, match="'py3' does not look like an interpreter ABI"):
        run("add_abi", "py3")


def test_add_abi_arch_queues_the_backlog_of_an_added_architecture_behind_new_releases():
    """A farm that builds cp311 for armv7l adds aarch64: every buildable version gets an
    aarch64 job at BACKLOG priority, the armv7l builds stay as they are, and a new
    release's job still comes first for an aarch64 claim."""
    from builds import queue

    project = make_project("foo", versions=["1.0", "2.0"])
    make_build(project.versions.get(version="1.0"), "cp311")  # built for armv7l
    assert run("add_abi", "cp311") == "building for cp311 (armv7l): queued 1 backlog builds"
    assert run("add_abi", "cp311", "--arch", "armv7l,aarch64") == (
        "building for cp311 (armv7l, aarch64): queued 2 backlog builds")
    assert Abi.objects.get(tag="cp311").archs == "armv7l,aarch64"
    release = make_version(project, "3.0")  # released after: jobs for both, up front
    queue.refresh_jobs([release.id], priority=Build.Priority.NEW_RELEASE)
    assert sorted(Build.objects.values_list("version__version", "arch", "state", "priority")) == [
        ("1.0", "aarch64", "queued", Build.Priority.BACKLOG),
        ("1.0", "armv7l", "succeeded", Build.Priority.BACKLOG),
        ("2.0", "aarch64", "queued", Build.Priority.BACKLOG),
        ("2.0", "armv7l", "queued", Build.Priority.BACKLOG),
        ("3.0", "aarch64", "queued", Build.Priority.NEW_RELEASE),
        ("3.0", "armv7l", "queued", Build.Priority.NEW_RELEASE),
    ]
    # Run again: nothing more to queue. Bad names change nothing.
    assert run("add_abi", "cp311", "--arch", "aarch64").endswith("queued 0 backlog builds")
    with pytest.raises(CommandError, match="'arm64' is not a list of architectures"):
        run("add_abi", "cp311", "--arch", "arm64")
    assert Abi.objects.get(tag="cp311").archs == "armv7l,aarch64"
    assert Build.objects.count() == 6
    pi5 = make_builder("pi5", platform="linux_aarch64")
    order = [queue.claim(pi5, "cp311", T0) for _ in range(4)]
    assert [(b.version.version, b.arch) for b in order[:3]] == [
        ("3.0", "aarch64"), ("2.0", "aarch64"), ("1.0", "aarch64")]
    assert order[3] is None


def test_add_abi_pins_the_os_release_it_is_built_on():
    assert run("add_abi", "cp311", "--os-release", "bookworm") == (
        "building for cp311 on bookworm (armv7l): queued 0 backlog builds")
    assert Abi.objects.get(tag="cp311").os_release == "bookworm"
    run("add_abi", "cp311")  # without the option: left as it was
    assert Abi.objects.get(tag="cp311").os_release == "bookworm"
    with pytest.raises(CommandError, match="'Bookworm!' is not an OS release codename"):
        run("add_abi", "cp311", "--os-release", "Bookworm!")
    assert Abi.objects.get(tag="cp311").os_release == "bookworm"
    run("add_abi", "cp311", "--os-release", "")
    assert Abi.objects.get(tag="cp311").os_release == ""


def test_rebuild_queues_requested_builds():
    make_abi("cp311")
    make_abi("cp39")
    project = make_project("Foo", versions=["1.0", "2.0"])
    assert run("rebuild", "foo") == "queued 4 builds of Foo for every active ABI"
    assert run("rebuild", "FOO", "1.0", "--abi", "cp39") == "queued 1 builds of Foo 1.0 for cp39"
    assert set(Build.objects.values_list("priority", "requested_by")) == {
        (Build.Priority.REQUESTED, "manage.py rebuild")}
    assert Build.objects.filter(version__project=project).count() == 4


@pytest.mark.parametrize("args, error", [
    (["nmupy"], "no project named 'nmupy'"),
    (["foo", "9.9"], "foo has no version '9.9'"),
    (["foo", "--abi", "cp99"], "the farm does not build for ABI 'cp99'"),
])
def test_rebuild_refuses_unknown_names(args, error):
    make_project("foo", versions=["1.0"])
    with pytest.raises(CommandError, match=error):
        run("rebuild", *args)


def test_import_wheels_publishes_them_as_succeeded_builds(data_dir, tmp_path):
    make_abi("cp311")
    version = make_version(make_project("foo"), "1.0")
    queued = make_build(version, state=Build.State.QUEUED)
    wheel = make_wheel(tmp_path)
    line = run("import_wheels", "--glibc", "2.36", "--os-release", "bookworm", str(wheel))
    build = Build.objects.get(state="succeeded")
    assert line == f"imported 1 wheels as builds {build.id}"
    assert not Build.objects.filter(id=queued.id).exists()  # the job is done
    assert (build.requested_by, build.log.output) == (
        "import_wheels", f"imported by import_wheels from {wheel.name}\n")
    assert (build.os_release, build.glibc) == ("bookworm", "2.36")
    served = "foo-1.0-cp311-cp311-manylinux_2_36_armv7l.whl"
    row = File.objects.get()
    assert (row.build_id, row.filename, row.platform_tag) == (
        build.id, served, "manylinux_2_36_armv7l")
    assert (row.os_release, row.glibc) == ("bookworm", "2.36")
    stored = storage.file_path("foo", served)
    assert wheels.inspect(stored).platform_tag == "manylinux_2_36_armv7l"
    assert row.sha256 == hashlib.sha256(stored.read_bytes()).hexdigest()
    assert storage.metadata_path("foo", served).exists()
    assert not storage.file_path("foo", wheel.name).exists()


def test_import_wheels_of_a_pure_wheel_keeps_its_name_and_needs_no_glibc(data_dir, tmp_path):
    make_abi("cp311")
    make_version(make_project("foo"), "1.0")
    wheel = make_wheel(tmp_path, tags="py3-none-any")
    run("import_wheels", "--abi", "cp311", str(wheel))
    row = File.objects.get()
    assert (row.filename, row.glibc, row.armv6_compatible) == (wheel.name, "", None)
    assert storage.file_path("foo", wheel.name).read_bytes() == wheel.read_bytes()


def test_import_wheels_of_a_pure_wheel_needs_an_abi_it_can_find(data_dir, tmp_path):
    make_abi("cp311")
    make_version(make_project("foo"), "1.0")
    wheel = make_wheel(tmp_path, tags="py3-none-any")
    with pytest.raises(CommandError, match="no ABI of the farm matches"):
        run("import_wheels", str(wheel))
    assert run("import_wheels", "--abi", "cp311", str(wheel)).startswith("imported 1 wheels")


@pytest.mark.parametrize("make, error", [
    (lambda d: make_wheel(d, "bar"), "there is no project named 'bar'"),
    (lambda d: make_wheel(d, "foo", "3.0"), "foo has no version 3.0"),
    (lambda d: make_wheel(d, members={"x.py": b""}), "has 0 .dist-info directories"),
    (lambda d: d / "missing.whl", "no file"),
])
def test_import_wheels_refuses_what_an_upload_would(data_dir, tmp_path, make, error):
    make_abi("cp311")
    make_version(make_project("foo"), "1.0")
    with pytest.raises(CommandError, match=error):
        run("import_wheels", str(make(tmp_path)))
    assert not File.objects.exists() and not Build.objects.exists()


@pytest.mark.parametrize("command", ["create_builder", "add_abi", "rebuild", "import_wheels"])
def test_each_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit:
        call_command(command, "--help")
    assert exit.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_rebuild_arch_queues_only_that_architectures_jobs():
    make_abi("cp311", archs="armv7l,aarch64")
    project = make_project("Foo", versions=["1.0"])
    assert run("rebuild", "foo", "--arch", "aarch64") == (
        "queued 1 builds of Foo for every active ABI on aarch64")
    assert list(Build.objects.values_list("arch", "priority")) == [
        ("aarch64", Build.Priority.REQUESTED)]
    assert run("rebuild", "foo") == "queued 2 builds of Foo for every active ABI"
    assert sorted(Build.objects.filter(version__project=project)
                  .values_list("arch", flat=True)) == ["aarch64", "armv7l"]
    make_abi("cp39")  # armv7l only
    with pytest.raises(CommandError, match="does not build cp39 for x86_64"):
        run("rebuild", "foo", "--abi", "cp39", "--arch", "x86_64")
    assert Build.objects.count() == 2
