"""index/rendering.py: what the index lists."""
import gzip
import json

import pytest

from builds.models import Build
from index import pages, rendering
from packages.models import Project
from tests.factories import (
    make_build,
    make_file,
    make_project,
    make_version,
    wheel_archive,
)
from tests.index.factories import publish

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

    assert detail["meta"] == {"api-version": "1.4"}
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
        "core-metadata": {"sha256": file.metadata_sha256},  # PEP 714: no dist-info-metadata
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
    assert "dist-info-metadata" not in entry


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


def test_render_root_lists_projects_with_files_once_each(data_dir):
    for name in ["b-proj", "A_Proj"]:
        project = make_project(name)
        for text in ["1.0", "2.0"]:
            publish(make_version(project, text), wheel_archive(name, text))
    make_project("empty", versions=["1.0"])
    gone = make_project("gone")
    publish(make_version(gone, "1.0", removed=True), wheel_archive("gone", "1.0"))

    assert pages.write_root() == 2

    assert pages.root_file("html").read_bytes() == gzip.decompress(
        pages.root_file("html.gz").read_bytes())
    html = pages.root_file("html").read_text()
    assert '<meta name="pypi:repository-version" content="1.4">' in html
    assert html.count("<a ") == 2
    assert '<a href="a-proj/">a-proj</a>' in html and '<a href="b-proj/">b-proj</a>' in html
    serials = dict(Project.objects.values_list("normalized_name", "index_serial"))
    assert json.loads(gzip.decompress(pages.root_file("json.gz").read_bytes())) == {
        "meta": {"api-version": "1.4", "_last-serial": max(serials.values())},
        "projects": [{"name": "a-proj", "_last-serial": serials["a-proj"]},
                     {"name": "b-proj", "_last-serial": serials["b-proj"]}],
    }


def test_root_is_rendered_in_chunks(data_dir, monkeypatch):
    monkeypatch.setattr(rendering, "ROOT_CHUNK", 2)
    names = [f"p{i}" for i in range(5)]
    for name in names:
        publish(make_version(make_project(name), "1.0"), wheel_archive(name, "1.0"))

    parts = list(rendering.root_parts(7, rendering.listed_projects()))

    assert [n for _, _, n in parts] == [0, 2, 2, 1, 0]
    listed = json.loads(b"".join(j for _, j, _ in parts))["projects"]
    assert [p["name"] for p in listed] == names
    html = b"".join(h for h, _, _ in parts).decode()
    assert html.count("<a ") == 5 and html.endswith("</html>\n")
