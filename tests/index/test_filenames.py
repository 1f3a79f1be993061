"""A filename is forever and PyPI is never shadowed, seen by real pip and uv against a live
farm whose catalogue comes from the fake upstream over HTTP and whose builds go through
the builder's path (claim, upload, finish)."""
import hashlib
import subprocess
import sys

import pytest
import requests
from django.utils import timezone

from builds import publish, queue
from builds.models import File
from packages.models import Version
from packages.tasks import run_sync
from tests.factories import make_abi, make_builder, wheel_archive
from tests.index import test_pip as clients

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# pip and uv run as in test_pip.py: hermetic, with caches of the test's own.
clean_env, requests_seen = clients.clean_env, clients.requests_seen
pip, uv = clients.pip, clients.uv

OLD = "demo-1.0-py3-none-any.whl"
NEW = "demo-1.0-1-py3-none-any.whl"


def new_venv(path):
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return path / "bin" / "python"


def installed_metadata(python):
    """The installed demo's METADATA and WHEEL files."""
    code = ("import importlib.metadata as m; d = m.distribution('demo'); "
            "print(d.read_text('METADATA')); print(d.read_text('WHEEL'))")
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                          check=True).stdout


def build(builder, wheel, tmp_path):
    """Claim the next cp311 job and finish it with WHEEL, as the builder agent does."""
    job = queue.claim(builder, "cp311", timezone.now())
    assert job is not None
    path = tmp_path / wheel.filename
    path.write_bytes(wheel.content)
    sha = hashlib.sha256(wheel.content).hexdigest()
    now = job.started
    publish.receive_file(job.id, builder, path.name, [wheel.content], len(wheel.content),
                         sha, now)
    publish.finish(job.id, builder, True, 1.0, "ok",
                   files=[{"filename": path.name, "size": len(wheel.content), "sha256": sha}],
                   now=now)
    return job


@pytest.fixture
def farm(live_server, data_dir, fake_pypi, settings, tmp_path):
    """demo 1.0 upstream with an sdist only, built by the farm into demo-1.0-py3-none-any.whl."""
    settings.PIWHEELS_SYNC_BACKOFF = 0.0
    # uv keeps an index page for its max-age; here "later" is a second later, so the
    # pages must be revalidated at once (the files' own URLs stay immutable).
    settings.PIWHEELS_INDEX_MAX_AGE = 0
    make_abi("cp311")
    fake_pypi.add_release("demo", "1.0")
    run_sync()
    pi = make_builder("pi1", abi="cp311")
    build(pi, wheel_archive("demo", "1.0"), tmp_path)
    return live_server.url, pi


def rebuild(pi, tmp_path):
    """An admin's rebuild, built into other bytes under the same name by the builder."""
    assert queue.rebuild(Version.objects.get(version="1.0"), requested_by="admin") == 1
    return build(pi, wheel_archive("demo", "1.0", requires_python=">=3"), tmp_path)


def test_pip_and_uv_take_the_rebuilt_file_and_a_pinned_old_hash_still_installs(
        farm, fake_pypi, tmp_path, clean_env, requests_seen):
    url, pi = farm
    index = f"{url}/simple/"
    before = new_venv(tmp_path / "before")
    assert pip(clean_env, before, "install", "--index-url", index, "demo").returncode == 0
    assert f"/files/demo/{OLD}" in requests_seen
    old_bytes = requests.get(f"{url}/files/demo/{OLD}").content
    old_sha = hashlib.sha256(old_bytes).hexdigest()
    uv_before = new_venv(tmp_path / "uv-before")
    result = uv(clean_env, uv_before, "install", "--index-url", index, "demo")
    assert result.returncode == 0, result.stderr

    rebuild(pi, tmp_path)
    files = dict(File.objects.values_list("filename", "superseded_by"))
    assert files == {OLD: NEW, NEW: ""}
    page = requests.get(index + "demo/",
                        headers={"Accept": "application/vnd.pypi.simple.v1+json"}).json()
    listed = {f["filename"]: f["yanked"] for f in page["files"]}
    assert listed == {OLD: f"rebuilt as {NEW}", NEW: False}
    # the old URL answers with the old bytes, as immutable as it said
    response = requests.get(f"{url}/files/demo/{OLD}")
    assert response.content == old_bytes and "immutable" in response.headers["Cache-Control"]

    requests_seen.clear()
    after = new_venv(tmp_path / "after")
    result = pip(clean_env, after, "install", "--index-url", index, "demo")
    assert result.returncode == 0, result.stderr
    assert f"/files/demo/{NEW}" in requests_seen
    got = installed_metadata(after)
    assert "Requires-Python: >=3" in got and "Build: 1" in got

    requests_seen.clear()
    uv_after = new_venv(tmp_path / "uv-after")  # the same uv cache as before the rebuild
    result = uv(clean_env, uv_after, "install", "--index-url", index, "demo")
    assert result.returncode == 0, result.stderr
    assert "Requires-Python: >=3" in installed_metadata(uv_after)
    assert f"/files/demo/{NEW}" in requests_seen

    # A lock file made before the rebuild still installs, from the old URL and bytes.
    locked = tmp_path / "requirements.txt"
    locked.write_text(f"demo==1.0 --hash=sha256:{old_sha}\n")
    for tool in (pip, uv):
        target = new_venv(tmp_path / f"pinned-{tool.__name__}")
        result = tool(clean_env, target, "install", "--index-url", index, "--require-hashes",
                      "-r", str(locked))
        assert result.returncode == 0, result.stderr
        got = installed_metadata(target)
        assert "Requires-Python" not in got and "Build:" not in got


def test_when_upstream_publishes_the_same_filename_the_farm_copy_leaves_the_index(
        farm, fake_pypi, tmp_path, clean_env, client):
    url, _ = farm
    ours = requests.get(f"{url}/files/demo/{OLD}").content
    theirs = wheel_archive("demo", "1.0", requires_python=">=3.1").content
    fake_pypi.add_file("demo", "1.0", OLD, theirs)
    run_sync()
    assert File.objects.get().shadowed_by == OLD
    assert requests.get(f"{url}/simple/demo/").status_code == 404  # nothing left to list
    response = requests.get(f"{url}/files/demo/{OLD}")
    assert (response.status_code, response.content) == (200, ours)  # the URL still answers
    data = requests.get(f"{url}/project/demo/json/").json()
    (cell,) = data["versions"][0]["builds"]
    assert cell["label"] == f"PyPI has a wheel for this: {OLD}"
    assert data["versions"][0]["files"][0]["shadowed_by"] == OLD

    # With the farm as an extra index (Raspberry Pi OS's pip.conf), pip gets PyPI's bytes.
    dest = tmp_path / "got"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(dest),
         "--index-url", f"{fake_pypi.url}/simple/", "--extra-index-url", f"{url}/simple/",
         "demo"], env=clean_env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (dest / OLD).read_bytes() == theirs
