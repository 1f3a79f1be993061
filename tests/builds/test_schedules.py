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
        "prerender_root": "index.rendering.prerender_root",
    }
    assert all(callable(import_string(func)) for func in schedules.values())


def test_prerender_root_writes_the_root_page_of_an_empty_farm(settings, tmp_path):
    settings.PIWHEELS_DATA_DIR = tmp_path
    import_string(Schedule.objects.get(name="prerender_root").func)()
    assert sorted(p.name for p in (tmp_path / "index").glob("root-*.gz")) == [
        "root-0.html.gz", "root-0.json.gz"
    ]
