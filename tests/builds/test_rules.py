"""The rules decided before building (builds/rules.py): Requires-Python and upstream wheels
skip jobs, upstream wheels take the farm's files off the index; and apply_index_rules for a
farm that already runs. The catalogue comes from the fake upstream over HTTP."""
import io

import pytest
from django.core.management import CommandError, call_command

from builds.models import Build, File
from index import rendering
from packages.models import Project, Version
from packages.tasks import run_sync
from tests.factories import make_abi, make_build, make_file, make_project, make_version

pytestmark = pytest.mark.django_db

PURE = "foo-1.0-py3-none-any.whl"
ARM = "foo-1.0-cp311-cp311-manylinux_2_17_armv7l.manylinux2014_armv7l.whl"


@pytest.fixture(autouse=True)
def abis(db):
    return make_abi("cp39"), make_abi("cp311")


@pytest.fixture(autouse=True)
def fast_sync(settings):
    settings.PIWHEELS_SYNC_BACKOFF = 0.0
    settings.PIWHEELS_SYNC_WORKERS = 2


def jobs(version="1.0", name="foo"):
    """{abi: (state, skip_reason)} of one version's builds."""
    return {b.abi.tag: (b.state, b.skip_reason)
            for b in Build.objects.filter(version__project__normalized_name=name,
                                          version__version=version).select_related("abi")}


def run(*args):
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue().strip()


def test_jobs_are_skipped_up_front_with_the_reason(fake_pypi):
    fake_pypi.add_release("foo", "1.0", requires_python=">=3.10")  # sdist only
    fake_pypi.add_release("foo", "2.0", [("foo-2.0.tar.gz", b"sdist"),
                                         ("foo-2.0-py3-none-any.whl", b"pure")])
    fake_pypi.add_release("foo", "3.0", [("foo-3.0.tar.gz", b"sdist"),
                                         ("foo-3.0-cp311-cp311-manylinux_2_17_armv7l.whl",
                                          b"arm")])
    fake_pypi.add_release("foo", "4.0")  # an sdist only, pure or not: built
    run_sync()
    assert jobs("1.0") == {"cp39": ("skipped", "requires Python >=3.10"),
                           "cp311": ("queued", "")}
    has = "PyPI has a wheel for this: "
    assert jobs("2.0") == {"cp39": ("skipped", has + "foo-2.0-py3-none-any.whl"),
                           "cp311": ("skipped", has + "foo-2.0-py3-none-any.whl")}
    assert jobs("3.0") == {
        "cp39": ("queued", ""),
        "cp311": ("skipped", has + "foo-3.0-cp311-cp311-manylinux_2_17_armv7l.whl")}
    assert jobs("4.0") == {"cp39": ("queued", ""), "cp311": ("queued", "")}
    assert Version.objects.get(version="3.0").upstream_wheels == [
        "foo-3.0-cp311-cp311-manylinux_2_17_armv7l.whl"]


def test_the_project_page_says_why_a_job_is_skipped(client, fake_pypi):
    fake_pypi.add_release("foo", "1.0", requires_python=">=3.10")
    fake_pypi.add_release("foo", "2.0", [("foo-2.0.tar.gz", b"sdist"),
                                         ("foo-2.0-py3-none-any.whl", b"pure")])
    run_sync()
    data = client.get("/project/foo/json/").json()
    cells = {v["version"]: {c["abi"]: c for c in v["builds"]} for v in data["versions"]}
    assert (cells["1.0"]["cp39"]["state"], cells["1.0"]["cp39"]["label"]) == (
        "skipped", "skipped: requires Python >=3.10")
    assert cells["1.0"]["cp311"]["label"] == "queued"
    assert cells["2.0"]["cp311"]["label"] == "PyPI has a wheel for this: foo-2.0-py3-none-any.whl"
    page = client.get("/project/foo/").content.decode()
    assert "PyPI has a wheel for this: foo-2.0-py3-none-any.whl" in page
    assert "skipped: requires Python &gt;=3.10" in page


def test_an_upstream_wheel_added_later_takes_the_farm_files_off_the_index(fake_pypi):
    fake_pypi.add_release("foo", "1.0")
    run_sync()
    build = Build.objects.get(version__version="1.0", abi__tag="cp311")
    Build.objects.filter(id=build.id).update(state="succeeded")
    make_file(build, "foo-1.0-cp311-cp311-linux_armv7l.whl")
    queued = Build.objects.get(version__version="1.0", abi__tag="cp39")
    project = Project.objects.get()
    before = project.index_serial

    fake_pypi.add_file("foo", "1.0", ARM, b"upstream's")
    run_sync()
    row = File.objects.get()
    assert row.shadowed_by == ARM
    assert not rendering.listed_files().exists() and rendering.published_files().exists()
    project.refresh_from_db()
    assert project.index_serial > before
    queued.refresh_from_db()
    assert queued.state == "queued"  # cp39 is not served by a cp311 wheel

    fake_pypi.remove_file("foo", "1.0", ARM)  # upstream takes it back: the file returns
    run_sync()
    assert File.objects.get().shadowed_by == ""


def test_a_queued_job_upstream_now_serves_is_skipped_and_comes_back(fake_pypi):
    fake_pypi.add_release("foo", "1.0")
    run_sync()
    assert jobs() == {"cp39": ("queued", ""), "cp311": ("queued", "")}
    fake_pypi.add_file("foo", "1.0", PURE, b"pure")
    run_sync()
    assert jobs() == {"cp39": ("skipped", "PyPI has a wheel for this: " + PURE),
                      "cp311": ("skipped", "PyPI has a wheel for this: " + PURE)}
    fake_pypi.remove_file("foo", "1.0", PURE)
    run_sync()
    assert jobs() == {"cp39": ("queued", ""), "cp311": ("queued", "")}
    assert Build.objects.count() == 2


def test_a_rebuild_does_not_queue_a_skipped_job(fake_pypi):
    from builds import queue

    fake_pypi.add_release("foo", "1.0", requires_python=">=3.10")
    run_sync()
    assert queue.rebuild(Project.objects.get()) == 1  # cp311 only
    assert jobs()["cp39"] == ("skipped", "requires Python >=3.10")


def test_apply_index_rules_fixes_a_farm_that_already_runs_and_is_idempotent(data_dir):
    foo = make_project("foo")
    # built before the rules: a failed build Requires-Python explains, a queued job ...
    old = make_version(foo, "1.0", requires_python=">=3.10")
    failed = make_build(old, "cp39", state=Build.State.FAILED,
                        failure_reason="SyntaxError: invalid syntax")
    make_build(old, "cp311")
    # ... and a farm copy of a file upstream has under the same name (the six case)
    six = make_version(foo, "2.0", upstream_wheels=[PURE.replace("1.0", "2.0")])
    built = make_build(six, "cp311")
    make_file(built, PURE.replace("1.0", "2.0"))
    queued = make_build(six, "cp39", state=Build.State.QUEUED)
    before = foo.index_serial

    assert run("apply_index_rules") == (
        "0 jobs queued, 1 jobs skipped, 1 failed builds marked skipped, 0 skips lifted, "
        "1 files left the index (upstream has them), 0 files back on it")
    failed.refresh_from_db()
    assert (failed.state, failed.skip_reason, failed.failure_reason) == (
        "skipped", "requires Python >=3.10", "SyntaxError: invalid syntax")
    queued.refresh_from_db()
    assert queued.state == "skipped"
    assert File.objects.get().shadowed_by == "foo-2.0-py3-none-any.whl"
    foo.refresh_from_db()
    assert foo.index_serial > before

    assert run("apply_index_rules") == (
        "0 jobs queued, 0 jobs skipped, 0 failed builds marked skipped, 0 skips lifted, "
        "0 files left the index (upstream has them), 0 files back on it")


def test_apply_index_rules_refetch_learns_upstream_wheels(fake_pypi, data_dir):
    fake_pypi.add_release("foo", "1.0", [("foo-1.0.tar.gz", b"sdist"), (PURE, b"pypi's")])
    foo = make_project("foo")
    version = make_version(foo, "1.0")  # synced before upstream wheels were stored
    make_file(make_build(version, "cp311"), PURE)
    line = run("apply_index_rules", "--refetch", "foo")
    assert line.startswith("refetched 1 projects from upstream: 1 versions changed; 0 errors")
    assert "1 files left the index" in line
    assert Version.objects.get().upstream_wheels == [PURE]
    assert File.objects.get().shadowed_by == PURE


def test_apply_index_rules_refuses_an_unknown_project():
    with pytest.raises(CommandError, match="no project named 'nope'"):
        run("apply_index_rules", "nope")


def test_a_failed_build_a_rule_explained_fails_again_when_the_rule_lifts():
    from builds.queue import refresh_jobs

    version = make_version(make_project("foo"), "1.0", requires_python=">=3.10")
    failed = make_build(version, "cp39", state=Build.State.FAILED, failure_reason="boom")
    refresh_jobs([version.id])
    failed.refresh_from_db()
    assert (failed.state, failed.skip_reason) == ("skipped", "requires Python >=3.10")
    Version.objects.filter(id=version.id).update(requires_python=">=3.8")  # upstream fixed it
    refresh_jobs([version.id])
    failed.refresh_from_db()
    assert (failed.state, failed.skip_reason, failed.failure_reason) == ("failed", "", "boom")
    assert jobs() == {"cp39": ("failed", ""), "cp311": ("queued", "")}
