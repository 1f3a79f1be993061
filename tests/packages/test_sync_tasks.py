"""The scheduled sync task and its schedule."""
import pytest
from django_q.models import Schedule

from builds import storage
from builds.models import Build, File
from packages.tasks import SyncFailed, sync_pypi
from packages.models import Version
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
    assert line.startswith("sync at serial 3 (first pass)")
    assert line.endswith("1 builds queued, 0 dropped")
    assert Build.objects.get().version.project.name == "foo"
    fake_pypi.fail("/pypi", 405)
    with pytest.raises(SyncFailed, match="answered HTTP 405"):  # a failed task in the admin
        sync_pypi()


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
