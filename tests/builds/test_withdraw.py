"""Withdrawing what one builder published since a time (builds/withdraw.py): the
function, the command and the admin action. The files leave the index and are no longer
served, the jobs are queued again, and no name ever names other bytes."""
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.admin.models import LogEntry
from django.core.management import CommandError, call_command

from builds import queue, storage, withdraw
from builds.models import Build, File, ServedName
from tests.builds.queue_helpers import T0, build_and_publish
from tests.factories import make_build, make_builder, make_project, make_version

pytestmark = pytest.mark.django_db
SINCE = T0 + timedelta(hours=1)
LATER = T0 + timedelta(hours=2)


def job(project, version):
    return make_build(make_version(project, version), state=Build.State.QUEUED)


@pytest.fixture
def published(builder, data_dir, tmp_path, django_capture_on_commit_callbacks):
    """foo 0.5 and 1.0 built by the honest `builder` before SINCE; then the thief builds
    foo 0.5 by itself before SINCE, and 2.0 and a rebuild of 1.0 after it."""
    thief = make_builder("thief", abi="cp311")
    project = make_project("foo")
    with django_capture_on_commit_callbacks(execute=True):
        job(project, "1.0")
        honest = queue.claim(builder, "cp311", T0)
        build_and_publish(honest, builder, tmp_path, now=T0)
        job(project, "0.5")
        early = queue.claim(thief, "cp311", T0)
        build_and_publish(early, thief, tmp_path, now=T0)
        job(project, "2.0")
        new = queue.claim(thief, "cp311", LATER)
        build_and_publish(new, thief, tmp_path, now=LATER, requires_python=">=3")
        queue.rebuild(project.versions.get(version="1.0"), requested_by="t", now=LATER)
        again = queue.claim(thief, "cp311", LATER)
        build_and_publish(again, thief, tmp_path, now=LATER, requires_python=">=3.1")
    return thief, project, honest, early, new, again


def test_withdrawing_takes_the_files_off_the_index_and_queues_the_jobs_again(
        published, builder, client, tmp_path, django_capture_on_commit_callbacks):
    thief, project, honest, early, new, again = published
    honest_file = File.objects.get(build=honest)
    assert honest_file.superseded_by  # the thief's rebuild replaced it
    gone = sorted(File.objects.filter(build__in=[new, again]).values_list("filename", flat=True))
    assert len(gone) == 2 and all(storage.file_path("foo", f).exists() for f in gone)

    with django_capture_on_commit_callbacks(execute=True):
        done = withdraw.withdraw_builder(thief, SINCE, LATER, by="alice")

    assert (done.files, done.requeued, sorted(done.builds)) == (gone, 2, sorted([new.id, again.id]))
    assert not File.objects.filter(filename__in=gone).exists()
    assert not any(storage.file_path("foo", f).exists() for f in gone)  # no longer served
    for build in (new, again):
        build.refresh_from_db()
        assert (build.state, build.builder_id, build.priority, build.requested_by) == (
            Build.State.QUEUED, None, Build.Priority.REQUESTED,
            "withdrawn from builder thief by alice")
    honest_file.refresh_from_db()
    assert honest_file.superseded_by == ""  # listed again, not yanked
    assert File.objects.filter(build=early).exists()  # published before SINCE: stays
    page = client.get("/simple/foo/", HTTP_ACCEPT="application/vnd.pypi.simple.v1+json")
    listed = {f["filename"]: f for f in page.json()["files"]}
    assert not set(gone) & set(listed)
    assert not listed[honest_file.filename].get("yanked")
    # The names stay taken: an honest rebuild with other bytes gets a build tag.
    assert ServedName.objects.filter(filename__in=gone).count() == 2
    with django_capture_on_commit_callbacks(execute=True):
        rebuilt = queue.claim(builder, "cp311", LATER)
        build_and_publish(rebuilt, builder, tmp_path, now=LATER, requires_python=">=3.2")
    (name,) = File.objects.filter(build=rebuilt).values_list("filename", flat=True)
    assert name not in gone and name.split("-")[2].isdigit()  # foo-1.0-2-cp311-...


def test_withdrawing_twice_or_nothing_changes_nothing(published):
    thief = published[0]
    withdraw.withdraw_builder(thief, SINCE, LATER)
    files = File.objects.count()
    assert withdraw.withdraw_builder(thief, SINCE, LATER).files == []
    assert withdraw.withdraw_builder(thief, LATER + timedelta(days=1), LATER).files == []
    assert File.objects.count() == files


def test_the_command_withdraws_and_names_the_files(published):
    thief, _, _, early, new, again = published
    names = sorted(File.objects.filter(build__in=[new, again]).values_list("filename", flat=True))
    out = StringIO()
    call_command("withdraw_builder", "thief", "--since", SINCE.isoformat(), stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0] == (f"withdrew 2 files builder thief published since {SINCE.isoformat()}; "
                        "2 jobs queued again")
    assert [line.strip() for line in lines[1:]] == names
    assert File.objects.filter(build__builder=thief).count() == 1  # the early one


@pytest.mark.parametrize("args, message", [
    (["nobody", "--since", "2026-01-01"], "no builder named 'nobody'"),
    (["thief", "--since", "yesterday"], "--since 'yesterday' is not an ISO date or time"),
])
def test_the_command_refuses_bad_input_in_one_line(published, args, message):
    before = File.objects.count()
    with pytest.raises(CommandError, match=message):
        call_command("withdraw_builder", *args)
    assert File.objects.count() == before


def test_the_admin_shows_a_builders_files_and_withdraws_them_in_one_action(
        published, admin_client):
    thief, _, honest, early, new, again = published
    response = admin_client.get("/admin/builds/builder/")
    assert f"/admin/builds/file/?builder={thief.id}" in response.content.decode()
    files = admin_client.get("/admin/builds/file/", {"builder": thief.id}).content.decode()
    for build in (early, new, again):
        assert File.objects.get(build=build).filename in files
    assert File.objects.get(build=honest).filename not in files

    url = "/admin/builds/builder/"
    asked = admin_client.post(url, {"action": "withdraw", "_selected_action": [thief.pk]})
    assert asked.status_code == 200 and "since" in asked.content.decode()
    response = admin_client.post(url, {
        "action": "withdraw", "_selected_action": [thief.pk], "apply": "1",
        "since": SINCE.strftime("%Y-%m-%d %H:%M:%S"),
    })
    assert response.status_code == 302
    assert list(File.objects.filter(build__builder=thief).values_list("build_id", flat=True)) == [
        early.id]
    entry = LogEntry.objects.get(object_id=str(thief.pk))
    assert entry.user.username == "admin"
    assert entry.change_message.startswith("Withdrew 2 files published since ")
