"""Small real sdists with compiled code, in the shapes PyPI has, for the agent's tests on x86
(tests/builder) and on the Pis' own userlands (tests_pi):

- ``PEP517_CEXT``: a C extension with a pyproject.toml (setuptools.build_meta);
- ``LEGACY_CEXT``: MarkupSafe 2.1.5's shape: a setup.py alone, no pyproject.toml, so that a
  pip before 23.1 builds it with ``setup.py bdist_wheel`` unless told ``--use-pep517``;
- ``LIBYAML_CEXT``: a C extension linking a system library (libyaml, libyaml-dev on Debian).

Each is (name, version, {path: text}, check) where ``check`` is Python that imports the
built module and prints what it computed, and ``expected`` what it prints.
"""
import io
import tarfile
import textwrap
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Sdist:
    name: str
    version: str
    files: dict = field(repr=False)
    check: str = ""  # Python run after installing: prints `expected`
    expected: str = ""

    @property
    def module(self):
        return self.name.replace("-", "_")

    def tarball(self):
        """(filename, bytes) of the sdist, reproducible (fixed mtimes)."""
        base = f"{self.module}-{self.version}"
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for path, text in {"PKG-INFO": self._pkg_info(), **self.files}.items():
                data = text.encode()
                info = tarfile.TarInfo(f"{base}/{path}")
                info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
                tar.addfile(info, io.BytesIO(data))
        return f"{base}.tar.gz", buf.getvalue()

    def _pkg_info(self):
        return f"Metadata-Version: 2.1\nName: {self.name}\nVersion: {self.version}\n"


_ADD_C = """\
#define PY_SSIZE_T_CLEAN
#include <Python.h>
static PyObject *add(PyObject *self, PyObject *args) {
    long a, b;
    if (!PyArg_ParseTuple(args, "ll", &a, &b)) return NULL;
    return PyLong_FromLong(a + b);
}
static PyMethodDef methods[] = {{"add", add, METH_VARARGS, "a + b"}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_speedups", NULL, -1, methods};
PyMODINIT_FUNC PyInit__speedups(void) { return PyModule_Create(&module); }
"""

PEP517_CEXT = Sdist(
    "pidemo-modern", "1.0",
    {
        "pyproject.toml": textwrap.dedent("""\
            [build-system]
            requires = ["setuptools>=61"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "pidemo-modern"
            version = "1.0"
            requires-python = ">=3.9"
            """),
        "setup.py": textwrap.dedent("""\
            from setuptools import Extension, setup
            setup(packages=["pidemo_modern"],
                  ext_modules=[Extension("pidemo_modern._speedups", ["src/speedups.c"])])
            """),
        "pidemo_modern/__init__.py": "from pidemo_modern._speedups import add\n",
        "src/speedups.c": _ADD_C,
    },
    check="import pidemo_modern; print(pidemo_modern.add(40, 2))",
    expected="42",
)

# As MarkupSafe 2.1.5: setup.py and setup.cfg, no pyproject.toml at all.
LEGACY_CEXT = Sdist(
    "pidemo-legacy", "2.1.5",
    {
        "setup.cfg": textwrap.dedent("""\
            [metadata]
            name = pidemo-legacy
            version = 2.1.5

            [options]
            packages = find:
            python_requires = >=3.7
            """),
        "setup.py": textwrap.dedent("""\
            from setuptools import Extension, setup
            setup(ext_modules=[Extension("pidemo_legacy._speedups", ["src/speedups.c"])])
            """),
        "pidemo_legacy/__init__.py": "from pidemo_legacy._speedups import add\n",
        "src/speedups.c": _ADD_C,
    },
    check="import pidemo_legacy; print(pidemo_legacy.add(2, 3))",
    expected="5",
)

LIBYAML_CEXT = Sdist(
    "pidemo-yaml", "0.3",
    {
        "pyproject.toml": textwrap.dedent("""\
            [build-system]
            requires = ["setuptools>=61"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "pidemo-yaml"
            version = "0.3"
            requires-python = ">=3.9"
            """),
        "setup.py": textwrap.dedent("""\
            from setuptools import Extension, setup
            setup(packages=["pidemo_yaml"],
                  ext_modules=[Extension("pidemo_yaml._yaml", ["src/yaml.c"],
                                         libraries=["yaml"])])
            """),
        "pidemo_yaml/__init__.py": "from pidemo_yaml._yaml import version\n",
        "src/yaml.c": textwrap.dedent("""\
            #define PY_SSIZE_T_CLEAN
            #include <Python.h>
            #include <yaml.h>
            static PyObject *version(PyObject *self, PyObject *args) {
                return PyUnicode_FromString(yaml_get_version_string());
            }
            static PyMethodDef methods[] = {
                {"version", version, METH_NOARGS, "libyaml's version"},
                {NULL, NULL, 0, NULL}};
            static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_yaml", NULL, -1,
                                                methods};
            PyMODINIT_FUNC PyInit__yaml(void) { return PyModule_Create(&module); }
            """),
    },
    # libyaml's version string, e.g. 0.2.5: its major part is 0.
    check="import pidemo_yaml; print(pidemo_yaml.version().split('.')[0])",
    expected="0",
)

ALL = (PEP517_CEXT, LEGACY_CEXT, LIBYAML_CEXT)
