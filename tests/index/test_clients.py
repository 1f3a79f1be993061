"""The client matrix: every pip a Raspberry Pi OS ships, the newest pip and uv install a
wheel with a compiled module from a live farm (gunicorn, with the shipped nginx config in
front) and import it, with the index page in JSON (what pip asks for first from 22.2 on,
and uv) and in HTML (what pip 20.3 reads, and what every client falls back to).

The pips, each in a virtual environment of its own, cached under var/test-cache/clients/
(made once, under a lock, so that pytest-xdist's workers share them):

- 20.3.4, Debian 11 Bullseye's (python3-pip). Bullseye's Python is 3.9, which this
  machine does not have; pip 20.3.4 runs on Python 3.11 (it still has distutils), so it
  runs here on the one Python there is: what it reads from the index (HTML, PEP 503 and
  the data- attributes of PEPs 592, 658 and 714) does not depend on the Python under it.
- 23.0.1, Debian 12 Bookworm's: the JSON key `dist-info-metadata` crashed it (issue 19;
  pip 22.3 to 23.1 take only PEP 714's `core-metadata` in JSON).
- 25.1.1, Debian 13 Trixie's.
- the newest, the one requirements-pip.txt pins (`make lock` moves it on).

uv is the one the dev lock pins (.venv/bin/uv)."""
import fcntl
import http.client
import http.server
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.factories import Wheel, _zip, make_project, make_version, with_record
from tests.index.factories import publish
from tests.index.test_nginx import NGINX, farm_and_nginx  # noqa: F401 (fixture)
from tests.live import ROOT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install -y "
                                             "nginx; .ci/run installs it where it may)"),
]

CLIENTS = ROOT / "var" / "test-cache" / "clients"
UV = Path(sys.executable).with_name("uv")
JSON = "application/vnd.pypi.simple.v1+json"
# The pip wheels on PyPI, by their hashes (pip install --require-hashes).
PIPS = {
    "20.3.4": "217ae5161a0e08c0fb873858806e3478c9775caffce5168b50ec885e358c199d",
    "23.0.1": "236bcb61156d76c4b8a05821b988c7b8c35bf0da28a4b614e8d6ab5212c25c6f",
    "25.1.1": "2913a38a2abf4ea6b64ab507bd9e967f3b53dc1ede74b01b0931e1ce548751af",
}
FIRST_JSON_PIP = (22, 2)  # pip asks for JSON pages (PEP 691) from 22.2 on

EXTENSION = r"""
#include <Python.h>
static PyObject *add(PyObject *self, PyObject *args) {
    long a, b;
    if (!PyArg_ParseTuple(args, "ll", &a, &b)) return NULL;
    return PyLong_FromLong(a + b);
}
static PyMethodDef methods[] = {{"add", add, METH_VARARGS, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "cdemo", NULL, -1, methods};
PyMODINIT_FUNC PyInit_cdemo(void) { return PyModule_Create(&module); }
"""


def newest_pip():
    """(version, [sha256, ...]) of the pip requirements-pip.txt pins."""
    text = (ROOT / "requirements-pip.txt").read_text()
    version = re.search(r"^pip==(\S+)", text, re.M).group(1)
    return version, re.findall(r"--hash=sha256:([0-9a-f]{64})", text)


def pypi_env():
    """pip reaching PyPI itself, none of this machine's pip configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1",
               PIP_NO_INPUT="1")
    return env


@contextmanager
def _locked(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def pip_venv(version, hashes):
    """The python of a venv holding exactly pip VERSION (from PyPI, by HASHES), made once
    and kept under var/test-cache/clients/; a test that cannot make it skips, saying why."""
    path = CLIENTS / f"pip-{version}"
    python = path / "bin" / "python"
    ready = path / ".ready"
    if ready.exists():
        return python
    with _locked(CLIENTS / f"pip-{version}.lock"):
        if ready.exists():  # another worker made it while this one waited
            return python
        shutil.rmtree(path, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
        requirements = CLIENTS / f"pip-{version}.txt"
        requirements.write_text(
            f"pip=={version} " + " ".join(f"--hash=sha256:{h}" for h in hashes) + "\n")
        result = subprocess.run(
            [sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
             "--no-deps", "--require-hashes", "--only-binary", ":all:",
             "-r", str(requirements)],
            env=pypi_env(), capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            shutil.rmtree(path, ignore_errors=True)
            pytest.skip(f"pip {version} could not be installed from PyPI: "
                        f"{result.stderr.strip()[-300:]}")
        got = subprocess.run([str(python), "-m", "pip", "--version"], env=pypi_env(),
                             capture_output=True, text=True, check=True).stdout
        assert got.startswith(f"pip {version} "), got
        ready.write_text(got)
    return python


@pytest.fixture(scope="module")
def cdemo(tmp_path_factory):
    """A wheel of `cdemo` 1.0, one C extension module (cdemo.add) built here for this
    Python, tagged as pip and uv on this machine take it (cp3X-cp3X-linux_<arch>)."""
    include = sysconfig.get_paths()["include"]
    gcc = shutil.which("gcc")
    if gcc is None or not Path(include, "Python.h").exists():
        pytest.skip("no gcc or no Python headers (apt-get install gcc python3-dev)")
    build = tmp_path_factory.mktemp("cdemo")
    (build / "cdemo.c").write_text(EXTENSION)
    module = f"cdemo{sysconfig.get_config_var('EXT_SUFFIX')}"
    subprocess.run([gcc, "-shared", "-fPIC", "-O2", f"-I{include}", "cdemo.c", "-o", module],
                   cwd=build, check=True)
    python = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    tag = f"{python}-{python}-{platform}"
    dist_info = "cdemo-1.0.dist-info"
    metadata = (b"Metadata-Version: 2.1\nName: cdemo\nVersion: 1.0\n"
                b"Summary: one compiled module\nRequires-Python: >=3.7\n")
    members = with_record({
        module: (build / module).read_bytes(),
        f"{dist_info}/METADATA": metadata,
        f"{dist_info}/WHEEL": (f"Wheel-Version: 1.0\nGenerator: piwheels-tests\n"
                               f"Root-Is-Purelib: false\nTag: {tag}\n").encode(),
    }, f"{dist_info}/RECORD")
    return Wheel(f"cdemo-1.0-{tag}.whl", _zip(members), metadata, ">=3.7")


class Front:
    """An HTTP proxy in front of the farm that notes the Content-Type of every index page
    it passes on; with ACCEPT it replaces the client's Accept header on /simple/ requests
    (text/html: the page a client gets when it does not ask for JSON). Index pages go to
    INDEX_PORT, the rest (files, metadata) to FILES_PORT."""

    def __init__(self, index_port, files_port, accept=None):
        self.pages = []
        front = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "connection")}
                if accept and self.path.startswith("/simple/"):
                    headers = {k: v for k, v in headers.items() if k.lower() != "accept"}
                    headers["Accept"] = accept
                port = index_port if self.path.startswith("/simple/") else files_port
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                conn.request("GET", self.path, headers=headers)
                response = conn.getresponse()
                body = response.read()  # as sent: gzip stays gzip
                if self.path.startswith("/simple/"):
                    ctype = response.getheader("Content-Type") or ""
                    front.pages.append((self.path, response.status,
                                        ctype.split(";")[0].strip()))
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("connection", "transfer-encoding", "content-length",
                                           "keep-alive"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                conn.close()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/simple/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def types(self, path):
        return {ctype for seen, status, ctype in self.pages if seen == path and status == 200}


@pytest.fixture
def fronts(farm_and_nginx, cdemo, data_dir):  # noqa: F811 (the fixture imported above)
    """cdemo published; {leg: Front}: "json" (nginx, the client's own Accept), "html"
    (nginx, Accept: text/html) and "fast" (index pages from gunicorn alone, its WSGI fast
    path; files from nginx, which serves them for the farm's X-Accel-Redirect)."""
    publish(make_version(make_project("cdemo"), "1.0"), cdemo)
    farm, nginx = farm_and_nginx
    legs = {"json": Front(nginx.port, nginx.port),
            "html": Front(nginx.port, nginx.port, accept="text/html"),
            "fast": Front(farm.port, nginx.port)}
    yield legs
    for front in legs.values():
        front.close()


def imports_cdemo(target):
    """cdemo, installed into TARGET, imports and runs (its compiled code)."""
    result = subprocess.run(
        [sys.executable, "-c", "import cdemo; print(cdemo.add(2, 3), cdemo.__file__)"],
        env={**pypi_env(), "PYTHONPATH": str(target)}, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    answer, path = result.stdout.split()
    assert answer == "5" and path.startswith(str(target)) and path.endswith(".so")


def install(command, env, front, target):
    result = subprocess.run([*command, "--index-url", front.url, "--target", str(target),
                             "cdemo"], env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    imports_cdemo(target)


def expected_types(leg, asks_json):
    if leg == "html" or not asks_json:
        return {"text/html", "application/vnd.pypi.simple.v1+html"}
    return {JSON}


@pytest.mark.parametrize("version", [*PIPS, "newest"])
def test_pip_installs_a_compiled_wheel_from_json_and_html_pages(version, fronts, tmp_path):
    if version == "newest":
        version, hashes = newest_pip()
    else:
        hashes = [PIPS[version]]
    python = pip_venv(version, hashes)
    asks_json = tuple(int(p) for p in version.split(".")[:2]) >= FIRST_JSON_PIP
    for leg, front in fronts.items():
        if leg == "html" and not asks_json:  # its own Accept is text/html: the json leg
            continue
        env = {**pypi_env(), "PIP_CACHE_DIR": str(tmp_path / f"cache-{leg}")}
        install([str(python), "-m", "pip", "install", "--no-deps"], env, front,
                tmp_path / leg)
        types = front.types("/simple/cdemo/")
        assert types and types <= expected_types(leg, asks_json), (leg, front.pages)


def test_uv_installs_a_compiled_wheel_from_json_and_html_pages(fronts, tmp_path):
    if not UV.exists():
        pytest.skip("uv is not installed in this environment (requirements-dev.txt pins it)")
    for leg, front in fronts.items():
        env = {**pypi_env(), "UV_NO_CONFIG": "1", "UV_NO_PROGRESS": "1",
               "UV_CACHE_DIR": str(tmp_path / f"cache-{leg}")}
        install([str(UV), "pip", "install", "--no-deps", "--python", sys.executable], env,
                front, tmp_path / leg)
        types = front.types("/simple/cdemo/")
        assert types and types <= expected_types(leg, True), (leg, front.pages)
