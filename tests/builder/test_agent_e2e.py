"""piwheels-builder, the real one, against the real farm and a fake upstream index.

Each test queues jobs through builds.queue.refresh_jobs for sdists it made, runs the agent as
a process (its real pip builds them), and checks the farm's database and files, and what
pip installs from the farm's index.
"""
import base64
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

from builds import queue, storage
from builds.models import Build, BuilderPackages, File
from piwheels_builder import debian, identity, repair
from piwheels_builder.identity import platform_tag, probe
from tests.builder.conftest import (
    ABI,
    ARCH,
    CuttingProxy,
    hermetic_pip_env,
    make_sdist,
    run_agent,
    start_agent,
)
from tests.factories import make_abi, make_builder, make_project
from tests.live import stop_process, wait_until

pytestmark = [pytest.mark.slow]

PURE = {
    "pure_demo/__init__.py": "def answer():\n    return 42\n",
}

CEXT_SETUP = textwrap.dedent("""\
    from setuptools import Extension, setup
    setup(
        packages=["cext_demo"],
        ext_modules=[Extension("cext_demo._speed", ["src/speed.c"], libraries=["z"])],
    )
    """)
CEXT = {
    "cext_demo/__init__.py": "from cext_demo._speed import add, zversion\n",
    "src/speed.c": textwrap.dedent("""\
        #define PY_SSIZE_T_CLEAN
        #include <Python.h>
        #include <zlib.h>

        static PyObject *add(PyObject *self, PyObject *args) {
            long a, b;
            if (!PyArg_ParseTuple(args, "ll", &a, &b)) return NULL;
            return PyLong_FromLong(a + b);
        }
        static PyObject *zversion(PyObject *self, PyObject *args) {
            return PyUnicode_FromString(zlibVersion());
        }
        static PyMethodDef methods[] = {
            {"add", add, METH_VARARGS, "a + b"},
            {"zversion", zversion, METH_NOARGS, "zlib's version"},
            {NULL, NULL, 0, NULL},
        };
        static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_speed", NULL, -1, methods};
        PyMODINIT_FUNC PyInit__speed(void) { return PyModule_Create(&module); }
        """),
}
BROKEN = {
    "broken_demo/__init__.py": "",
    "src/broken.c": "#include <no_such_header_for_the_farm.h>\nint x;\n",
}
BROKEN_SETUP = textwrap.dedent("""\
    from setuptools import Extension, setup
    setup(packages=["broken_demo"],
          ext_modules=[Extension("broken_demo._broken", ["src/broken.c"])])
    """)


def build_of(name):
    return Build.objects.select_related("log").get(
        version__project__normalized_name=name, abi__tag=ABI)


@pytest.mark.skipif(not (shutil.which("gcc") and os.path.exists("/usr/include/zlib.h")),
                    reason="needs gcc and zlib's headers to build the C extension")
def test_builds_pure_c_and_broken_sdists_then_pip_installs_them_from_the_farm(
        live_server, data_dir, publish_sdist, farm_builder, work_dir, tmp_path):
    publish_sdist("pure-demo", "1.0", PURE)
    publish_sdist("cext-demo", "2.0", CEXT, CEXT_SETUP)
    publish_sdist("broken-demo", "0.1", BROKEN, BROKEN_SETUP)
    agent = start_agent(live_server.url, farm_builder.token, work_dir,
                        log_path=tmp_path / "agent.log")
    try:
        wait_until(lambda: not Build.objects.live().exists() and not os.listdir(
            work_dir / "spool"), timeout=150, message="the agent to build all three")
    finally:
        assert stop_process(agent) == 0, (tmp_path / "agent.log").read_text()
    output = (tmp_path / "agent.log").read_text()

    pure = build_of("pure-demo")
    assert pure.state == Build.State.SUCCEEDED, pure.log.output
    (pure_file,) = pure.files.all()
    assert pure_file.filename == "pure_demo-1.0-py3-none-any.whl"
    assert pure_file.requires_python == ">=3.8" and pure_file.dependencies == []
    path = storage.file_path("pure-demo", pure_file.filename)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == pure_file.sha256
    assert "Building wheel for pure-demo" in pure.log.output

    cext = build_of("cext-demo")
    assert cext.state == Build.State.SUCCEEDED, cext.log.output
    (cext_file,) = cext.files.all()
    assert (cext_file.python_tag, cext_file.abi_tag) == (ABI, ABI)
    # Served under this machine's glibc, which the agent reported with its OS release.
    me = identity.detect()
    arch = platform_tag().removeprefix("linux_")
    assert cext_file.platform_tag == f"manylinux_{me.glibc.replace('.', '_')}_{arch}"
    assert (cext.os_release, cext.glibc) == (cext_file.os_release, cext_file.glibc) == (
        me.os_release, me.glibc)
    # Repaired by the agent where it can (auditwheel, patchelf >= 0.14.5), it uploads the
    # manylinux name itself; else the farm renames what pip built.
    uploaded = cext_file.filename if not repair.available() else cext_file.filename.replace(
        cext_file.platform_tag, platform_tag())
    if shutil.which("dpkg"):
        assert cext_file.dependencies == []  # libz.so.1 and libc6: every Debian has them
    assert "src/speed.c" in cext.log.output  # the compiler's lines are in the log

    broken = build_of("broken-demo")
    assert broken.state == Build.State.FAILED
    assert not broken.files.exists()
    assert "no_such_header_for_the_farm.h" in broken.log.output
    assert broken.failure_reason == (  # the compiler's first error: what a user needs
        "src/broken.c:1:10: fatal error: no_such_header_for_the_farm.h: "
        "No such file or directory")
    assert (broken.cause, broken.cause_detail) == (
        "missing-header", "no_such_header_for_the_farm.h")
    if shutil.which("dpkg-query") and debian.codename():
        # The agent told the farm its Debian packages, for dep-wait.
        reported = BuilderPackages.objects.get(builder=farm_builder)
        assert reported.os_release == debian.codename()
        assert "libc6" in reported.names()
        assert reported.digest == debian.digest(debian.installed())
        assert "sent " in output and " Debian packages" in output

    assert f"building pure-demo 1.0 for {ABI}" in output
    assert "built cext-demo 2.0 in" in output
    assert f"uploaded {uploaded} (" in output
    assert os.listdir(work_dir / "builds") == [] and os.listdir(work_dir / "spool") == []

    # What was built installs from the farm's index with pip, and works.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--no-input",
         "--index-url", f"{live_server.url}/simple/", "pure-demo==1.0", "cext-demo==2.0"],
        check=True, capture_output=True, text=True, env=hermetic_pip_env(
            PIP_CACHE_DIR=str(tmp_path / "pip-cache")),
    )
    run = subprocess.run(
        [python, "-c", "import pure_demo, cext_demo; "
                       "print(pure_demo.answer(), cext_demo.add(2, 3), cext_demo.zversion())"],
        check=True, capture_output=True, text=True,
    )
    answer, total, _zlib = run.stdout.split()
    assert (answer, total) == ("42", "5")


HANG_SETUP = textwrap.dedent("""\
    import os, subprocess, time
    from setuptools import setup
    child = subprocess.Popen(["sleep", "300"])
    with open(E2E_PIDS, "a") as f:
        f.write("%d %d\\n" % (os.getpid(), child.pid))
    time.sleep(300)
    setup()
    """)


def test_a_build_that_hangs_is_killed_at_the_timeout(live_server, data_dir, publish_sdist,
                                                      farm_builder, work_dir, tmp_path):
    pids = tmp_path / "pids"
    publish_sdist("hang-demo", "1.0", {"hang_demo/__init__.py": ""},
                  HANG_SETUP.replace("E2E_PIDS", repr(str(pids))))

    # Unsandboxed: the test reads the build's pids from the outside (the sandbox has its
    # own /tmp and PID numbers); builder/tests/test_build.py kills a sandboxed tree.
    started = time.monotonic()
    code, output = run_agent(live_server.url, farm_builder.token, work_dir, "--once",
                             "--build-timeout", "20", "--unsandboxed")

    assert code == 0, output
    assert time.monotonic() - started < 60
    build = build_of("hang-demo")
    assert build.state == Build.State.FAILED
    assert build.failure_reason == "build timed out after 20s"
    assert pids.exists(), build.log.output  # setup.py was running when the time ran out
    for line in pids.read_text().splitlines():
        for pid in map(int, line.split()):
            assert not os.path.exists(f"/proc/{pid}") or _zombie(pid), f"{pid} still runs"
    assert os.listdir(work_dir / "builds") == []


def _zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def big_module():
    """~90 kB of base64 text that does not compress: a wheel too big to upload in one go."""
    blob = b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(2000))
    return f"DATA = {base64.b64encode(blob).decode()!r}\n"


def test_an_upload_cut_off_midway_is_sent_again_and_counted_once(
        live_server, data_dir, publish_sdist, farm_builder, work_dir):
    publish_sdist("cut-demo", "1.0", {"cut_demo/__init__.py": "", "cut_demo/blob.py": big_module()})
    port = int(live_server.url.rsplit(":", 1)[1])
    proxy = CuttingProxy(port, cut_after=20_000)
    try:
        code, output = run_agent(proxy.url, farm_builder.token, work_dir, "--once")
    finally:
        proxy.close()

    assert code == 0, output
    assert proxy.cuts == 1
    assert "farm unreachable" in output  # the cut, then the retry
    build = build_of("cut-demo")
    assert build.state == Build.State.SUCCEEDED, build.log.output
    (wheel,) = File.objects.filter(build__version__project__normalized_name="cut-demo")
    data = storage.file_path("cut-demo", wheel.filename).read_bytes()
    assert len(data) == wheel.size > 40_000
    assert hashlib.sha256(data).hexdigest() == wheel.sha256
    assert output.count(f"uploaded {wheel.filename}") == 1


SLOW_SETUP = textwrap.dedent("""\
    import os, time
    from setuptools import setup
    with open(E2E_STARTED, "a") as f:
        f.write("%d\\n" % os.getpid())
    time.sleep(1)
    setup()
    """)


def test_nothing_is_lost_when_the_farm_dies_while_the_agent_holds_a_build(
        publish_sdist, farm_builder, farm_process, work_dir, tmp_path):
    started = tmp_path / "started"
    publish_sdist("spool-demo", "1.0", {"spool_demo/__init__.py": "X = 1\n"},
                  SLOW_SETUP.replace("E2E_STARTED", repr(str(started))))
    agent_log = tmp_path / "agent.log"
    spooled = work_dir / "spool"
    farm_process.start()
    agent = start_agent(farm_process.url, farm_builder.token, work_dir, "--unsandboxed",
                        log_path=agent_log)  # the build says it started in the test's /tmp
    try:
        wait_until(started.exists, timeout=60, message="the build to start")
        farm_process.kill()  # the farm dies while the agent builds
        wait_until(lambda: any(spooled.glob("*/result.json")), timeout=60,
                   message="the finished build to be spooled")
        wait_until(lambda: "farm unreachable" in agent_log.read_text(), timeout=30,
                   message="the agent to find the farm gone")
    finally:
        assert stop_process(agent) == 0, agent_log.read_text()  # and the agent is stopped too
    build = build_of("spool-demo")
    assert build.state == Build.State.BUILDING and not build.files.exists()
    assert len(list(spooled.glob("*/result.json"))) == 1

    farm_process.start()  # both come back
    code, output = run_agent(farm_process.url, farm_builder.token, work_dir, "--once")

    assert code == 0, output
    assert "resending 1 finished build(s) kept from before" in output
    build = build_of("spool-demo")
    assert build.state == Build.State.SUCCEEDED, output
    (wheel,) = build.files.all()
    assert wheel.filename == "spool_demo-1.0-py3-none-any.whl"
    path = storage.file_path("spool-demo", wheel.filename)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == wheel.sha256
    assert "Building wheel for spool-demo" in build.log.output
    assert os.listdir(spooled) == []


def _other_python():
    """A CPython other than this one, to build with (--python), as a Pi running the agent
    under one Python and building for another would."""
    candidates = [shutil.which(f"python3.{minor}") for minor in (9, 13, 12, 10)]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin/python3")))
    for path in filter(None, candidates):
        real = subprocess.run(
            [path, "-c", "import sys; print(sys.version_info[:2] >= (3, 9), sys.executable)"],
            capture_output=True, text=True)
        if real.returncode == 0:
            recent, executable = real.stdout.split()
            if recent == "True" and not os.path.samefile(executable, sys.executable) \
                    and f"{sys.version_info[0]}.{sys.version_info[1]}" not in executable:
                return executable
    return None


OTHER_PYTHON = _other_python()


@pytest.mark.skipif(OTHER_PYTHON is None, reason="no other CPython on this machine")
def test_an_agent_building_with_another_python_claims_for_its_abi(
        live_server, data_dir, upstream, transactional_db, work_dir):
    abi, platform, version = probe(OTHER_PYTHON)
    make_abi(ABI, archs=ARCH)
    make_abi(abi, archs=ARCH)
    builder = make_builder("pi-other", abi=abi)
    sdist = make_sdist("other-demo", "1.0", {"other_demo/__init__.py": "X = 1\n"})
    upstream.add_release("other-demo", "1.0", [sdist])
    project = make_project("other-demo", versions=["1.0"])
    queue.refresh_jobs([v.id for v in project.versions.all()])

    code, output = run_agent(live_server.url, builder.token, work_dir, "--once",
                             "--python", OTHER_PYTHON)

    assert code == 0, output
    assert f"builder for {abi} on {platform} (Python {version}" in output
    build = Build.objects.get(version__project__normalized_name="other-demo", abi__tag=abi)
    assert build.state == Build.State.SUCCEEDED, build.log.output
    assert build.files.get().filename == "other_demo-1.0-py3-none-any.whl"
    builder.refresh_from_db()
    assert (builder.abi.tag, builder.python_version) == (abi, version)
