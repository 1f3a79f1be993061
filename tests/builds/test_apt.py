"""refresh_apt_contents: Debian's Contents index, from a fake mirror over HTTP, becomes
the map that names the package for a missing header, library, pkg-config module or tool."""
import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from builds import apt
from builds.models import AptPath, Build
from tests.factories import make_build, make_builder, make_project, make_version
from tests.fakemirror import FakeMirror

pytestmark = pytest.mark.django_db
DEBIAN = Path(__file__).resolve().parent.parent / "data" / "debian"


@pytest.fixture
def mirror(settings):
    with FakeMirror() as mirror:
        mirror.add("bookworm", "main", "armhf", (DEBIAN / "Contents-armhf").read_text())
        mirror.add("bookworm", "main", "all", (DEBIAN / "Contents-all").read_text())
        settings.PIWHEELS_DEBIAN_MIRROR = mirror.url
        settings.PIWHEELS_DEBIAN_ARCH = "armhf"
        settings.PIWHEELS_DEBIAN_COMPONENTS = ["main"]
        settings.PIWHEELS_DEBIAN_RELEASE = "bookworm"
        yield mirror


def refresh(*args):
    out = io.StringIO()
    call_command("refresh_apt_contents", *args, stdout=out)
    return out.getvalue().strip()


def test_refresh_keeps_the_paths_a_failure_can_ask_about(mirror):
    line = refresh("--release", "bookworm")
    assert line == (f"bookworm (armhf): 21 paths kept from {mirror.url}; "
                    "the fix named for 0 failed builds")
    paths = dict(AptPath.objects.filter(release="bookworm").values_list("path", "packages"))
    assert paths["usr/include/lber.h"] == "libldap-dev"
    assert paths["usr/bin/curl-config"] == (
        "libcurl4-gnutls-dev,libcurl4-nss-dev,libcurl4-openssl-dev")
    assert paths["usr/bin/autoreconf"] == "autoconf"  # from Contents-all
    # runtime libraries, docs and pkg-config files off the search path are not kept
    assert "usr/lib/arm-linux-gnueabihf/libldap-2.5.so.0" not in paths
    assert "usr/share/doc/libldap-dev/copyright" not in paths
    assert "usr/lib/dbus-1.0/debug-build/lib/pkgconfig/dbus-1.pc" not in paths


@pytest.mark.parametrize(("cause", "detail", "packages"), [
    ("missing-header", "lber.h", ["libldap-dev"]),
    ("missing-header", "sasl/sasl.h", ["libsasl2-dev"]),
    ("missing-header", "Python.h", ["libpython3.11-dev"]),
    ("missing-header", "longintrepr.h", []),  # only deeper, under python3.11/cpython/
    ("missing-header", "Eigen/Core", ["libeigen3-dev"]),
    ("missing-library", "ldap", ["libldap-dev"]),
    ("missing-pkgconfig", "cairo", ["libcairo2-dev"]),
    ("missing-pkgconfig", "dbus-1", ["libdbus-1-dev"]),
    ("missing-pkgconfig", "mysqlclient", ["libmariadb-dev-compat"]),
    ("missing-pkgconfig", "eigen3", ["libeigen3-dev"]),
    ("missing-pkgconfig", "mysqlclient, mariadb or libmariadb",
     ["libmariadb-dev", "libmariadb-dev-compat"]),  # the one with the most of them first
    ("needs-tool", "curl-config",
     ["libcurl4-gnutls-dev", "libcurl4-nss-dev", "libcurl4-openssl-dev"]),
    ("needs-tool", "swig", ["swig"]),
    ("needs-rust", "cargo", ["cargo", "cargo-web"]),
    ("compile-error", "x.c:1:1: error: oops", []),
    ("missing-header", "nosuch.h", []),
])
def test_packages_for_names_the_debian_package(mirror, cause, detail, packages):
    refresh()
    assert apt.packages_for("bookworm", cause, detail) == packages
    assert apt.packages_for("trixie", cause, detail) == []


def test_refresh_names_the_fix_of_builds_that_failed_before_the_map(mirror):
    pi = make_builder("pi1")
    version = make_version(make_project("python-ldap"), "3.4.4")
    failed = make_build(version, state=Build.State.FAILED, builder=pi,
                        cause="missing-header", cause_detail="lber.h")
    assert refresh().endswith("the fix named for 1 failed builds")
    failed.refresh_from_db()
    assert (failed.apt, failed.waiting_for) == ("libldap-dev", "libldap-dev")


def test_a_second_refresh_replaces_the_release(mirror):
    refresh()
    mirror.add("bookworm", "main", "all", "usr/bin/swig   interpreters/swig4.0\n")
    refresh()
    assert AptPath.objects.get(path="usr/bin/swig").packages == "swig4.0"
    assert not AptPath.objects.filter(path="usr/bin/autoreconf").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--release", "trixie"], "/dists/trixie/main/Contents-armhf.gz answered 404"),
    (["--release", "Bad Name"], "'Bad Name' is not a Debian release name (e.g. bookworm)"),
])
def test_refresh_refuses_what_it_cannot_read_and_changes_nothing(mirror, args, message):
    refresh()
    before = AptPath.objects.count()
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        refresh(*args)
    assert AptPath.objects.count() == before


def test_a_truncated_contents_file_changes_nothing(mirror):
    refresh()
    path = mirror.add("bookworm", "main", "armhf", (DEBIAN / "Contents-armhf").read_text())
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(CommandError, match="Contents-armhf.gz"):
        refresh()
    assert AptPath.objects.filter(path="usr/include/lber.h").exists()
