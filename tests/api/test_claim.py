import threading
import time

import pytest
from django.db import connection

from builds.models import Build, Builder
from tests.api.conftest import BuilderClient
from tests.factories import make_abi, make_build, make_builder, make_project, make_version

pytestmark = pytest.mark.django_db


def test_claim_hands_out_the_job_and_records_the_builder(api, job, builder, settings):
    settings.PIWHEELS_PYPI_URL = "https://pypi.example"
    settings.PIWHEELS_LEASE_SECONDS = 300
    response = api.claim(platform="linux_armv7l", python_version="3.11.2",
                         os="Raspbian GNU/Linux 12 (bookworm)")
    assert response.status_code == 200
    assert response.json() == {
        "build_id": job.id, "project": "Foo_Bar", "normalized_name": "foo-bar",
        "version": "1.0", "abi": "cp311", "arch": "armv7l",
        "index_url": "https://pypi.example/simple/",
        "extra_index_urls": ["http://testserver/simple/"], "lease_seconds": 300,
        "attempt": 1,
        "strip": True,  # PIWHEELS_STRIP_WHEELS: builders strip repaired wheels
    }
    job.refresh_from_db()
    assert (job.state, job.builder_id) == ("building", builder.id)
    builder = Builder.objects.get(id=builder.id)
    assert (builder.abi.tag, builder.platform, builder.python_version, builder.os) == (
        "cp311", "linux_armv7l", "3.11.2", "Raspbian GNU/Linux 12 (bookworm)")
    assert builder.last_seen is not None


def test_claim_with_nothing_to_build_is_204(api):
    make_abi("cp311")
    response = api.claim(wait=0)
    assert (response.status_code, response.content) == (204, b"")


def test_claim_for_an_abi_the_farm_does_not_build_is_400(api, job):
    response = api.claim(abi="cp27mu")
    assert response.status_code == 400
    assert response.json() == {"detail": "the farm does not build for ABI 'cp27mu'"}


@pytest.mark.parametrize("body", [{"wait": 61, "abi": "cp311"}, {"wait": -1, "abi": "cp311"},
                                  {"wait": 0}])
def test_claim_with_a_bad_body_is_400(api, job, body):
    response = api.post("/api/v1/claim/", body)
    assert response.status_code == 400
    job.refresh_from_db()
    assert job.state == "queued"


def test_heartbeat_of_a_held_job_is_204(api, held, settings):
    before = held.lease_until
    settings.PIWHEELS_LEASE_SECONDS = 3600
    assert api.heartbeat(held.id).status_code == 204
    held.refresh_from_db()
    assert (held.lease_until - before).total_seconds() > 3000


def test_release_puts_the_job_back(api, held):
    assert api.release(held.id).status_code == 204
    held.refresh_from_db()
    assert (held.state, held.builder_id) == ("queued", None)
    assert api.release(held.id).status_code == 409


@pytest.mark.django_db(transaction=True)
def test_a_waiting_claim_gets_a_job_queued_while_it_waits():
    builder = make_builder("pi1")
    version = make_version(make_project("foo"), "1.0")

    def queue_later():
        # Once the claim is waiting (it checked in, then found nothing), queue the job.
        deadline = time.monotonic() + 10
        while not Builder.objects.filter(id=builder.id, last_seen__isnull=False).exists():
            assert time.monotonic() < deadline, "the claim never started"
        make_build(version, state=Build.State.QUEUED)
        connection.close()

    threading.Thread(target=queue_later).start()
    started = time.monotonic()
    response = BuilderClient(builder.token).claim(wait=5)
    waited = time.monotonic() - started
    assert response.status_code == 200
    assert response.json()["version"] == "1.0"
    assert waited < 3  # woken within a probe or two of the job, not at the end of wait=5


@pytest.mark.django_db(transaction=True)
def test_a_waiting_claim_gives_up_after_wait_seconds_with_204():
    builder = make_builder("pi1")
    started = time.monotonic()
    response = BuilderClient(builder.token).claim(wait=0.5)
    assert response.status_code == 204
    assert 0.5 <= time.monotonic() - started < 1.5
