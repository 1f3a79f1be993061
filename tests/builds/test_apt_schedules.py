"""The farm keeps Debian's Contents maps on its own: a daily django-q2 schedule for each OS
release its builders report (reading every architecture they run), a refresh at once when
a failure needs a name its release's map lacks, and /failures/ saying when a map is
missing or old. Against a fake Debian archive on 127.0.0.1 (tests/fakemirror.py)."""
import gzip
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from django.utils import timezone
from django_q.models import Schedule

from builds import apt, tasks
from builds.models import AptContents, AptPath, Build
from tests.factories import make_build, make_builder, make_project, make_version
from tests.fakemirror import FakeMirror
from tests.servers import Gunicorn, QCluster, farm_env, wait_until

DATA = Path(__file__).resolve().parent.parent / "data"
PORTAUDIO_LOG = DATA / "build-logs" / "whole" / "pyaudio-0.2.14.log"
# Contents-arm64 differs from armhf only in the triplet; one line of it is enough here.
ARM64 = "usr/lib/aarch64-linux-gnu/pkgconfig/cairo.pc          libdevel/libcairo2-dev\n"


@pytest.fixture
def mirror(settings):
    with FakeMirror() as mirror:
        mirror.add("bookworm", "main", "armhf", (DATA / "debian" / "Contents-armhf").read_text())
        mirror.add("bookworm", "main", "arm64", ARM64)
        mirror.add("bookworm", "main", "all", (DATA / "debian" / "Contents-all").read_text())
        settings.PIWHEELS_DEBIAN_MIRROR = mirror.url
        settings.PIWHEELS_DEBIAN_ARCH = "armhf"
        settings.PIWHEELS_DEBIAN_COMPONENTS = ["main"]
        settings.PIWHEELS_DEBIAN_RELEASE = "bookworm"
        yield mirror


@pytest.mark.django_db
def test_each_release_the_builders_report_gets_a_daily_schedule():
    make_builder("pi1", os_release="bookworm", platform="linux_armv7l")
    make_builder("pi2", os_release="bookworm", platform="linux_aarch64")
    make_builder("pi3", os_release="trixie", platform="linux_aarch64")
    make_builder("old", os_release="bullseye", enabled=False)
    make_builder("quiet")  # never said which release it runs
    assert apt.reported() == {"bookworm": ["arm64", "armhf"], "trixie": ["arm64"]}
    AptContents.objects.create(release="trixie", refreshed=timezone.now(), paths=1)

    assert tasks.schedule_apt_contents() == {
        "created": ["apt_contents bookworm", "apt_contents trixie"]}
    now = timezone.now()
    bookworm = Schedule.objects.get(name="apt_contents bookworm")
    assert (bookworm.func, bookworm.args, bookworm.schedule_type, bookworm.repeats) == (
        "builds.tasks.refresh_apt_contents", "'bookworm'", Schedule.DAILY, -1)
    assert bookworm.next_run <= now  # never read: due at once
    assert Schedule.objects.get(name="apt_contents trixie").next_run > now + timedelta(hours=23)
    assert tasks.schedule_apt_contents() == {"created": []}  # once each
    # a release whose map a failure asked for just now is not read twice at once
    Schedule.objects.filter(name="apt_contents bookworm").delete()
    apt.request_refresh("bookworm")
    assert tasks.schedule_apt_contents() == {"created": ["apt_contents bookworm"]}
    assert Schedule.objects.get(name="apt_contents bookworm").next_run > now
    # the migration's schedule that makes them
    assert Schedule.objects.get(name="apt_contents_schedules").func == (
        "builds.tasks.schedule_apt_contents")


@pytest.mark.django_db
def test_the_schedule_reads_every_architecture_its_builders_run_and_names_fixes(mirror):
    builder = make_builder("pi1", os_release="bookworm", platform="linux_armv7l")
    make_builder("pi2", os_release="bookworm", platform="linux_aarch64")
    failed = make_build(make_version(make_project("pyaudio"), "0.2.14"),
                        state=Build.State.FAILED, builder=builder, os_release="bookworm",
                        cause="missing-header", cause_detail="portaudio.h")

    result = tasks.refresh_apt_contents("bookworm")

    assert result["archs"] == ["arm64", "armhf"] and result["named"] == 1
    row = AptContents.objects.get(release="bookworm")
    assert row.archs == "arm64,armhf" and row.paths == result["paths"] == AptPath.objects.count()
    assert row.refreshed is not None and row.error == ""
    assert AptPath.objects.filter(path="usr/lib/aarch64-linux-gnu/pkgconfig/cairo.pc").exists()
    failed.refresh_from_db()
    assert (failed.apt, failed.waiting_for) == ("portaudio19-dev", "portaudio19-dev")


@pytest.mark.django_db
def test_a_refresh_that_fails_is_recorded_and_changes_nothing(mirror, settings):
    tasks.refresh_apt_contents("bookworm")
    settings.PIWHEELS_DEBIAN_MIRROR = mirror.url + "/nothing-here"
    with pytest.raises(apt.ContentsError, match="answered 404"):
        tasks.refresh_apt_contents("bookworm")
    row = AptContents.objects.get(release="bookworm")
    assert "answered 404" in row.error and row.failed is not None
    assert row.paths == AptPath.objects.filter(release="bookworm").count() > 0


@pytest.mark.django_db
def test_a_failure_that_needs_a_name_asks_for_a_refresh_at_once_and_only_once(mirror):
    from builds import depwait

    output = PORTAUDIO_LOG.read_text()
    reason = "pip wheel exited with status 1"
    first = depwait.diagnose(None, None, output, reason)
    asked = AptContents.objects.get(release="bookworm").requested
    second = depwait.diagnose(None, None, output, reason)
    assert first == second == {"cause": "missing-header", "cause_detail": "portaudio.h",
                               "apt": "", "waiting_for": ""}
    assert asked is not None
    assert AptContents.objects.get(release="bookworm").requested == asked  # asked once
    # once the map is in, the name is found and nothing more is asked
    apt.refresh("bookworm")
    AptContents.objects.update(requested=None)
    assert depwait.diagnose(None, None, output, reason)["apt"] == "portaudio19-dev"
    assert AptContents.objects.get(release="bookworm").requested is None


@pytest.mark.django_db
def test_failures_page_says_when_the_map_is_missing_or_old(client, mirror):
    make_builder("pi1", os_release="bookworm", platform="linux_armv7l")
    page = client.get("/failures/").content.decode()
    assert "bookworm: never read yet" in page
    apt.refresh("bookworm", now=timezone.now() - timedelta(days=4))
    page = client.get("/failures/").content.decode()
    assert "bookworm: old" in page and "read 4\xa0days ago" in page
    apt.refresh("bookworm")
    page = client.get("/failures/").content.decode()
    assert "bookworm: read 0\xa0minutes ago" in page and "old" not in page.split("<h2>")[1]


@pytest.mark.slow
def test_a_fresh_farm_names_the_fix_with_no_command_run_by_hand(transactional_db, tmp_path,
                                                                  mirror):
    """The outside-in check of issue 21: a build fails for want of portaudio.h through
    the builder API of a farm under gunicorn with its task worker, and the farm names
    portaudio19-dev on its own."""
    builder = make_builder("pi1")
    build = make_build(make_version(make_project("acme-pa"), "1.0"), state=Build.State.QUEUED)
    env = farm_env(tmp_path, PIWHEELS_DEBIAN_MIRROR=mirror.url, PIWHEELS_DEBIAN_ARCH="armhf",
                   PIWHEELS_DEBIAN_COMPONENTS="main", PIWHEELS_DEBIAN_RELEASE="bookworm",
                   Q_WORKERS=1)
    web = Gunicorn(env, tmp_path / "web.log").start()
    worker = QCluster(env, tmp_path / "tasks.log").start()
    try:
        api = requests.Session()
        api.headers["Authorization"] = f"Token {builder.token}"
        base = f"{web.url}/api/v1"
        claim = api.post(f"{base}/claim/", json={
            "abi": "cp311", "wait": 0, "os_release": "bookworm", "platform": "linux_armv7l"})
        assert claim.status_code == 200 and claim.json()["build_id"] == build.id
        log = gzip.compress(PORTAUDIO_LOG.read_bytes())
        assert api.put(f"{base}/builds/{build.id}/log/", data=log,
                       headers={"Content-Type": "application/gzip"}).status_code == 201
        finish = api.post(f"{base}/builds/{build.id}/finish/", json={
            "success": False, "duration": 18, "output": "",
            "failure_reason": "pip wheel exited with status 1"})
        assert finish.json()["state"] == "failed"

        def named():
            build.refresh_from_db()
            return build.apt == "portaudio19-dev"
        wait_until(named, timeout=90, message="the farm to name the fix")
        assert (build.cause, build.cause_detail, build.waiting_for) == (
            "missing-header", "portaudio.h", "portaudio19-dev")
        page = requests.get(f"{web.url}/failures/").text
        assert "portaudio19-dev" in page and "bookworm: read" in page
    finally:
        worker.stop()
        web.stop()
