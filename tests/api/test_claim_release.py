"""A claim says which OS release and glibc the builder runs; the build records them, and
an ABI pinned to one release is built only there."""
import pytest

from builds.models import Abi, Build, Builder

pytestmark = pytest.mark.django_db


def test_claim_records_the_os_release_and_glibc_on_the_builder_and_the_build(api, job, builder):
    response = api.claim(platform="linux_armv7l", os_release="bookworm", glibc="2.36")
    assert response.status_code == 200
    assert response.json()["build_id"] == job.id
    job.refresh_from_db()
    assert (job.state, job.os_release, job.glibc) == ("building", "bookworm", "2.36")
    assert Builder.objects.values_list("os_release", "glibc").get(id=builder.id) == (
        "bookworm", "2.36")


def test_an_old_agent_that_does_not_say_still_gets_jobs_of_an_unpinned_abi(api, job):
    assert api.claim(platform="linux_armv7l").status_code == 200
    job.refresh_from_db()
    assert (job.state, job.os_release, job.glibc) == ("building", "", "")


@pytest.mark.parametrize("facts, detail", [
    ({"os_release": "Bookworm"}, "os_release must be an OS release codename such as 'bookworm'"),
    ({"os_release": "bookworm; rm -rf"}, "os_release must be an OS release codename"),
    ({"os_release": "b" * 33}, "os_release must be an OS release codename"),
    ({"glibc": "2.36.1"}, "glibc must be a version such as '2.36'"),
    ({"glibc": "glibc 2.36"}, "glibc must be a version such as '2.36'"),
])
def test_a_malformed_release_or_glibc_is_400_and_changes_nothing(api, job, builder, facts,
                                                                 detail):
    response = api.claim(**facts)
    assert response.status_code == 400
    (field, _), = facts.items()
    assert list(response.json()) == ["detail"]  # one sentence, naming the field
    assert response.json()["detail"].startswith(f"{field}: {detail}")
    job.refresh_from_db()
    assert (job.state, job.builder_id) == ("queued", None)
    assert Builder.objects.values_list("last_seen", "os_release").get(id=builder.id) == (
        None, "")


def test_a_pinned_abi_is_built_only_on_its_release(api, job, builder):
    Abi.objects.filter(tag="cp311").update(os_release="bookworm")

    wrong = api.claim(os_release="bullseye", glibc="2.31")
    assert wrong.status_code == 400
    assert wrong.json() == {"detail": "the farm builds cp311 on bookworm, not on bullseye"}
    # What the refused builder said is on record for the admin to see.
    assert Builder.objects.values_list("os_release", "glibc").get(id=builder.id) == (
        "bullseye", "2.31")
    silent = api.claim()
    assert silent.status_code == 400
    assert silent.json() == {"detail": "the farm builds cp311 on bookworm only, and this "
                                       "builder did not report its os_release and glibc: "
                                       "update piwheels-builder"}
    job.refresh_from_db()
    assert (job.state, job.builder_id) == ("queued", None)

    right = api.claim(os_release="bookworm", glibc="2.36")
    assert right.status_code == 200
    assert Build.objects.values_list("state", "os_release").get(id=job.id) == (
        "building", "bookworm")
