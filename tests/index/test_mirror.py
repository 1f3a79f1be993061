"""A real mirror client, bandersnatch 6.8.0 (in .venv-mirror, from requirements-mirror.txt:
`make test` builds it), following a live farm under gunicorn as it would follow PyPI:
the JSON root's `_last-serial`s (api-method = simple, no XML-RPC), then /pypi/<name>/json
of each changed project, checked against X-PyPI-Last-Serial, then its files."""
import hashlib
import re
import subprocess
from pathlib import Path

import pytest

from builds import storage
from index import pages
from packages.models import Project
from tests.factories import make_project, make_version, wheel_archive
from tests.index.factories import publish
from tests.live import ROOT, FarmProcess

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BANDERSNATCH = ROOT / ".venv-mirror" / "bin" / "bandersnatch"

# docs/index-and-mirroring.md's "Mirroring the farm" configuration, as an operator writes it.
CONFIG = """\
[mirror]
directory = {directory}
master = {farm}
allow-non-https = true
api-method = simple
json = true
release-files = true
simple-format = ALL
workers = 2
timeout = 10
global-timeout = 60
stop-on-error = true

[plugins]
enabled =
    allowlist_project

[allowlist]
packages =
    demo
    other
"""


@pytest.fixture
def farm(data_dir, tmp_path):
    if not BANDERSNATCH.exists():
        pytest.skip("no .venv-mirror: `make .venv-mirror/.installed` builds it")
    farm = FarmProcess(data_dir, "http://127.0.0.1:9", tmp_path / "farm.log")
    farm.start()
    yield farm
    farm.stop()


def run_mirror(config):
    """One `bandersnatch mirror` run: its log, which names each project it fetched."""
    done = subprocess.run(
        [str(BANDERSNATCH), "--config", str(config), "mirror"],
        capture_output=True, text=True, timeout=60, cwd=config.parent,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def fetched(log):
    """The projects whose metadata the run fetched, and how many it set out to sync."""
    names = re.findall(r"Fetching metadata for package: (\S+) \(serial \d+\)", log)
    todo = re.search(r"(\d+) packages to sync", log)
    return sorted(names), int(todo.group(1))


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_bandersnatch_mirrors_the_farm_and_follows_a_new_build(farm, tmp_path):
    demo, other = make_project("demo"), make_project("other")
    publish(make_version(demo, "1.0"), wheel_archive("demo", "1.0"))
    publish(make_version(other, "1.0"), wheel_archive("other", "1.0", "cp311-cp311-linux_armv7l"))
    publish(make_version(make_project("unlisted"), "1.0"), wheel_archive("unlisted", "1.0"))
    mirror = tmp_path / "mirror"
    config = tmp_path / "bandersnatch.conf"
    config.write_text(CONFIG.format(directory=mirror, farm=farm.url))
    web = mirror / "web"

    log = run_mirror(config)

    assert fetched(log) == (["demo", "other"], 2)
    for name, filename in [("demo", "demo-1.0-py3-none-any.whl"),
                           ("other", "other-1.0-cp311-cp311-linux_armv7l.whl")]:
        copy = web / "packages" / name / filename
        assert sha256(copy) == sha256(storage.file_path(name, filename))
        page = (web / "simple" / name / "index.html").read_text()
        assert f'href="../../packages/{name}/{filename}#sha256={sha256(copy)}"' in page
        assert (web / "json" / name).exists()
    assert not (web / "simple" / "unlisted").exists()
    first_serial = int((mirror / "status").read_text())
    assert first_serial == max(serial for serial in Project.objects.values_list(
        "index_serial", flat=True))

    # A new build of demo finishes: its page moves at once; the root's _last-serial
    # moves at the task worker's next repair, and the mirror's next run fetches demo.
    publish(make_version(demo, "2.0"), wheel_archive("demo", "2.0"), root=False)
    assert fetched(run_mirror(config)) == ([], 0)  # the root not yet rewritten
    pages.repair()

    log = run_mirror(config)

    assert fetched(log) == (["demo"], 1)
    new = web / "packages" / "demo" / "demo-2.0-py3-none-any.whl"
    assert sha256(new) == sha256(storage.file_path("demo", new.name))
    assert new.name in (web / "simple" / "demo" / "index.html").read_text()
    demo.refresh_from_db()
    assert int((mirror / "status").read_text()) == demo.index_serial > first_serial
