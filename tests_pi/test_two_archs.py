"""Tested as a 64-bit Pi would (issue 23, section 2), in Debian userlands under qemu-user
(scripts/pi-userland, scripts/pi-run), for each release (Bookworm: cp311, pip 23.0.1,
glibc 2.36; Trixie: cp313, pip 25.1.1, glibc 2.41): an armhf agent and an arm64 agent
against one farm both build a release that has only an sdist upstream (a C extension,
compiled by each userland's gcc); then the clean arm64 Pi's own pip, the newest pip and uv
install the aarch64 wheel and import it, and the clean armhf Pi's get the armv7l one;
neither is offered the other's.

Minutes under emulation: part of `make test-pi` (tests_pi/), not `make test`;
`make test-pi PYTEST_ARGS='-k trixie-armhf+arm64'` runs one release's case."""
import pytest

from builds import queue
from builds.models import Abi, Build, File
from tests.builder.conftest import make_sdist
from tests.factories import make_abi, make_builder, make_project
from tests_pi.conftest import AGENT, AGENT_INSTALL, RELEASES, pi_run, pi_userland

ARCHS = {"armhf": "armv7l", "arm64": "aarch64"}  # Debian's name -> the wheels'

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


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("release", [pytest.param("bookworm", id="bookworm-armhf+arm64"),
                                     pytest.param("trixie", id="trixie-armhf+arm64")])
def test_an_armhf_and_an_arm64_agent_build_and_each_clean_pi_installs_its_own(
        release, live_server, data_dir, upstream, agent_wheels, client_wheels):
    abi, own_pip, glibc = RELEASES[release]
    platform = f"manylinux_{glibc.replace('.', '_')}"
    builders_dirs = {arch: pi_userland(release, arch, "builder") for arch in ARCHS}
    clean_dirs = {arch: pi_userland(release, arch, "clean") for arch in ARCHS}
    upstream.add_release("cdemo", "1.0", [make_sdist("cdemo", "1.0", CDEMO, SETUP)])
    make_abi(abi, archs="armv7l,aarch64")
    Abi.objects.filter(tag=abi).update(os_release=release)
    project = make_project("cdemo", versions=["1.0"])
    queue.refresh_jobs(project.versions.values_list("id", flat=True))
    farm = live_server.url

    # 1. Each agent, installed in its builder userland with its own pip, builds once.
    for arch, directory in builders_dirs.items():
        token = make_builder(f"pi-{release}-{arch}", abi=abi).token
        code, output = pi_run(directory, (
            f"{AGENT_INSTALL} && {AGENT} --server {farm} --token {token} "
            "--work-dir /tmp/work --once --wait 0"), binds=[(agent_wheels, "/mnt/agent-wheels")])
        assert code == 0, output
    builds = {b.arch: b for b in Build.objects.filter(version__project=project)}
    assert {arch: b.state for arch, b in builds.items()} == {
        "armv7l": "succeeded", "aarch64": "succeeded"}, [b.log.output[-2000:] for b in
                                                         builds.values()]
    names = {f.arch: f.filename for f in File.objects.filter(build__version__project=project)}
    assert names == {"armv7l": f"cdemo-1.0-{abi}-{abi}-{platform}_armv7l.whl",
                     "aarch64": f"cdemo-1.0-{abi}-{abi}-{platform}_aarch64.whl"}
    # Each built with its release's own pip, in the venv the agent was installed in.
    for build in builds.values():
        assert build.log.output.startswith(
            f"piwheels-builder: built by pip {own_pip} from /tmp/agent/"), build.log.output

    # 2. Each clean Pi: its own pip, the newest pip, uv; the wheel of its architecture.
    index = f"{farm}/simple/"
    for debian_arch, directory in clean_dirs.items():
        arch = ARCHS[debian_arch]
        check = ("import cdemo, sys; print('MACHINE', cdemo.machine())")
        code, output = pi_run(directory, " && ".join([
            "python3 -m venv /tmp/own",
            "/tmp/own/bin/pip --version",
            f"/tmp/own/bin/pip download -q --no-deps --index-url {index} -d /tmp/got cdemo",
            "ls /tmp/got",
            f"/tmp/own/bin/pip install -q --no-deps --index-url {index} cdemo",
            f"/tmp/own/bin/python -c \"{check}\"",
            "python3 -m venv /tmp/new",
            "/tmp/new/bin/pip install -q --no-index --find-links /mnt/clients -U pip uv",
            "/tmp/new/bin/pip --version",
            f"/tmp/new/bin/pip install -q --no-deps --index-url {index} cdemo",
            f"/tmp/new/bin/python -c \"{check}\"",
            "python3 -m venv /tmp/byuv",
            f"/tmp/new/bin/uv pip install --python /tmp/byuv/bin/python --no-deps "
            f"--index-url {index} cdemo",
            f"/tmp/byuv/bin/python -c \"{check}\"",
        ]), binds=[(client_wheels[debian_arch], "/mnt/clients")])
        assert code == 0, output
        assert f"pip {own_pip} from /tmp/own/" in output, output  # the release's own pip
        assert names[arch] in output.split()  # what its own pip was offered and took
        other = next(n for a, n in names.items() if a != arch)
        assert other not in output
        assert output.count(f"MACHINE {arch}") == 3, output
