"""The statistics page: builds per day, success rate, queue, builders online, disk, downloads."""
import re
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.core.cache import cache

from builds.models import Build, DailyDownloads
from tests.factories import (
    make_abi,
    make_build,
    make_builder,
    make_file,
    make_project,
    make_version,
)

NOW = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()


@pytest.fixture
def history():
    make_abi("cp39")
    make_abi("cp311")
    project = make_project("foo")
    v1, v2, v3 = (make_version(project, v) for v in ["1.0", "2.0", "3.0"])
    yesterday = NOW - timedelta(days=1)
    ok = make_build(v1, "cp311", finished=yesterday)
    make_build(v2, "cp311", finished=yesterday)
    make_build(v1, "cp39", state=Build.State.FAILED, finished=yesterday)
    make_build(v2, "cp39", finished=NOW - timedelta(days=40))  # too old to show
    make_build(v3, "cp311", state=Build.State.QUEUED)
    v4 = make_version(project, "4.0", requires_python=">=3.10")
    make_build(v4, "cp39", state=Build.State.SKIPPED, finished=yesterday,
               skip_reason="requires Python >=3.10")
    pi = make_builder("pi1", abi="cp39", last_seen=NOW - timedelta(minutes=1))
    make_builder("pi-gone", abi="cp39", last_seen=NOW - timedelta(hours=1))
    make_build(v3, "cp39", state=Build.State.BUILDING, builder=pi, started=NOW)
    wheel = make_file(ok, size=3 * 1024**2)
    DailyDownloads.objects.create(file=wheel, day=date(2025, 6, 29), count=12)
    DailyDownloads.objects.create(file=wheel, day=date(2025, 6, 30), count=5)


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_stats_counts_builds_per_day_and_success_rate(client, history):
    response = client.get("/stats/")
    assert response.status_code == 200
    days = response.context["stats"]["builds_per_day"]
    assert len(days) == 30 and days[-1]["day"] == date(2025, 6, 30)
    # the skip is counted apart: not a failure, not in the success rate
    assert days[-2] == {"day": date(2025, 6, 29), "succeeded": 2, "failed": 1, "total": 3,
                        "skipped": 1, "success_rate": 66.7}
    assert response.context["stats"]["builds"] == {"succeeded": 3, "failed": 1, "skipped": 1,
                                                   "queued": 1, "building": 1}
    assert sum(d["total"] for d in days) == 3
    assert days[0]["success_rate"] is None
    text = response.content.decode()
    assert text.count('<svg class="chart"') == 3
    assert "succeeded: 2 · failed: 1" in text  # the bar's tooltip
    assert "<dt>skipped</dt><dd>1</dd>" in text


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_stats_shows_queue_builders_disk_and_downloads(client, history):
    response = client.get("/stats/")
    stats = response.context["stats"]
    assert stats["queue"] == [
        {"abi": "cp39", "arch": "armv7l", "active": True, "queued": 0, "building": 1},
        {"abi": "cp311", "arch": "armv7l", "active": True, "queued": 1, "building": 0},
    ]
    assert stats["disk_bytes"] == 3 * 1024**2
    assert [d["downloads"] for d in stats["downloads_per_day"][-2:]] == [12, 5]
    builders = response.context["builders"]
    assert [b["name"] for b in builders] == ["pi1"]
    assert builders[0]["building"][0]["version"] == "3.0"
    text = response.content.decode()
    assert "building <a href=\"/project/foo/\">foo 3.0</a> for cp39" in text
    assert "3.0\xa0MB" in text
    assert "pi-gone" not in text


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_stats_are_cached_until_builds_change(client, history, django_assert_num_queries):
    client.get("/stats/")
    with django_assert_num_queries(3):  # the change stamp, builders online, what they build
        response = client.get("/stats/")
    assert response.status_code == 200
    assert response["Cache-Control"] == "max-age=10"  # a browser is not a minute behind


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_stats_and_home_are_not_behind_a_build_that_just_failed(client, history):
    client.get("/stats/")
    client.get("/")
    building = Build.objects.get(state=Build.State.BUILDING)
    Build.objects.filter(id=building.id).update(state=Build.State.FAILED, finished=NOW)
    stats = client.get("/stats/").context["stats"]
    assert stats["builds"]["failed"] == 2 and stats["builds_per_day"][-1]["failed"] == 1
    assert stats["builds_per_day"][-1]["success_rate"] == 0.0
    assert client.get("/").context["totals"]["builds_failed"] == 2
    # and a new job in the queue
    make_build(make_version(building.version.project, "5.0"), "cp39", state=Build.State.QUEUED)
    assert client.get("/").context["totals"]["queued"] == 2


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_stats_axes_tick_whole_builds_and_counts_have_separators(client, history):
    text = client.get("/stats/").content.decode()
    # three finished builds yesterday: the axis tops at 4 builds, the middle tick at 2
    builds_chart = text.split('<svg class="chart"')[1]
    ticks = re.findall(r'text-anchor="end">([^<]+)</text>', builds_chart)
    assert ticks[:3] == ["0", "2", "4"]
    assert all("." not in tick for tick in ticks)
    DailyDownloads.objects.filter(day=date(2025, 6, 30)).update(count=927088)
    cache.clear()
    text = client.get("/stats/").content.decode()
    assert "downloads: 927,088" in text
    home = client.get("/").content.decode()
    assert re.search(r"<dd>\d{1,3}(,\d{3})*</dd>", home)
