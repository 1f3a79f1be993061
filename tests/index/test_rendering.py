"""builds/index.py: what the index lists and how renderings follow changes."""
import gzip
import json

import pytest
from django.core.cache import caches

from index import rendering
from builds.models import Build
from packages.models import touch_index_root
from tests.index.factories import publish
from tests.factories import (
    make_build,
    make_file,
    make_project,
    make_version,
    wheel_archive,
)

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "filename, alias",
    [
        ("foo-1.0-cp311-cp311-linux_armv7l.whl", "foo-1.0-cp311-cp311-linux_armv6l.whl"),
        (
            "foo-1.0-cp311-cp311-manylinux_2_17_armv7l.linux_armv7l.whl",
            "foo-1.0-cp311-cp311-manylinux_2_17_armv7l.linux_armv6l.whl",
        ),
        ("foo-1.0-py3-none-any.whl", None),
        ("foo-1.0-cp311-cp311-linux_armv6l.whl", None),
        ("foo-1.0-cp311-cp311-linux_aarch64.whl", None),
        ("foo-1.0.tar.gz", None),
    ],
)
def test_armv6l_alias_names_only_armv7l_wheels(filename, alias):
    assert rendering.armv6l_alias(filename) == alias
    if alias:
        assert rendering.armv7l_original(alias) == filename


def test_detail_lists_published_files_in_version_order(data_dir):
    project = make_project("Foo.Bar")
    for text in ["10.0", "9.0", "1.0rc1"]:
        publish(make_version(project, text), wheel_archive("Foo.Bar", text))
    queued = make_build(make_version(project, "11.0"), state=Build.State.QUEUED)
    make_file(queued, "foo_bar-11.0-py3-none-any.whl")  # bytes uploaded, build unfinished
    removed = make_version(project, "0.1", removed=True)
    publish(removed, wheel_archive("Foo.Bar", "0.1"))

    detail = rendering.simple_detail(project)

    assert detail["meta"] == {"api-version": "1.1"}
    assert detail["name"] == "foo-bar"
    assert detail["versions"] == ["1.0rc1", "9.0", "10.0"]
    assert [f["filename"] for f in detail["files"]] == [
        "foo_bar-1.0rc1-py3-none-any.whl",
        "foo_bar-9.0-py3-none-any.whl",
        "foo_bar-10.0-py3-none-any.whl",
    ]


def test_detail_file_entry_carries_every_pep_field(data_dir):
    project = make_project("foo")
    version = make_version(project, "1.0", yanked=True, yanked_reason="broken <build>")
    wheel = wheel_archive("foo", "1.0", "cp311-cp311-linux_armv7l", requires_python=">=3.9")
    file = publish(version, wheel)

    first, alias = rendering.simple_detail(project)["files"]

    assert first == {
        "filename": wheel.filename,
        "url": f"/files/foo/{wheel.filename}",
        "hashes": {"sha256": file.sha256},
        "requires-python": ">=3.9",
        "core-metadata": {"sha256": file.metadata_sha256},
        "dist-info-metadata": {"sha256": file.metadata_sha256},
        "yanked": "broken <build>",
        "size": len(wheel.content),
        "upload-time": file.uploaded.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }
    assert alias["filename"] == "foo-1.0-cp311-cp311-linux_armv6l.whl"
    assert alias["url"] == "/files/foo/foo-1.0-cp311-cp311-linux_armv6l.whl"
    assert alias["hashes"] == first["hashes"]


def test_yanked_without_reason_is_true_and_no_metadata_is_false(data_dir):
    project = make_project("foo")
    publish(make_version(project, "1.0", yanked=True), wheel_archive("foo", "1.0"),
            with_metadata=False)

    (entry,) = rendering.simple_detail(project)["files"]

    assert entry["yanked"] is True
    assert entry["core-metadata"] is False
    assert entry["dist-info-metadata"] is False


def test_real_armv6l_file_is_not_shadowed_by_an_alias(data_dir):
    project = make_project("foo")
    version = make_version(project, "1.0")
    seven = publish(version, wheel_archive("foo", "1.0", "cp311-cp311-linux_armv7l"))
    six = publish(version, wheel_archive("foo", "1.0", "cp311-cp311-linux_armv6l", ) ._replace(
        content=b"other bytes"))

    files = rendering.simple_detail(project)["files"]

    assert [(f["filename"], f["hashes"]["sha256"]) for f in files] == [
        (six.filename, six.sha256), (seven.filename, seven.sha256)
    ]


def test_detail_page_follows_the_index_serial(data_dir, django_assert_num_queries):
    project = make_project("foo")
    publish(make_version(project, "1.0"), wheel_archive("foo", "1.0"))
    project.refresh_from_db()

    with django_assert_num_queries(1):  # the files
        page = rendering.detail_page(project.id, "foo", project.index_serial)
    with django_assert_num_queries(0):
        assert rendering.detail_page(project.id, "foo", project.index_serial) == page
    assert b"foo-1.0-py3-none-any.whl" in page["html"]

    publish(make_version(project, "2.0"), wheel_archive("foo", "2.0"))
    project.refresh_from_db()
    newer = rendering.detail_page(project.id, "foo", project.index_serial)
    assert b"foo-2.0-py3-none-any.whl" in newer["html"]
    assert json.loads(newer["json"])["versions"] == ["1.0", "2.0"]


def test_detail_page_of_a_project_without_files_is_none(data_dir):
    project = make_project("foo", versions=["1.0"])
    assert rendering.detail_page(project.id, "foo", 0) is None
    assert caches["index"].get(f"simple:{project.id}:0") == {}


def test_render_root_lists_projects_with_files_once_each(data_dir):
    for name in ["b-proj", "A_Proj"]:
        project = make_project(name)
        for text in ["1.0", "2.0"]:
            publish(make_version(project, text), wheel_archive(name, text))
    make_project("empty", versions=["1.0"])
    gone = make_project("gone")
    publish(make_version(gone, "1.0", removed=True), wheel_archive("gone", "1.0"))

    assert rendering.render_root(7) == 2

    html = gzip.decompress(rendering.root_path(7, "html").read_bytes()).decode()
    assert '<meta name="pypi:repository-version" content="1.1">' in html
    assert html.count("<a ") == 2
    assert '<a href="a-proj/">a-proj</a>' in html and '<a href="b-proj/">b-proj</a>' in html
    assert json.loads(gzip.decompress(rendering.root_path(7, "json").read_bytes())) == {
        "meta": {"api-version": "1.1"},
        "projects": [{"name": "a-proj"}, {"name": "b-proj"}],
    }


def test_render_root_streams_in_chunks_and_removes_old_renderings(data_dir, monkeypatch):
    monkeypatch.setattr(rendering, "ROOT_CHUNK", 2)
    names = [f"p{i}" for i in range(5)]
    for name in names:
        publish(make_version(make_project(name), "1.0"), wheel_archive(name, "1.0"))
    rendering.render_root(1)

    assert rendering.render_root(2) == 5

    listed = json.loads(gzip.decompress(rendering.root_path(2, "json").read_bytes()))["projects"]
    assert [p["name"] for p in listed] == names
    html = gzip.decompress(rendering.root_path(2, "html").read_bytes()).decode()
    assert html.count("<a ") == 5 and html.endswith("</html>\n")
    assert not rendering.root_path(1, "html").exists()
    assert not rendering.root_path(1, "json").exists()


def test_prerender_root_renders_the_current_serial_once(data_dir):
    publish(make_version(make_project("foo"), "1.0"), wheel_archive("foo", "1.0"))
    serial = rendering.root_serial()

    assert rendering.prerender_root() == 1
    assert rendering.root_path(serial, "html").exists()
    assert rendering.prerender_root() is None

    touch_index_root()
    assert rendering.prerender_root() == 1
    assert rendering.root_path(serial + 1, "json").exists()


def test_detail_page_is_shared_by_workers_through_files(data_dir, django_assert_num_queries):
    project = make_project("foo")
    publish(make_version(project, "1.0"), wheel_archive("foo", "1.0"))
    project.refresh_from_db()
    page = rendering.detail_page(project.id, "foo", project.index_serial)

    caches["index"].clear()  # another worker, or this one restarted
    with django_assert_num_queries(0):
        assert rendering.detail_page(project.id, "foo", project.index_serial) == page
    files = sorted(p.name for p in rendering.page_dir(project.id).iterdir())
    assert files == [f"{project.id}-{project.index_serial}.{fmt}"
                     for fmt in ("html", "html.gz", "json", "json.gz")]
    assert gzip.decompress(page["json.gz"]) == page["json"]
    assert gzip.decompress(page["html.gz"]) == page["html"]


def test_project_page_on_disk_moves_on_with_the_serial(data_dir):
    project = make_project("foo")
    publish(make_version(project, "1.0"), wheel_archive("foo", "1.0"))
    project.refresh_from_db()
    rendering.detail_page(project.id, "foo", project.index_serial)
    publish(make_version(project, "2.0"), wheel_archive("foo", "2.0"))
    project.refresh_from_db()
    caches["index"].clear()

    page = rendering.detail_page(project.id, "foo", project.index_serial)

    assert json.loads(page["json"])["versions"] == ["1.0", "2.0"]
    assert sorted(p.name for p in rendering.page_dir(project.id).iterdir()) == [
        f"{project.id}-{project.index_serial}.{fmt}"
        for fmt in ("html", "html.gz", "json", "json.gz")
    ]


def test_project_page_without_files_writes_nothing(data_dir):
    project = make_project("foo", versions=["1.0"])
    assert rendering.detail_page(project.id, "foo", 0) is None
    assert not rendering.page_dir(project.id).exists()
