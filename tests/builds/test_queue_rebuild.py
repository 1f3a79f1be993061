import pytest

from builds import publish, queue, storage
from builds.models import Abi, Build, File
from tests.builds.queue_helpers import T0, build_and_publish, upload
from tests.factories import make_abi, make_build, make_project, make_version, make_wheel

pytestmark = pytest.mark.django_db


def test_rebuild_keeps_old_files_until_the_new_build_succeeds(builder, data_dir, tmp_path):
    version = make_version(make_project("foo"), "1.0")
    make_build(version, state=Build.State.QUEUED)
    old = queue.claim(builder, "cp311", T0)
    (tmp_path / "old").mkdir()
    build_and_publish(old, builder, tmp_path / "old")
    old_file = File.objects.get()
    old_file.downloads = 7
    old_file.save()

    assert queue.rebuild(version.project, requested_by="admin") == 1
    new = queue.claim(builder, "cp311", T0)
    assert (new.priority, new.requested_by) == (Build.Priority.REQUESTED, "admin")
    (tmp_path / "new").mkdir()
    wheel = make_wheel(tmp_path / "new", requires_python=">=3.11")
    other = make_wheel(tmp_path / "new", tags="cp311-cp311-linux_armv6l")
    decls = [upload(new, builder, wheel), upload(new, builder, other)]
    assert list(File.objects.values_list("build_id", flat=True)) == [old.id]  # still served

    publish.finish(new.id, builder, True, 1, "", files=decls, now=T0)
    rows = {f.filename: f for f in File.objects.all()}
    assert set(rows) == {wheel.name, other.name}
    assert {f.build_id for f in rows.values()} == {new.id}
    assert rows[wheel.name].downloads == 7  # same filename: the row carries over
    assert rows[wheel.name].sha256 == decls[0]["sha256"]
    assert storage.file_path("foo", wheel.name).read_bytes() == wheel.read_bytes()


def test_rebuild_drops_files_the_new_build_no_longer_makes(
        builder, data_dir, tmp_path, django_capture_on_commit_callbacks):
    version = make_version(make_project("foo"), "1.0")
    make_build(version, state=Build.State.QUEUED)
    old = queue.claim(builder, "cp311", T0)
    build_and_publish(old, builder, tmp_path, tags="cp311-cp311-linux_armv6l")
    gone = storage.file_path("foo", "foo-1.0-cp311-cp311-linux_armv6l.whl")
    assert gone.exists()
    queue.rebuild(version, abi="cp311")
    new = queue.claim(builder, "cp311", T0)
    with django_capture_on_commit_callbacks(execute=True):
        build_and_publish(new, builder, tmp_path)
    assert list(File.objects.values_list("filename", "build_id")) == [
        ("foo-1.0-cp311-cp311-linux_armv7l.whl", new.id)]
    assert not gone.exists()
    assert not storage.metadata_path("foo", gone.name).exists()


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
