"""The farm's diagnosis of real failed builds, from their whole logs (tests/data/build-logs/
whole/, see its README) and Debian bookworm's Contents index served by a fake mirror: the
cause, the missing thing and the Debian package that provides it, as a failed build of a
bookworm builder records them (builds.depwait.diagnose, what the finish calls)."""
from pathlib import Path

import pytest

from builds import apt, depwait, failures
from tests.factories import make_abi
from tests.fakemirror import FakeMirror

pytestmark = pytest.mark.django_db
DATA = Path(__file__).resolve().parent.parent / "data"
WHOLE = DATA / "build-logs" / "whole"
REASON = "pip wheel exited with status 1"


@pytest.fixture
def contents(settings):
    with FakeMirror() as mirror:
        for arch in ("armhf", "all"):
            mirror.add("bookworm", "main", arch, (DATA / "debian" / f"Contents-{arch}").read_text())
        settings.PIWHEELS_DEBIAN_MIRROR = mirror.url
        settings.PIWHEELS_DEBIAN_ARCH = "armhf"
        settings.PIWHEELS_DEBIAN_COMPONENTS = ["main"]
        settings.PIWHEELS_DEBIAN_RELEASE = "bookworm"
        apt.refresh("bookworm")
        yield mirror


@pytest.mark.parametrize(("log", "cause", "detail", "package"), [
    ("pycurl-7.45.3", "needs-tool", "curl-config", "libcurl4-gnutls-dev"),
    ("mysqlclient-2.2.4", "missing-pkgconfig", "mysqlclient, mariadb or libmariadb",
     "libmariadb-dev"),
    ("pycairo-1.26.0", "missing-pkgconfig", "cairo", "libcairo2-dev"),
    ("dbus-python-1.3.2", "missing-pkgconfig", "dbus-1", "libdbus-1-dev"),
    ("python-ldap-3.4.4", "missing-header", "lber.h", "libldap-dev"),
    ("pyaudio-0.2.14", "missing-header", "portaudio.h", "portaudio19-dev"),
    # cargo is there but crates.io is not: the builder's network, no Debian package.
    ("cryptography-42.0.5", "crates-fetch-failed", "openssl-sys", ""),
    ("bcrypt-4.1.2", "crates-fetch-failed", "base64", ""),
])
def test_a_real_failure_gets_its_cause_and_its_debian_fix(contents, log, cause, detail,
                                                           package):
    output = (WHOLE / f"{log}.log").read_text()
    abi = make_abi("cp311")
    fields = depwait.diagnose(None, abi.id, output, REASON)
    assert (fields["cause"], fields["cause_detail"], fields["apt"]) == (cause, detail, package)
    assert fields["waiting_for"] == package  # no builder has it
    line = failures.summary(cause, detail, package)
    assert (package in line) if package else ("network" in line and detail in line)


def test_the_whole_log_is_needed_not_only_pips_summary_at_its_end(contents):
    """What pip prints last says only that the build failed; the cause is above it."""
    output = (WHOLE / "dbus-python-1.3.2.log").read_text()
    summary_only = output[output.index("note: This error originates from a subprocess"):]
    assert failures.classify(summary_only, REASON).cause == "other"
    assert failures.classify(output, REASON).cause == "missing-pkgconfig"


def test_curl_config_names_a_flavour_that_builds_pycurl(contents):
    # Each libcurl flavour ships curl-config; NSS (removed from curl 8.3) is not the one.
    assert apt.packages_for("bookworm", "needs-tool", "curl-config") == [
        "libcurl4-gnutls-dev", "libcurl4-nss-dev", "libcurl4-openssl-dev"]
