"""`make run` as a person runs it: a taken address stops it in one line with nothing left
running; on a free one it serves, and Ctrl-C stops both of its processes."""
import os
import re
import signal
import socket
import subprocess
import time

import pytest
import requests

from tests.live import free_port, stop_process, wait_until
from tests.servers import ROOT

pytestmark = pytest.mark.slow


def make_run(tmp_path, bind):
    # -o: the venv is taken as it is (make test made it); nothing is installed here.
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
               PIWHEELS_DATA_DIR=str(tmp_path / "data"), PIWHEELS_SYNC_INTERVAL="0")
    return subprocess.Popen(
        ["make", "-s", "-o", ".venv/.installed", "run", f"BIND={bind}", "WEB_WORKERS=1"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_make_run_on_a_busy_port_fails_in_one_line_and_starts_nothing(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        bind = f"127.0.0.1:{taken.getsockname()[1]}"
        proc = make_run(tmp_path, bind)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    # make's own "Error 1" line ("make[1]:" when this runs under `make test`) aside
    ours = [line for line in err.splitlines() if not re.match(r"make(\[\d+\])?: ", line)]
    assert ours == [f"make run: cannot serve on {bind}: Address already in use (another farm "
                    f"running?); stop it or give another address, e.g. make run "
                    f"BIND=127.0.0.1:{int(bind.rsplit(':', 1)[1]) + 1}"]
    assert "Connection in use" not in out + err and "web:" not in out
    assert not group_alive(proc.pid)  # no task worker, no gunicorn left behind
    assert not (tmp_path / "db.sqlite3").exists()  # not even the migrations ran


def test_make_run_serves_and_ctrl_c_stops_everything(tmp_path):
    port = free_port()
    proc = make_run(tmp_path, f"127.0.0.1:{port}")
    try:
        def serving():
            try:
                return requests.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200
            except requests.RequestException:
                return proc.poll() is not None  # ended: the assertion below says so
        wait_until(serving, timeout=180, message="make run to serve")
        assert proc.poll() is None
        time.sleep(2)  # the task worker under way too
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends to make
        out, err = proc.communicate(timeout=60)
    finally:
        stop_process(proc)
    # make itself takes the SIGINT too and ends by it, as at a terminal; both processes
    # were stopped first (the shell's trap), and said so.
    assert proc.returncode in (0, -signal.SIGINT), err
    assert "Q Cluster" in err and "has stopped" in err and "Shutting down: Master" in err
    wait_until(lambda: not group_alive(proc.pid), timeout=30, message="make run's processes")
