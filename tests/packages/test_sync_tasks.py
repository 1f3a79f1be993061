"""The scheduled sync task and its schedule."""
from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import Schedule

from builds import storage
from builds.models import Build, File
from packages.models import Project, Version
from packages.tasks import SyncFailed, run_sync, sync_pypi
from tests.factories import make_abi, make_build, make_file

pytestmark = pytest.mark.django_db


def test_the_migrations_schedule_a_pass_every_minute():
    schedule = Schedule.objects.get(name="sync_pypi")
    assert (schedule.func, schedule.schedule_type, schedule.minutes, schedule.repeats) == (
        "packages.tasks.sync_pypi", Schedule.MINUTES, 1, -1)


def test_the_task_syncs_queues_and_returns_a_summary_line(fake_pypi):
    make_abi("cp311")
    fake_pypi.add_release("foo", "1.0")
    line = sync_pypi()
    assert line.startswith("sync at serial 3 via simple-json (first pass)")
    assert line.endswith("1 builds queued, 0 dropped")
    assert Build.objects.get().version.project.name == "foo"
    fake_pypi.xmlrpc = False
    fake_pypi.fail("/simple/", 503, times=10)
    with pytest.raises(SyncFailed, match="HTTP 503 .gave up"):  # a failed task in the admin
        sync_pypi()


def test_interval_zero_pauses_the_sync(fake_pypi, settings):
    fake_pypi.add_release("foo", "1.0")
    settings.PIWHEELS_SYNC_INTERVAL = 0
    assert sync_pypi() == "sync paused (PIWHEELS_SYNC_INTERVAL=0)"
    assert fake_pypi.requests == [] and not Project.objects.exists()


def test_the_interval_takes_effect_at_run_time(fake_pypi, settings):
    settings.PIWHEELS_SYNC_INTERVAL = 300
    sync_pypi()
    assert Schedule.objects.get(name="sync_pypi").minutes == 5


def test_a_project_deleted_upstream_leaves_the_farm_with_its_files(fake_pypi, data_dir,
                                                                  settings):
    make_abi("cp311")
    fake_pypi.add_release("foo", "1.0")
    fake_pypi.add_release("bar", "1.0")
    sync_pypi()
    file = make_file(make_build(Version.objects.get(project__name="foo")), content=b"w")
    path = storage.file_path("foo", file.filename)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"w")
    fake_pypi.remove_project("foo")
    t0 = timezone.now()
    run_sync(now=t0)
    assert path.exists()  # one 404 is not enough
    run_sync(now=t0 + timedelta(seconds=settings.PIWHEELS_SYNC_GONE_AFTER))
    assert not path.parent.exists() and not File.objects.exists()
    assert list(Project.objects.values_list("name", flat=True)) == ["bar"]


def test_a_release_removed_upstream_leaves_with_its_files(fake_pypi, data_dir):
    make_abi("cp311")
    fake_pypi.add_release("foo", "1.0")
    fake_pypi.add_release("foo", "2.0")
    sync_pypi()
    served = {}
    for version in Version.objects.all():
        file = make_file(make_build(version), content=version.version.encode())
        path = storage.file_path("foo", file.filename)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"wheel")
        served[version.version] = path
    fake_pypi.remove_release("foo", "1.0")
    sync_pypi()
    assert list(File.objects.values_list("build__version__version", flat=True)) == ["2.0"]
    assert not served["1.0"].exists() and served["2.0"].exists()
    assert Version.objects.get(version="1.0").removed
