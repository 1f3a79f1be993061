import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
import requests

from builds import storage
from builds.models import Build, File, Upload
from tests.builds.bad_wheels import CASES
from tests.factories import make_build, make_builder, make_project, make_version, make_wheel
from tests.live import ROOT, database_url, free_port, listening, wait_until

pytestmark = pytest.mark.django_db
NAME = "foo_bar-1.0-cp311-cp311-linux_armv7l.whl"


@pytest.fixture
def wheel(tmp_path):
    return make_wheel(tmp_path, "Foo_Bar", "1.0").read_bytes()


def test_upload_stores_the_wheel_in_incoming_only(api, held, wheel):
    response = api.upload(held.id, NAME, wheel)
    assert response.status_code == 201
    assert response.json() == {"filename": NAME, "size": len(wheel),
                               "sha256": hashlib.sha256(wheel).hexdigest()}
    assert (storage.incoming_dir(held.id) / NAME).read_bytes() == wheel
    assert not storage.file_path("foo-bar", NAME).exists()
    assert not File.objects.exists()


def test_uploading_the_same_bytes_again_answers_200(api, held, wheel):
    assert api.upload(held.id, NAME, wheel).status_code == 201
    assert api.upload(held.id, NAME, wheel).status_code == 200
    assert sorted(p.name for p in storage.incoming_dir(held.id).iterdir()) == [
        NAME, f"{NAME}.metadata"]
    row = Upload.objects.get()
    assert (row.build_id, row.filename, row.size, row.sha256) == (
        held.id, NAME, len(wheel), hashlib.sha256(wheel).hexdigest())


def test_other_bytes_under_a_name_already_received_are_refused_409(api, held, wheel, tmp_path):
    assert api.upload(held.id, NAME, wheel).status_code == 201
    other = make_wheel(tmp_path, "Foo_Bar", "1.0", requires_python=">=3").read_bytes()
    response = api.upload(held.id, NAME, other)
    assert response.status_code == 409
    assert response.json() == {"detail": (
        f"{NAME} was already received for build {held.id} with sha256 "
        f"{hashlib.sha256(wheel).hexdigest()}: a build's file, once received, does not change")}
    assert (storage.incoming_dir(held.id) / NAME).read_bytes() == wheel
    assert Upload.objects.get().sha256 == hashlib.sha256(wheel).hexdigest()


def test_a_job_claimed_afresh_takes_new_bytes_under_the_same_name(api, held, wheel, tmp_path):
    assert api.upload(held.id, NAME, wheel).status_code == 201
    assert api.release(held.id).status_code == 204
    assert api.claim().status_code == 200
    other = make_wheel(tmp_path, "Foo_Bar", "1.0", requires_python=">=3").read_bytes()
    assert api.upload(held.id, NAME, other).status_code == 201
    assert (storage.incoming_dir(held.id) / NAME).read_bytes() == other


def not_a_zip(wheel):
    return b"PK" + b"\x00" * 100


@pytest.mark.parametrize("filename, body, sha, status, detail", [
    (NAME, None, "0" * 64, 400, "the body's sha256 is not the X-Sha256 declared"),
    (NAME, None, "nothex", 400, "X-Sha256 must be the hex sha256 of the body"),
    ("bar-1.0-cp311-cp311-linux_armv7l.whl", None, None, 400,
     "'bar-1.0-cp311-cp311-linux_armv7l.whl' is not a wheel of Foo_Bar"),
    ("foo_bar-2.0-cp311-cp311-linux_armv7l.whl", None, None, 400,
     "'foo_bar-2.0-cp311-cp311-linux_armv7l.whl' is not a wheel of version 1.0"),
    ("foo_bar-1.0-cp39-cp39-linux_armv7l.whl", None, None, 400,
     "'foo_bar-1.0-cp39-cp39-linux_armv7l.whl' is tagged for ABI cp39, not cp311 (or none/abi3)"),
    ("..%5C" + NAME, None, None, 400,
     "the filename '..\\\\" + NAME + "' contains a path or control character"),
    (NAME.replace(".whl", "%00.whl"), None, None, 400, "contains a path or control character"),
    ("foo_bar-1.0.tar.gz", None, None, 400, "is not a valid wheel filename"),
    (NAME, not_a_zip, None, 400, f"{NAME} is not a zip file"),
])
def test_bad_uploads_are_refused_and_nothing_is_kept(api, held, wheel, filename, body, sha,
                                                     status, detail):
    data = body(wheel) if body else wheel
    response = api.upload(held.id, filename, data, sha256=sha)
    assert response.status_code == status
    assert detail in response.json()["detail"]
    incoming = storage.incoming_dir(held.id)
    assert not incoming.exists() or list(incoming.iterdir()) == []


def test_a_wheel_without_dist_info_files_is_refused(api, held, tmp_path):
    data = make_wheel(tmp_path, "Foo_Bar", "1.0", members={"foo_bar/__init__.py": b""}).read_bytes()
    response = api.upload(held.id, NAME, data)
    assert response.status_code == 400
    assert response.json() == {"detail": f"{NAME} has 0 .dist-info directories, not one"}


def test_a_slash_in_the_filename_does_not_reach_the_view(api, held, wheel):
    assert api.upload(held.id, "..%2F" + NAME, wheel).status_code == 404
    assert not storage.incoming_dir(held.id).exists()


def test_an_upload_over_the_limit_is_413_before_reading(api, held, wheel, settings):
    settings.PIWHEELS_MAX_UPLOAD = len(wheel) - 1
    response = api.upload(held.id, NAME, wheel)
    assert response.status_code == 413
    assert response.json() == {"detail": f"{len(wheel)} bytes is over the upload limit of "
                                         f"{len(wheel) - 1} bytes"}
    assert not storage.incoming_dir(held.id).exists()


def test_an_upload_to_a_job_not_held_is_409(api, job, wheel, data_dir):
    response = api.upload(job.id, NAME, wheel)
    assert response.status_code == 409
    assert not storage.incoming_dir(job.id).exists()


def nothing_kept(build_id):
    incoming = storage.incoming_dir(build_id)
    return (not incoming.exists() or list(incoming.iterdir()) == []) and not (
        Upload.objects.exists() or File.objects.exists())


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_bad_wheel_is_refused_400_and_nothing_is_kept(api, held, case):
    make, error = CASES[case]
    filename, data = make("Foo_Bar", "1.0", "cp311-cp311-linux_armv7l")
    response = api.upload(held.id, quote(filename), data)
    assert response.status_code == 400
    assert error in response.json()["detail"]
    assert nothing_kept(held.id)


@pytest.mark.parametrize("length", [215, 241, 300, 2000])
def test_a_filename_of_any_length_is_a_400_before_the_body_is_read(api, held, length):
    filename = "a" * (length - len(NAME)) + NAME
    response = api.upload(held.id, filename, b"not read", sha256="0" * 64)
    assert response.status_code == 400
    detail = response.json()["detail"]
    if length > 240:
        assert detail == (f"the filename {filename[:40]!r}... is {length} characters long, "
                          "over the limit of 240")
    else:
        assert detail.startswith(f"{filename!r} is not a wheel of Foo_Bar")
    assert nothing_kept(held.id)


# -- over real HTTP ----------------------------------------------------------------------

def put_in_two_parts(url, token, filename, data, between):
    """PUT DATA with http.client, all but its last 10 bytes, then BETWEEN(), then the rest:
    (status, JSON answer)."""
    split = urlsplit(url)
    conn = http.client.HTTPConnection(split.hostname, split.port, timeout=30)
    try:
        conn.putrequest("PUT", f"{split.path}/files/{filename}")
        for name, value in (("Authorization", f"Token {token}"),
                            ("X-Sha256", hashlib.sha256(data).hexdigest()),
                            ("Content-Length", str(len(data))),
                            ("Content-Type", "application/octet-stream")):
            conn.putheader(name, value)
        conn.endheaders()
        conn.send(data[:-10])
        between()
        conn.send(data[-10:])
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_uploads_of_other_bytes_keep_one_whole(live_server, settings, tmp_path):
    """Both bodies are in flight at once (each waits for the other before its last bytes):
    one is kept with its own hash, the other is refused, and what is published is whole."""
    settings.PIWHEELS_DATA_DIR = tmp_path / "data"
    builder = make_builder("pi1")
    make_build(make_version(make_project("Foo_Bar"), "1.0"), state=Build.State.QUEUED)
    session = requests.Session()
    session.headers["Authorization"] = f"Token {builder.token}"
    job = session.post(f"{live_server.url}/api/v1/claim/", json={"abi": "cp311"}).json()
    bodies = [make_wheel(tmp_path / d, "Foo_Bar", "1.0", requires_python=f">={d}").read_bytes()
              for d in ("3", "4") if (tmp_path / d).mkdir() is None]
    both_sent = threading.Barrier(2)
    url = f"{live_server.url}/api/v1/builds/{job['build_id']}"
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(
            lambda data: put_in_two_parts(url, builder.token, NAME, data,
                                          lambda: both_sent.wait(timeout=20)),
            bodies))
    assert sorted(status for status, _ in answers) == [201, 409]
    winner = bodies[[status for status, _ in answers].index(201)]
    refused = next(answer for status, answer in answers if status == 409)
    assert refused["detail"].startswith(f"{NAME} was already received for build")
    kept = (storage.incoming_dir(job["build_id"]) / NAME).read_bytes()
    assert kept == winner
    assert Upload.objects.get().sha256 == hashlib.sha256(winner).hexdigest()

    response = session.post(f"{url}/finish/", json={
        "success": True, "duration": 1, "output": "", "files": [
            {"filename": NAME, "size": len(winner),
             "sha256": hashlib.sha256(winner).hexdigest()}]})
    assert response.json()["state"] == "succeeded"
    served = requests.get(f"{live_server.url}/files/foo-bar/{NAME}").content
    assert hashlib.sha256(served).hexdigest() == File.objects.get().sha256
    assert served == winner


@pytest.fixture
def gunicorn(transactional_db, tmp_path, request):
    """The farm under gunicorn with the worker class request.param, an upload read
    timing out after 1 s; yields its base URL."""
    port = free_port()
    env = dict(os.environ, DATABASE_URL=database_url(), DATABASE_CONN_MAX_AGE="0",
               PIWHEELS_DATA_DIR=str(tmp_path / "data"), DEBUG="false",
               SECRET_KEY="test-" * 10, PIWHEELS_UPLOAD_IDLE_TIMEOUT="1")
    with open(tmp_path / "gunicorn.log", "w") as log:
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("gunicorn")), "piwheels_site.wsgi",
             "-b", f"127.0.0.1:{port}", "-w", "1", "-k", request.param, "--threads", "4",
             "--timeout", "30", "--graceful-timeout", "1"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"

        def up():
            return listening(port) or proc.poll() is not None

        wait_until(up, timeout=30, message="gunicorn")
        assert proc.poll() is None, (tmp_path / "gunicorn.log").read_text()
        yield url, tmp_path / "data"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


@pytest.mark.parametrize("gunicorn", ["sync", "gthread"], indirect=True)
def test_a_body_that_stops_short_is_answered_408_within_the_idle_timeout(gunicorn, tmp_path):
    url, data_dir = gunicorn
    builder = make_builder("pi1")
    make_build(make_version(make_project("Foo_Bar"), "1.0"), state=Build.State.QUEUED)
    job = requests.post(f"{url}/api/v1/claim/", json={"abi": "cp311"},
                        headers={"Authorization": f"Token {builder.token}"}).json()
    wheel = make_wheel(tmp_path, "Foo_Bar", "1.0").read_bytes()
    split = urlsplit(url)
    with socket.create_connection((split.hostname, split.port)) as sock:
        sock.sendall(
            f"PUT /api/v1/builds/{job['build_id']}/files/{NAME} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Token {builder.token}\r\n"
            f"X-Sha256: {hashlib.sha256(wheel).hexdigest()}\r\n"
            f"Content-Length: {len(wheel)}\r\n\r\n".encode() + wheel[:100])
        sent = time.monotonic()
        sock.settimeout(20)  # the connection stays open: only the farm can end this
        answer = sock.recv(65536)
        answered = time.monotonic() - sent
        while chunk := sock.recv(65536):
            answer += chunk
        closed = time.monotonic() - sent
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408")
    assert json.loads(body) == {
        "detail": "no byte of the body came for 1 s (PIWHEELS_UPLOAD_IDLE_TIMEOUT)"}
    assert 1 <= answered < 4
    assert closed < 10  # gthread drains what follows for 5 s at most, then hangs up
    assert not Upload.objects.exists()
    incoming = data_dir / "incoming" / str(job["build_id"])
    assert not incoming.exists() or list(incoming.iterdir()) == []
