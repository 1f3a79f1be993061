"""Tested as a 64-bit Pi would (issue 23, section 2), in Debian Bookworm userlands under
qemu-user (scripts/pi-userland, scripts/pi-run): an armhf agent and an arm64 agent against
one farm both build a release that has only an sdist upstream (a C extension, compiled by
each userland's gcc); then the clean arm64 Pi's own pip (23.0.1), the newest pip and uv
install the aarch64 wheel and import it, and the clean armhf Pi's get the armv7l one;
neither is offered the other's.

Minutes under emulation: part of `make test-pi`, not `make test`. It runs when
PIWHEELS_TEST_PI=1 (make test-pi sets it); the userlands are made on first use."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from builds import queue
from builds.models import Abi, Build, File
from tests.builder.conftest import make_sdist, setuptools_wheel  # noqa: F401 (fixture)
from tests.factories import make_abi, make_builder, make_project

ROOT = Path(__file__).resolve().parents[2]
PI_USERLAND, PI_RUN = ROOT / "scripts" / "pi-userland", ROOT / "scripts" / "pi-run"
CACHE = ROOT / "var" / "test-cache" / "pi-two-archs"
ARCHS = {"armhf": "armv7l", "arm64": "aarch64"}  # Debian's name -> the wheels'

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("PIWHEELS_TEST_PI") != "1",
                       reason="Pi userland tests run under make test-pi (PIWHEELS_TEST_PI=1)"),
    pytest.mark.skipif(not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists(),
                       reason="no qemu-user binfmt handlers: apt-get install "
                              "qemu-user-static binfmt-support"),
]

CDEMO = {
    "cdemo.c": (
        '#include <Python.h>\n'
        'static PyObject *machine(PyObject *s, PyObject *a) {\n'
        '#if defined(__aarch64__)\n  return PyUnicode_FromString("aarch64");\n'
        '#elif defined(__arm__)\n  return PyUnicode_FromString("armv7l");\n'
        '#else\n  return PyUnicode_FromString("other");\n#endif\n}\n'
        'static PyMethodDef m[] = {{"machine", machine, METH_NOARGS, ""}, {0}};\n'
        'static struct PyModuleDef d = {PyModuleDef_HEAD_INIT, "cdemo", 0, -1, m};\n'
        'PyMODINIT_FUNC PyInit_cdemo(void) { return PyModule_Create(&d); }\n'),
}
SETUP = ("from setuptools import Extension, setup\n"
         "setup(ext_modules=[Extension('cdemo', ['cdemo.c'])])\n")


def userland(arch, kind):
    found = subprocess.run([str(PI_USERLAND), "bookworm", arch, kind], capture_output=True,
                           text=True, timeout=3 * 3600)
    if found.returncode != 0:
        pytest.skip(f"no bookworm {arch} {kind} userland: {found.stderr[-300:]}")
    return found.stdout.strip().splitlines()[-1]


def pi_run(directory, script, timeout=1800):
    """Run the shell SCRIPT inside the userland; (returncode, output)."""
    proc = subprocess.run([str(PI_RUN), directory, "/bin/sh", "-c", script],
                          capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


def host_wheels():
    """The agent's wheel and its dependencies (pure), the newest pip, and uv for both
    ARM architectures, downloaded once: what the userlands install from the fake PyPI."""
    CACHE.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    pip = [sys.executable, "-m", "pip"]
    if not list(CACHE.glob("piwheels_builder-*.whl")):
        subprocess.run([*pip, "wheel", "--no-deps", str(ROOT / "builder"), "-w", str(CACHE)],
                       check=True, capture_output=True, env=env, timeout=600)
    steps = [
        ["--only-binary=:all:", "--platform", "any", "--python-version", "3.11",
         "--implementation", "py", "requests", "packaging", "pip"],
        ["--only-binary=:all:", "--no-deps", "--platform", "manylinux_2_17_aarch64",
         "--python-version", "3.11", "uv"],
        ["--only-binary=:all:", "--no-deps", "--platform", "manylinux_2_17_armv7l",
         "--python-version", "3.11", "uv"],
    ]
    for args in steps:
        subprocess.run([*pip, "download", "-d", str(CACHE), *args], capture_output=True,
                       env=env, timeout=600)
    return sorted(CACHE.glob("*.whl"))


def serve_wheels(fake_pypi, paths):
    for path in paths:
        name, version = path.name.split("-")[:2]
        project = re.sub(r"[-_.]+", "-", name).lower()
        if version not in fake_pypi.projects.get(project, {}).get("releases", {}):
            fake_pypi.add_release(project, version, [])
        fake_pypi.add_file(project, version, path.name, path.read_bytes())


@pytest.mark.django_db(transaction=True)
def test_an_armhf_and_an_arm64_agent_build_and_each_clean_pi_installs_its_own(
        live_server, data_dir, fake_pypi, setuptools_wheel):  # noqa: F811 (fixture)
    builders_dirs = {arch: userland(arch, "builder") for arch in ARCHS}
    clean_dirs = {arch: userland(arch, "clean") for arch in ARCHS}
    fake_pypi.add_release("setuptools", setuptools_wheel[0].split("-")[1], [setuptools_wheel])
    serve_wheels(fake_pypi, host_wheels())
    fake_pypi.add_release("cdemo", "1.0", [make_sdist("cdemo", "1.0", CDEMO, SETUP)])
    make_abi("cp311", archs="armv7l,aarch64")
    Abi.objects.filter(tag="cp311").update(os_release="bookworm")
    project = make_project("cdemo", versions=["1.0"])
    queue.refresh_jobs(project.versions.values_list("id", flat=True))
    upstream = f"{fake_pypi.url}/simple/"
    farm = live_server.url

    # 1. Each agent, installed in its builder userland from the fake PyPI, builds once.
    for arch, directory in builders_dirs.items():
        token = make_builder(f"pi-{arch}", abi="cp311").token
        code, output = pi_run(directory, (
            f"python3 -m venv /tmp/agent && /tmp/agent/bin/pip install -q --index-url "
            f"{upstream} piwheels-builder && /tmp/agent/bin/piwheels-builder --server {farm} "
            f"--token {token} --work-dir /tmp/work --once"))
        assert code == 0, output
    builds = {b.arch: b for b in Build.objects.filter(version__project=project)}
    assert {arch: b.state for arch, b in builds.items()} == {
        "armv7l": "succeeded", "aarch64": "succeeded"}, [b.log.output[-2000:] for b in
                                                         builds.values()]
    names = {f.arch: f.filename for f in File.objects.filter(build__version__project=project)}
    assert names == {"armv7l": "cdemo-1.0-cp311-cp311-manylinux_2_36_armv7l.whl",
                     "aarch64": "cdemo-1.0-cp311-cp311-manylinux_2_36_aarch64.whl"}

    # 2. Each clean Pi: its own pip, the newest pip, uv; the wheel of its architecture.
    index = f"{farm}/simple/"
    for debian_arch, directory in clean_dirs.items():
        arch = ARCHS[debian_arch]
        check = ("import cdemo, sys; print('MACHINE', cdemo.machine())")
        code, output = pi_run(directory, " && ".join([
            "python3 -m venv /tmp/own",
            f"/tmp/own/bin/pip download -q --no-deps --index-url {index} -d /tmp/got cdemo",
            "ls /tmp/got",
            f"/tmp/own/bin/pip install -q --no-deps --index-url {index} cdemo",
            f"/tmp/own/bin/python -c \"{check}\"",
            "python3 -m venv /tmp/new",
            f"/tmp/new/bin/pip install -q --index-url {upstream} -U pip uv",
            "/tmp/new/bin/pip --version",
            f"/tmp/new/bin/pip install -q --no-deps --index-url {index} cdemo",
            f"/tmp/new/bin/python -c \"{check}\"",
            "python3 -m venv /tmp/byuv",
            f"/tmp/new/bin/uv pip install --python /tmp/byuv/bin/python --no-deps "
            f"--index-url {index} cdemo",
            f"/tmp/byuv/bin/python -c \"{check}\"",
        ]))
        assert code == 0, output
        assert names[arch] in output.split()  # what its own pip was offered and took
        other = next(n for a, n in names.items() if a != arch)
        assert other not in output
        assert output.count(f"MACHINE {arch}") == 3, output
