import base64
import hashlib
import zipfile

import pytest

from builds import publish, queue, storage
from builds.models import Abi, Build, File, ServedName
from tests.builds.queue_helpers import T0, build_and_publish, upload
from tests.factories import make_abi, make_build, make_project, make_version, make_wheel

pytestmark = pytest.mark.django_db


def test_rebuild_publishes_a_build_tagged_name_and_keeps_the_old_file_yanked(
        builder, data_dir, tmp_path):
    version = make_version(make_project("foo"), "1.0")
    make_build(version, state=Build.State.QUEUED)
    old = queue.claim(builder, "cp311", T0)
    (tmp_path / "old").mkdir()
    build_and_publish(old, builder, tmp_path / "old")
    old_file = File.objects.get()
    old_bytes = storage.file_path("foo", old_file.filename).read_bytes()

    assert queue.rebuild(version.project, requested_by="admin") == 1
    new = queue.claim(builder, "cp311", T0)
    assert (new.priority, new.requested_by) == (Build.Priority.REQUESTED, "admin")
    (tmp_path / "new").mkdir()
    wheel = make_wheel(tmp_path / "new", requires_python=">=3.11")  # other bytes
    other = make_wheel(tmp_path / "new", tags="cp311-cp311-linux_armv6l")
    decls = [upload(new, builder, wheel), upload(new, builder, other)]
    assert list(File.objects.values_list("build_id", flat=True)) == [old.id]  # still served

    publish.finish(new.id, builder, True, 1, "", files=decls, now=T0)
    rows = {f.filename: f for f in File.objects.all()}
    tagged = "foo-1.0-1-cp311-cp311-linux_armv7l.whl"
    # The old armv7l file was also served as foo-1.0-cp311-cp311-linux_armv6l.whl (it runs
    # on ARMv6), and the new one as foo-1.0-1-cp311-cp311-linux_armv6l.whl: the armv6l
    # wheel takes the next build tag.
    other_tagged = "foo-1.0-2-cp311-cp311-linux_armv6l.whl"
    assert set(rows) == {wheel.name, tagged, other_tagged}
    assert rows[tagged].armv6l_filename == "foo-1.0-1-cp311-cp311-linux_armv6l.whl"
    assert (rows[wheel.name].build_id, rows[wheel.name].superseded_by) == (old.id, tagged)
    assert rows[wheel.name].sha256 == old_file.sha256
    assert storage.file_path("foo", wheel.name).read_bytes() == old_bytes  # never rewritten
    assert {rows[tagged].build_id, rows[other_tagged].build_id} == {new.id}
    assert_consistent_wheel(storage.file_path("foo", tagged), rows[tagged], build_tag="1")
    assert_consistent_wheel(storage.file_path("foo", other_tagged), rows[other_tagged],
                            build_tag="2")
    assert set(ServedName.objects.values_list("filename", "sha256")) == {
        (name, f.sha256) for f in rows.values()
        for name in (f.filename, f.armv6l_filename) if name}


def assert_consistent_wheel(path, row, build_tag):
    """PATH holds ROW's bytes, its WHEEL says Build: BUILD_TAG, and RECORD's hashes match."""
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == row.sha256 and len(data) == row.size
    with zipfile.ZipFile(path) as zf:
        wheel_file = zf.read("foo-1.0.dist-info/WHEEL").decode()
        assert f"Build: {build_tag}" in wheel_file.splitlines()
        for line in zf.read("foo-1.0.dist-info/RECORD").decode().splitlines():
            name, digest, size = line.split(",")
            if digest:
                member = zf.read(name)
                expected = base64.urlsafe_b64encode(hashlib.sha256(member).digest())
                assert digest == "sha256=" + expected.rstrip(b"=").decode(), name
                assert int(size) == len(member)


def test_a_rebuild_with_the_same_bytes_keeps_the_name_and_row(builder, data_dir, tmp_path):
    version = make_version(make_project("foo"), "1.0")
    make_build(version, state=Build.State.QUEUED)
    build_and_publish(queue.claim(builder, "cp311", T0), builder, tmp_path)
    File.objects.update(downloads=7)
    queue.rebuild(version)
    new = queue.claim(builder, "cp311", T0)
    build_and_publish(new, builder, tmp_path)  # a reproducible build: the same bytes
    (row,) = File.objects.all()
    assert (row.filename, row.build_id, row.downloads, row.superseded_by) == (
        "foo-1.0-cp311-cp311-linux_armv7l.whl", new.id, 7, "")


def test_rebuild_keeps_files_the_new_build_no_longer_makes_yanked(
        builder, data_dir, tmp_path, django_capture_on_commit_callbacks):
    version = make_version(make_project("foo"), "1.0")
    make_build(version, state=Build.State.QUEUED)
    old = queue.claim(builder, "cp311", T0)
    build_and_publish(old, builder, tmp_path, tags="cp311-cp311-linux_armv6l")
    kept = storage.file_path("foo", "foo-1.0-cp311-cp311-linux_armv6l.whl")
    queue.rebuild(version, abi="cp311")
    new = queue.claim(builder, "cp311", T0)
    with django_capture_on_commit_callbacks(execute=True):
        build_and_publish(new, builder, tmp_path)
    # the new armv7l wheel's armv6l name would be the kept file's: it takes a build tag
    assert set(File.objects.values_list("filename", "build_id", "superseded_by")) == {
        ("foo-1.0-1-cp311-cp311-linux_armv7l.whl", new.id, ""),
        (kept.name, old.id, "foo-1.0-1-cp311-cp311-linux_armv7l.whl"),
    }
    assert kept.exists() and storage.metadata_path("foo", kept.name).exists()


def test_after_removal_and_re_add_a_build_takes_a_fresh_name(builder, data_dir, tmp_path):
    project = make_project("foo")
    version = make_version(project, "1.0")
    make_build(version, state=Build.State.QUEUED)
    build_and_publish(queue.claim(builder, "cp311", T0), builder, tmp_path)
    first = File.objects.get()
    project.delete()  # removed with its rows; ServedName remembers the name
    version = make_version(make_project("foo"), "1.0")
    make_build(version, state=Build.State.QUEUED)
    (tmp_path / "again").mkdir()
    build_and_publish(queue.claim(builder, "cp311", T0), builder, tmp_path / "again",
                      requires_python=">=3")
    assert list(File.objects.values_list("filename", flat=True)) == [
        "foo-1.0-1-cp311-cp311-linux_armv7l.whl"]
    assert ServedName.objects.get(filename=first.filename).sha256 == first.sha256


def test_import_of_other_bytes_under_a_served_name_is_refused(builder, data_dir, tmp_path):
    version = make_version(make_project("foo"), "1.0")
    make_build(version, state=Build.State.QUEUED)
    build_and_publish(queue.claim(builder, "cp311", T0), builder, tmp_path,
                      tags="py3-none-any")
    (tmp_path / "other").mkdir()
    other = make_wheel(tmp_path / "other", tags="py3-none-any", requires_python=">=3")
    with pytest.raises(publish.FinishRefused, match="served other bytes under that name"):
        publish.import_wheel(other, abi="cp311")
    assert Build.objects.count() == 1 and File.objects.count() == 1
    assert not any(storage.incoming_dir(0).parent.glob("*/*.whl"))


def test_import_under_an_upstream_filename_is_refused(data_dir, tmp_path):
    make_version(make_project("foo"), "1.0", upstream_wheels=["foo-1.0-py3-none-any.whl"])
    make_abi("cp311")
    with pytest.raises(publish.FinishRefused, match="upstream has a file of that name"):
        publish.import_wheel(make_wheel(tmp_path, tags="py3-none-any"), abi="cp311")
    assert not Build.objects.exists() and not ServedName.objects.exists()


def test_an_upload_under_an_upstream_filename_gets_a_build_tag(builder, data_dir, tmp_path):
    version = make_version(make_project("foo"), "1.0",
                           upstream_wheels=["foo-1.0-cp311-cp311-linux_armv7l.whl"])
    make_build(version, state=Build.State.QUEUED)
    build_and_publish(queue.claim(builder, "cp311", T0), builder, tmp_path)
    (row,) = File.objects.all()
    # linux_armv7l is not a tag PyPI accepts, but a name upstream has is never ours.
    assert row.filename == "foo-1.0-1-cp311-cp311-linux_armv7l.whl"
    assert row.shadowed_by == "foo-1.0-cp311-cp311-linux_armv7l.whl"


def test_rebuild_moves_a_queued_job_to_the_front_and_leaves_a_running_one(builder):
    make_abi("cp39")
    project = make_project("foo")
    queued = make_build(make_version(project, "1.0"), state=Build.State.QUEUED)
    running = make_build(make_version(project, "2.0"), state=Build.State.BUILDING)
    failed = make_build(make_version(project, "3.0"), "cp39", state=Build.State.FAILED)
    assert queue.rebuild(project, abi="cp39") == 3  # new cp39 jobs for 1.0, 2.0 and 3.0
    assert queue.rebuild(project, abi="cp311") == 2  # 1.0 bumped, 3.0 new, 2.0 building
    queued.refresh_from_db()
    assert queued.priority == Build.Priority.REQUESTED
    assert Build.objects.filter(version=running.version, abi__tag="cp311").count() == 1
    failed.refresh_from_db()
    assert failed.state == "failed"  # history kept; a fresh build is queued beside it


def test_rebuild_of_an_unknown_abi_is_refused():
    with pytest.raises(queue.UnknownAbi):
        queue.rebuild(make_project("foo", versions=["1.0"]), abi="cp99")


def test_add_abi_queues_the_backlog_in_batches_behind_new_releases(builder):
    make_abi("cp39")
    project = make_project("foo")
    versions = [make_version(project, f"1.{i}") for i in range(7)]
    make_version(project, "0.1", yanked=True)
    make_build(versions[0], "cp311", state=Build.State.FAILED)
    release = make_build(versions[1], "cp39", state=Build.State.QUEUED)
    Build.objects.filter(id=release.id).update(priority=Build.Priority.NEW_RELEASE)

    abi, queued = queue.add_abi("cp311", now=T0, batch_size=2)
    assert (abi.tag, abi.active, queued) == ("cp311", True, 6)
    assert queue.add_abi("cp311", now=T0)[1] == 0
    jobs = Build.objects.filter(abi=abi, state=Build.State.QUEUED)
    assert sorted(jobs.values_list("version__version", flat=True)) == [
        f"1.{i}" for i in range(1, 7)]
    assert set(jobs.values_list("priority", flat=True)) == {Build.Priority.BACKLOG}
    # newest version first within the backlog
    assert queue.claim(builder, "cp311", T0).version.version == "1.6"


def test_add_abi_reactivates_and_validates_the_tag():
    make_abi("cp37m", active=False)
    assert queue.add_abi("cp37m")[0].active
    assert Abi.objects.get(tag="cp37m").active
    for bad in ("py3", "none", "cp", "cp311; drop table", "abi3"):
        with pytest.raises(queue.UnknownAbi, match="does not look like an interpreter ABI"):
            queue.add_abi(bad)
