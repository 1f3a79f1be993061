import pytest
from django.utils.module_loading import import_string
from django_q.models import Schedule

pytestmark = pytest.mark.django_db


def test_every_task_the_worker_runs_is_scheduled_by_the_migrations():
    schedules = dict(Schedule.objects.values_list("name", "func"))
    assert schedules == {
        "sync_pypi": "packages.tasks.sync_pypi",
        "requeue_expired": "builds.tasks.requeue_expired",
        "fold_downloads": "index.downloads.fold",
        "repair_index_pages": "index.pages.repair",
        "sweep_index_pages": "index.pages.sweep",
        # makes "apt_contents <release>" (builds.tasks.refresh_apt_contents) for each
        # release the builders report: tests/builds/test_apt_schedules.py
        "apt_contents_schedules": "builds.tasks.schedule_apt_contents",
    }
    assert all(callable(import_string(func)) for func in schedules.values())


def test_repair_writes_the_root_page_of_an_empty_farm(settings, tmp_path):
    settings.PIWHEELS_DATA_DIR = tmp_path
    assert import_string(Schedule.objects.get(name="repair_index_pages").func)() == 0
    assert sorted(p.name for p in (tmp_path / "index" / "simple").glob("index.*")) == [
        "index.html", "index.html.gz", "index.json", "index.json.gz"
    ]
    assert import_string(Schedule.objects.get(name="sweep_index_pages").func)() == 0
