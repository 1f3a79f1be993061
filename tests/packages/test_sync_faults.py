"""Upstream faults, passes killed midway and passes run at once."""
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection, connections
from django.db.models import F
from django.utils import timezone

from packages.models import Project, Retry, Serial
from packages.sync import PASS_LOCK, run_pass
from packages.upstream import Upstream
from tests.packages.test_sync import catalogue

ROOT = Path(__file__).resolve().parents[2]


def serial(name="pypi"):
    return Serial.objects.filter(name=name).values_list("value", flat=True).first()


def three_projects(fake_pypi):
    fake_pypi.add_release("alpha", "1.0")
    fake_pypi.add_release("beta", "1.0")
    fake_pypi.add_release("gamma", "1.0")


@pytest.mark.django_db
@pytest.mark.parametrize("fault", [500, 502, 503, 429, "timeout", "garbage"])
def test_a_passing_fault_is_retried(fake_pypi, fault):
    three_projects(fake_pypi)
    fake_pypi.hang_seconds = 1
    fake_pypi.fail("/simple/beta/", fault, times=2)
    result = run_pass()
    assert result.status == "ok" and result.errors == []
    assert sorted(catalogue()) == ["alpha", "beta", "gamma"]
    assert fake_pypi.count("/simple/beta/") == 3


@pytest.mark.django_db
def test_retry_after_is_honoured(fake_pypi):
    three_projects(fake_pypi)
    fake_pypi.fail("/simple/beta/", 429, times=1, retry_after=1)
    started = time.monotonic()
    assert run_pass().errors == []
    assert time.monotonic() - started >= 1
    assert "beta" in catalogue()


@pytest.mark.django_db
def test_a_project_that_keeps_failing_does_not_stop_the_pass(fake_pypi):
    three_projects(fake_pypi)
    fake_pypi.fail("/simple/beta/", "garbage", times=10)
    result = run_pass()
    assert result.status == "ok"
    assert result.errors == ["beta: malformed JSON (gave up after 3 attempts)"]
    assert catalogue()["beta"] == [] and len(catalogue()["alpha"]) == 1  # beta still waits
    assert serial() == fake_pypi.serial
    assert Retry.objects.get().reason == "malformed JSON (gave up after 3 attempts)"


@pytest.mark.django_db
def test_a_listed_project_without_releases_is_kept_without_versions(fake_pypi):
    three_projects(fake_pypi)
    fake_pypi.remove_release("beta", "1.0")  # listed, its page lists nothing
    result = run_pass()
    assert result.status == "ok" and result.errors == []
    assert catalogue()["beta"] == [] and sorted(catalogue()) == ["alpha", "beta", "gamma"]
    assert not Project.objects.filter(serial__lt=F("upstream_serial")).exists()
    assert fake_pypi.count("/pypi/beta/json") == 0  # no release: no summary to read
    assert Upstream(rate=0).summary("beta") == ""  # PyPI's JSON API answers 404 for it
    assert fake_pypi.count("/pypi/beta/json") == 1  # a 404 is an answer: not retried


@pytest.mark.django_db
def test_unreachable_xmlrpc_fails_the_pass_cleanly_and_changes_nothing(fake_pypi, settings):
    three_projects(fake_pypi)
    run_pass()
    fake_pypi.add_release("delta", "1.0")
    Retry.objects.create(normalized_name="alpha", name="alpha", reason="earlier")
    before = (catalogue(), serial())
    settings.PIWHEELS_SYNC_METHOD = "xmlrpc"
    fake_pypi.fail("/pypi", 405, times=1)  # what the public PyPI answers from here
    result = run_pass()
    assert result.status == "failed"
    assert result.message == (f"upstream {fake_pypi.url}: XML-RPC at {fake_pypi.url}/pypi "
                              "answered HTTP 405 Method Not Allowed")
    assert (catalogue(), serial()) == before and Retry.objects.count() == 1


@pytest.mark.django_db
def test_unreachable_listing_fails_the_first_pass(fake_pypi):
    three_projects(fake_pypi)
    fake_pypi.fail("/simple/", 503, times=3)
    result = run_pass()
    assert result.status == "failed" and "HTTP 503 (gave up after 3 attempts)" in result.message
    assert not Project.objects.exists() and serial() is None


def run_killable_pass(fake_pypi, hang_after, pages):
    """Run a pass in another process; once it has asked for HANG_AFTER project pages whose
    paths start with PAGES, upstream stops answering them, and once it has committed
    something the process is SIGKILLed."""
    fake_pypi.hang_seconds = 30
    fake_pypi.fail(pages, "timeout", times=1000, after=hang_after)
    db = connection.settings_dict
    env = {**os.environ, "PIWHEELS_PYPI_URL": fake_pypi.url,
           "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"}
    code = ("import django; django.setup(); from django.conf import settings as s; "
            "s.PIWHEELS_SYNC_BATCH = 2; s.PIWHEELS_SYNC_EVENTS_BATCH = 3; "
            "s.PIWHEELS_SYNC_WORKERS = 1; s.PIWHEELS_SYNC_TIMEOUT = 60; "
            "from packages.sync import PASS_LOCK, run_pass; run_pass()")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env)
    try:
        for _ in range(300):  # bounded wait for the hang (up to 30 s)
            if fake_pypi.count(pages) > hang_after or proc.poll() is not None:
                break
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    fake_pypi.clear_faults()
    with connection.cursor() as cursor:
        for _ in range(100):  # the killed backend lets go of its advisory lock soon after
            cursor.execute("SELECT count(*) FROM pg_locks l JOIN pg_database d ON "
                           "d.oid = l.database WHERE l.locktype = 'advisory' AND "
                           "l.objid = %s AND d.datname = current_database()", [PASS_LOCK])
            if cursor.fetchone()[0] == 0:
                break
            time.sleep(0.05)


def expected_catalogue(fake_pypi):
    return {name: sorted((v, False, "", True, False, "", "") for v in p["releases"])
            for name, p in fake_pypi.projects.items()}


def with_details():
    return Project.objects.filter(serial__gte=F("upstream_serial")).count()


@pytest.mark.django_db(transaction=True)
def test_a_killed_first_pass_resumes_without_skipping_or_doubling(fake_pypi):
    for i in range(7):
        fake_pypi.add_release(f"proj{i}", "1.0")
        fake_pypi.add_release(f"proj{i}", "2.0")
    run_killable_pass(fake_pypi, hang_after=5, pages="/simple/proj")
    imported = with_details()
    assert Project.objects.count() == 7  # every name, from the one root request
    assert 2 <= imported < 7 and serial() == fake_pypi.serial
    fetched_before = fake_pypi.count("/simple/proj")
    result = run_pass()
    assert result.status == "ok" and result.errors == []
    assert result.projects_fetched == 7 - imported
    assert fake_pypi.count("/simple/proj") - fetched_before == 7 - imported
    assert catalogue() == expected_catalogue(fake_pypi)


@pytest.mark.django_db(transaction=True)
def test_a_killed_changelog_pass_resumes_from_its_last_committed_serial(fake_pypi, settings):
    fake_pypi.add_release("base", "1.0")
    run_pass()
    for i in range(6):
        fake_pypi.add_release(f"new{i}", "1.0")  # 3 events each
    fake_pypi.remove_project("base")
    run_killable_pass(fake_pypi, hang_after=3, pages="/simple/new")
    assert serial() == fake_pypi.serial  # every event is recorded before any fetch
    waiting = 7 - with_details()
    assert 1 <= waiting <= 6 and Project.objects.count() == 7
    fetched_before, base_asked = fake_pypi.count("/simple/new"), fake_pypi.count("/simple/base/")
    later = timezone.now() + timedelta(seconds=settings.PIWHEELS_SYNC_GONE_AFTER)
    result = run_pass(now=later)
    assert result.status == "ok" and result.errors == [] and result.events == 0
    assert fake_pypi.count("/simple/new") - fetched_before == waiting
    assert fake_pypi.count("/simple/base/") == base_asked + 1  # base's first 404
    run_pass(now=later + timedelta(seconds=settings.PIWHEELS_SYNC_GONE_AFTER))  # base: 404 x2
    assert catalogue() == expected_catalogue(fake_pypi)


@pytest.mark.django_db(transaction=True)
def test_two_passes_never_run_at_once(fake_pypi, settings):
    settings.PIWHEELS_SYNC_TIMEOUT = 10
    three_projects(fake_pypi)
    fake_pypi.fail("/simple/", "timeout")
    outcome = {}

    def first():
        try:
            outcome["first"] = run_pass()
        finally:
            connections.close_all()

    thread = threading.Thread(target=first)
    thread.start()
    try:
        for _ in range(100):
            if fake_pypi.count("/simple/"):
                break
            time.sleep(0.05)
        second = run_pass()
    finally:
        fake_pypi.clear_faults()  # the held listing request now answers 504: retried
        thread.join(20)
    assert (second.status, second.message) == ("busy", "another pass is running")
    assert outcome["first"].status == "ok" and sorted(catalogue()) == ["alpha", "beta", "gamma"]
    assert run_pass().status == "ok"  # the lock was released
