"""The scheduled sync task and its schedule."""
import pytest
from django_q.models import Schedule

from builds.models import Build
from builds.sync_tasks import SyncFailed, sync_pypi
from tests.factories import make_abi

pytestmark = pytest.mark.django_db


def test_the_migrations_schedule_a_pass_every_minute():
    schedule = Schedule.objects.get(name="sync_pypi")
    assert (schedule.func, schedule.schedule_type, schedule.minutes, schedule.repeats) == (
        "builds.sync_tasks.sync_pypi", Schedule.MINUTES, 1, -1)


def test_the_task_syncs_queues_and_returns_a_summary_line(fake_pypi):
    make_abi("cp311")
    fake_pypi.add_release("foo", "1.0")
    line = sync_pypi()
    assert line.startswith("sync at serial 3 (first pass)")
    assert line.endswith("1 builds queued, 0 dropped")
    assert Build.objects.get().version.project.name == "foo"
    fake_pypi.fail("/pypi", 405)
    with pytest.raises(SyncFailed, match="answered HTTP 405"):  # a failed task in the admin
        sync_pypi()
