"""Build logs through the API, over real HTTP: sent on their own (gzip) or inside finish,
kept whole and compressed on disk, at most PIWHEELS_MAX_LOG characters in the row."""
import gzip
import hashlib
import zlib
from pathlib import Path

import pytest
import requests

from builds import logs, storage
from builds.models import Build, BuildLog, File
from tests.factories import make_build, make_builder, make_project, make_version, make_wheel

pytestmark = pytest.mark.django_db(transaction=True)
NAME = "foo_bar-1.0-cp311-cp311-linux_armv7l.whl"


class Http:
    """The builder API of the live server, as one builder."""

    def __init__(self, base, token):
        self.base = f"{base}/api/v1"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"

    def claim(self):
        return self.session.post(f"{self.base}/claim/", json={"abi": "cp311", "wait": 0})

    def log(self, build_id, body, **headers):
        return self.session.put(f"{self.base}/builds/{build_id}/log/", data=body,
                                headers={"Content-Type": "application/gzip", **headers})

    def upload(self, build_id, path):
        data = path.read_bytes()
        with open(path, "rb") as body:
            return self.session.put(f"{self.base}/builds/{build_id}/files/{NAME}", data=body,
                                    headers={"X-Sha256": hashlib.sha256(data).hexdigest()})

    def finish(self, build_id, **result):
        return self.session.post(f"{self.base}/builds/{build_id}/finish/", json=result)


@pytest.fixture
def http(live_server, data_dir):
    builder = make_builder("pi1")
    make_build(make_version(make_project("Foo_Bar"), "1.0"), state=Build.State.QUEUED)
    http = Http(live_server.url, builder.token)
    yield http
    http.session.close()  # lets the server's thread (and its database connection) go


@pytest.fixture
def held(http):
    response = http.claim()
    assert response.status_code == 200
    return response.json()["build_id"]


def declared(path):
    data = path.read_bytes()
    return {"filename": NAME, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_a_log_sent_on_its_own_is_kept_whole_and_its_head_and_tail_in_the_row(
        http, held, settings, tmp_path):
    settings.PIWHEELS_MAX_LOG = 10_000
    output = "".join(f"compiling part {i}\n" for i in range(100_000))  # ~2 MB
    wheel = make_wheel(tmp_path, "Foo_Bar", "1.0")
    assert http.upload(held, wheel).status_code == 201

    response = http.log(held, gzip.compress(output.encode()))
    assert response.status_code == 201
    assert response.json()["inflated"] == len(output)
    response = http.finish(held, success=True, duration=3, files=[declared(wheel)])

    assert response.json() == {"build_id": held, "state": "succeeded"}
    assert File.objects.get().filename == NAME
    row = BuildLog.objects.get(build_id=held)
    assert row.truncated and len(row.output) == 10_000
    assert row.output.startswith("compiling part 0\n") and row.output.endswith("part 99999\n")
    assert row.output.count("[farm:") == 1
    with gzip.open(logs.whole_log_path(held), "rt") as f:
        assert f.read() == output
    assert not storage.incoming_dir(held).exists()


def test_a_log_sent_again_replaces_the_first_and_a_failure_keeps_it(http, held):
    assert http.log(held, gzip.compress(b"first try\n")).status_code == 201
    assert http.log(held, gzip.compress(b"gcc: error: x.h\n")).status_code == 201
    response = http.finish(held, success=False, duration=1, failure_reason="x.h")
    assert response.json()["state"] == "failed"
    assert BuildLog.objects.get(build_id=held).output == "gcc: error: x.h\n"
    assert gzip.decompress(logs.whole_log_path(held).read_bytes()) == b"gcc: error: x.h\n"


def test_a_failure_is_diagnosed_from_the_log_sent_on_its_own(http, held):
    """The agent's finish carries no output: the cause is read from the uploaded log."""
    whole = (Path(__file__).resolve().parent.parent / "data" / "build-logs" / "whole"
             / "pyaudio-0.2.14.log").read_text()
    assert http.log(held, gzip.compress(whole.encode())).status_code == 201
    response = http.finish(held, success=False, duration=18, output="",
                           failure_reason="pip wheel exited with status 1")
    assert response.json()["state"] == "failed"
    build = Build.objects.get(id=held)
    assert (build.cause, build.cause_detail) == ("missing-header", "portaudio.h")


def test_an_older_agents_log_inside_finish_is_kept_up_to_the_body_limit(
        http, held, settings):
    settings.PIWHEELS_MAX_LOG = 1000
    output = "x" * 3_000_000 + "the end\n"  # past Django's default 2.5 MiB
    response = http.finish(held, success=False, duration=1, output=output)
    assert response.status_code == 200
    row = BuildLog.objects.get(build_id=held)
    assert row.truncated and row.output.endswith("the end\n") and len(row.output) == 1000
    assert gzip.decompress(logs.whole_log_path(held).read_bytes()).decode() == output


def test_a_finish_body_over_the_limit_is_a_413_in_json_and_changes_nothing(
        http, held, settings):
    settings.PIWHEELS_MAX_BODY = 100_000
    response = http.finish(held, success=False, duration=1, output="y" * 200_000)
    assert response.status_code == 413
    assert response.json() == {"detail": "the result is over 100000 bytes: send the log on its "
                                         "own (PUT .../log/) or less of it"}
    assert Build.objects.get(id=held).state == "building"
    assert not BuildLog.objects.exists()


def zero_bomb(size):
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1024 * 1024)
    parts = [squeeze.compress(block) for _ in range(size // len(block))]
    return b"".join(parts) + squeeze.flush()


BAD_LOGS = [
    (b"not gzip at all", {}, 400, "the body is not valid gzip"),
    (gzip.compress(b"log\n", mtime=0)[:-4], {}, 400, "the body is not a whole gzip stream"),
    (gzip.compress(b"log\n", mtime=0) + b"junk", {}, 400,
     "one gzip stream and nothing after it"),
    (gzip.compress(b"z" * 5000, mtime=0), {"PIWHEELS_MAX_LOG_UPLOAD": 20}, 413,
     "bytes is over the log upload limit of 20 bytes"),
    (zero_bomb(64 * 1024**2), {"PIWHEELS_MAX_LOG_INFLATED": 8 * 1024**2}, 413,
     "the log inflates to over 8388608 bytes"),
    # not gzip, cut short, junk after it, over the compressed limit, a gzip bomb
]


def test_a_bad_or_oversized_log_is_refused_in_json_and_nothing_is_kept(http, held, settings):
    defaults = {name: getattr(settings, name)
                for name in ("PIWHEELS_MAX_LOG_UPLOAD", "PIWHEELS_MAX_LOG_INFLATED")}
    for body, limits, status, detail in BAD_LOGS:
        for name, value in {**defaults, **limits}.items():
            setattr(settings, name, value)
        response = http.log(held, body)
        assert response.status_code == status, detail
        assert detail in response.json()["detail"]
        assert list(storage.incoming_dir(held).glob("*log*")) == []
    assert Build.objects.get(id=held).state == "building"


def test_a_log_for_a_job_that_is_not_ours_is_409(http, held, live_server):
    other = Http(live_server.url, make_builder("pi2").token)
    response = other.log(held, gzip.compress(b"mine\n"))
    assert response.status_code == 409
    assert response.json() == {"detail": f"build {held} is no longer yours: stop working on it"}
    assert not storage.incoming_dir(held).exists()
