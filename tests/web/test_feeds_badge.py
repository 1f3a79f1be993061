"""Atom feeds of new wheels (read by a real feed library), the README badge (cached as
the index pages are), the log page's links to what a build made, and project links."""
from datetime import UTC, datetime, timedelta

import feedparser
import pytest

from builds import logs, storage
from builds.models import Build
from tests.factories import make_abi, make_build, make_file, make_project, make_version

HTML = {"HTTP_ACCEPT": "text/html,application/xhtml+xml,*/*;q=0.8"}
WHEN = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def wheels():
    make_abi("cp311")
    make_abi("cp313")
    foo = make_project("Foo", summary="foo things")
    bar = make_project("bar")
    for n, (project, version) in enumerate([(foo, "1.0"), (bar, "0.1"), (foo, "2.0")]):
        build = make_build(make_version(project, version), "cp311", output="ok\n")
        make_file(build, uploaded=WHEN + timedelta(hours=n), os_release="bookworm")
    return foo


def parse(client, url):
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/atom+xml")
    feed = feedparser.parse(response.content)
    assert not feed.bozo, feed.bozo_exception  # well-formed, as a reader needs
    return feed


@pytest.mark.django_db
def test_the_farm_feed_lists_new_wheels_newest_first(client, wheels):
    feed = parse(client, "/feed/")
    assert feed.version == "atom10"
    assert feed.feed.title == "piwheels: new wheels"
    assert [e.title for e in feed.entries] == [
        "Foo 2.0 (cp311)", "bar 0.1 (cp311)", "Foo 1.0 (cp311)"]
    entry = feed.entries[0]
    assert entry.link == "http://testserver/project/foo/#v-2.0"
    assert entry.id == "/files/foo/foo-2.0-cp311-cp311-linux_armv7l.whl"
    assert entry.updated_parsed[:4] == (2025, 5, 1, 14)
    assert "built for cp311 on bookworm" in entry.summary
    # every page links it for readers to find
    assert 'type="application/atom+xml"' in client.get("/").content.decode()


@pytest.mark.django_db
def test_a_project_feed_lists_only_its_wheels(client, wheels):
    feed = parse(client, "/project/foo/feed/")
    assert feed.feed.title == "piwheels: new wheels of Foo"
    assert feed.feed.link == "http://testserver/project/foo/"
    assert [e.title for e in feed.entries] == ["Foo 2.0 (cp311)", "Foo 1.0 (cp311)"]
    assert client.get("/project/nothing/feed/").status_code == 404
    page = client.get("/project/foo/").content.decode()
    assert 'href="/project/foo/feed/"' in page


@pytest.mark.django_db
def test_the_badge_says_the_newest_versions_state_and_is_cached(client, wheels, settings):
    response = client.get("/project/foo/badge.svg")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml; charset=utf-8"
    assert response["Cache-Control"] == (
        f"max-age={settings.PIWHEELS_INDEX_MAX_AGE}, public, must-revalidate")
    svg = response.content.decode()
    assert svg.startswith("<svg") and "2.0 built" in svg
    etag = response["ETag"]
    again = client.get("/project/foo/badge.svg", HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304 and again.content == b""
    assert again["ETag"] == etag and again["Cache-Control"] == response["Cache-Control"]
    # a newer version fails: the badge changes, and so does its ETag
    make_build(make_version(wheels, "3.0"), "cp311", state=Build.State.FAILED)
    response = client.get("/project/foo/badge.svg", HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 200 and "3.0 failed" in response.content.decode()
    assert response["ETag"] != etag
    make_build(make_version(wheels, "4.0"), "cp311", state=Build.State.QUEUED)
    assert "4.0 queued" in client.get("/project/foo/badge.svg").content.decode()
    make_version(wheels, "5.0", skip_reason="needs CUDA")
    assert "5.0 skipped" in client.get("/project/foo/badge.svg").content.decode()
    make_version(wheels, "6.0", yanked=True)  # yanked: not the newest that counts
    assert "5.0 skipped" in client.get("/project/foo/badge.svg").content.decode()
    assert client.get("/project/nothing/badge.svg").status_code == 404
    assert "/project/foo/badge.svg" in client.get("/project/foo/").content.decode()


@pytest.mark.django_db
def test_the_log_of_a_build_links_its_wheel_and_whole_log(client, data_dir):
    make_abi("cp311")
    build = make_build(make_version(make_project("foo"), "1.0"), "cp311", output="built ok\n")
    wheel = make_file(build)
    logs.store_whole(build.id, "built ok\n")
    text = client.get(f"/logs/{build.id}/", **HTML).content.decode()
    assert '<span class="state succeeded">succeeded</span>' in text
    assert f'href="{storage.file_url("foo", wheel.filename)}"' in text
    assert f'href="/logs/{build.id}/whole.log.gz"' in text
    failed = make_build(make_version(build.version.project, "2.0"), "cp311",
                        state=Build.State.FAILED, output="error\n")
    text = client.get(f"/logs/{failed.id}/", **HTML).content.decode()
    assert "whole.log.gz" not in text and ".whl" not in text


@pytest.mark.django_db
def test_the_project_page_links_pypi_and_the_wheels_own_urls(client, data_dir, settings):
    make_abi("cp311")
    build = make_build(make_version(make_project("foo"), "1.0"), "cp311")
    wheel = make_file(build)
    path = storage.metadata_path("foo", wheel.filename)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "Metadata-Version: 2.1\nName: foo\nVersion: 1.0\n"
        "Home-page: https://foo.example/\n"
        "Project-URL: Source, https://git.example/foo\n"
        "Project-URL: Bug Tracker, https://git.example/foo/issues\n"
        "Project-URL: Funding, https://pay.example/\n"
        "Project-URL: Evil, javascript:alert(1)\n\nLong description\n")
    data = client.get("/project/foo/json/").json()
    assert data["links"] == [
        {"label": "PyPI", "url": f"{settings.PIWHEELS_PYPI_URL}/project/foo/"},
        {"label": "Home page", "url": "https://foo.example/"},
        {"label": "Source", "url": "https://git.example/foo"},
        {"label": "Issues", "url": "https://git.example/foo/issues"},
    ]
    text = client.get("/project/foo/").content.decode()
    assert 'href="https://git.example/foo"' in text and "javascript:" not in text
    assert data["wheels"]["rows"][0]["cells"][0]["version"] == "1.0"
    assert data["downloads"] == {"total": 0, "recent": 0, "days": 30}
