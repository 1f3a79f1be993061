"""The operator commands: sync_pypi, add_package, remove_package, skip, unskip."""
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from builds import storage
from builds.models import Build
from packages.models import Project, SyncStatus, Version
from tests.factories import make_abi, make_build, make_file, make_project, make_version

pytestmark = pytest.mark.django_db


def run(*args):
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue().strip()


def queued():
    return sorted(Build.objects.filter(state="queued")
                  .values_list("version__project__name", "version__version", "priority"))


def test_sync_pypi_imports_and_queues(fake_pypi):
    make_abi("cp311")
    fake_pypi.add_release("foo", "1.0")
    fake_pypi.add_release("bar", "1.0", [("bar-1.0-py3-none-any.whl", b"w")])
    line = run("sync_pypi")
    assert line == ("sync at serial 6 via simple-json (first pass): 2 new names, 0 moved; "
                    "fetched 2 projects, 2 new, 0 changed, 0 removed; 2 new versions (1 "
                    "without sdist), 0 changed; 2 summaries read; 0 errors; 2 projects known, "
                    "2 with details, 0 waiting; 1 builds queued, 0 dropped")
    assert queued() == [("foo", "1.0", Build.Priority.BACKLOG)]
    fake_pypi.add_release("foo", "2.0")
    fake_pypi.yank("foo", "1.0")
    line = run("sync_pypi")
    assert line.endswith("1 builds queued, 1 dropped")
    assert queued() == [("foo", "2.0", Build.Priority.NEW_RELEASE)]


def test_sync_pypi_fails_clearly_when_the_changelog_is_unreachable(fake_pypi, settings):
    fake_pypi.add_release("foo", "1.0")
    run("sync_pypi")
    settings.PIWHEELS_SYNC_METHOD = "xmlrpc"
    fake_pypi.fail("/pypi", 405)
    with pytest.raises(CommandError, match="XML-RPC at .* answered HTTP 405"):
        run("sync_pypi")


def test_sync_pypi_falls_back_to_the_root_and_says_why(fake_pypi):
    make_abi("cp311")
    fake_pypi.add_release("foo", "1.0")
    run("sync_pypi")
    fake_pypi.xmlrpc = False  # as the public PyPI answers through some proxies
    fake_pypi.add_release("foo", "2.0")
    line = run("sync_pypi")
    assert line.startswith("sync at serial 5 via simple-json (1 on the root): 0 new names, "
                           "1 moved; fetched 1 projects, 0 new, 1 changed")
    assert line.endswith("1 builds queued, 0 dropped")
    assert queued() == [("foo", "1.0", Build.Priority.BACKLOG),
                        ("foo", "2.0", Build.Priority.NEW_RELEASE)]
    status = SyncStatus.objects.get()
    assert (status.method, status.reason) == (
        "simple-json", f"XML-RPC failed (XML-RPC at {fake_pypi.url}/pypi answered HTTP 405 "
                       "Method Not Allowed), so the simple root")


def test_add_package_adds_a_project_and_queues_it(fake_pypi):
    make_abi("cp311")
    fake_pypi.add_release("NumPy", "1.0")
    fake_pypi.add_release("NumPy", "2.0")
    assert run("add_package", "numpy") == (
        "added numpy: 2 new versions, 0 updated (0 without sdist); 2 builds queued")
    assert queued() == [("NumPy", "1.0", Build.Priority.REQUESTED),
                        ("NumPy", "2.0", Build.Priority.REQUESTED)]


def test_add_package_moves_what_the_sync_queued_already_to_the_front(fake_pypi):
    """The README's walk-through: the sync has read MarkupSafe and add_abi queued its
    releases with the whole backlog; add_package of one version puts that one first."""
    fake_pypi.add_release("MarkupSafe", "2.1.4")
    fake_pypi.add_release("MarkupSafe", "2.1.5")
    fake_pypi.add_release("other", "1.0")
    run("sync_pypi")
    run("add_abi", "cp311")
    assert queued() == [("MarkupSafe", "2.1.4", Build.Priority.BACKLOG),
                        ("MarkupSafe", "2.1.5", Build.Priority.BACKLOG),
                        ("other", "1.0", Build.Priority.BACKLOG)]
    assert run("add_package", "MarkupSafe", "2.1.5") == (
        "added MarkupSafe: 0 new versions, 0 updated (0 without sdist); 1 builds queued")
    assert queued() == [("MarkupSafe", "2.1.4", Build.Priority.BACKLOG),
                        ("MarkupSafe", "2.1.5", Build.Priority.REQUESTED),
                        ("other", "1.0", Build.Priority.BACKLOG)]


def test_add_package_can_add_some_versions_only(fake_pypi):
    fake_pypi.add_release("foo", "1.0")
    fake_pypi.add_release("foo", "2.0")
    run("add_package", "foo", "2.0")
    project = Project.objects.get()
    assert list(project.versions.values_list("version", flat=True)) == ["2.0"]
    assert project.serial == 0  # not fully imported: a first pass still fetches it
    with pytest.raises(CommandError, match="^foo has no version '3.0' upstream$"):
        run("add_package", "foo", "3.0")


def test_add_package_refuses_unknown_names(fake_pypi):
    fake_pypi.add_release("numpy", "1.0")
    with pytest.raises(CommandError, match="^no project named 'nmupy' upstream$"):
        run("add_package", "nmupy")
    assert not Project.objects.exists()


def test_remove_package_deletes_the_project_builds_and_files(settings, tmp_path):
    settings.PIWHEELS_DATA_DIR = tmp_path
    project = make_project("Foo_Bar", versions=["1.0"])
    make_file(make_build(project.versions.get()), filename="foo_bar-1.0-cp311-cp311-x.whl")
    wheel = storage.file_path("foo-bar", "foo_bar-1.0-cp311-cp311-x.whl")
    wheel.parent.mkdir(parents=True)
    wheel.write_bytes(b"wheel")
    assert run("remove_package", "foo.bar") == "removed Foo_Bar: 1 versions, 1 files"
    assert not Project.objects.exists() and not Build.objects.exists()
    assert not wheel.parent.exists()


def test_remove_package_version_deletes_its_builds_and_keeps_it_out(settings, tmp_path):
    settings.PIWHEELS_DATA_DIR = tmp_path
    project = make_project("foo", versions=["1.0", "2.0"])
    old = project.versions.get(version="1.0")
    make_file(make_build(old), filename="foo-1.0-cp311-cp311-x.whl")
    make_build(project.versions.get(version="2.0"))
    wheel = storage.file_path("foo", "foo-1.0-cp311-cp311-x.whl")
    wheel.parent.mkdir(parents=True)
    wheel.write_bytes(b"wheel")
    assert run("remove_package", "foo", "1.0") == "removed foo 1.0: 1 files"
    old.refresh_from_db()
    assert old.removed and not old.is_buildable and not old.builds.exists()
    assert Build.objects.get().version.version == "2.0"
    assert not wheel.exists()


@pytest.mark.parametrize("args, message", [
    (("remove_package", "nmupy"), "no project named 'nmupy'"),
    (("remove_package", "foo", "9.9"), "foo has no version '9.9'"),
    (("skip", "nmupy", "--reason", "x"), "no project named 'nmupy'"),
    (("skip", "foo", "9.9", "--reason", "x"), "foo has no version '9.9'"),
    (("skip", "foo", "--reason", " "), "a reason is required"),
    (("unskip", "nmupy"), "no project named 'nmupy'"),
    (("unskip", "foo", "9.9"), "foo has no version '9.9'"),
])
def test_commands_refuse_unknown_names(args, message):
    make_project("foo", versions=["1.0"])
    with pytest.raises(CommandError, match=f"^{message}$"):
        run(*args)
    assert Version.objects.get().skip_reason == "" and Project.objects.get().skip_reason == ""


def test_skip_and_unskip_a_project():
    make_abi("cp311")
    project = make_project("foo", versions=["1.0", "2.0"])
    run("unskip", "foo")
    assert len(queued()) == 2
    assert run("skip", "FOO", "--reason", "needs CUDA") == (
        "skipped FOO (needs CUDA): 2 queued builds dropped")
    assert queued() == [] and Project.objects.get().skip_reason == "needs CUDA"
    assert run("unskip", "foo") == "unskipped foo: 2 builds queued"
    assert len(queued()) == 2 and Project.objects.get(id=project.id).skip_reason == ""


def test_skip_and_unskip_a_version():
    make_abi("cp311")
    project = make_project("foo")
    make_version(project, "1.0")
    run("unskip", "foo")
    assert run("skip", "foo", "1.0", "--reason", "too big") == (
        "skipped foo 1.0 (too big): 1 queued builds dropped")
    assert Version.objects.get().skip_reason == "too big" and queued() == []
    assert run("unskip", "foo", "1.0") == "unskipped foo 1.0: 1 builds queued"
    assert queued() == [("foo", "1.0", Build.Priority.BACKLOG)]
