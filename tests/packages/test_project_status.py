"""Upstream's project status (PEP 792) through the sync, the index, the files and the
project page: the fake upstream over HTTP, the farm through Django's test client."""
import hashlib
import json

import pytest

from builds.models import Build
from packages.models import Project, ProjectStatus, Version
from packages.tasks import run_sync
from tests.factories import make_abi, wheel_archive
from tests.index.factories import publish

pytestmark = pytest.mark.django_db

JSON = "application/vnd.pypi.simple.v1+json"


@pytest.fixture
def foo(fake_pypi, data_dir, settings):
    """foo 1.0 and 2.0 upstream, synced, with a wheel of 1.0 published and 2.0 queued."""
    settings.PIWHEELS_SYNC_METHOD = "simple"
    make_abi("cp311")
    fake_pypi.add_release("foo", "1.0", summary="The foo")
    fake_pypi.add_release("foo", "2.0")
    run_sync()
    version = Version.objects.get(project__normalized_name="foo", version="1.0")
    Build.objects.filter(version=version).delete()
    return publish(version, wheel_archive("foo", "1.0"))


def page(client, name="foo", accept=JSON):
    return client.get(f"/simple/{name}/", HTTP_ACCEPT=accept)


def body(response):
    return (b"".join(response.streaming_content) if response.streaming
            else response.content)


def root_names(client):
    return [p["name"] for p in json.loads(body(client.get("/simple/", HTTP_ACCEPT=JSON)))
            ["projects"]]


def queued():
    return sorted(Build.objects.filter(state=Build.State.QUEUED)
                  .values_list("version__version", flat=True))


def test_a_quarantine_stops_serving_and_its_end_restores_the_project_exactly(
        client, fake_pypi, foo):
    before = page(client).content
    wheel_url = f"/files/foo/{foo.filename}"
    assert json.loads(before)["files"][0]["filename"] == foo.filename
    assert root_names(client) == ["foo"] and queued() == ["2.0"]

    fake_pypi.set_status("foo", "quarantined", "malware in setup.py")
    result, _, dropped = run_sync()
    assert result.status == "ok" and dropped == 1 and queued() == []
    assert result.status_changes == ["foo: quarantined"]
    assert "1 status changes (foo: quarantined); " in result.summary()
    project = Project.objects.get(normalized_name="foo")
    assert project.upstream_status == ProjectStatus.QUARANTINED
    assert project.upstream_status_reason == "malware in setup.py"
    # nothing deleted: versions, the build and its file are kept
    assert Version.objects.filter(project=project, removed=False).count() == 2
    assert foo.build.state == Build.State.SUCCEEDED and type(foo).objects.filter(id=foo.id).exists()

    quarantined = page(client)
    assert quarantined.status_code == 200
    listed = json.loads(quarantined.content)
    assert listed["project-status"] == {"status": "quarantined", "reason": "malware in setup.py"}
    assert listed["files"] == [] and listed["meta"]["api-version"] == "1.4"
    html = page(client, accept="text/html").content.decode()
    assert '<meta name="pypi:project-status" content="quarantined">' in html
    assert '<meta name="pypi:project-status-reason" content="malware in setup.py">' in html
    assert "foo-1.0" not in html
    assert root_names(client) == []
    for url in (wheel_url, wheel_url + ".metadata"):
        gone = client.get(url)
        assert gone.status_code == 410
        assert gone.content == b"foo is quarantined upstream (PEP 792): malware in setup.py\n"
    web = client.get("/project/foo/").content.decode()
    assert "Quarantined upstream: malware in setup.py" in web
    assert "pip3 install --extra-index-url" not in web and foo.filename not in web

    fake_pypi.set_status("foo", "active")
    result, queued_again, _ = run_sync()
    assert result.status == "ok" and queued_again == 1 and queued() == ["2.0"]
    assert page(client).content == before
    assert root_names(client) == ["foo"]
    served = client.get(wheel_url)
    assert served.status_code == 200
    assert hashlib.sha256(body(served)).hexdigest() == foo.sha256
    assert "Quarantined" not in client.get("/project/foo/").content.decode()


@pytest.mark.parametrize("status", ["archived", "deprecated"])
def test_archived_and_deprecated_are_shown_and_still_served(client, fake_pypi, foo, status):
    fake_pypi.set_status("foo", status, "see bar")
    run_sync()
    listed = json.loads(page(client).content)
    assert listed["project-status"] == {"status": status, "reason": "see bar"}
    assert [f["filename"] for f in listed["files"]] == [foo.filename]
    html = page(client, accept="text/html").content.decode()
    assert f'<meta name="pypi:project-status" content="{status}">' in html
    assert client.get(f"/files/foo/{foo.filename}").status_code == 200
    assert queued() == ["2.0"]  # still built
    web = client.get("/project/foo/").content.decode()
    assert f"{status.capitalize()} upstream" in web
    assert "pip3 install --extra-index-url http://testserver/simple/ foo" in web


def test_an_active_page_carries_no_status_marker(client, foo):
    listed = json.loads(page(client).content)
    assert "project-status" not in listed and listed["meta"] == {"api-version": "1.4"}
    assert "pypi:project-status" not in page(client, accept="text/html").content.decode()


def test_status_is_read_from_an_html_only_upstream_and_through_the_changelog(
        client, fake_pypi, foo, settings):
    fake_pypi.html_only = True  # the root and the project pages: PEP 503 HTML only
    settings.PIWHEELS_SYNC_METHOD = "xmlrpc"
    fake_pypi.set_status("foo", "quarantined", "ask <security@example.org>")
    result, _, _ = run_sync()
    assert result.method == "xmlrpc" and result.projects_fetched == 1
    project = Project.objects.get(normalized_name="foo")
    assert (project.upstream_status, project.upstream_status_reason) == (
        "quarantined", "ask <security@example.org>")
    assert client.get(f"/files/foo/{foo.filename}").status_code == 410


def test_a_quarantined_project_new_to_the_farm_is_known_but_not_built(client, fake_pypi, foo):
    fake_pypi.add_release("evil", "0.1")
    fake_pypi.set_status("evil", "quarantined")
    run_sync()
    evil = Project.objects.get(normalized_name="evil")
    assert evil.upstream_status == "quarantined" and not evil.versions.exists()
    assert fake_pypi.count("/pypi/evil/json") == 0  # its releases are not asked for
    assert page(client, "evil").status_code == 404  # nothing held back: no page
    assert queued() == ["2.0"]
