"""The agent building with the pip a Raspberry Pi OS Bookworm venv has (pip 23.0.1 beside
setuptools 66.1.1, no `wheel`), on x86, against the real farm: every build goes through
PEP 517 isolation, the log says which pip built it, and what the builder's environment
breaks is the builder's fault (the job queued again), never the package's.
(tests_pi does the same with Bookworm's own ARM pip, `make test-pi`.)"""
import os
import shutil
import subprocess
import sys

import pytest

from builds import queue
from builds.models import Build
from tests.builder.conftest import CACHE, hermetic_pip_env, run_agent
from tests.factories import make_project
from tests.sdists import LEGACY_CEXT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not shutil.which("gcc"), reason="needs gcc to build the C extension"),
]

# What `python3 -m venv` gives on Debian 12 (Bookworm), the Raspberry Pi OS of 2023-2025.
BOOKWORM = ("pip==23.0.1", "setuptools==66.1.1")


def plain_pip_env(**extra):
    """hermetic_pip_env without this checkout's agent on PYTHONPATH."""
    env = hermetic_pip_env(**extra)
    del env["PYTHONPATH"]
    return env


@pytest.fixture(scope="session")
def bookworm_python(tmp_path_factory):
    """A venv of this machine's Python holding Bookworm's pip and setuptools, no wheel."""
    cache = CACHE / "bookworm"
    cache.mkdir(parents=True, exist_ok=True)
    wheels = [next(iter(sorted(cache.glob(f"{r.replace('==', '-')}-*.whl"))), None)
              for r in BOOKWORM]
    if None in wheels:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
             *BOOKWORM, "-d", str(cache)],
            capture_output=True, text=True, timeout=300, env=hermetic_pip_env(),
        )
        wheels = [next(iter(sorted(cache.glob(f"{r.replace('==', '-')}-*.whl"))), None)
                  for r in BOOKWORM]
        if None in wheels:
            pytest.skip(f"cannot get {' and '.join(BOOKWORM)}: {proc.stderr[-300:]}")
    venv = tmp_path_factory.mktemp("bookworm") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    # pip runs from its own wheel to install itself and setuptools, nothing else.
    subprocess.run([python, f"{wheels[0]}/pip", "install", "-q", "--no-index", "--no-deps",
                    *map(str, wheels)], check=True, env=plain_pip_env())
    said = subprocess.run([python, "-m", "pip", "--version"], check=True, text=True,
                          capture_output=True).stdout
    assert said.startswith("pip 23.0.1 from ")
    return python


def queue_build(upstream, sdist):
    upstream.add_release(sdist.name, sdist.version, [sdist.tarball()])
    project = make_project(sdist.name, versions=[sdist.version])
    queue.refresh_jobs([v.id for v in project.versions.all()])
    return Build.objects.get(version__project=project)


def test_bookworms_pip_really_fails_a_setup_py_only_sdist_without_pep517(
        bookworm_python, upstream, tmp_path):
    """The bug as Bookworm's pip has it, so that the next test means something."""
    upstream.add_release(LEGACY_CEXT.name, LEGACY_CEXT.version, [LEGACY_CEXT.tarball()])
    proc = subprocess.run(
        [bookworm_python, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path / "w"),
         "--index-url", f"{upstream.url}/simple/", f"{LEGACY_CEXT.name}=={LEGACY_CEXT.version}"],
        capture_output=True, text=True, timeout=300,
        env=plain_pip_env(PIP_CACHE_DIR=str(tmp_path / "cache")),
    )
    assert proc.returncode != 0
    assert "invalid command 'bdist_wheel'" in proc.stdout + proc.stderr


def test_the_agent_builds_a_setup_py_only_sdist_with_bookworms_pip_through_pep517(
        live_server, data_dir, upstream, farm_builder, work_dir, bookworm_python):
    build = queue_build(upstream, LEGACY_CEXT)
    code, output = run_agent(live_server.url, farm_builder.token, work_dir, "--once",
                             "--python", bookworm_python, timeout=300)
    assert code == 0, output
    build.refresh_from_db()
    log = build.log.output
    assert build.state == Build.State.SUCCEEDED, log
    (wheel,) = build.files.all()
    assert wheel.filename.startswith("pidemo_legacy-2.1.5-cp311-cp311-")
    venv = os.path.dirname(os.path.dirname(bookworm_python))
    first, second = log.splitlines()[:2]
    assert first.startswith("piwheels-builder: built by pip 23.0.1 from ")
    assert venv in first
    assert second.startswith(f"piwheels-builder: {bookworm_python} -m pip wheel --use-pep517 ")
    assert "building with pip 23.0.1 from" in output
    assert "bdist_wheel" not in (build.failure_reason or "")


def test_a_builder_whose_pip_is_gone_gives_the_job_back(
        live_server, data_dir, upstream, farm_builder, work_dir, tmp_path):
    build = queue_build(upstream, LEGACY_CEXT)
    venv = tmp_path / "nopip"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    code, output = run_agent(live_server.url, farm_builder.token, work_dir, "--once",
                             "--python", str(venv / "bin" / "python"))
    assert code == 0, output
    assert "this builder cannot build" in output and "No module named pip" in output
    build.refresh_from_db()
    # Released: queued again as if never claimed; no failure, nothing of the package's.
    assert (build.state, build.builder_id, build.attempt) == (Build.State.QUEUED, None, 0)
    assert build.failure_reason == "" and build.cause == ""


def test_pip_crashing_on_an_index_page_is_the_builders_fault_not_the_packages(
        live_server, data_dir, upstream, farm_builder, work_dir, bookworm_python):
    # The key PEP 714 renamed because pip 22.3-23.1 crash on it in JSON pages.
    upstream.json_file_extra = {"dist-info-metadata": {"sha256": "0" * 64}}
    build = queue_build(upstream, LEGACY_CEXT)
    code, output = run_agent(live_server.url, farm_builder.token, work_dir, "--once",
                             "--python", bookworm_python, timeout=300)
    assert code == 0, output
    assert "the builder failed: pip crashed: TypeError: unhashable type: 'dict'" in output
    build.refresh_from_db()
    # Queued again for any builder, the attempt counted; never failed as the package's.
    assert (build.state, build.builder_id, build.attempt) == (Build.State.QUEUED, None, 1)
    assert build.failure_reason == "" and build.cause == ""


def test_an_index_without_setuptools_is_the_builders_fault_not_the_packages(
        live_server, data_dir, upstream, farm_builder, work_dir, bookworm_python):
    upstream.remove_project("setuptools")  # the backend cannot be installed
    build = queue_build(upstream, LEGACY_CEXT)
    code, output = run_agent(live_server.url, farm_builder.token, work_dir, "--once",
                             "--python", bookworm_python, timeout=300)
    assert code == 0, output
    assert "the builder failed: the indexes served no setuptools for the build backend" in output
    build.refresh_from_db()
    assert (build.state, build.builder_id, build.attempt) == (Build.State.QUEUED, None, 1)
    assert build.failure_reason == ""
