"""The admin: lists that stay cheap, and the actions, each logged with who and when."""
import re

import pytest
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.contrib.auth.models import Permission, User

from builds import storage
from builds.models import Build, Builder, File, hash_token
from builds.queue import refresh_jobs
from packages.models import Project, Retry, Version
from tests.factories import (
    make_abi,
    make_build,
    make_builder,
    make_file,
    make_project,
    make_version,
)


@pytest.fixture
def catalogue():
    make_abi("cp39")
    make_abi("cp311")
    project = make_project("numpy")
    for v in ["1.0", "2.0"]:
        make_version(project, v)
    return project


def act(client, url, action, objs, **data):
    return client.post(url, {"action": action, "_selected_action": [o.pk for o in objs],
                             **data})


def logged(obj):
    return list(LogEntry.objects.filter(object_id=str(obj.pk)).values_list(
        "user__username", "action_flag", "change_message"))


@pytest.mark.django_db
@pytest.mark.parametrize("url", [
    "/admin/packages/project/", "/admin/packages/version/", "/admin/builds/build/",
    "/admin/builds/file/", "/admin/builds/abi/", "/admin/builds/builder/",
])
def test_admin_lists_open_for_staff(admin_client, catalogue, url):
    version = catalogue.versions.get(version="1.0")
    make_file(make_build(version, "cp311", output="hello"))
    make_builder("pi1")
    response = admin_client.get(url)
    assert response.status_code == 200
    response = admin_client.get(url, {"q": "numpy"})
    assert response.status_code == 200


@pytest.mark.django_db
def test_project_search_is_by_normalised_prefix(admin_client, catalogue):
    make_project("numba")
    make_project("pandas")
    response = admin_client.get("/admin/packages/project/", {"q": "NUM"})
    names = sorted(p.name for p in response.context["cl"].result_list)
    assert names == ["numba", "numpy"]


@pytest.mark.django_db
def test_build_search_by_id_and_by_project_version(admin_client, catalogue):
    build = make_build(catalogue.versions.get(version="2.0"), "cp39")
    make_build(catalogue.versions.get(version="1.0"), "cp39")
    response = admin_client.get("/admin/builds/build/", {"q": str(build.id)})
    assert [b.id for b in response.context["cl"].result_list] == [build.id]
    response = admin_client.get("/admin/builds/build/", {"q": "NumPy 2.0"})
    assert [b.id for b in response.context["cl"].result_list] == [build.id]


@pytest.mark.django_db
def test_build_page_shows_the_end_of_its_log(admin_client, catalogue):
    build = make_build(catalogue.versions.get(version="1.0"), output="x" * 6000 + "THE END")
    response = admin_client.get(f"/admin/builds/build/{build.id}/change/")
    text = response.content.decode()
    assert f'href="/logs/{build.id}/"' in text
    assert "THE END" in text


@pytest.mark.django_db
def test_rebuild_versions_for_one_abi_asks_then_queues(admin_client, admin_user, catalogue):
    version = catalogue.versions.get(version="1.0")
    make_build(version, "cp311", state=Build.State.FAILED)
    url = "/admin/packages/version/"
    response = act(admin_client, url, "rebuild", [version])
    assert response.status_code == 200
    assert "every active ABI" in response.content.decode()
    assert Build.objects.filter(state="queued").count() == 0

    response = act(admin_client, url, "rebuild", [version], abi="cp311", apply="1")
    assert response.status_code == 302
    queued = Build.objects.get(state="queued")
    assert (queued.version, queued.abi.tag, queued.priority, queued.requested_by) == (
        version, "cp311", Build.Priority.REQUESTED, "admin")
    assert logged(version) == [("admin", CHANGE, "Rebuild requested for cp311")]


@pytest.mark.django_db
def test_rebuild_whole_project_for_every_abi(admin_client, catalogue):
    response = act(admin_client, "/admin/packages/project/", "rebuild", [catalogue],
                   abi="", apply="1")
    assert response.status_code == 302
    assert sorted(Build.objects.values_list("version__version", "abi__tag")) == [
        ("1.0", "cp311"), ("1.0", "cp39"), ("2.0", "cp311"), ("2.0", "cp39")]
    assert logged(catalogue) == [("admin", CHANGE, "Rebuild requested for every active ABI")]


@pytest.mark.django_db
def test_skip_versions_needs_a_reason_and_drops_their_queue(admin_client, catalogue):
    version = catalogue.versions.get(version="2.0")
    make_build(version, "cp311", state=Build.State.QUEUED)
    url = "/admin/packages/version/"
    response = act(admin_client, url, "skip", [version], reason="", apply="1")
    assert response.status_code == 200  # the form again: a reason is required
    assert Version.objects.get(id=version.id).skip_reason == ""

    response = act(admin_client, url, "skip", [version], reason="needs CUDA", apply="1")
    assert response.status_code == 302
    assert Version.objects.get(id=version.id).skip_reason == "needs CUDA"
    assert not Build.objects.filter(version=version).exists()
    assert logged(version) == [("admin", CHANGE, "Skipped: needs CUDA")]

    response = act(admin_client, url, "unskip", [version])
    assert response.status_code == 302
    assert Version.objects.get(id=version.id).skip_reason == ""
    assert sorted(Build.objects.filter(version=version).values_list("abi__tag", "state")) == [
        ("cp311", "queued"), ("cp39", "queued")]
    assert logged(version)[0] == ("admin", CHANGE, "Unskipped")


@pytest.mark.django_db
def test_skip_project(admin_client, catalogue):
    refresh_jobs(catalogue.versions.values_list("id", flat=True))
    assert Build.objects.count() == 4
    response = act(admin_client, "/admin/packages/project/", "skip", [catalogue],
                   reason="licence forbids", apply="1")
    assert response.status_code == 302
    assert Project.objects.get(id=catalogue.id).skip_reason == "licence forbids"
    assert Build.objects.count() == 0
    assert logged(catalogue) == [("admin", CHANGE, "Skipped: licence forbids")]


@pytest.mark.django_db
def test_delete_build_removes_its_files(admin_client, catalogue, settings, tmp_path,
                                       django_capture_on_commit_callbacks):
    settings.PIWHEELS_DATA_DIR = tmp_path
    build = make_build(catalogue.versions.get(version="1.0"), "cp311", output="log")
    wheel = make_file(build)
    path = storage.file_path("numpy", wheel.filename)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"wheel")
    serial = catalogue.index_serial
    with django_capture_on_commit_callbacks(execute=True):
        response = act(admin_client, "/admin/builds/build/", "delete_selected", [build],
                       post="yes")
    assert response.status_code == 302
    assert not Build.objects.filter(id=build.id).exists()
    assert not File.objects.exists()
    assert not path.exists()
    assert Project.objects.get(id=catalogue.id).index_serial > serial
    assert LogEntry.objects.get(object_id=str(build.id)).action_flag == DELETION


@pytest.mark.django_db
def test_disable_builder_requeues_the_jobs_it_holds(admin_client):
    builder = make_builder("pi1")
    other = make_builder("pi2")
    version = make_version(make_project("foo"), "1.0")
    held = make_build(version, "cp311", state=Build.State.BUILDING, builder=builder,
                      attempt=1)
    kept = make_build(make_version(version.project, "2.0"), "cp311",
                      state=Build.State.BUILDING, builder=other, attempt=1)
    response = act(admin_client, "/admin/builds/builder/", "disable", [builder])
    assert response.status_code == 302
    assert Builder.objects.get(id=builder.id).enabled is False
    assert logged(builder) == [("admin", CHANGE, "Disabled")]
    held.refresh_from_db()
    assert (held.state, held.builder_id, held.attempt) == (Build.State.QUEUED, None, 0)
    kept.refresh_from_db()
    assert (kept.state, kept.builder_id) == (Build.State.BUILDING, other.id)
    assert "1 jobs they held requeued" in admin_client.get(response["Location"]).content.decode()


@pytest.mark.django_db
def test_rotate_token_shows_the_new_token_once(admin_client):
    builder = make_builder("pi1")
    response = act(admin_client, "/admin/builds/builder/", "rotate_token", [builder])
    assert response.status_code == 302
    page = admin_client.get(response["Location"]).content.decode()
    token = page.split("API token of pi1 (shown only now): ")[1].split("<")[0].strip()
    assert len(token) >= 40
    assert Builder.objects.get(id=builder.id).token_hash == hash_token(token)
    assert hash_token(builder.token) != hash_token(token)
    assert token not in admin_client.get("/admin/builds/builder/").content.decode()
    assert logged(builder) == [("admin", CHANGE, "Rotated the API token")]


@pytest.mark.django_db
def test_adding_a_builder_generates_its_token(admin_client):
    response = admin_client.post("/admin/builds/builder/add/", {"name": "pi9", "enabled": "on"},
                                 follow=True)
    assert response.status_code == 200
    text = response.content.decode()
    token = text.split("API token of pi9 (shown only now): ")[1].split("<")[0].strip()
    assert Builder.objects.get(name="pi9").token_hash == hash_token(token)


@pytest.mark.django_db
def test_non_staff_user_cannot_act(client, catalogue):
    user = User.objects.create_user("mallory", password="x")
    client.force_login(user)
    builder = make_builder("pi1")
    response = act(client, "/admin/builds/builder/", "disable", [builder])
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    assert Builder.objects.get(id=builder.id).enabled is True
    assert not LogEntry.objects.exists()


@pytest.mark.django_db
def test_staff_without_change_permission_cannot_act(client, catalogue):
    user = User.objects.create_user("viewer", password="x", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_version"))
    client.force_login(user)
    version = catalogue.versions.get(version="1.0")
    response = client.get("/admin/packages/version/")
    assert response.status_code == 200
    assert response.context["action_form"] is None  # no action offered at all
    act(client, "/admin/packages/version/", "rebuild", [version], abi="", apply="1")
    assert not Build.objects.exists()
    assert not LogEntry.objects.exists()


@pytest.mark.django_db
def test_paginator_estimates_big_tables_and_bounds_filtered_counts(
        catalogue, monkeypatch, django_assert_num_queries):
    from django.db import connection

    from builds import admin as farm_admin
    from lib.counts import table_estimate
    with connection.cursor() as c:
        c.execute("ANALYZE packages_version")
    estimate = table_estimate(connection, Version._meta.db_table)
    assert estimate >= 0
    monkeypatch.setattr(farm_admin, "EXACT_COUNT_BELOW", 0)  # every table counts as big
    paginator = farm_admin.EstimatedCountPaginator(Version.objects.order_by("id"), 50)
    with django_assert_num_queries(1) as captured:
        assert paginator.count == estimate
    assert "pg_class" in captured.captured_queries[0]["sql"]
    monkeypatch.setattr(farm_admin, "COUNT_BOUND", 1)
    paginator = farm_admin.EstimatedCountPaginator(
        Version.objects.filter(yanked=False).order_by("id"), 50)
    with django_assert_num_queries(1) as captured:
        assert paginator.count == 1  # two rows match; the count stops at the bound
    assert "LIMIT 1" in captured.captured_queries[0]["sql"]


@pytest.mark.django_db
def test_projects_the_sync_could_not_fetch_are_listed(admin_client):
    Retry.objects.create(normalized_name="foo", name="Foo", reason="HTTP 503", attempts=4)
    page = admin_client.get("/admin/packages/retry/").content.decode()
    assert "Foo" in page and "HTTP 503" in page


@pytest.mark.django_db
def test_admin_says_piwheels_retries_and_shows_why_builds_failed(admin_client, catalogue):
    text = admin_client.get("/admin/").content.decode()
    assert "Django administration" not in text
    assert "piwheels farm administration" in text
    assert "Retries" in text and "Retrys" not in text
    version = Version.objects.first()
    make_build(version, "cp39", state=Build.State.FAILED, cause="missing-header",
               cause_detail="zlib.h", failure_reason="compiler error: zlib.h not found")
    text = admin_client.get("/admin/builds/build/").content.decode()
    assert "zlib.h · compiler error: zlib.h not found" in text
    # few columns, so that "why" fits at 1280 px
    head = text.split('<table id="result_list">')[1].split("</thead>")[0]
    columns = re.findall(r'class="[^"]*column-(\w+)', head)
    assert columns == ["id", "version", "abi", "arch", "state", "finished", "cause", "why"]
