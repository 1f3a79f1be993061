"""Processes the tests run for real: the farm under gunicorn (as `make run` serves it) on a
port of its own, against this test's database and data directory, and waiting for what they do."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parents[1]


def stop_process(proc, sig=signal.SIGTERM, timeout=30):
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def wait_until(predicate, timeout=60, message="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {message}")


def listening(port):
    """Whether something accepts connections on 127.0.0.1:PORT."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database_url():
    """The URL of the (test) database this process uses, for a farm in another process."""
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


class FarmProcess:
    """The farm as `make run` serves it (gunicorn), on a fixed port it can come back on."""

    def __init__(self, data_dir, pypi_url, log_path, graceful_timeout=1):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(
            os.environ, DATABASE_URL=database_url(), PIWHEELS_DATA_DIR=str(data_dir),
            PIWHEELS_PYPI_URL=pypi_url, DEBUG="false", SECRET_KEY="test-" * 10,
            DATABASE_CONN_MAX_AGE="0",
        )
        self.log_path = log_path
        self.graceful_timeout = graceful_timeout
        self.proc = None

    def start(self):
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(
                [str(Path(sys.executable).with_name("gunicorn")), "piwheels_site.wsgi",
                 "-b", f"127.0.0.1:{self.port}", "-w", "1", "-k", "gthread", "--threads", "8",
                 "--graceful-timeout", str(self.graceful_timeout),
                 "-c", "piwheels_site/gunicorn.conf.py"],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(self.answers, timeout=30, message="the farm to start")

    def answers(self):
        return listening(self.port)

    def stop(self):
        """Stopped as an operator stops it: SIGTERM, the workers exit gracefully."""
        if self.proc and self.proc.poll() is None:
            stop_process(self.proc)
        wait_until(lambda: not self.answers(), timeout=10, message="the farm to stop")

    def kill(self):
        """Gone at once, as in a crash: SIGKILL to the whole process group."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        wait_until(lambda: not self.answers(), timeout=10, message="the farm to go")
