"""deploy/nginx/piwheels.conf, as shipped: a real nginx (started here, in a directory of
its own, on a free port) in front of the farm under gunicorn, with the real builder agent
and pip going through it."""
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from django.db import transaction
from django.utils import timezone

from builds.models import File
from index import downloads, pages
from packages.models import Project
from tests.builder.conftest import (  # noqa: F401 (fixtures)
    farm_builder,
    hermetic_pip_env,
    publish_sdist,
    run_agent,
    setuptools_wheel,
    upstream,
    wheel_wheel,
)
from tests.factories import make_project, make_version, wheel_archive
from tests.index.factories import publish
from tests.live import FarmProcess, free_port, listening, stop_process, wait_until

NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None)
CONF = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "piwheels.conf"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install -y "
                                             "nginx; .ci/run installs it where it may)"),
]

JSON = "application/vnd.pypi.simple.v1+json"
PIP_ACCEPT = f"{JSON}, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
UV_ACCEPT = f"{JSON}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
FIREFOX = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
NGINX_ETAG = re.compile(r'^"[0-9a-f]+-[0-9a-f]+"$')  # nginx's own: a file it served


class Nginx:
    """nginx with the shipped server block (placeholders replaced as an operator would),
    inside a minimal http { } of the test's: its own prefix, logs, temp dirs and port."""

    def __init__(self, prefix, upstream_port, data_dir):
        self.prefix = prefix
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        for sub in ("logs", "tmp"):
            (prefix / sub).mkdir(parents=True, exist_ok=True)
        server = (CONF.read_text().replace("@LISTEN@", f"127.0.0.1:{self.port}")
                  .replace("@UPSTREAM@", f"127.0.0.1:{upstream_port}")
                  .replace("@DATA_DIR@", str(Path(data_dir).resolve())))
        assert not re.search(r"@[A-Z_]+@", server)
        (prefix / "piwheels.conf").write_text(server)
        temp = "\n".join(f"    {kind}_temp_path {prefix}/tmp/{kind};"
                         for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        # As root, the workers would run as nobody, who cannot read pytest's 0700 dirs.
        user = "user root;" if os.geteuid() == 0 else ""
        (prefix / "nginx.conf").write_text(f"""
{user}
worker_processes 2;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {prefix}/logs/access.log;
{temp}
    include {prefix}/piwheels.conf;
}}
""")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [NGINX, "-e", "stderr", "-p", str(self.prefix), "-c", str(self.prefix / "nginx.conf"),
             "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=open(self.prefix / "logs" / "stderr.log", "w"))
        wait_until(self._answers, timeout=10, message="nginx to start")
        return self

    def _answers(self):
        assert self.proc.poll() is None, (self.prefix / "logs" / "stderr.log").read_text()
        return listening(self.port)

    def stop(self):
        if self.proc:
            stop_process(self.proc, timeout=10)

    def get(self, path, **headers):
        return requests.get(self.url + path, headers=headers, allow_redirects=False, timeout=30)


@pytest.fixture
def farm_and_nginx(data_dir, tmp_path, settings):
    """gunicorn (PIWHEELS_ACCEL_REDIRECT as the config asks) with nginx in front."""
    farm = FarmProcess(data_dir, settings.PIWHEELS_PYPI_URL, tmp_path / "farm.log",
                       graceful_timeout=30)  # workers flush their counts as they exit
    farm.env["PIWHEELS_ACCEL_REDIRECT"] = "/internal-files/"
    farm.start()
    nginx = Nginx(tmp_path / "nginx", farm.port, data_dir).start()
    yield farm, nginx
    nginx.stop()
    farm.kill()


@pytest.fixture
def foo(data_dir):
    """foo 1.0 (py3) and 2.0 (armv7l, listed under its armv6l name too), published and
    committed: their pages written."""
    project = make_project("foo")
    publish(make_version(project, "1.0"), wheel_archive("foo", "1.0"))
    publish(make_version(project, "2.0"), wheel_archive("foo", "2.0", "cp311-cp311-linux_armv7l"))
    return project


def test_index_pages_come_from_the_files_and_follow_each_commit(foo, farm_and_nginx):
    _, nginx = farm_and_nginx
    first = nginx.get("/simple/foo/", Accept=PIP_ACCEPT, **{"Accept-Encoding": "gzip"})
    assert first.status_code == 200
    assert NGINX_ETAG.match(first.headers["ETag"]), first.headers  # nginx served the file
    assert first.headers["Content-Type"] == JSON
    assert first.headers["Content-Encoding"] == "gzip"  # index.json.gz as it is on disk
    assert first.headers["Vary"] == "Accept, Accept-Encoding"
    assert first.headers["Cache-Control"] == "max-age=60, public, must-revalidate"
    page = json.loads(first.content)
    assert page == json.loads((pages.project_dir("foo") / "index.json").read_bytes())
    assert [f["filename"] for f in page["files"]] == [
        "foo-1.0-py3-none-any.whl", "foo-2.0-cp311-cp311-linux_armv7l.whl",
        "foo-2.0-cp311-cp311-linux_armv6l.whl"]
    plain = nginx.get("/simple/foo/", Accept=UV_ACCEPT, **{"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers and json.loads(plain.content) == page

    revalidated = nginx.get("/simple/foo/", Accept=PIP_ACCEPT, **{
        "Accept-Encoding": "gzip", "If-None-Match": first.headers["ETag"]})
    assert revalidated.status_code == 304
    assert revalidated.headers["Vary"] == "Accept, Accept-Encoding"

    publish(make_version(foo, "3.0"), wheel_archive("foo", "3.0"))  # a build commits

    fresh = nginx.get("/simple/foo/", Accept=PIP_ACCEPT, **{
        "Accept-Encoding": "gzip", "If-None-Match": first.headers["ETag"]})
    assert fresh.status_code == 200 and fresh.headers["ETag"] != first.headers["ETag"]
    assert json.loads(fresh.content)["versions"] == ["1.0", "2.0", "3.0"]

    browser = nginx.get("/simple/foo/", Accept=FIREFOX)
    assert browser.headers["Content-Type"] == "text/html; charset=utf-8"
    assert b"foo-3.0-py3-none-any.whl" in browser.content
    assert NGINX_ETAG.match(browser.headers["ETag"])
    root = nginx.get("/simple/", Accept=JSON)
    assert NGINX_ETAG.match(root.headers["ETag"])
    # The root's _last-serials follow on the task worker's schedule (pages.repair), not
    # at each commit: nginx serves what it last wrote, then the new serial.
    assert [p["name"] for p in json.loads(root.content)["projects"]] == ["foo"]
    assert "X-PyPI-Last-Serial" not in root.headers  # nginx cannot read it from the file
    pages.repair()
    foo.refresh_from_db()
    root = nginx.get("/simple/", Accept=JSON)
    assert json.loads(root.content)["projects"] == [
        {"name": "foo", "_last-serial": foo.index_serial}]


# What the map cannot decide, Django negotiates (its own ETag, or a 406); other spellings
# Django redirects; without a page file (a project without files) Django answers 404.
FALLTHROUGH = [
    ("/simple/foo/", {"Accept": "application/vnd.pypi.simple.v1+html"}, 200,
     "application/vnd.pypi.simple.v1+html"),
    ("/simple/foo/", {"Accept": f"{JSON};q=0.5, text/html;q=0.6"}, 200,
     "text/html; charset=utf-8"),
    ("/simple/foo/", {"Accept": "image/png"}, 406, None),
    (f"/simple/foo/?format={quote(JSON)}", {}, 200, JSON),
    ("/simple/Foo/", {}, 301, "/simple/foo/"),
    ("/simple/foo", {}, 301, "/simple/foo/"),
    ("/simple/nonesuch/", {"Accept": PIP_ACCEPT}, 404, None),
]


def test_what_the_files_cannot_answer_goes_to_django(foo, farm_and_nginx):
    _, nginx = farm_and_nginx
    for path, headers, status, answer in FALLTHROUGH:
        response = nginx.get(path, **headers)
        assert response.status_code == status, (path, headers)
        if status == 200:
            assert response.headers["Content-Type"] == answer
            assert not NGINX_ETAG.match(response.headers["ETag"])  # Django's
        if status == 301:
            assert response.headers["Location"] == answer
        assert "Accept" in response.headers["Vary"]


def test_wheels_and_metadata_leave_through_nginx_and_downloads_are_counted(foo, farm_and_nginx):
    farm, nginx = farm_and_nginx
    wheel = wheel_archive("foo", "1.0")
    url = f"/files/foo/{wheel.filename}"

    whole = nginx.get(url)
    assert whole.status_code == 200 and whole.content == wheel.content
    assert whole.headers["Content-Type"] == "application/octet-stream"
    assert whole.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert NGINX_ETAG.match(whole.headers["ETag"])  # nginx sent the bytes
    ranged = nginx.get(url, Range="bytes=10-29")
    assert ranged.status_code == 206 and ranged.content == wheel.content[10:30]
    assert ranged.headers["Content-Range"] == f"bytes 10-29/{len(wheel.content)}"
    assert nginx.get(url, **{"If-None-Match": whole.headers["ETag"]}).status_code == 304

    metadata = nginx.get(f"{url}.metadata")
    assert metadata.status_code == 200 and metadata.content == wheel.metadata
    assert NGINX_ETAG.match(metadata.headers["ETag"])  # straight from disk
    alias = nginx.get("/files/foo/foo-2.0-cp311-cp311-linux_armv6l.whl.metadata")
    assert alias.status_code == 200  # not on disk under that name: Django
    assert alias.content == wheel_archive("foo", "2.0", "cp311-cp311-linux_armv7l").metadata
    assert nginx.get("/files/foo/nonesuch-1.0-py3-none-any.whl").status_code == 404

    # The web workers count in memory and write their counts when they exit.
    farm.stop()
    downloads.fold(now=timezone.now() + timedelta(minutes=5))
    # One whole GET: the range and the 304 are not downloads.
    assert File.objects.get(filename=wheel.filename).downloads == 1


def test_a_quarantined_projects_files_and_metadata_answer_410_through_nginx(
        foo, farm_and_nginx):
    _, nginx = farm_and_nginx
    url = f"/files/foo/{wheel_archive('foo', '1.0').filename}"
    assert nginx.get(f"{url}.metadata").status_code == 200
    with transaction.atomic():  # as the sync writes a status change: pages after commit
        Project.objects.filter(id=foo.id).update(upstream_status="quarantined",
                                                 upstream_status_reason="malware")
        Project.objects.filter(id=foo.id).touch_index(root=True)
    for path in (url, f"{url}.metadata"):
        gone = nginx.get(path)
        assert gone.status_code == 410, path
        assert gone.text == "foo is quarantined upstream (PEP 792): malware\n"
    page = nginx.get("/simple/foo/", Accept=JSON)
    assert page.status_code == 200 and page.json()["files"] == []
    assert page.json()["project-status"] == {"status": "quarantined", "reason": "malware"}
    with transaction.atomic():
        Project.objects.filter(id=foo.id).update(upstream_status="active",
                                                 upstream_status_reason="")
        Project.objects.filter(id=foo.id).touch_index(root=True)
    assert nginx.get(f"{url}.metadata").status_code == 200
    assert len(nginx.get("/simple/foo/", Accept=JSON).json()["files"]) == 3


def test_a_build_through_nginx_is_listed_by_the_next_request_and_pip_installs_it(
        publish_sdist, farm_builder,  # noqa: F811 (fixtures)
        farm_and_nginx, tmp_path):
    _, nginx = farm_and_nginx
    publish_sdist("nginx-demo", "1.0", {"nginx_demo/__init__.py": "ANSWER = 42\n"})
    assert nginx.get("/simple/nginx-demo/", Accept=PIP_ACCEPT).status_code == 404

    # Claim, upload and finish all through nginx.
    code, output = run_agent(nginx.url, farm_builder.token, tmp_path / "agent", "--once")
    assert code == 0, output

    listed = nginx.get("/simple/nginx-demo/", Accept=PIP_ACCEPT)  # the very next request
    assert listed.status_code == 200 and NGINX_ETAG.match(listed.headers["ETag"])
    (entry,) = json.loads(listed.content)["files"]
    assert entry["filename"] == "nginx_demo-1.0-py3-none-any.whl"
    stored = File.objects.get(filename=entry["filename"])
    assert entry["hashes"]["sha256"] == stored.sha256

    target = tmp_path / "installed"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-input", "--no-deps", "--target",
         str(target), "--index-url", f"{nginx.url}/simple/", "nginx-demo==1.0"],
        check=True, capture_output=True, text=True,
        env=hermetic_pip_env(PIP_CACHE_DIR=str(tmp_path / "pip-cache")))
    assert (target / "nginx_demo" / "__init__.py").read_text() == "ANSWER = 42\n"
    got = (nginx.prefix / "logs" / "access.log").read_text()
    assert f'"GET /files/nginx-demo/{entry["filename"]}.metadata HTTP/1.1" 200' in got
    assert hashlib.sha256(nginx.get(entry["url"]).content).hexdigest() == stored.sha256
    assert gzip.decompress(
        (pages.project_dir("nginx-demo") / "index.json.gz").read_bytes()) == listed.content
