import pytest

from builds.models import Build
from builds.queue import refresh_jobs
from tests.factories import make_abi, make_build, make_project, make_version


@pytest.mark.django_db
def test_refresh_queues_each_active_abi_once():
    make_abi("cp311")
    make_abi("cp39")
    make_abi("cp37", active=False)
    version = make_version(make_project("foo"), "1.0")
    assert refresh_jobs([version.id]) == (2, 0)
    assert refresh_jobs([version.id]) == (0, 0)
    assert sorted(Build.objects.values_list("abi__tag", "state")) == [
        ("cp311", "queued"), ("cp39", "queued")
    ]


@pytest.mark.django_db
def test_refresh_drops_jobs_of_yanked_versions_and_keeps_finished_builds():
    make_abi("cp311")
    project = make_project("foo")
    version = make_version(project, "1.0")
    failed = make_version(project, "2.0")
    make_build(failed, "cp311", state=Build.State.FAILED)
    refresh_jobs([version.id, failed.id])
    version.yanked = True
    version.save()
    assert refresh_jobs([version.id, failed.id]) == (0, 1)
    assert list(Build.objects.values_list("version__version", "state")) == [("2.0", "failed")]
