"""The embedded server stands hostile clients: gunicorn's own refusals are JSON, a Host
the farm is not named by is a 400, one builder's waiting claims are bounded, and behind
`make run`'s nginx (scripts/run-web) slow clients sending headers a byte at a time and
a builder's pile of long-polls leave /simple/ answering."""
import concurrent.futures
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time

import pytest
import requests

from builds.models import Build
from tests.factories import make_build, make_builder, make_project, make_version
from tests.index.test_nginx import NGINX
from tests.live import ROOT, FarmProcess, database_url, free_port, listening, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def farm(data_dir, tmp_path, settings):
    farm = FarmProcess(data_dir, settings.PIWHEELS_PYPI_URL, tmp_path / "farm.log")
    farm.env.update(PIWHEELS_LONGPOLL_PER_BUILDER="2", PIWHEELS_LONGPOLL_MAX="16")
    farm.start()
    yield farm
    farm.kill()


def raw(port, request):
    """(status, headers text, body) of REQUEST (bytes) sent as it is."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(request)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), head.decode("latin-1"), body


@pytest.mark.parametrize(("request_bytes", "status", "detail"), [
    (b"GET /simple/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
     431, "Request Header Fields Too Large: "),
    (b"POST /api/v1/claim/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n",
     400, "Bad Request: "),
    (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 414, "URI Too Long: "),
])
def test_gunicorns_own_refusals_are_json(farm, request_bytes, status, detail):
    got, head, body = raw(farm.port, request_bytes)
    assert got == status
    assert "Content-Type: application/json" in head
    assert json.loads(body)["detail"].startswith(detail)


def test_a_host_the_farm_is_not_named_by_is_400_not_500(farm):
    got, _, _ = raw(farm.port, b"GET /project/foo/ HTTP/1.1\r\nHost: evil.example\r\n"
                               b"Connection: close\r\n\r\n")
    assert got == 400
    got, _, _ = raw(farm.port, b"GET /pypi/foo/json HTTP/1.1\r\nHost: evil.example\r\n"
                               b"Connection: close\r\n\r\n")
    assert got == 400


def test_one_builders_waiting_claims_are_bounded(farm):
    builder = make_builder("pi1")
    make_build(make_version(make_project("foo"), "1.0"), state=Build.State.SUCCEEDED)

    def claim():
        began = time.monotonic()
        answer = requests.post(f"{farm.url}/api/v1/claim/", json={"abi": "cp311", "wait": 8},
                               headers={"Authorization": f"Token {builder.token}"},
                               timeout=30)
        return answer, time.monotonic() - began

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: claim(), range(6)))
    by_status = sorted(((a.status_code, seconds, a) for a, seconds in answers),
                       key=lambda row: row[:2])
    assert [status for status, _, _ in by_status] == [204, 204, 429, 429, 429, 429]
    assert all(seconds >= 7 for status, seconds, _ in by_status if status == 204)
    for _, seconds, answer in by_status[2:]:  # refused at once, told when to ask again
        assert seconds < 4 and answer.headers["Retry-After"] == "8"
        assert answer.json() == {
            "detail": "2 claims of this builder already wait for a job: ask again in 8 s"}


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install -y nginx; "
                                          ".ci/run installs it)")
def test_make_runs_server_answers_through_slow_clients_and_piled_long_polls(
        data_dir, tmp_path):
    builder = make_builder("pi1")
    port = free_port()
    env = dict(os.environ, DATABASE_URL=database_url(), PIWHEELS_DATA_DIR=str(data_dir),
               DEBUG="false", SECRET_KEY="test-" * 10, DATABASE_CONN_MAX_AGE="0",
               PIWHEELS_SYNC_INTERVAL="0")
    log = open(tmp_path / "run-web.log", "w")
    web = subprocess.Popen(
        [sys.executable, "scripts/run-web", f"127.0.0.1:{port}", "1", "4",
         "--control-socket", str(tmp_path / "gunicorn.ctl")],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    slow = []
    try:
        wait_until(lambda: listening(port) and "nginx on" in (tmp_path / "run-web.log")
                   .read_text(), timeout=60, message="run-web to start")
        # 40 slow sockets: ten times the 4 threads gunicorn has here.
        for _ in range(40):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /simple/ HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            slow.append(s)
        polls = concurrent.futures.ThreadPoolExecutor(12)
        for _ in range(12):  # more than the threads, from one token
            polls.submit(requests.post, f"http://127.0.0.1:{port}/api/v1/claim/",
                         json={"abi": "cp311", "wait": 20}, timeout=40,
                         headers={"Authorization": f"Token {builder.token}"})
        latencies = []
        for _ in range(8):
            for s in slow:
                s.send(b"X")  # one more header byte each
            began = time.monotonic()
            answer = requests.get(f"http://127.0.0.1:{port}/simple/nonesuch/", timeout=10)
            latencies.append(time.monotonic() - began)
            assert answer.status_code == 404  # Django's answer: a thread was free
            time.sleep(0.5)
        assert statistics.median(latencies) < 1, latencies
        assert max(latencies) < 5, latencies
        polls.shutdown(wait=False, cancel_futures=True)
    finally:
        for s in slow:
            s.close()
        os.killpg(web.pid, signal.SIGTERM)
        try:
            web.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(web.pid, signal.SIGKILL)
            web.wait()


def test_make_run_shows_no_debug_pages_unless_asked(tmp_path):
    """`make run`'s recipe with PY standing for a script that prints what the web server
    and the task worker would be given (migrate and the secret key not made)."""
    script = tmp_path / "py"
    # It prints, then lives on a while: the recipe stops both when the first one ends.
    script.write_text('#!/bin/sh\necho "$2 DEBUG=$DEBUG SECRET_KEY_FILE=$SECRET_KEY_FILE"\n'
                      'sleep 5\n')
    script.chmod(0o755)
    env = {k: v for k, v in os.environ.items()
           if k not in ("DEBUG", "SECRET_KEY", "SECRET_KEY_FILE", "MAKEFLAGS")}

    def run(*args):
        return subprocess.run(["make", "-s", "-o", "migrate", "-o", "var/secret_key", "run",
                               f"PY={script}", *args], cwd=ROOT, env=env, timeout=60,
                              capture_output=True, text=True).stdout

    plain = run()
    assert "DEBUG=false" in plain and "DEBUG=true" not in plain
    assert f"SECRET_KEY_FILE={ROOT}/var/secret_key" in plain
    assert "127.0.0.1:8000 DEBUG=false" in plain  # scripts/run-web's first argument
    assert "DEBUG=true" in run("DEBUG=true")
