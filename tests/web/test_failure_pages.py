"""Failures explained to people: the failed project's page and JSON, the log page and
/failures/, for builds failed through the farm's own finish path (classified there)."""
from pathlib import Path

import pytest
from django.core.cache import cache

from builds import publish, queue
from builds.models import AptPath, Build, BuilderPackages
from tests.factories import make_build, make_builder, make_file, make_project, make_version

pytestmark = pytest.mark.django_db
LOGS = Path(__file__).resolve().parent.parent / "data" / "build-logs"
HTML = {"HTTP_ACCEPT": "text/html,application/xhtml+xml,*/*;q=0.8"}


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()


@pytest.fixture
def ldap(db, data_dir):
    """python-ldap 3.4.4 failed on pi1 (bookworm, without libldap-dev) with its real log,
    lber.h known to Debian's map as libldap-dev's."""
    pi = make_builder("pi1")
    BuilderPackages.objects.create(builder=pi, os_release="bookworm", digest="0" * 64,
                                   packages="\nlibc6\n")
    AptPath.objects.create(release="bookworm", kind="header", name="lber.h",
                           path="usr/include/lber.h", packages="libldap-dev")
    version = make_version(make_project("python-ldap"), "3.4.4")
    job = make_build(version, state=Build.State.QUEUED)
    assert queue.claim(pi, "cp311", job.created).id == job.id
    build = publish.finish(job.id, pi, False, 75.0,
                           (LOGS / "python-ldap-3.4.4.log").read_text(),
                           "pip wheel exited with status 1")
    build.refresh_from_db()
    return build


def test_a_failed_projects_page_names_the_cause_and_the_fix_and_offers_no_install(client,
                                                                                 ldap):
    page = client.get("/project/python-ldap/").content.decode()
    assert "needs libldap-dev on the builders (lber.h is missing)" in page
    assert "waiting for libldap-dev" in page
    assert "pip3 install" not in page
    assert "/simple/python-ldap/" not in page  # the index has no page for it: a 404
    assert client.get("/simple/python-ldap/").status_code == 404
    assert "nothing to install from this index" in page


def test_the_project_json_carries_cause_and_apt(client, ldap):
    data = client.get("/project/python-ldap/json/").json()
    (cell,) = data["versions"][0]["builds"]
    assert (cell["state"], cell["cause"], cell["cause_detail"], cell["apt"]) == (
        "failed", "missing-header", "lber.h", "libldap-dev")
    assert cell["waiting_for"] == "libldap-dev"
    assert cell["fix"] == "needs libldap-dev on the builders (lber.h is missing)"
    assert data["install"] == "" and data["index_url"] == ""


def test_a_built_project_keeps_its_install_line_and_index_link(client, data_dir):
    version = make_version(make_project("six"), "1.16.0")
    make_file(make_build(version), "six-1.16.0-py2.py3-none-any.whl")
    page = client.get("/project/six/").content.decode()
    assert "pip3 install --extra-index-url http://testserver/simple/ six" in page
    assert 'href="/simple/six/"' in page


def test_a_long_failure_reason_is_shown_whole(client, db):
    reason = "src/a.c:10:5: error: " + "very long explanation " * 10
    version = make_version(make_project("longfail"), "1.0")
    make_build(version, state=Build.State.FAILED, failure_reason=reason.strip(),
               output="x\n")
    page = client.get("/project/longfail/").content.decode()
    assert page.count(reason.strip()) >= 1


def test_the_log_page_opens_with_what_failed_and_why(client, ldap, django_assert_num_queries):
    with django_assert_num_queries(3):  # the build and its relations, its log, its release
        response = client.get(f"/logs/{ldap.id}/", **HTML)
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    for text in ("python-ldap", "3.4.4", "cp311", "bookworm", "pi1", "1m 15s", "failed",
                 "missing-header", "needs libldap-dev on the builders (lber.h is missing)",
                 'href="/project/python-ldap/"'):
        assert text in page, text
    excerpt = page.split('<pre class="log excerpt">')[1].split("</pre>")[0]
    assert "fatal error: lber.h: No such file or directory" in excerpt
    # the lines around it, not the whole log
    assert len(excerpt.splitlines()) <= 2 * 6 + 1
    assert "ERROR: Failed to build one or more wheels" not in excerpt
    assert "Collecting python-ldap==3.4.4" in page.split('<pre class="log">')[1]


def test_the_log_stays_plain_text_for_scripts(client, ldap):
    response = client.get(f"/logs/{ldap.id}/")
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content.decode() == (LOGS / "python-ldap-3.4.4.log").read_text()


def test_failures_lists_causes_by_count_and_packages_by_builds_fixed(client, ldap):
    pi = ldap.builder
    for name, cause, detail, package in (
        ("pycairo", "missing-pkgconfig", "cairo", "libcairo2-dev"),
        ("cairocffi", "missing-pkgconfig", "cairo", "libcairo2-dev"),
        ("yarl", "python-unsupported", "longintrepr.h", ""),
    ):
        make_build(make_version(make_project(name), "1.0"), state=Build.State.FAILED,
                   builder=pi, cause=cause, cause_detail=detail, apt=package,
                   waiting_for=package)
    page = client.get("/failures/").content.decode()
    assert page.index("libcairo2-dev") < page.index("libldap-dev")  # 2 builds before 1
    assert "<td><code>libcairo2-dev</code></td><td>2</td><td>cp311 armv7l on bookworm</td>" in page
    causes = page.split("<h2>Causes</h2>")[1]
    assert causes.index("missing-pkgconfig") < causes.index("missing-header")
    assert "<td><code>missing-header</code></td><td>a C header is missing</td><td>1</td>" in (
        causes)


def test_the_admin_lists_causes_and_packages_to_install(admin_client, ldap):
    page = admin_client.get("/admin/builds/build/").content.decode()
    assert "missing-header (1)" in page
    assert "libldap-dev (1 builds: cp311 armv7l on bookworm)" in page
    waiting = admin_client.get("/admin/builds/build/", {"waiting_for": "libldap-dev"})
    assert waiting.context["cl"].result_count == 1
    assert admin_client.get("/admin/builds/builderpackages/").status_code == 200
