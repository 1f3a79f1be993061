from datetime import timedelta

import pytest

from builds import publish, queue
from builds.models import Build
from tests.builds.queue_helpers import T0
from tests.factories import make_build, make_project, make_version

pytestmark = pytest.mark.django_db
LEASE = timedelta(seconds=300)


@pytest.fixture
def job(db, settings):
    settings.PIWHEELS_LEASE_SECONDS = 300
    settings.PIWHEELS_MAX_ATTEMPTS = 3
    return make_build(make_version(make_project("foo"), "1.0"), state=Build.State.QUEUED)


def state(job):
    job.refresh_from_db()
    return job.state, job.builder_id, job.attempt


def test_heartbeat_extends_the_lease(job, builder):
    queue.claim(builder, "cp311", T0)
    queue.hold(job.id, builder, T0 + timedelta(minutes=4))
    job.refresh_from_db()
    assert job.lease_until == T0 + timedelta(minutes=4) + LEASE
    assert queue.requeue_expired(T0 + LEASE + timedelta(seconds=1)) == (0, 0)


def test_heartbeat_of_another_builders_job_is_lease_lost(job, builder, other_builder):
    queue.claim(builder, "cp311", T0)
    with pytest.raises(queue.LeaseLost, match=f"build {job.id} is no longer yours"):
        queue.hold(job.id, other_builder, T0)
    assert state(job) == ("building", builder.id, 1)


def test_heartbeat_of_an_unknown_build_is_no_such_build(builder):
    with pytest.raises(queue.NoSuchBuild):
        queue.hold(999999, builder, T0)


def test_expired_lease_goes_back_to_the_queue_keeping_the_attempt(job, builder, other_builder):
    queue.claim(builder, "cp311", T0)
    assert queue.requeue_expired(T0 + LEASE) == (0, 0)  # not yet: lease_until is not past
    assert queue.requeue_expired(T0 + LEASE + timedelta(seconds=1)) == (1, 0)
    assert state(job) == ("queued", builder.id, 1)
    assert queue.claim(other_builder, "cp311", T0 + LEASE * 2).id == job.id
    assert state(job) == ("building", other_builder.id, 2)
    with pytest.raises(queue.LeaseLost):
        queue.hold(job.id, builder, T0 + LEASE * 2)


def test_a_builder_cut_off_takes_its_job_back_if_nobody_claimed_it(job, builder):
    queue.claim(builder, "cp311", T0)
    queue.requeue_expired(T0 + LEASE * 2)
    queue.hold(job.id, builder, T0 + LEASE * 3)
    assert state(job) == ("building", builder.id, 1)
    job.refresh_from_db()
    assert job.lease_until == T0 + LEASE * 4


def test_vanished_builders_never_fail_the_job_after_three_it_goes_to_the_backlog(job, builder):
    Build.objects.filter(id=job.id).update(priority=Build.Priority.NEW_RELEASE)
    now = T0
    for attempt in (1, 2, 3):
        assert queue.claim(builder, "cp311", now).attempt == attempt
        now += LEASE * 2
        assert queue.requeue_expired(now) == (1, 1 if attempt == 3 else 0)
    assert state(job) == ("queued", builder.id, 3)
    job.refresh_from_db()
    assert (job.priority, job.failure_reason, job.cause) == (Build.Priority.BACKLOG, "", "")
    assert queue.claim(builder, "cp311", now).attempt == 4


def test_release_puts_the_job_back_without_counting_the_attempt(job, builder, other_builder):
    queue.claim(builder, "cp311", T0)
    with pytest.raises(queue.LeaseLost):
        queue.release(job.id, other_builder, T0)
    queue.release(job.id, builder, T0)
    assert state(job) == ("queued", None, 0)
    with pytest.raises(queue.LeaseLost):
        queue.release(job.id, builder, T0)
    assert queue.claim(other_builder, "cp311", T0).attempt == 1


def test_finish_after_losing_the_job_to_another_builder_is_refused(job, builder,
                                                                    other_builder, data_dir):
    queue.claim(builder, "cp311", T0)
    queue.requeue_expired(T0 + LEASE * 2)
    queue.claim(other_builder, "cp311", T0 + LEASE * 2)
    with pytest.raises(queue.LeaseLost):
        publish.finish(job.id, builder, False, 1.0, "log", "compile error", now=T0)
    assert state(job) == ("building", other_builder.id, 2)


def test_cut_off_builder_may_still_finish_a_requeued_job(job, builder, data_dir):
    queue.claim(builder, "cp311", T0)
    queue.requeue_expired(T0 + LEASE * 2)
    publish.finish(job.id, builder, False, 1.0, "log", "compile error", now=T0 + LEASE * 3)
    assert state(job) == ("failed", builder.id, 1)


def test_the_task_worker_requeues_expired_leases_every_minute(job, builder):
    from django_q.models import Schedule

    from builds import tasks

    schedule = Schedule.objects.get(name="requeue_expired")
    assert (schedule.func, schedule.schedule_type, schedule.minutes) == (
        "builds.tasks.requeue_expired", Schedule.MINUTES, 1)
    queue.claim(builder, "cp311", T0)  # lease ran out long ago: T0 is in the past
    assert tasks.requeue_expired() == {"requeued": 1, "demoted": 0}
    assert state(job) == ("queued", builder.id, 1)
