"""index/pages.py: the index's pages as files, written when a change commits, repaired
when their writer died (in tests on `django_db`, which never commits, on_commit never
runs: that is a writer that died)."""
import gzip
import json
import os

import pytest
from django.core.cache import caches
from django.db import transaction

from index import pages, rendering
from packages import removal
from packages.models import Project
from tests.factories import make_project, make_version, wheel_archive
from tests.index.factories import publish

FORMATS = ("html", "html.gz", "json", "json.gz")


def page_files(name):
    directory = pages.project_dir(name)
    return sorted(p.name for p in directory.glob("index.*")) if directory.exists() else []


def listed(name):
    page = json.loads((pages.project_dir(name) / "index.json").read_bytes())
    return [f["filename"] for f in page["files"]]


def root_names():
    return [p["name"] for p in json.loads(pages.root_file("json").read_bytes())["projects"]]


@pytest.mark.django_db(transaction=True)
def test_pages_are_written_when_the_change_commits(data_dir):
    project = make_project("foo")
    publish(make_version(project, "1.0"), wheel_archive("foo", "1.0"))

    assert page_files("foo") == [f"index.{fmt}" for fmt in FORMATS]
    assert listed("foo") == ["foo-1.0-py3-none-any.whl"]
    for fmt in ("html", "json"):
        directory = pages.project_dir("foo")
        assert gzip.decompress((directory / f"index.{fmt}.gz").read_bytes()) == (
            directory / f"index.{fmt}").read_bytes()
    project.refresh_from_db()
    assert (pages.project_dir("foo") / ".serial").read_text().split() == [
        str(project.id), str(project.index_serial), "1", str(rendering.PAGE_FORMAT)]
    assert project.index_file_serial == project.index_serial
    assert root_names() == ["foo"] and pages.root_stamp() == (1, project.index_serial)

    with transaction.atomic():
        publish(make_version(project, "2.0"), wheel_archive("foo", "2.0"))
        assert listed("foo") == ["foo-1.0-py3-none-any.whl"]  # not before the commit
    assert listed("foo") == ["foo-1.0-py3-none-any.whl", "foo-2.0-py3-none-any.whl"]


@pytest.mark.django_db(transaction=True)
def test_a_change_rolled_back_writes_nothing(data_dir):
    project = make_project("foo")
    with pytest.raises(RuntimeError), transaction.atomic():
        publish(make_version(project, "1.0"), wheel_archive("foo", "1.0"))
        raise RuntimeError("the publish failed after touching the index")
    assert page_files("foo") == []
    assert not pages.root_file("html").exists()


@pytest.mark.django_db(transaction=True)
def test_a_project_removed_takes_its_pages_and_its_root_entry(data_dir):
    for name in ("foo", "bar"):
        publish(make_version(make_project(name), "1.0"), wheel_archive(name, "1.0"))
    assert root_names() == ["bar", "foo"]

    removal.remove_package("foo")

    assert page_files("foo") == []
    assert not (pages.project_dir("foo") / ".serial").exists()
    assert root_names() == ["bar"]
    assert page_files("bar") == [f"index.{fmt}" for fmt in FORMATS]


@pytest.mark.django_db(transaction=True)
def test_a_version_removed_leaves_a_project_without_files_without_pages(data_dir):
    project = make_project("foo")
    publish(make_version(project, "1.0"), wheel_archive("foo", "1.0"))

    removal.remove_package("foo", "1.0")

    assert page_files("foo") == []
    assert (pages.project_dir("foo") / ".serial").read_text().split()[2] == "0"
    assert root_names() == []


@pytest.mark.django_db
def test_repair_writes_the_pages_whose_writer_died(data_dir, django_assert_num_queries):
    project = make_project("foo")
    publish(make_version(project, "1.0"), wheel_archive("foo", "1.0"))
    make_project("empty", versions=["1.0"])
    assert page_files("foo") == []  # committed, but its writer never ran

    assert pages.repair() == 1

    assert listed("foo") == ["foo-1.0-py3-none-any.whl"]
    assert root_names() == ["foo"]
    project.refresh_from_db()
    assert project.index_file_serial == project.index_serial
    # the lagging projects; the root serial; the highest index serial
    with django_assert_num_queries(3):
        assert pages.repair() == 0


@pytest.mark.django_db
def test_a_request_rewrites_a_stale_page_and_caches_it(data_dir, django_assert_num_queries):
    project = make_project("foo")
    publish(make_version(project, "1.0"), wheel_archive("foo", "1.0"))
    project.refresh_from_db()
    pages.write_project("foo")
    publish(make_version(project, "2.0"), wheel_archive("foo", "2.0"))  # writer died
    project.refresh_from_db()
    assert listed("foo") == ["foo-1.0-py3-none-any.whl"]

    with django_assert_num_queries(2):  # its files (render); its page files' serial
        page = pages.project_page(project.id, "foo", project.index_serial)

    assert json.loads(page["json"])["versions"] == ["1.0", "2.0"]
    assert listed("foo") == ["foo-1.0-py3-none-any.whl", "foo-2.0-py3-none-any.whl"]
    with django_assert_num_queries(0):  # this worker's memory
        assert pages.project_page(project.id, "foo", project.index_serial) == page
    caches["index"].clear()  # another worker, or this one restarted: from the files
    with django_assert_num_queries(0):
        assert pages.project_page(project.id, "foo", project.index_serial) == page


@pytest.mark.django_db
def test_a_project_without_files_has_no_page(data_dir):
    project = make_project("foo", versions=["1.0"])
    assert pages.project_page(project.id, "foo", 0) is None
    assert caches["index"].get(pages.page_cache_key(project.id, 0)) == {}
    assert page_files("foo") == []


@pytest.mark.django_db
def test_a_writer_with_an_older_serial_does_not_write_over_a_newer_page(data_dir):
    project = make_project("foo")
    publish(make_version(project, "1.0"), wheel_archive("foo", "1.0"))
    project.refresh_from_db()
    pages.write_project("foo")
    before = {fmt: (pages.project_dir("foo") / f"index.{fmt}").stat().st_mtime_ns
              for fmt in FORMATS}

    page = pages.write_project("foo", known=(project.id, project.index_serial - 1))

    assert json.loads(page["json"])["versions"] == ["1.0"]
    assert before == {fmt: (pages.project_dir("foo") / f"index.{fmt}").stat().st_mtime_ns
                      for fmt in FORMATS}


def test_a_new_version_of_a_file_is_dated_a_later_second(tmp_path):
    # nginx's ETag and Last-Modified are (mtime in seconds, size): two same-sized versions
    # written within one second must still differ in it.
    path = tmp_path / "index.json"
    pages._replace(path, b"first")
    stamps = [os.stat(path).st_mtime_ns // 10**9]
    for text in (b"other", b"third"):
        pages._replace(path, text)
        stamps.append(os.stat(path).st_mtime_ns // 10**9)
    assert path.read_bytes() == b"third"
    assert stamps[0] < stamps[1] < stamps[2]
    assert [p.name for p in tmp_path.iterdir()] == ["index.json"]  # no temporary left


@pytest.mark.django_db
def test_sweep_removes_the_pages_of_projects_that_are_gone(data_dir):
    for name in ("foo", "bar"):
        publish(make_version(make_project(name), "1.0"), wheel_archive(name, "1.0"))
    pages.write(["foo", "bar"], root=True)
    Project.objects.filter(normalized_name="foo").delete()  # and its writer died

    assert pages.sweep() == 1

    assert page_files("foo") == [] and page_files("bar") != []
    assert pages.sweep() == 0


@pytest.mark.django_db
def test_the_root_is_written_once_per_serial(data_dir):
    publish(make_version(make_project("foo"), "1.0"), wheel_archive("foo", "1.0"))

    assert pages.write_root() == 1
    assert pages.write_root() is None
    publish(make_version(make_project("bar"), "1.0"), wheel_archive("bar", "1.0"))
    assert not pages.root_is_current(rendering.root_serial())
    assert pages.write_root() == 2
    assert pages.root_is_current(rendering.root_serial())
    assert root_names() == ["bar", "foo"]


@pytest.mark.django_db
def test_a_root_streamed_to_a_client_is_not_installed_over_a_newer_one(data_dir, monkeypatch):
    monkeypatch.setattr(rendering, "ROOT_CHUNK", 1)
    publish(make_version(make_project("foo"), "1.0"), wheel_archive("foo", "1.0"))
    old_serial = rendering.root_serial()
    stream = pages.stream_root(old_serial, "json")
    first = next(stream) + next(stream)  # a slow client: the render is under way
    publish(make_version(make_project("bar"), "1.0"), wheel_archive("bar", "1.0"))
    pages.write_root()  # meanwhile the change's writer writes the newer root

    body = first + b"".join(stream)

    assert [p["name"] for p in json.loads(body)["projects"]] == ["foo"]
    assert root_names() == ["bar", "foo"] and pages.root_stamp()[0] == old_serial + 1
    assert sorted(p.name for p in pages.simple_dir().iterdir() if p.name.endswith(".tmp")) == []


@pytest.mark.django_db
def test_without_fsync_pages_are_written_alike(data_dir, settings):
    settings.PIWHEELS_INDEX_FSYNC = False
    project = make_project("foo")
    publish(make_version(project, "1.0"), wheel_archive("foo", "1.0"))
    pages.write(["foo"], root=True)
    assert listed("foo") == ["foo-1.0-py3-none-any.whl"] and root_names() == ["foo"]


@pytest.mark.django_db(transaction=True)
def test_projects_without_pages_are_stamped_current_without_writing_anything(data_dir):
    built, bare = make_project("built"), make_project("bare")
    publish(make_version(built, "1.0"), wheel_archive("built", "1.0"))
    make_version(bare, "1.0")

    Project.objects.filter(id__in=[built.id, bare.id]).touch_index()  # as a sync batch

    for project in (built, bare):
        project.refresh_from_db()
        assert project.index_file_serial == project.index_serial > 0
    assert listed("built") == ["built-1.0-py3-none-any.whl"]
    assert (pages.project_dir("built") / ".serial").read_text().split()[1] == str(
        built.index_serial)
    assert not pages.project_dir("bare").exists()  # the catalogue's most get no directory


def _as_format_1(name):
    """Make NAME's page files what the code before page format 2 wrote: `dist-info-metadata`
    in the JSON files, a .serial of three words."""
    directory = pages.project_dir(name)
    page = json.loads((directory / "index.json").read_bytes())
    for entry in page["files"]:
        entry["dist-info-metadata"] = entry["core-metadata"]
    body = json.dumps(page, separators=(",", ":")).encode()
    (directory / "index.json").write_bytes(body)
    (directory / "index.json.gz").write_bytes(gzip.compress(body))
    stamp = (directory / ".serial").read_text().split()
    (directory / ".serial").write_text(" ".join(stamp[:3]) + "\n")


def _on_disk(name):
    directory = pages.project_dir(name)
    return [(directory / f"index.{fmt}").read_bytes() for fmt in ("json", "json.gz")]


@pytest.mark.django_db(transaction=True)
def test_a_page_file_of_an_older_format_is_rendered_again_when_read(data_dir):
    project = make_project("foo")
    publish(make_version(project, "1.0"), wheel_archive("foo", "1.0"))
    project.refresh_from_db()
    _as_format_1("foo")
    caches["index"].clear()

    page = pages.project_page(project.id, "foo", project.index_serial)

    assert b"dist-info-metadata" not in page["json"]
    body, zipped = _on_disk("foo")
    assert body == page["json"] and gzip.decompress(zipped) == body
    assert (pages.project_dir("foo") / ".serial").read_text().split()[3] == str(
        rendering.PAGE_FORMAT)


@pytest.mark.django_db(transaction=True)
def test_the_upgrade_to_page_format_2_makes_repair_rewrite_every_page(data_dir):
    """Migration index 0003: nginx serves the files without asking Django, so every page
    of an older format must be written again, by repair(), not only those Django reads."""
    import importlib

    from django.apps import apps

    upgrade = importlib.import_module("index.migrations.0003_clients_page_format_2")
    names = ["foo", "bar"]
    for name in names:
        publish(make_version(make_project(name), "1.0"), wheel_archive(name, "1.0"))
        _as_format_1(name)
    make_project("empty", versions=["1.0"])
    assert pages.repair() == 0  # their serials are current: nothing lags

    upgrade.pages_lag(apps, None)

    assert set(Project.objects.filter(index_file_serial=0).values_list(
        "normalized_name", flat=True)) >= set(names)
    assert pages.repair() == 2
    for name in names:
        body, zipped = _on_disk(name)
        assert b"dist-info-metadata" not in body and gzip.decompress(zipped) == body
        assert listed(name) == [f"{name}-1.0-py3-none-any.whl"]
    assert pages.repair() == 0
