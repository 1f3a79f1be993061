"""A builder holds at most PIWHEELS_MAX_JOBS_PER_BUILDER jobs at once (queue.claim): a
stolen token takes no more, however fast or in parallel it claims."""
import threading

import pytest
from django.db import connection

from builds import queue
from builds.models import Build
from tests.builds.queue_helpers import T0
from tests.factories import make_build, make_builder, make_project, make_version


def queued_jobs(count):
    project = make_project("foo")
    return [make_build(make_version(project, f"1.{i}"), "cp311", state=Build.State.QUEUED)
            for i in range(count)]


@pytest.mark.django_db
@pytest.mark.parametrize("take", [queue._claim_orm, queue._claim_one_statement],
                         ids=["orm", "one-statement"])
def test_a_builder_holding_its_limit_gets_nothing_more_until_one_ends(builder, settings,
                                                                      take, monkeypatch):
    settings.PIWHEELS_MAX_JOBS_PER_BUILDER = 2
    if take is queue._claim_orm:
        monkeypatch.setattr(queue, "_claim_one_statement", queue._claim_orm)
    queued_jobs(4)
    first, second = queue.claim(builder, "cp311", T0), queue.claim(builder, "cp311", T0)
    assert (first.slot, second.slot) == (1, 2)

    assert queue.claim(builder, "cp311", T0) is None
    assert Build.objects.filter(builder=builder, state=Build.State.BUILDING).count() == 2
    assert Build.objects.filter(state=Build.State.QUEUED).count() == 2
    other = make_builder("pi2", abi="cp311")
    assert queue.claim(other, "cp311", T0) is not None  # the limit is per builder

    queue.release(first.id, builder, T0)
    again = queue.claim(builder, "cp311", T0)
    assert again is not None and again.slot == 1
    assert queue.claim(builder, "cp311", T0) is None


@pytest.mark.django_db
def test_a_job_taken_back_by_a_heartbeat_counts_against_the_limit(builder, settings):
    settings.PIWHEELS_MAX_JOBS_PER_BUILDER = 2
    queued_jobs(3)
    first = queue.claim(builder, "cp311", T0)
    Build.objects.filter(id=first.id).update(state=Build.State.QUEUED)  # lease ran out
    make_build(make_version(first.version.project, "2.0"), "cp311", state=Build.State.QUEUED)
    second = queue.claim(builder, "cp311", T0)  # the newer job
    assert second.id != first.id and second.slot == 1
    queue.hold(first.id, builder, T0)  # nobody claimed it: taken back, without a slot
    assert Build.objects.get(id=first.id).slot is None
    assert queue.claim(builder, "cp311", T0) is None  # two held already


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_of_one_builder_take_no_more_than_its_limit(settings):
    settings.PIWHEELS_MAX_JOBS_PER_BUILDER = 2
    jobs = queued_jobs(30)
    thief = make_builder("stolen", abi="cp311")
    got, errors = [], []
    start = threading.Barrier(8)

    def claimer():
        try:
            start.wait()
            for _ in range(5):
                build = queue.claim(thief, "cp311", T0)
                if build is not None:
                    got.append(build.id)
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=claimer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert len(got) == 2 and len(set(got)) == 2
    held = Build.objects.filter(builder=thief, state=Build.State.BUILDING)
    assert sorted(held.values_list("id", flat=True)) == sorted(got)
    assert sorted(held.values_list("slot", flat=True)) == [1, 2]
    assert Build.objects.filter(state=Build.State.QUEUED).count() == len(jobs) - 2
