"""Files as nginx needs them: whatever the farm's umask (077 here, as systemd services
often run), every file it writes under the data directory is 0644 and every directory
0755, so nginx's workers, running as an unprivileged user (nobody), serve a wheel the
farm renamed glibc-versioned (written through tempfile.mkstemp, 0600 before) with 200,
through the shipped deploy/nginx/piwheels.conf."""
import grp
import hashlib
import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest
import requests

from builds.models import Build, File
from tests.factories import make_build, make_builder, make_project, make_version, make_wheel
from tests.index.test_nginx import NGINX, Nginx
from tests.live import FarmProcess

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install -y "
                                             "nginx; .ci/run installs it)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="nginx's workers change user only when "
                                                 "its master runs as root"),
]
UPLOADED = "foo_bar-1.0-cp311-cp311-linux_armv7l.whl"
SERVED = "foo_bar-1.0-cp311-cp311-manylinux_2_36_armv7l.whl"


@pytest.fixture
def open_dir():
    """A directory any user may enter (pytest's own are 0700), removed after."""
    path = Path(tempfile.mkdtemp(prefix="piwheels-modes-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def unprivileged_nginx(prefix, upstream_port, data_dir):
    nginx = Nginx(prefix, upstream_port, data_dir)
    group = "nogroup" if "nogroup" in {g.gr_name for g in grp.getgrall()} else ""
    conf = prefix / "nginx.conf"
    conf.write_text(conf.read_text().replace("user root;", f"user nobody {group};"))
    return nginx.start()


def modes(root):
    """{path relative to ROOT: mode} of everything under ROOT whose mode is not 0644 for
    a file, 0755 for a directory."""
    wrong = {}
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode != (0o755 if path.is_dir() else 0o644):
            wrong[str(path.relative_to(root))] = oct(mode)
    return wrong


def test_a_renamed_wheel_is_served_by_nginx_as_nobody_under_a_077_umask(open_dir, tmp_path,
                                                                          settings):
    data_dir = open_dir / "data"
    builder = make_builder("pi1")
    make_build(make_version(make_project("Foo_Bar"), "1.0"), state=Build.State.QUEUED)
    farm = FarmProcess(data_dir, settings.PIWHEELS_PYPI_URL, tmp_path / "farm.log")
    farm.env["PIWHEELS_ACCEL_REDIRECT"] = "/internal-files/"
    old = os.umask(0o077)
    try:
        farm.start()  # gunicorn and its workers inherit the umask
    finally:
        os.umask(old)
    nginx = unprivileged_nginx(open_dir / "nginx", farm.port, data_dir)
    try:
        api = requests.Session()
        api.headers["Authorization"] = f"Token {builder.token}"
        job = api.post(f"{farm.url}/api/v1/claim/", timeout=30, json={
            "abi": "cp311", "wait": 0, "os_release": "bookworm", "glibc": "2.36"}).json()
        wheel = make_wheel(tmp_path, "Foo_Bar", "1.0").read_bytes()
        sha256 = hashlib.sha256(wheel).hexdigest()
        put = api.put(f"{farm.url}/api/v1/builds/{job['build_id']}/files/{UPLOADED}",
                      data=wheel, headers={"X-Sha256": sha256}, timeout=30)
        assert put.status_code == 201, put.text
        done = api.post(f"{farm.url}/api/v1/builds/{job['build_id']}/finish/", timeout=60,
                        json={"success": True, "duration": 1, "output": "built\n", "files": [
                            {"filename": UPLOADED, "size": len(wheel), "sha256": sha256}]})
        assert done.json()["state"] == "succeeded", done.text
        assert File.objects.get().filename == SERVED

        assert modes(data_dir) == {}
        served = nginx.get(f"/files/foo-bar/{SERVED}")
        assert served.status_code == 200, (nginx.prefix / "logs" / "error.log").read_text()
        assert hashlib.sha256(served.content).hexdigest() == File.objects.get().sha256
        assert nginx.get(f"/files/foo-bar/{SERVED}.metadata").status_code == 200
        assert nginx.get("/simple/foo-bar/", Accept="text/html").status_code == 200

        # A wheel written 0600 before the farm set modes: Django hands nginx only what
        # nginx can read (it sets the mode first), so no counted download is refused.
        on_disk = data_dir / "files" / "foo-bar" / SERVED
        on_disk.chmod(0o600)
        again = nginx.get(f"/files/foo-bar/{SERVED}")
        assert again.status_code == 200 and stat.S_IMODE(on_disk.stat().st_mode) == 0o644
        # Missing on disk: a 404 from Django, not a download handed to nginx to refuse.
        on_disk.unlink()
        assert nginx.get(f"/files/foo-bar/{SERVED}").status_code == 404
    finally:
        nginx.stop()
        farm.kill()
