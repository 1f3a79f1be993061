"""index/downloads.py: counting in memory, logs on disk, folding into the database."""
from datetime import UTC, date, datetime, timedelta

import pytest

from builds.models import DailyDownloads, File
from index import downloads
from packages.models import Project
from tests.factories import make_project, make_version, wheel_archive
from tests.index.factories import publish

pytestmark = pytest.mark.django_db

NOON = datetime(2024, 5, 1, 12, 0, 30, tzinfo=UTC)


@pytest.fixture
def files(data_dir, monkeypatch):
    monkeypatch.setattr(downloads, "FLUSH_SECONDS", 10**9)
    monkeypatch.setattr(downloads, "FLUSH_EVERY", 3)
    project = make_project("foo")
    yield [
        publish(make_version(project, v), wheel_archive("foo", v)) for v in ("1.0", "2.0")
    ]



def test_downloads_reach_the_database_only_when_folded(files, django_assert_num_queries):
    one, two = files
    with django_assert_num_queries(0):
        downloads.record(one.id, now=NOON)
        downloads.record(one.id, now=NOON)
        downloads.record(two.id, now=NOON)  # the third: flushed to the log
        downloads.record(two.id, now=NOON + timedelta(days=1))
    assert len(list(downloads.log_dir().glob("*.log"))) == 1
    assert downloads.flush(now=NOON + timedelta(days=1)) == 1

    assert downloads.fold(now=NOON) == 0  # the minute is not over yet
    assert downloads.fold(now=NOON + timedelta(days=1, minutes=2)) == 4

    one.refresh_from_db()
    two.refresh_from_db()
    assert (one.downloads, two.downloads) == (2, 2)
    assert Project.objects.get(normalized_name="foo").downloads == 4  # the sync's order
    assert sorted(DailyDownloads.objects.values_list("file_id", "day", "count")) == [
        (one.id, date(2024, 5, 1), 2),
        (two.id, date(2024, 5, 1), 1),
        (two.id, date(2024, 5, 2), 1),
    ]
    assert list(downloads.log_dir().iterdir()) == []


def test_fold_adds_to_existing_counts_and_drops_deleted_files(files):
    one, two = files
    for _ in range(3):
        downloads.record(one.id, now=NOON)
    downloads.fold(now=NOON + timedelta(minutes=5))
    downloads.record(one.id, now=NOON)
    downloads.record(two.id, now=NOON)
    downloads.record(two.id, now=NOON)
    File.objects.filter(pk=two.pk).delete()

    assert downloads.fold(now=NOON + timedelta(minutes=5)) == 1

    one.refresh_from_db()
    assert one.downloads == 4
    assert Project.objects.get(normalized_name="foo").downloads == 4  # not the deleted file's
    assert DailyDownloads.objects.get(file=one).count == 4
    assert not DailyDownloads.objects.filter(file_id=two.id).exists()


def test_fold_picks_up_logs_left_by_an_interrupted_run(files):
    one, _ = files
    directory = downloads.log_dir()
    directory.mkdir(parents=True)
    (directory / "202405011200-host-1.folding").write_text(f"{one.id} 2024-05-01 5\nbad line\n")

    assert downloads.fold(now=NOON) == 5
    one.refresh_from_db()
    assert one.downloads == 5
    assert downloads.fold(now=NOON) == 0


def test_fold_without_logs_does_nothing(data_dir):
    assert downloads.fold() == 0


@pytest.mark.django_db(transaction=True)
def test_a_gunicorn_worker_writes_its_counts_as_it_exits(data_dir, tmp_path):
    """No atexit: the worker_exit hook of piwheels_site/gunicorn.conf.py flushes, so a
    download counted seconds before a stop is in the logs, and fold() counts it."""
    import requests

    from tests.live import FarmProcess

    file = publish(make_version(make_project("foo"), "1.0"), wheel_archive("foo", "1.0"))
    # Time enough to exit gracefully on a loaded machine (past it, gunicorn kills workers).
    farm = FarmProcess(data_dir, "http://127.0.0.1:9", tmp_path / "farm.log", graceful_timeout=30)
    farm.start()
    try:
        response = requests.get(f"{farm.url}/files/foo/{file.filename}", timeout=10)
        assert response.status_code == 200
        assert not list(downloads.log_dir().glob("*.log"))  # held in the worker's memory
    finally:
        farm.stop()
    assert downloads.fold(now=datetime.now(UTC) + timedelta(minutes=2)) == 1, (
        tmp_path / "farm.log").read_text()
    assert File.objects.get(id=file.id).downloads == 1
