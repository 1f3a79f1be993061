"""Fixtures for the agent's own tests: a stand-in farm and a stand-in pip. No Django here."""
import json
import os
import stat
import subprocess
import sys
import textwrap

import pytest
from farm_standin import StandinFarm

from piwheels_builder import identity, repair

# Stands in for `python -m pip wheel ...` (the agent's --python): behaves by project name.
#   "broken-*": prints a compiler error and exits 1
#   "hang-*":   starts a `sleep` grandchild, writes the pids to $FAKE_BUILD_PIDS, sleeps
#   "slow-*":   sleeps $FAKE_BUILD_SECONDS, then builds
#   "loud-*":   prints $FAKE_BUILD_LINES numbered lines, then builds
#   $FAKE_WHEEL set: copies that wheel (a real one pip built) into the wheel dir
#   anything else: writes a pure-Python wheel, output on stdout and stderr in turn
FAKE_PYTHON = '''\
#!{python}
import hashlib, base64, json, os, subprocess, sys, time, zipfile
# The build's environment is the agent's allow-list: the FAKE_* settings come beside.
if os.path.exists(__file__ + ".env"):
    os.environ.update(json.load(open(__file__ + ".env")))
args = sys.argv[1:]
if args[:1] == ["-c"]:
    os.execv(sys.executable, [sys.executable] + args)
if args == ["-m", "pip", "--version"]:
    if os.environ.get("FAKE_PIP_BROKEN"):
        sys.exit(sys.executable + ": No module named pip")
    print("pip 99.0 from /fake/site-packages/pip (python 3.11)")
    sys.exit(0)
assert args[:3] == ["-m", "pip", "wheel"], args
wheel_dir = args[args.index("--wheel-dir") + 1]
name, version = args[-1].split("==")
with open(os.environ.get("FAKE_BUILD_ARGS", os.devnull), "w") as f:
    f.write(repr(dict(args=args, cwd=os.getcwd(), pip_env=sorted(
        k for k in os.environ if k.startswith("PIP_")), env=dict(os.environ))))
print("Collecting", name, flush=True)
sys.stderr.write("warning: this goes to stderr\\n"); sys.stderr.flush()
print("Building wheel for", name, flush=True)
if name.startswith("broken"):
    print("gcc -c src/mod.c", flush=True)
    sys.stderr.write("error: command '/usr/bin/gcc' failed with exit code 1\\n")
    print("ERROR: Failed building wheel for", name)
    sys.exit(1)
if name.startswith("hang"):
    child = subprocess.Popen(["sleep", "300"])
    with open(os.environ["FAKE_BUILD_PIDS"], "w") as f:
        f.write("%d %d" % (os.getpid(), child.pid))
    time.sleep(300)
if name.startswith("loud"):
    out = sys.stdout
    for i in range(int(os.environ.get("FAKE_BUILD_LINES", "1000"))):
        out.write("compiling part %d of the loud build\\n" % i)
    out.flush()
if name.startswith("slow"):
    time.sleep(float(os.environ.get("FAKE_BUILD_SECONDS", "2")))
if os.environ.get("FAKE_WHEEL"):
    import shutil
    shutil.copy(os.environ["FAKE_WHEEL"], wheel_dir)
    print("Saved", os.environ["FAKE_WHEEL"], flush=True)
    sys.exit(0)
dist = name.replace("-", "_")
path = os.path.join(wheel_dir, "%s-%s-py3-none-any.whl" % (dist, version))
info = "%s-%s.dist-info" % (dist, version)
files = {{
    dist + "/__init__.py": b"VALUE = 42\\n",
    info + "/METADATA": ("Metadata-Version: 2.1\\nName: %s\\nVersion: %s\\n"
                         "Requires-Python: >=3.9\\n\\nA test.\\n" % (name, version)).encode(),
    info + "/WHEEL": (b"Wheel-Version: 1.0\\nGenerator: fake\\nRoot-Is-Purelib: true\\n"
                      b"Tag: py3-none-any\\n"),
}}
record = []
with zipfile.ZipFile(path, "w") as zf:
    for arcname, data in files.items():
        zf.writestr(arcname, data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append("%s,sha256=%s,%d" % (arcname, digest, len(data)))
    record.append(info + "/RECORD,,")
    zf.writestr(info + "/RECORD", "\\n".join(record) + "\\n")
print("Saved", path, flush=True)
'''


def pass_fake_settings(fake_python, env=None):
    """Hand the FAKE_* settings of the environment (or ENV) to the fake pip, which the
    agent runs with an environment of its own."""
    env = os.environ if env is None else env
    with open(fake_python + ".env", "w") as f:
        json.dump({k: v for k, v in env.items() if k.startswith("FAKE_")}, f)


@pytest.fixture(scope="session")
def yaml_wheel(tmp_path_factory):
    """A wheel pip built of a C extension linking libyaml (x86_64 glibc, where the agent
    can repair)."""
    tmp_path = tmp_path_factory.mktemp("yaml")
    missing = repair.available()
    if missing:
        pytest.skip(f"cannot repair here: {missing}")
    if identity.platform_tag() != "linux_x86_64" or not identity.glibc_version():
        pytest.skip("built for x86_64 glibc")
    source = tmp_path / "src"
    source.mkdir()
    (source / "setup.py").write_text(textwrap.dedent("""\
        from setuptools import Extension, setup
        setup(name="yamlv", version="1.0",
              ext_modules=[Extension("yamlv", ["yamlv.c"], libraries=["yaml"])])
        """))
    (source / "yamlv.c").write_text(textwrap.dedent("""\
        #include <Python.h>
        #include <yaml.h>
        static PyObject *v(PyObject *s, PyObject *u) {
            return PyUnicode_FromString(yaml_get_version_string()); }
        static PyMethodDef m[] = {{"version", v, METH_NOARGS, NULL}, {NULL}};
        static struct PyModuleDef d = {PyModuleDef_HEAD_INIT, "yamlv", NULL, -1, m};
        PyMODINIT_FUNC PyInit_yamlv(void) { return PyModule_Create(&d); }
        """))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path / "w"),
         str(source)], capture_output=True, text=True,
        env=dict(env, PIP_CONFIG_FILE=os.devnull, PIP_CACHE_DIR=str(tmp_path / "cache")))
    if built.returncode != 0:
        pytest.skip(f"cannot build the libyaml extension (libyaml-dev?): {built.stdout[-300:]}")
    (wheel,) = (tmp_path / "w").glob("*.whl")
    return wheel


@pytest.fixture
def farm():
    farm = StandinFarm().start()
    yield farm
    farm.stop()


@pytest.fixture
def fake_python(tmp_path):
    path = tmp_path / "fake-python"
    path.write_text(FAKE_PYTHON.format(python=sys.executable))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.fixture
def work_dir(tmp_path):
    path = tmp_path / "work"
    path.mkdir()
    return path

