"""Real pip and uv against a live farm, in fresh virtual environments (hermetic: no
pip configuration of this machine, caches of the test's own, servers on 127.0.0.1)."""
import hashlib
import html
import http.server
import os
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest
from django.core.signals import request_started
from packaging.utils import parse_wheel_filename

from tests.factories import make_project, make_version, wheel_archive
from tests.index.factories import publish

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

UV = Path(sys.executable).with_name("uv")


@pytest.fixture
def requests_seen():
    """Paths the live server was asked for (its request_started signal)."""
    seen = []

    def note(sender, environ, **kwargs):
        seen.append(environ["PATH_INFO"])

    request_started.connect(note)
    yield seen
    request_started.disconnect(note)


@pytest.fixture
def farm(live_server, data_dir, requests_seen):
    """demo 1.0; demo 2.0 yanked; demo 3.0 for Python >= 3.99; armdemo 1.0 for armv7l."""
    demo = make_project("demo")
    publish(make_version(demo, "1.0"), wheel_archive("demo", "1.0"))
    publish(make_version(demo, "2.0", yanked=True, yanked_reason="broken"),
            wheel_archive("demo", "2.0"))
    publish(make_version(demo, "3.0"), wheel_archive("demo", "3.0", requires_python=">=3.99"))
    arm = make_project("armdemo")
    publish(make_version(arm, "1.0"), wheel_archive("armdemo", "1.0", "cp311-cp311-linux_armv7l"))
    return f"{live_server.url}/simple/"


@pytest.fixture
def other_index(tmp_path):
    """A second, static index over HTTP: helper 1.0, which requires demo."""
    root = tmp_path / "other"
    wheel = wheel_archive("helper", "1.0", requires_dist=["demo"])
    (root / "files").mkdir(parents=True)
    (root / "files" / wheel.filename).write_bytes(wheel.content)
    sha = hashlib.sha256(wheel.content).hexdigest()
    (root / "simple" / "helper").mkdir(parents=True)
    (root / "simple" / "helper" / "index.html").write_text(
        f'<!DOCTYPE html><html><body><a href="../../files/{wheel.filename}#sha256={sha}">'
        f"{html.escape(wheel.filename)}</a></body></html>"
    )

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/simple/"
    server.shutdown()
    server.server_close()


@pytest.fixture
def clean_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(
        PIP_CONFIG_FILE=os.devnull, PIP_CACHE_DIR=str(tmp_path / "pip-cache"),
        PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1",
        UV_NO_CONFIG="1", UV_CACHE_DIR=str(tmp_path / "uv-cache"), UV_NO_PROGRESS="1",
    )
    return env


@pytest.fixture
def venv(tmp_path):
    path = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return path / "bin" / "python"


def pip(env, python, *args):
    return subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), *args],
        env=env, capture_output=True, text=True, timeout=120,
    )


def uv(env, python, *args):
    if not UV.exists():
        pytest.skip("uv is not installed in this environment (requirements.txt pins it)")
    return subprocess.run(
        [str(UV), "pip", *args, "--python", str(python)],
        env=env, capture_output=True, text=True, timeout=120,
    )


def installed(python, module):
    result = subprocess.run(
        [str(python), "-c", f"import {module}; print({module}.VERSION)"],
        capture_output=True, text=True, check=True,
    )
    return result.stdout.strip()


def test_pip_installs_from_the_farm_skipping_yanked_and_too_new(farm, venv, clean_env,
                                                               requests_seen):
    result = pip(clean_env, venv, "install", "--index-url", farm, "demo")
    assert result.returncode == 0, result.stderr
    assert installed(venv, "demo") == "1.0"  # 3.0 wants Python 3.99, 2.0 is yanked
    assert "/files/demo/demo-1.0-py3-none-any.whl.metadata" in requests_seen
    assert "/files/demo/demo-1.0-py3-none-any.whl" in requests_seen

    pinned = pip(clean_env, venv, "install", "--index-url", farm, "demo==2.0")
    assert pinned.returncode == 0, pinned.stderr
    assert installed(venv, "demo") == "2.0"
    assert "yanked" in pinned.stderr.lower() and "broken" in pinned.stderr


def test_pip_with_extra_index_url_takes_dependencies_from_the_farm(
    farm, other_index, venv, clean_env, requests_seen
):
    result = pip(clean_env, venv, "install", "--index-url", other_index,
                 "--extra-index-url", farm, "helper")
    assert result.returncode == 0, result.stderr
    assert installed(venv, "helper") == "1.0"
    assert installed(venv, "demo") == "1.0"
    assert "/simple/helper/" in requests_seen  # asked, answered 404


def test_uv_installs_from_the_farm_skipping_yanked_and_too_new(farm, venv, clean_env):
    result = uv(clean_env, venv, "install", "--index-url", farm, "demo")
    assert result.returncode == 0, result.stderr
    assert installed(venv, "demo") == "1.0"

    pinned = uv(clean_env, venv, "install", "--index-url", farm, "demo==2.0")
    assert pinned.returncode == 0, pinned.stderr
    assert installed(venv, "demo") == "2.0"


def test_uv_with_extra_index_url_takes_dependencies_from_the_farm(
    farm, other_index, venv, clean_env
):
    result = uv(clean_env, venv, "install", "--index-url", other_index,
                "--extra-index-url", farm, "helper")
    assert result.returncode == 0, result.stderr
    assert installed(venv, "helper") == "1.0"
    assert installed(venv, "demo") == "1.0"


def test_pip_on_armv6l_gets_the_armv7l_wheel_under_its_alias(farm, clean_env, tmp_path,
                                                             data_dir):
    dest = tmp_path / "downloads"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--index-url", farm, "--only-binary=:all:",
         "--platform", "linux_armv6l", "--python-version", "3.11", "--implementation", "cp",
         "--abi", "cp311", "--no-deps", "-d", str(dest), "armdemo"],
        env=clean_env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    (got,) = dest.iterdir()
    name, version, _, tags = parse_wheel_filename(got.name)
    assert (name, str(version)) == ("armdemo", "1.0")
    assert {t.platform for t in tags} == {"linux_armv6l"}
    original = data_dir / "files" / "armdemo" / "armdemo-1.0-cp311-cp311-linux_armv7l.whl"
    assert got.read_bytes() == original.read_bytes()
    assert zipfile.ZipFile(got).testzip() is None
    assert not (data_dir / "files" / "armdemo" / got.name).exists()


@pytest.fixture(autouse=True)
def _no_leftovers(tmp_path):
    yield
    shutil.rmtree(tmp_path / "venv", ignore_errors=True)
