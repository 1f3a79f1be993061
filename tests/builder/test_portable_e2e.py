"""Wheels that import on a fresh system with no apt step (docs/portable-wheels.md).

The real agent builds, from sdists on the fake upstream, C extensions that link a system
library: libyaml (Debian's libyaml-dev here) and libpwdemo, a library this test compiles
into a directory of its own. The agent repairs each wheel with auditwheel; the farm checks
and serves it as manylinux_<glibc>_<arch>. Then pip, in a clean Debian userland with only
python3 (debootstrap minbase, made once by `scripts/pi-userland bookworm amd64 clean` and
cached outside the clone), installs both from the farm's index, and each module imports
and works, neither library being on that system.
"""
import os
import shutil
import subprocess
import textwrap
import zipfile
from pathlib import Path

import pytest

from builds import storage
from builds.models import Build, File
from piwheels_builder import identity, repair
from tests.builder.conftest import run_agent
from tests.live import ROOT

pytestmark = [pytest.mark.slow]

YAML_SETUP = textwrap.dedent("""\
    from setuptools import Extension, setup
    setup(ext_modules=[Extension("yamldemo", ["yamldemo.c"], libraries=["yaml"])])
    """)
YAML_C = textwrap.dedent("""\
    #define PY_SSIZE_T_CLEAN
    #include <Python.h>
    #include <yaml.h>

    /* The number of scalars libyaml's scanner finds in a text. */
    static PyObject *scalars(PyObject *self, PyObject *arg) {
        Py_ssize_t n;
        const char *text = PyUnicode_AsUTF8AndSize(arg, &n);
        yaml_parser_t parser;
        yaml_token_t token;
        long count = 0;
        int done = 0;
        if (!text) return NULL;
        if (!yaml_parser_initialize(&parser)) return PyErr_NoMemory();
        yaml_parser_set_input_string(&parser, (const unsigned char *)text, (size_t)n);
        while (!done) {
            if (!yaml_parser_scan(&parser, &token)) {
                yaml_parser_delete(&parser);
                PyErr_SetString(PyExc_ValueError, "not YAML");
                return NULL;
            }
            if (token.type == YAML_SCALAR_TOKEN) count++;
            done = token.type == YAML_STREAM_END_TOKEN;
            yaml_token_delete(&token);
        }
        yaml_parser_delete(&parser);
        return PyLong_FromLong(count);
    }
    static PyObject *version(PyObject *self, PyObject *unused) {
        return PyUnicode_FromString(yaml_get_version_string());
    }
    static PyMethodDef methods[] = {
        {"scalars", scalars, METH_O, NULL}, {"version", version, METH_NOARGS, NULL}, {NULL}};
    static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "yamldemo", NULL, -1, methods};
    PyMODINIT_FUNC PyInit_yamldemo(void) { return PyModule_Create(&module); }
    """)
PWDEMO_SETUP = textwrap.dedent("""\
    from setuptools import Extension, setup
    prefix = {prefix!r}
    setup(ext_modules=[Extension("pwdemo", ["pwdemo.c"], libraries=["pwdemo"],
                                 include_dirs=[prefix + "/include"],
                                 library_dirs=[prefix + "/lib"])])
    """)
PWDEMO_C = textwrap.dedent("""\
    #include <Python.h>
    #include <pwdemo.h>
    static PyObject *triple(PyObject *self, PyObject *arg) {
        return PyLong_FromLong(pwdemo_triple(PyLong_AsLong(arg)));
    }
    static PyMethodDef methods[] = {{"triple", triple, METH_O, NULL}, {NULL}};
    static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "pwdemo", NULL, -1, methods};
    PyMODINIT_FUNC PyInit_pwdemo(void) { return PyModule_Create(&module); }
    """)


def clean_userland():
    """The cached clean Debian 12 amd64 userland, made when missing; skips where it cannot
    be."""
    if identity.platform_tag() != "linux_x86_64":
        pytest.skip("the clean userland of this test is amd64: this machine is not")
    if not shutil.which("debootstrap"):
        pytest.skip("needs debootstrap to make a clean Debian userland "
                    "(apt-get install debootstrap; .ci/run installs it)")
    if os.geteuid() != 0:
        pytest.skip("needs root to make and enter a clean Debian userland (chroot)")
    proc = subprocess.run([str(ROOT / "scripts" / "pi-userland"), "bookworm", "amd64", "clean"],
                          capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        pytest.skip(f"cannot make the clean userland: {proc.stderr.strip()[-300:]}")
    return Path(proc.stdout.strip())


def make_pwdemo(prefix):
    """libpwdemo.so.1 with its header, in PREFIX/lib and PREFIX/include."""
    (prefix / "include").mkdir(parents=True)
    (prefix / "lib").mkdir()
    (prefix / "include" / "pwdemo.h").write_text("long pwdemo_triple(long x);\n")
    source = prefix / "pwdemo.c"
    source.write_text("long pwdemo_triple(long x) { return 3 * x; }\n")
    subprocess.run(["cc", "-shared", "-fPIC", "-Wl,-soname,libpwdemo.so.1", "-o",
                    str(prefix / "lib" / "libpwdemo.so.1"), str(source)], check=True)
    (prefix / "lib" / "libpwdemo.so").symlink_to("libpwdemo.so.1")


def test_wheels_linking_system_libraries_import_on_a_clean_debian(
        live_server, data_dir, publish_sdist, farm_builder, work_dir, tmp_path):
    missing = repair.available()
    if missing:
        pytest.skip(f"the agent cannot repair here: {missing}")
    if not Path("/usr/include/yaml.h").exists():
        pytest.skip("needs libyaml-dev (apt-get install libyaml-dev; .ci/run installs it)")
    userland = clean_userland()
    for lib in ("libyaml-0.so.2", "libpwdemo.so.1"):  # the point: absent there
        assert not list(userland.glob(f"usr/lib/*/{lib}*")), lib
    prefix = tmp_path / "pwdemo"
    make_pwdemo(prefix)
    publish_sdist("yamldemo", "1.0", {"yamldemo.c": YAML_C}, YAML_SETUP)
    # The prefix is written into setup.py: a build's environment is an allow-list.
    publish_sdist("pwdemo", "1.0", {"pwdemo.c": PWDEMO_C},
                  PWDEMO_SETUP.format(prefix=str(prefix)))

    for _ in range(2):
        code, output = run_agent(
            # Unsandboxed: the build reads libpwdemo where the test put it, under /tmp,
            # which a sandboxed build does not see (the sandbox has tests of its own).
            live_server.url, farm_builder.token, work_dir, "--once", "--strip",
            "--unsandboxed", timeout=300,
            # auditwheel finds libpwdemo there too, to copy it into the wheel.
            env={"LD_LIBRARY_PATH": str(prefix / "lib")},
        )
        assert code == 0, output

    me = identity.detect()
    platform = f"manylinux_{me.glibc.replace('.', '_')}_x86_64"
    for name, library in (("yamldemo", "libyaml-0"), ("pwdemo", "libpwdemo")):
        build = Build.objects.get(version__project__normalized_name=name)
        assert build.state == Build.State.SUCCEEDED, build.log.output
        (row,) = File.objects.filter(build=build)
        assert row.platform_tag == platform, build.log.output
        assert row.dependencies == []  # nothing left to apt install
        assert f"repaired as {platform} (copied in {library}" in build.log.output
        with zipfile.ZipFile(storage.file_path(name, row.filename)) as wheel:
            carried = [n for n in wheel.namelist()
                       if n.startswith(f"{name}.libs/") and not n.endswith("/")]
        assert len(carried) == 1 and library in carried[0], carried

    # A fresh Debian 12 with python3 alone: its pip (Bookworm's 23.0.1) installs both
    # from the farm's index, they work.
    script = (
        "set -e; python3 -m venv /tmp/venv; "
        "/tmp/venv/bin/pip install --no-input --disable-pip-version-check -q "
        f"--index-url {live_server.url}/simple/ yamldemo==1.0 pwdemo==1.0; "
        "/tmp/venv/bin/python -c 'import yamldemo, pwdemo; "
        "print(yamldemo.scalars(\"a: [1, 2]\"), yamldemo.version(), pwdemo.triple(14))'"
    )
    proc = subprocess.run([str(ROOT / "scripts" / "pi-run"), str(userland), "/bin/sh", "-c",
                           script], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    count, version, tripled = proc.stdout.split()
    assert (count, tripled) == ("3", "42") and version.startswith("0.2.")
