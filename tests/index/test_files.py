"""/files/<name>/<filename>: wheels and metadata, only while published."""
import pytest

from builds import storage
from builds.models import Build
from index import downloads
from tests.factories import (
    make_build,
    make_file,
    make_project,
    make_version,
    wheel_archive,
)
from tests.index.factories import publish

pytestmark = pytest.mark.django_db


@pytest.fixture
def wheel_file(data_dir):
    project = make_project("Foo")
    wheel = wheel_archive("Foo", "1.0", "cp311-cp311-linux_armv7l", requires_python=">=3.9")
    file = publish(make_version(project, "1.0"), wheel)
    file.wheel = wheel
    return file


@pytest.fixture
def counts(monkeypatch):
    """The downloads counted in memory, read after the request (nothing flushed meanwhile)."""
    monkeypatch.setattr(downloads, "FLUSH_EVERY", 10**9)
    monkeypatch.setattr(downloads, "FLUSH_SECONDS", 10**9)

    class Held:
        def items(self):
            return downloads.held().items()

        def values(self):
            return downloads.held().values()

    return Held()


def body(response):
    return b"".join(response.streaming_content)


def test_wheel_is_served_whole_with_immutable_caching(client, wheel_file, counts):
    response = client.get(f"/files/foo/{wheel_file.filename}")
    assert response.status_code == 200
    assert body(response) == wheel_file.wheel.content
    assert response["Content-Length"] == str(wheel_file.size)
    assert response["ETag"] == f'"{wheel_file.sha256}"'
    assert response["Accept-Ranges"] == "bytes"
    assert response["Cache-Control"] == "public, max-age=31536000, immutable"
    assert sum(n for (fid, _), n in counts.items() if fid == wheel_file.id) == 1


def test_armv6l_name_serves_the_armv7l_bytes(client, wheel_file, counts):
    alias = "foo-1.0-cp311-cp311-linux_armv6l.whl"
    response = client.get(f"/files/foo/{alias}")
    assert response.status_code == 200
    assert body(response) == wheel_file.wheel.content
    assert not storage.file_path("foo", alias).exists()  # one copy on disk
    assert client.get(f"/files/foo/{alias}.metadata").status_code == 200
    assert sum(n for (fid, _), n in counts.items() if fid == wheel_file.id) == 1


@pytest.mark.parametrize(
    "header, status, span",
    [
        ("bytes=0-9", 206, (0, 9)),
        ("bytes=10-", 206, (10, None)),
        ("bytes=-22", 206, (-22, None)),
        ("bytes=5-100000", 206, (5, None)),
        ("bytes=-0", 416, None),
        ("bytes=100000-", 416, None),
        ("bytes=0-1,5-6", 200, None),  # several ranges: the whole file
        ("pages=1-2", 200, None),
        ("bytes=9-3", 200, None),
    ],
)
def test_single_ranges_are_honoured(client, wheel_file, counts, header, status, span):
    content = wheel_file.wheel.content
    response = client.get(f"/files/foo/{wheel_file.filename}", HTTP_RANGE=header)
    assert response.status_code == status
    if status == 206:
        start, end = span
        expected = content[start:] if end is None else content[start:end + 1]
        assert body(response) == expected
        first = start % len(content)
        assert response["Content-Range"] == (
            f"bytes {first}-{first + len(expected) - 1}/{len(content)}"
        )
        assert response["Content-Length"] == str(len(expected))
    elif status == 416:
        assert response["Content-Range"] == f"bytes */{len(content)}"
    else:
        assert body(response) == content
    assert sum(counts.values()) == (1 if status == 200 else 0)


def test_if_range_with_another_etag_sends_the_whole_file(client, wheel_file, counts):
    response = client.get(
        f"/files/foo/{wheel_file.filename}", HTTP_RANGE="bytes=0-3", HTTP_IF_RANGE='"other"'
    )
    assert response.status_code == 200
    response = client.get(
        f"/files/foo/{wheel_file.filename}", HTTP_RANGE="bytes=0-3",
        HTTP_IF_RANGE=f'"{wheel_file.sha256}"',
    )
    assert response.status_code == 206


def test_if_none_match_gets_304_and_no_download_is_counted(client, wheel_file, counts):
    response = client.get(
        f"/files/foo/{wheel_file.filename}", HTTP_IF_NONE_MATCH=f'"{wheel_file.sha256}"'
    )
    assert response.status_code == 304
    assert response["ETag"] == f'"{wheel_file.sha256}"'
    assert sum(counts.values()) == 0


def test_metadata_is_served_with_its_own_hash(client, wheel_file):
    response = client.get(f"/files/foo/{wheel_file.filename}.metadata")
    assert response.status_code == 200
    assert body(response) == wheel_file.wheel.metadata
    assert response["ETag"] == f'"{wheel_file.metadata_sha256}"'


def test_metadata_of_a_file_without_one_is_404(client, data_dir):
    wheel = wheel_archive("foo", "1.0")
    publish(make_version(make_project("foo"), "1.0"), wheel, with_metadata=False)
    assert client.get(f"/files/foo/{wheel.filename}.metadata").status_code == 404


def test_unpublished_files_are_404_even_with_bytes_on_disk(client, data_dir, counts):
    project = make_project("foo")
    wheel = wheel_archive("foo", "1.0")
    build = make_build(make_version(project, "1.0"), state=Build.State.BUILDING)
    publish(build.version, wheel, build=build)
    assert storage.file_path("foo", wheel.filename).exists()
    assert client.get(f"/files/foo/{wheel.filename}").status_code == 404
    assert client.get(f"/files/foo/{wheel.filename}.metadata").status_code == 404

    removed = make_version(project, "2.0", removed=True)
    gone = wheel_archive("foo", "2.0")
    publish(removed, gone)
    assert client.get(f"/files/foo/{gone.filename}").status_code == 404
    assert sum(counts.values()) == 0


def test_file_under_another_project_name_is_404(client, wheel_file):
    make_project("bar")
    assert client.get(f"/files/bar/{wheel_file.filename}").status_code == 404
    assert client.get("/files/foo/foo-9.9-py3-none-any.whl").status_code == 404


def test_published_file_missing_on_disk_is_404(client, data_dir):
    build = make_build(make_version(make_project("foo"), "1.0"))
    file = make_file(build, "foo-1.0-py3-none-any.whl")
    assert client.get(f"/files/foo/{file.filename}").status_code == 404


def test_accel_redirect_hands_the_file_to_nginx(client, wheel_file, settings, counts):
    settings.PIWHEELS_ACCEL_REDIRECT = "/internal-files/"
    response = client.get("/files/foo/foo-1.0-cp311-cp311-linux_armv6l.whl")
    assert response.status_code == 200
    assert response["X-Accel-Redirect"] == f"/internal-files/foo/{wheel_file.filename}"
    assert response.content == b""
    assert response["ETag"] == f'"{wheel_file.sha256}"'
    assert sum(counts.values()) == 1


def test_head_is_allowed_and_not_counted(client, wheel_file, counts):
    response = client.head(f"/files/foo/{wheel_file.filename}")
    assert response.status_code == 200
    assert response["Content-Length"] == str(wheel_file.size)
    assert sum(counts.values()) == 0
    assert client.post(f"/files/foo/{wheel_file.filename}").status_code == 405
