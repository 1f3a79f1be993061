"""Real processes for deployment tests (beside tests/live.py's farm): gunicorn serving
the farm as production does, `manage.py qcluster`, and a throwaway PostgreSQL cluster,
each on free 127.0.0.1 ports, each stopped by the test that started it (by its own
process group, never by name)."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import requests

from tests.live import ROOT, database_url, free_port, wait_until

__all__ = ["ROOT", "database_url", "free_port", "wait_until"]  # for the deployment tests
PYTHON = sys.executable
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))
CONFIG = ROOT / "piwheels_site" / "gunicorn.conf.py"  # the farm's hooks, where it has one


def farm_env(tmp_path, **extra):
    """The environment of a farm process: production-like (DEBUG off) on this test's
    database unless EXTRA says otherwise."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIWHEELS_", "Q_"))}
    env.update(
        DATABASE_URL=database_url(), PIWHEELS_DATA_DIR=str(tmp_path / "data"), DEBUG="false",
        SECRET_KEY="test-" * 10, SECURE_COOKIES="false", LOG_LEVEL="WARNING",
        PIWHEELS_SYNC_INTERVAL="0",
        # Tests claim many jobs with one builder (as tests/conftest.py many_jobs_per_builder).
        PIWHEELS_MAX_JOBS_PER_BUILDER="1000",
        # A failure can ask for Debian's Contents index at once (builds/apt.py): never the
        # real archive from a test, unless the test gives a fake one.
        PIWHEELS_DEBIAN_MIRROR="http://127.0.0.1:9/debian",
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Process:
    """A child process in a process group of its own, its output in LOG_PATH."""

    def __init__(self, args, env, log_path):
        self.args, self.env, self.log_path = args, env, Path(log_path)
        self.proc = None

    def start(self):
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(self.args, cwd=ROOT, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """SIG to the leader only, as an operator's Ctrl-C or systemd stop does (gunicorn
        and django-q stop their children themselves; a second signal in a child can hang
        django-q's cluster); after TIMEOUT, SIGKILL to the whole group."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        try:  # whatever is left of the group: nothing, normally
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def log(self):
        return self.log_path.read_text() if self.log_path.exists() else ""


class Gunicorn(Process):
    """The farm as production serves it: gunicorn gthread on piwheels_site.wsgi, with a
    control socket of its own (the default one is shared by every gunicorn of a user)."""

    def __init__(self, env, log_path, workers=1, threads=8):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        log_path = Path(log_path)
        super().__init__(
            [GUNICORN, "piwheels_site.wsgi", "-b", f"127.0.0.1:{self.port}",
             "-w", str(workers), "-k", "gthread", "--threads", str(threads),
             "--graceful-timeout", "2",
             "--control-socket", str(log_path.with_suffix(".ctl")),
             *(["-c", str(CONFIG)] if CONFIG.exists() else [])],
            env, log_path,
        )
        self.session = requests.Session()

    def start(self, wait=True):
        super().start()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self):
        wait_until(self.answers, timeout=30, message=f"gunicorn on {self.url}")

    def answers(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"gunicorn exited:\n{self.log()[-3000:]}")
        try:
            # The index's 404, one indexed query: the database is reachable too.
            requests.get(self.url + "/simple/-/", timeout=10)
            return True
        except requests.ConnectionError:
            return False

    def get(self, path, **kwargs):
        kwargs.setdefault("timeout", 10)
        kwargs.setdefault("allow_redirects", False)
        return self.session.get(self.url + path, **kwargs)

    def post(self, path, **kwargs):
        kwargs.setdefault("timeout", 10)
        kwargs.setdefault("allow_redirects", False)
        return self.session.post(self.url + path, **kwargs)


class QCluster(Process):
    """`manage.py qcluster`: the task worker of one host."""

    def __init__(self, env, log_path):
        super().__init__([PYTHON, "manage.py", "qcluster"], env, log_path)


def postgres_bindir():
    """The directory of initdb and pg_ctl, or None."""
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    found = subprocess.run(["sh", "-c", "command -v initdb"], capture_output=True, text=True)
    return Path(found.stdout.strip()).parent if found.returncode == 0 else None


class PostgresCluster:
    """A throwaway PostgreSQL cluster in a fresh directory under /tmp, on a free port, as
    scripts/test-database makes one (initdb, pg_ctl); as root it runs as the postgres
    user, which owns the directory. remove() stops it and deletes the directory."""

    def __init__(self):
        self.bindir = postgres_bindir()
        self.dir = Path(tempfile.mkdtemp(prefix="piwheels-pg-"))
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"
        self.as_root = os.getuid() == 0
        if self.as_root:
            os.chown(self.dir, *_postgres_ids())

    def _run(self, *args):
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60, cwd=self.dir)

    def init(self):
        self._run("initdb", "-D", str(self.dir / "data"), "-U", "postgres", "--auth=trust",
                  "-N")
        return self

    def start(self):
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-l", str(self.dir / "log"), "-w",
                  "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
                  " -c fsync=off -c full_page_writes=off", "start")
        return self

    def stop(self, mode="fast"):
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", mode, "-w", "stop")

    def restart(self):
        """Stop (closing every connection, as a crash or an upgrade does) and start."""
        self.stop()
        self.start()

    def remove(self):
        if (self.dir / "data" / "postmaster.pid").exists():
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


def _postgres_ids():
    import pwd

    entry = pwd.getpwnam("postgres")
    return entry.pw_uid, entry.pw_gid


def redis_or_skip():
    """The URL of a Redis that answers (REDIS_TEST_URL, default the local one), or skip."""
    import pytest
    import redis

    url = os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis answers at {url} ({exc}); .ci/run starts one")
    return url
