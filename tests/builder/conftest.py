"""The real agent against the real farm: sdists made here, a fake upstream serving them and a
setuptools wheel, the farm as pytest-django's live server (or as gunicorn in a process)."""
import io
import os
import socket
import subprocess
import sys
import tarfile
import textwrap
import threading
from pathlib import Path

import pytest
from packaging.tags import sys_tags

from builds import queue
from lib import platforms
from piwheels_builder import build
from piwheels_builder.identity import platform_tag
from tests.factories import make_abi, make_builder, make_project
from tests.live import FarmProcess

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "var" / "test-cache"
AGENT = [sys.executable, "-m", "piwheels_builder.main"]
# Where bwrap cannot make a sandbox (some CI containers) the agent builds unsandboxed;
# the hostile build's test skips there instead (tests/builder/test_hostile_build.py).
SANDBOX_PROBLEM = build.sandbox_problem()
UNSANDBOXED = ["--unsandboxed"] if SANDBOX_PROBLEM else []
# The ABI and architecture of this machine: the jobs are for them, so that what is
# built here fits (x86_64 on a CI machine: the farm builds it for tests).
ABI = next(iter(sys_tags())).abi
ARCH = platforms.job_arch(platform_tag())


def hermetic_pip_env(**extra):
    """An environment where pip sees only the indexes on its command line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1",
               PYTHONPATH=str(ROOT / "builder"), **extra)  # this checkout's agent
    return env


@pytest.fixture(scope="session")
def setuptools_wheel():
    """(filename, bytes) of a setuptools wheel, downloaded once into var/test-cache/."""
    CACHE.mkdir(parents=True, exist_ok=True)
    found = sorted(CACHE.glob("setuptools-*-py3-none-any.whl"))
    if not found:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
             "setuptools>=70.1", "-d", str(CACHE)],
            capture_output=True, text=True, timeout=300,
        )
        found = sorted(CACHE.glob("setuptools-*-py3-none-any.whl"))
        if not found:
            pytest.skip(f"cannot get a setuptools wheel for build isolation: {proc.stderr[-300:]}")
    return found[-1].name, found[-1].read_bytes()


def make_sdist(name, version, files, setup_py=None):
    """(filename, bytes) of an sdist setuptools can build: PKG-INFO, pyproject.toml,
    setup.py and the given files ({relative path: text})."""
    dist = name.replace("-", "_")
    base = f"{dist}-{version}"
    members = {
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        "pyproject.toml": textwrap.dedent(f"""\
            [build-system]
            requires = ["setuptools>=61"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{name}"
            version = "{version}"
            requires-python = ">=3.8"
            """),
        "setup.py": setup_py or "from setuptools import setup\nsetup()\n",
        **files,
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path, text in members.items():
            data = text.encode() if isinstance(text, str) else text
            info = tarfile.TarInfo(f"{base}/{path}")
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return f"{base}.tar.gz", buf.getvalue()


@pytest.fixture(scope="session")
def wheel_wheel():
    """(filename, bytes) of a `wheel` wheel, downloaded once into var/test-cache/: pip
    before 24 asks for it, beside setuptools, to build a project without pyproject.toml
    in isolation. Before 0.46, which needs `packaging` too."""
    CACHE.mkdir(parents=True, exist_ok=True)
    found = sorted(CACHE.glob("wheel-0.4[0-5].*-py3-none-any.whl"))
    if not found:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
             "wheel>=0.40,<0.46", "-d", str(CACHE)],
            capture_output=True, text=True, timeout=300, env=hermetic_pip_env(),
        )
        found = sorted(CACHE.glob("wheel-0.4[0-5].*-py3-none-any.whl"))
        if not found:
            pytest.skip(f"cannot get a wheel wheel for build isolation: {proc.stderr[-300:]}")
    return found[-1].name, found[-1].read_bytes()


@pytest.fixture
def upstream(fake_pypi, setuptools_wheel, wheel_wheel):
    """The fake upstream index, serving setuptools and wheel for build isolation."""
    fake_pypi.add_release("setuptools", setuptools_wheel[0].split("-")[1], [setuptools_wheel])
    fake_pypi.add_release("wheel", wheel_wheel[0].split("-")[1], [wheel_wheel])
    return fake_pypi


@pytest.fixture
def farm_builder(transactional_db):
    make_abi(ABI, archs=ARCH)
    return make_builder("pi-e2e", abi=ABI)


@pytest.fixture
def publish_sdist(upstream, farm_builder):
    """Put an sdist on the upstream index, add it to the farm's catalogue and queue its build."""
    def publish(name, version, files, setup_py=None):
        sdist = make_sdist(name, version, files, setup_py)
        upstream.add_release(name, version, [sdist])
        project = make_project(name, versions=[version])
        queue.refresh_jobs([v.id for v in project.versions.all()])
        return project

    return publish


def run_agent(server, token, work_dir, *args, timeout=120, env=None):
    """Run ``piwheels-builder`` to its end; (returncode, output)."""
    proc = subprocess.run(
        [*AGENT, "--server", server, "--token", token, "--work-dir", str(work_dir),
         "--wait", "0", "--max-retry-delay", "0.5", *UNSANDBOXED, *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
        env=hermetic_pip_env(**(env or {})),
    )
    return proc.returncode, proc.stdout


def start_agent(server, token, work_dir, *args, env=None, log_path=None):
    """Start ``piwheels-builder`` in the background, its output going to ``log_path``."""
    out = open(log_path, "w") if log_path else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            [*AGENT, "--server", server, "--token", token, "--work-dir", str(work_dir),
             "--wait", "0", "--max-retry-delay", "0.5", *UNSANDBOXED, *args],
            stdout=out, stderr=subprocess.STDOUT, env=hermetic_pip_env(**(env or {})),
        )
    finally:
        if log_path:
            out.close()


@pytest.fixture
def farm_process(data_dir, upstream, tmp_path):
    farm = FarmProcess(data_dir, upstream.url, tmp_path / "farm.log")
    yield farm
    farm.kill()


@pytest.fixture
def work_dir(tmp_path):
    return tmp_path / "agent"


class CuttingProxy:
    """A TCP proxy in front of the farm that hangs up on the first wheel upload midway:
    after ``cut_after`` bytes from the start of a ``PUT`` request, both ends are closed."""

    MARKER = b"PUT /api/v1/builds/"

    def __init__(self, target_port, cut_after=4000, times=1):
        self.target_port = target_port
        self.cut_after = cut_after
        self.times = times
        self.cuts = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.listener.close()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pump_up, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _pump_up(self, client, upstream):
        """Client to farm, watching for the upload to cut."""
        tail = b""
        left = None  # bytes still let through before the cut, once an upload started
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                if left is None:
                    found = (tail + data).find(self.MARKER)
                    at = found - len(tail)  # where the request starts in data (maybe < 0)
                    tail = (tail + data)[-len(self.MARKER):]
                    with self.lock:
                        cut = found >= 0 and self.cuts < self.times
                        if cut:
                            self.cuts += 1
                    if cut:
                        left = self.cut_after + at  # counted from this chunk's start
                if left is not None and len(data) >= left:
                    upstream.sendall(data[:max(left, 0)])
                    break
                if left is not None:
                    left -= len(data)
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (client, upstream):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
