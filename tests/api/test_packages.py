"""Failures classified as they are recorded, and dep-wait: builders report their Debian
packages, and a build that failed for want of one is queued again once a builder of its
ABI and release has it."""
from pathlib import Path

import pytest
from django.core.management import call_command

from builds import depwait
from builds.models import AptPath, Build, BuilderPackages
from tests.factories import make_build, make_project, make_version
from tests.fakemirror import FakeMirror

pytestmark = pytest.mark.django_db
DATA = Path(__file__).resolve().parent.parent / "data"
BASE = ["libc6", "python3", "zlib1g"]


@pytest.fixture
def apt_map(settings, db):
    """bookworm's map, refreshed from a fake mirror serving real Contents lines."""
    with FakeMirror() as mirror:
        for arch in ("armhf", "all"):
            mirror.add("bookworm", "main", arch,
                       (DATA / "debian" / f"Contents-{arch}").read_text())
        settings.PIWHEELS_DEBIAN_ARCH = "armhf"
        settings.PIWHEELS_DEBIAN_COMPONENTS = ["main"]
        call_command("refresh_apt_contents", "--release", "bookworm", "--mirror", mirror.url,
                     stdout=open("/dev/null", "w"))
    assert AptPath.objects.filter(path="usr/include/lber.h").exists()


def fail_ldap(api, log="python-ldap-3.4.4"):
    """python-ldap 3.4.4 claimed and failed through the API with a real build log."""
    job = make_build(make_version(make_project("python-ldap"), "3.4.4"),
                     state=Build.State.QUEUED)
    assert api.claim().json()["build_id"] == job.id
    output = (DATA / "build-logs" / f"{log}.log").read_text()
    response = api.finish(job.id, success=False, duration=3, output=output,
                          failure_reason="pip wheel exited with status 1")
    assert response.status_code == 200
    job.refresh_from_db()
    return job


def report(api, packages, os_release="bookworm", **extra):
    return api.post("/api/v1/packages/", {"os_release": os_release, "packages": packages,
                                          **extra})


def test_a_failure_is_recorded_with_its_cause_and_the_package_it_waits_for(api, apt_map,
                                                                          data_dir):
    assert report(api, BASE).status_code == 200
    build = fail_ldap(api)
    assert (build.state, build.cause, build.cause_detail) == ("failed", "missing-header",
                                                              "lber.h")
    assert (build.apt, build.waiting_for) == ("libldap-dev", "libldap-dev")


def test_installing_the_package_queues_the_build_again_once(api, builder, apt_map, data_dir):
    report(api, BASE)
    failed = fail_ldap(api)

    response = report(api, [*BASE, "libldap-dev"])
    assert response.status_code == 200
    assert response.json() == {"digest": depwait.digest_of([*BASE, "libldap-dev"]),
                               "requeued": 1}
    failed.refresh_from_db()
    assert (failed.state, failed.waiting_for, failed.apt) == ("failed", "", "libldap-dev")
    again = Build.objects.get(version=failed.version, state=Build.State.QUEUED)
    assert again.requested_by == "dep-wait: libldap-dev"
    assert again.priority == Build.Priority.REQUESTED
    # the same list again, or another change, does not queue it twice
    assert report(api, [*BASE, "libldap-dev"]).json()["requeued"] == 0
    assert report(api, [*BASE, "libldap-dev", "swig"]).json()["requeued"] == 0
    assert Build.objects.filter(version=failed.version).count() == 2
    row = BuilderPackages.objects.get(builder=builder)
    assert row.names() == sorted([*BASE, "libldap-dev", "swig"])


def test_a_package_a_builder_already_has_is_not_waited_for(api, apt_map, data_dir):
    report(api, [*BASE, "libldap-dev"])
    build = fail_ldap(api)
    assert (build.cause, build.apt, build.waiting_for) == ("missing-header", "libldap-dev", "")


def test_a_builder_of_another_release_does_not_end_the_wait(api, other_api, apt_map,
                                                            data_dir):
    report(api, BASE)
    failed = fail_ldap(api)
    assert report(other_api, [*BASE, "libldap-dev"], "trixie").json()["requeued"] == 0
    failed.refresh_from_db()
    assert failed.waiting_for == "libldap-dev"
    assert not Build.objects.filter(state=Build.State.QUEUED).exists()


def test_a_missing_library_is_named_too(api, apt_map, data_dir):
    report(api, BASE)
    build = fail_ldap(api, "python-ldap-3.4.4-link")
    assert (build.cause, build.cause_detail, build.waiting_for) == (
        "missing-library", "ldap", "libldap-dev")


def test_a_claim_with_a_stale_digest_asks_for_the_list(api, job):
    digest = depwait.digest_of(BASE)
    assert api.claim(packages_digest=digest)["X-Packages-Wanted"] == "1"
    report(api, BASE)
    response = api.claim(packages_digest=digest)
    assert response.status_code == 204
    assert "X-Packages-Wanted" not in response
    assert "X-Packages-Wanted" not in api.claim()  # an old agent sends no digest


@pytest.mark.parametrize(("body", "detail"), [
    ({"os_release": "bookworm", "packages": ["libc6", "Not A Package"]},
     "packages[1]: 'Not A Package' is not a Debian package name"),
    ({"os_release": "bookworm", "packages": ["libc6\n"]},
     "packages[0]: 'libc6\\n' is not a Debian package name"),
    ({"os_release": "bookworm\n", "packages": ["libc6"]},
     "os_release: os_release must be an OS release codename such as 'bookworm' (lower case "
     "ASCII letters, digits, '-'), not 'bookworm\\n'"),
    ({"os_release": "bookworm", "packages": ["libc6"], "abi": "cp27"},
     "the farm does not build for ABI 'cp27'"),
])
def test_a_bad_report_is_400_and_changes_nothing(api, body, detail):
    response = api.post("/api/v1/packages/", body)
    assert response.status_code == 400
    assert response.json() == {"detail": detail}
    assert not BuilderPackages.objects.exists()


def test_a_refused_upload_is_a_farm_fault_and_the_job_is_queued_again(api, held):
    response = api.finish(held.id, success=False, duration=3, output="built\n",
                          failure_reason="the farm refused the wheel: 400 bad tags")
    assert response.status_code == 200
    assert response.json() == {"build_id": held.id, "state": "queued"}
    held.refresh_from_db()
    assert (held.state, held.builder_id, held.cause, held.failure_reason) == (
        "queued", None, "", "")
