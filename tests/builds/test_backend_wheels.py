"""The farm's wheel checks (builds/wheels.py inspect) accept real wheels made by the build
backends PyPI's wheels come from, as PyPI accepts them: METADATA as each backend writes
it (setuptools 56 to 76 wrote License-File under Metadata-Version 2.1; hatchling, flit,
meson-python and today's setuptools write 2.4), WHEEL and RECORD as they write them, and
the filenames they give.

The wheels are real: built here from tiny projects by the real backend, fetched from PyPI
by pip's build isolation (pinned, so that an old backend stays old), or, for maturin,
whose projects need Rust crates this machine cannot fetch, real wheels PyPI hosts
(rpds-py, built by maturin), downloaded, and one of meson-python's from PyPI too
(contourpy), for the names PyPI gives them. Each is made once and kept in
var/test-cache/backend-wheels/; a wheel that cannot be had (PyPI out of reach) skips its
case, saying why."""
import fcntl
import os
import shutil
import subprocess
import sys
import zipfile
from email.parser import BytesParser

import pytest

from builds import wheels
from tests.live import ROOT

pytestmark = pytest.mark.slow

CACHE = ROOT / "var" / "test-cache" / "backend-wheels"
LICENSE = "MIT License\n\nCopyright (c) the piwheels tests\n"

C_MODULE = r"""
#include <Python.h>
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "%s", NULL, -1, NULL};
PyMODINIT_FUNC PyInit_%s(void) { return PyModule_Create(&module); }
"""


def _pyproject(name, requires, backend, project=""):
    return (f'[build-system]\nrequires = {requires!r}\nbuild-backend = "{backend}"\n\n'
            f'[project]\nname = "{name}"\nversion = "1.0"\n'
            f'description = "a tiny project of the piwheels tests"\n{project}')


# name: (files of the project, what its METADATA must show)
PROJECTS = {
    # setuptools 68 (2023): License-File under Metadata-Version 2.1, as PyPI took for years
    "setuptools68-demo": ({
        "pyproject.toml": _pyproject("setuptools68-demo", ["setuptools==68.2.2", "wheel"],
                                     "setuptools.build_meta", 'license = {text = "MIT"}\n'),
        "setuptools68_demo.py": "X = 1\n",
    }, {"Metadata-Version": "2.1", "License-File": "LICENSE"}),
    # setuptools 80: PEP 639, Metadata-Version 2.4
    "setuptools80-demo": ({
        "pyproject.toml": _pyproject("setuptools80-demo", ["setuptools==80.9.0"],
                                     "setuptools.build_meta",
                                     'license = "MIT"\nlicense-files = ["LICENSE"]\n'),
        "setuptools80_demo.py": "X = 1\n",
    }, {"Metadata-Version": "2.4", "License-Expression": "MIT"}),
    "hatchling-demo": ({
        "pyproject.toml": _pyproject("hatchling-demo", ["hatchling==1.27.0"],
                                     "hatchling.build", 'license = "MIT"\n'),
        "hatchling_demo/__init__.py": "X = 1\n",
    }, {"Metadata-Version": "2.4", "License-File": "LICENSE"}),
    "hatchling121-demo": ({
        "pyproject.toml": _pyproject("hatchling121-demo", ["hatchling==1.21.1"],
                                     "hatchling.build", 'license = {text = "MIT"}\n'),
        "hatchling121_demo/__init__.py": "X = 1\n",
    }, {"Metadata-Version": "2.1", "License-File": "LICENSE"}),
    "flit-demo": ({
        "pyproject.toml": _pyproject("flit-demo", ["flit_core==3.12.0"], "flit_core.buildapi",
                                     'license = "MIT"\n'),
        "flit_demo.py": '"""a tiny module"""\n__version__ = "1.0"\n',
    }, {"Metadata-Version": "2.4", "License-Expression": "MIT"}),
    "flit39-demo": ({
        "pyproject.toml": _pyproject("flit39-demo", ["flit_core==3.9.0"], "flit_core.buildapi",
                                     'license = {file = "LICENSE"}\n'),
        "flit39_demo.py": '"""a tiny module"""\n__version__ = "1.0"\n',
    }, {"Metadata-Version": "2.1"}),
    # meson-python: a C extension, compiled here
    "mesonpy-demo": ({
        "pyproject.toml": _pyproject("mesonpy-demo", ["meson-python==0.18.0"], "mesonpy",
                                     'license = "MIT"\nlicense-files = ["LICENSE"]\n'),
        "meson.build": ("project('mesonpy-demo', 'c', version: '1.0')\n"
                        "py = import('python').find_installation(pure: false)\n"
                        "py.extension_module('mesonpy_demo', 'mesonpy_demo.c', "
                        "install: true)\n"),
        "mesonpy_demo.c": C_MODULE % ("mesonpy_demo", "mesonpy_demo"),
    }, {"Metadata-Version": "2.4", "License-File": "LICENSE"}),
    "mesonpy016-demo": ({
        "pyproject.toml": _pyproject("mesonpy016-demo", ["meson-python==0.16.0"], "mesonpy",
                                     'license = {file = "LICENSE"}\n'),
        "meson.build": ("project('mesonpy016-demo', 'c', version: '1.0')\n"
                        "py = import('python').find_installation(pure: false)\n"
                        "py.extension_module('mesonpy016_demo', 'mesonpy016_demo.c', "
                        "install: true)\n"),
        "mesonpy016_demo.c": C_MODULE % ("mesonpy016_demo", "mesonpy016_demo"),
    }, {"Metadata-Version": "2.1"}),
}

# Real wheels PyPI hosts, for this machine's Python, with the names they have there:
# maturin's (rpds-py, a Rust extension: an older maturin's, with License-File under
# Metadata-Version 2.1, and a newer one's) and meson-python's (contourpy, after auditwheel:
# two manylinux tags in one name). (requirement, what WHEEL's Generator starts with)
DOWNLOADS = {
    "rpds-py-0.10.6": ("rpds-py==0.10.6", "maturin"),
    "rpds-py-0.27.1": ("rpds-py==0.27.1", "maturin"),
    "contourpy-1.3.3": ("contourpy==1.3.3", "meson"),
}


def pypi_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1",
               PIP_NO_INPUT="1")
    return env


def _cached(key, make):
    """The one wheel in CACHE/KEY, made by MAKE(directory) once (under a lock, so that
    pytest-xdist's workers share it)."""
    directory = CACHE / key
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (directory / ".ready").exists():
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir()
            result = make(directory)
            if result.returncode != 0:
                shutil.rmtree(directory, ignore_errors=True)
                pytest.skip(f"{key}: no wheel to check ({result.stderr.strip()[-400:]})")
            (directory / ".ready").touch()
    (wheel,) = directory.glob("*.whl")
    return wheel


def built_wheel(name, tmp_path):
    files, _ = PROJECTS[name]

    def make(directory):
        source = tmp_path / name
        for path, text in {**files, "LICENSE": LICENSE}.items():
            (source / path).parent.mkdir(parents=True, exist_ok=True)
            (source / path).write_text(text)
        return subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-cache-dir",
             "-w", str(directory), str(source)],
            env=pypi_env(), capture_output=True, text=True, timeout=600)

    return _cached(name, make)


def downloaded_wheel(key):
    requirement, _ = DOWNLOADS[key]

    def make(directory):
        return subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-cache-dir",
             "--only-binary", ":all:", "-d", str(directory), requirement],
            env=pypi_env(), capture_output=True, text=True, timeout=600)

    return _cached(key, make)


def dist_info_file(path, member):
    with zipfile.ZipFile(path) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(f".dist-info/{member}")]
        return BytesParser().parsebytes(archive.read(name))


@pytest.mark.parametrize("name", PROJECTS)
def test_the_checks_accept_wheels_real_backends_build(name, tmp_path):
    wheel = built_wheel(name, tmp_path)
    metadata = dist_info_file(wheel, "METADATA")
    for field, value in PROJECTS[name][1].items():
        assert value in metadata.get_all(field, []), (field, str(metadata))

    info = wheels.inspect(wheel, name, "1.0")

    assert info.filename == wheel.name and info.version == "1.0"
    with zipfile.ZipFile(wheel) as archive:
        assert info.metadata in [archive.read(n) for n in archive.namelist()
                                 if n.endswith(".dist-info/METADATA")]


@pytest.mark.parametrize("key", DOWNLOADS)
def test_the_checks_accept_maturin_and_meson_python_wheels_pypi_hosts(key):
    requirement, generator = DOWNLOADS[key]
    wheel = downloaded_wheel(key)
    assert dist_info_file(wheel, "WHEEL")["Generator"].startswith(generator)

    name, version = requirement.split("==")
    info = wheels.inspect(wheel, name, version)  # named as on PyPI: the farm takes it so

    assert info.filename == wheel.name
    assert (info.name, info.version) == (name, version)
