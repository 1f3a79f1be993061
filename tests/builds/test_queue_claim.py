import threading
from datetime import timedelta

import pytest
from django.db import connection

from builds import queue
from builds.models import Build
from tests.builds.queue_helpers import T0
from tests.factories import make_abi, make_build, make_builder, make_project, make_version

pytestmark = pytest.mark.django_db


def queued(version, abi="cp311", priority=Build.Priority.BACKLOG, arch="armv7l"):
    return make_build(version, abi, state=Build.State.QUEUED, priority=priority, arch=arch)


def test_claim_takes_requested_then_new_releases_then_backlog_newest_first(builder):
    project = make_project("foo")
    old_backlog = queued(make_version(project, "0.1"))
    new_backlog = queued(make_version(project, "0.2"))
    release = queued(make_version(project, "1.0"), priority=Build.Priority.NEW_RELEASE)
    requested = queued(make_version(project, "0.05"), priority=Build.Priority.REQUESTED)
    order = [queue.claim(builder, "cp311", T0).id for _ in range(4)]
    assert order == [requested.id, release.id, new_backlog.id, old_backlog.id]
    assert queue.claim(builder, "cp311", T0) is None


def test_claim_marks_the_build_held_with_a_lease(builder, settings):
    settings.PIWHEELS_LEASE_SECONDS = 120
    job = queued(make_version(make_project("foo"), "1.0"))
    build = queue.claim(builder, "cp311", T0)
    assert build.id == job.id
    job.refresh_from_db()
    assert (job.state, job.builder, job.attempt) == ("building", builder, 1)
    assert (job.started, job.lease_until) == (T0, T0 + timedelta(seconds=120))


def test_claim_only_hands_out_the_builders_own_abi(builder):
    queued(make_version(make_project("foo"), "1.0"), abi="cp39")
    make_abi("cp311")
    assert queue.claim(builder, "cp311", T0) is None
    assert queue.claim(builder, "cp39", T0).abi.tag == "cp39"


@pytest.mark.parametrize("tag", ["cp312", "cp37"])
def test_claim_refuses_abis_the_farm_does_not_build(builder, tag):
    make_abi("cp37", active=False)
    with pytest.raises(queue.UnknownAbi, match=f"does not build for ABI '{tag}'"):
        queue.claim(builder, tag, T0)


@pytest.mark.parametrize("change", [
    {"yanked": True}, {"skip_reason": "broken"}, {"removed": True}, {"has_sdist": False},
])
def test_claim_drops_jobs_whose_version_stopped_being_buildable(builder, change):
    project = make_project("foo")
    good = queued(make_version(project, "1.0"))
    bad_version = make_version(project, "2.0")
    queued(bad_version)
    for field, value in change.items():
        setattr(bad_version, field, value)
    bad_version.save()
    assert queue.claim(builder, "cp311", T0).id == good.id
    assert list(Build.objects.values_list("version__version", "state")) == [("1.0", "building")]


def test_claim_skips_jobs_of_skipped_projects(builder):
    queued(make_version(make_project("foo", skip_reason="needs CUDA"), "1.0"))
    assert queue.claim(builder, "cp311", T0) is None
    assert not Build.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_claimers_never_get_the_same_job():
    project = make_project("foo")
    jobs = {queued(make_version(project, f"1.{i}")).id for i in range(60)}
    builders = [make_builder(f"pi{i}") for i in range(12)]
    got, errors = [], []
    start = threading.Barrier(len(builders))

    def claimer(builder):
        try:
            start.wait()
            while (build := queue.claim(builder, "cp311", T0)) is not None:
                got.append((build.id, builder.id))
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=claimer, args=(b,)) for b in builders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    ids = [build_id for build_id, _ in got]
    assert sorted(ids) == sorted(jobs)  # every job handed out exactly once
    assert len({b for _, b in got}) > 1  # and the claimers really raced
    held = dict(Build.objects.values_list("id", "builder_id"))
    assert all(held[build_id] == builder_id for build_id, builder_id in got)
    assert set(Build.objects.values_list("state", "attempt")) == {("building", 1)}


@pytest.mark.parametrize("take", [queue._claim_orm, queue._claim_one_statement],
                         ids=["orm", "one-statement"])
def test_both_claim_paths_take_the_most_urgent_job_and_drop_unbuildable_ones(builder, take):
    """The ORM path (SQLite) and the one-statement path (PostgreSQL) agree, and take
    only jobs of the architecture asked for."""
    abi = make_abi("cp311")
    project = make_project("foo")
    good = queued(make_version(project, "1.0"))
    gone = make_version(project, "2.0", yanked=True)
    bad = queued(gone)
    other_arch = queued(make_version(project, "3.0"), arch="aarch64")
    assert take(builder, abi, "armv7l", T0) == (None, bad)
    assert not Build.objects.filter(id=bad.id).exists()
    build, dropped = take(builder, abi, "armv7l", T0)
    assert (build.id, dropped) == (good.id, None)
    assert (build.version.project.name, build.abi.tag, build.attempt) == ("foo", "cp311", 1)
    good.refresh_from_db()
    assert (good.state, good.builder_id, good.started) == ("building", builder.id, T0)
    assert take(builder, abi, "armv7l", T0) == (None, None)
    other_arch.refresh_from_db()
    assert other_arch.state == "queued"
    build, _ = take(builder, abi, "aarch64", T0)
    assert (build.id, build.arch) == (other_arch.id, "aarch64")


@pytest.mark.django_db(transaction=True)
def test_claim_prepares_its_statement_again_on_a_new_connection(builder):
    project = make_project("foo")
    jobs = [queued(make_version(project, f"1.{i}")).id for i in range(2)]
    first = queue.claim(builder, "cp311", T0)
    connection.close()
    second = queue.claim(builder, "cp311", T0)
    assert sorted([first.id, second.id]) == sorted(jobs)
