import hashlib
import socket
from urllib.parse import urlsplit

import pytest
import requests

from builds import storage
from builds.models import Build, BuildLog, File
from tests.factories import make_build, make_builder, make_project, make_version, make_wheel

pytestmark = pytest.mark.django_db
NAME = "foo_bar-1.0-cp311-cp311-linux_armv7l.whl"


def declared(data, filename=NAME, **extra):
    return {"filename": filename, "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(), **extra}


@pytest.fixture
def wheel(tmp_path):
    return make_wheel(tmp_path, "Foo_Bar", "1.0", requires_python=">=3.9").read_bytes()


def test_success_publishes_the_uploaded_files_all_at_once(api, held, wheel, tmp_path):
    armv6 = make_wheel(tmp_path, "Foo_Bar", "1.0", tags="cp311-cp311-linux_armv6l").read_bytes()
    armv6_name = NAME.replace("armv7l", "armv6l")
    assert api.upload(held.id, NAME, wheel).status_code == 201
    assert api.upload(held.id, armv6_name, armv6).status_code == 201
    assert not File.objects.exists()  # uploaded, not yet in the index

    response = api.finish(held.id, success=True, duration=12.5, output="built\n",
                          files=[declared(wheel, dependencies=["libfoo1"]),
                                 declared(armv6, armv6_name)])
    assert response.status_code == 200
    assert response.json() == {"build_id": held.id, "state": "succeeded"}
    files = {f.filename: f for f in File.objects.all()}
    assert set(files) == {NAME, armv6_name}
    assert files[NAME].dependencies == ["libfoo1"]
    assert files[NAME].requires_python == ">=3.9"
    assert storage.file_path("foo-bar", NAME).read_bytes() == wheel
    assert storage.file_path("foo-bar", armv6_name).read_bytes() == armv6
    assert BuildLog.objects.get(build=held).output == "built\n"


def test_success_naming_a_file_not_uploaded_is_400_and_changes_nothing(api, held, wheel):
    api.upload(held.id, NAME, wheel)
    other = NAME.replace("armv7l", "armv6l")
    response = api.finish(held.id, success=True, duration=1, output="",
                          files=[declared(wheel), declared(wheel, other)])
    assert response.status_code == 400
    assert response.json() == {"detail": f"{other} was not uploaded"}
    held.refresh_from_db()
    assert held.state == "building"
    assert not File.objects.exists() and not BuildLog.objects.exists()
    assert not storage.file_path("foo-bar", NAME).exists()


def test_the_same_result_twice_answers_200_again(api, held, wheel):
    api.upload(held.id, NAME, wheel)
    result = {"success": True, "duration": 1, "output": "ok", "files": [declared(wheel)]}
    first = api.finish(held.id, **result)
    second = api.finish(held.id, **result)
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json() == second.json() == {"build_id": held.id, "state": "succeeded"}
    assert File.objects.count() == 1


def test_a_failure_is_recorded_with_its_reason(api, held):
    response = api.finish(held.id, success=False, duration=3, output="error: x\n",
                          failure_reason="compile error")
    assert response.json() == {"build_id": held.id, "state": "failed"}
    held.refresh_from_db()
    assert (held.state, held.failure_reason, held.log.output) == (
        "failed", "compile error", "error: x\n")


CRATES_LOG = ("   Compiling pyo3-build-config v0.20.3\n"
              "error: failed to get `pyo3` as a dependency of package `demo v0.1.0`\n")


def test_a_crate_fetch_failure_is_the_builders_and_queued_again_till_the_last_attempt(
        api, held, settings):
    # Its network, not the package: the job goes back for any builder...
    response = api.finish(held.id, success=False, duration=3, output=CRATES_LOG,
                          failure_reason="pip wheel exited with status 1")
    assert response.json() == {"build_id": held.id, "state": "queued"}
    held.refresh_from_db()
    assert (held.state, held.builder, held.cause, held.attempt) == ("queued", None, "", 1)
    assert not BuildLog.objects.filter(build=held).exists()
    # ... until its last attempt fails the same way: recorded then, saying why.
    Build.objects.filter(id=held.id).update(attempt=settings.PIWHEELS_MAX_ATTEMPTS - 1)
    assert api.claim().status_code == 200
    response = api.finish(held.id, success=False, duration=3, output=CRATES_LOG,
                          failure_reason="pip wheel exited with status 1")
    assert response.json() == {"build_id": held.id, "state": "failed"}
    held.refresh_from_db()
    assert (held.state, held.cause, held.cause_detail, held.attempt) == (
        "failed", "crates-fetch-failed", "pyo3", settings.PIWHEELS_MAX_ATTEMPTS)
    assert held.log.output == CRATES_LOG


@pytest.mark.parametrize("body", [
    {"duration": 1},
    {"success": True, "files": [{"filename": NAME, "size": 1, "sha256": "xyz"}]},
    {"success": False, "duration": -1},
])
def test_a_malformed_result_is_400(api, held, body):
    assert api.finish(held.id, **body).status_code == 400
    held.refresh_from_db()
    assert held.state == "building"


@pytest.mark.django_db(transaction=True)
def test_a_whole_job_over_real_http(live_server, settings, tmp_path):
    settings.PIWHEELS_DATA_DIR = tmp_path / "data"
    builder = make_builder("pi1")
    make_build(make_version(make_project("Foo_Bar"), "1.0"), state=Build.State.QUEUED)
    wheel = make_wheel(tmp_path, "Foo_Bar", "1.0")
    session = requests.Session()
    session.headers["Authorization"] = f"Token {builder.token}"
    api = f"{live_server.url}/api/v1"

    job = session.post(f"{api}/claim/", json={"abi": "cp311", "wait": 0}).json()
    data = wheel.read_bytes()
    with open(wheel, "rb") as body:  # a file: requests streams it with a Content-Length
        response = session.put(f"{api}/builds/{job['build_id']}/files/{NAME}", data=body,
                               headers={"X-Sha256": hashlib.sha256(data).hexdigest()})
    assert response.status_code == 201
    response = session.post(f"{api}/builds/{job['build_id']}/finish/", json={
        "success": True, "duration": 2, "output": "ok", "files": [declared(data)]})
    assert response.json() == {"build_id": job["build_id"], "state": "succeeded"}
    assert storage.file_path("foo-bar", NAME).read_bytes() == data

    # A body cut short of its Content-Length is refused, and nothing is kept.
    make_build(make_version(Build.objects.get().version.project, "2.0"),
               state=Build.State.QUEUED)
    job = session.post(f"{api}/claim/", json={"abi": "cp311", "wait": 0}).json()
    url = urlsplit(live_server.url)
    with socket.create_connection((url.hostname, url.port)) as sock:
        sock.sendall(
            f"PUT /api/v1/builds/{job['build_id']}/files/foo_bar-2.0-cp311-cp311-linux_armv7l.whl"
            f" HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Token {builder.token}\r\n"
            f"X-Sha256: {'0' * 64}\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n"
            "PK partial".encode()
        )
        sock.shutdown(socket.SHUT_WR)
        answer = sock.makefile("rb").read().decode()
    assert answer.startswith("HTTP/1.1 400")
    assert "the body was not the 100000 bytes Content-Length declared" in answer
    assert list(storage.incoming_dir(job["build_id"]).iterdir()) == []
