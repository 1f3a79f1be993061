"""/simple/ and /simple/<name>/: negotiation, redirects, caching, conditional answers."""
import gzip
import json
import warnings
from urllib.parse import quote

import pytest
from django.test import Client
from pypi_simple import IndexPage, ProjectPage

from index import pages, rendering
from packages.models import Project
from tests.factories import make_project, make_version, wheel_archive
from tests.index.factories import publish

pytestmark = pytest.mark.django_db

JSON = "application/vnd.pypi.simple.v1+json"
V1_HTML = "application/vnd.pypi.simple.v1+html"
PIP_ACCEPT = f"{JSON}, {V1_HTML}; q=0.1, text/html; q=0.01"


@pytest.fixture
def foo(data_dir):
    project = make_project("foo")
    publish(make_version(project, "1.0"), wheel_archive("foo", "1.0"))
    yanked = make_version(project, "2.0", yanked=True, yanked_reason='"broken" <build>')
    publish(
        yanked,
        wheel_archive("foo", "2.0", "cp311-cp311-linux_armv7l", requires_python=">=3.9,<4"),
    )
    project.refresh_from_db()
    return project


@pytest.mark.parametrize(
    "accept, chosen",
    [
        (None, "text/html; charset=utf-8"),
        ("*/*", "text/html; charset=utf-8"),
        ("text/html", "text/html; charset=utf-8"),
        (PIP_ACCEPT, JSON),
        (f"{JSON}; q=0.2, {V1_HTML}; q=0.5", V1_HTML),
        (f"{V1_HTML}; q=0.5, {JSON}; q=0.5", V1_HTML),
        ("application/*", V1_HTML),
        (f"text/html; q=0.1, {JSON}", JSON),
        (f"*/*; q=0.1, {JSON}; q=0", "text/html; charset=utf-8"),
        (f"{JSON};q=1.0", JSON),
        # Django's negotiation reads a malformed q as 1 (the RFC leaves it undefined).
        (f"{JSON}; q=oops, text/html", JSON),
    ],
)
def test_detail_negotiates_the_media_type(client, foo, accept, chosen):
    headers = {"HTTP_ACCEPT": accept} if accept is not None else {}
    response = client.get("/simple/foo/", **headers)
    assert response.status_code == 200
    assert response["Content-Type"] == chosen
    assert response["Vary"] == "Accept, Accept-Encoding"
    if chosen == JSON:
        assert json.loads(response.content)["name"] == "foo"
    else:
        assert b"<h1>Links for foo</h1>" in response.content


@pytest.mark.parametrize("accept", ["application/json", "text/plain", f"{JSON}; q=0", "image/*"])
def test_detail_refuses_what_it_cannot_serve_with_406(client, foo, accept):
    response = client.get("/simple/foo/", HTTP_ACCEPT=accept)
    assert response.status_code == 406
    assert response["Vary"] == "Accept"


@pytest.mark.parametrize(
    "format_, chosen", [(JSON, JSON), (V1_HTML, V1_HTML), ("text/html", "text/html; charset=utf-8")]
)
def test_format_parameter_overrides_accept(client, foo, format_, chosen):
    response = client.get("/simple/foo/", {"format": format_}, HTTP_ACCEPT="text/plain")
    assert response.status_code == 200
    assert response["Content-Type"] == chosen


def test_unknown_format_parameter_is_406(client, foo):
    response = client.get("/simple/foo/", {"format": "application/json"})
    assert response.status_code == 406


@pytest.mark.parametrize(
    "path, location",
    [
        ("/simple/Foo/", "/simple/foo/"),
        ("/simple/foo", "/simple/foo/"),
        ("/simple/Foo.Bar_Baz", "/simple/foo-bar-baz/"),
        (f"/simple/FOO/?format={JSON}", f"/simple/foo/?format={JSON}"),
    ],
)
def test_non_normalised_names_and_missing_slash_redirect_permanently(client, foo, path, location):
    response = client.get(path)
    assert response.status_code == 301
    assert response["Location"] == location


def test_unknown_project_is_404_in_one_query(client, data_dir, django_assert_num_queries):
    with django_assert_num_queries(1):
        response = client.get("/simple/nonesuch/", HTTP_ACCEPT=PIP_ACCEPT)
    assert response.status_code == 404


def test_project_without_published_files_is_404(client, data_dir):
    make_project("empty", versions=["1.0"])
    assert client.get("/simple/empty/").status_code == 404


def test_html_page_marks_each_file(client, foo):
    html = client.get("/simple/foo/").content.decode()
    one = foo.versions.get(version="1.0").builds.get().files.get()
    two = foo.versions.get(version="2.0").builds.get().files.get()
    assert '<meta name="pypi:repository-version" content="1.4">' in html
    assert (
        f'<a href="/files/foo/{one.filename}#sha256={one.sha256}" '
        f'data-core-metadata="sha256={one.metadata_sha256}" '
        f'data-dist-info-metadata="sha256={one.metadata_sha256}">{one.filename}</a>'
    ) in html
    assert (
        f'<a href="/files/foo/{two.filename}#sha256={two.sha256}" '
        f'data-requires-python="&gt;=3.9,&lt;4" '
        f'data-core-metadata="sha256={two.metadata_sha256}" '
        f'data-dist-info-metadata="sha256={two.metadata_sha256}" '
        f'data-yanked="&quot;broken&quot; &lt;build&gt;">{two.filename}</a>'
    ) in html
    assert ">foo-2.0-cp311-cp311-linux_armv6l.whl</a>" in html


def test_pages_carry_etag_and_cache_control_and_answer_304(client, foo, django_assert_num_queries):
    first = client.get("/simple/foo/", HTTP_ACCEPT=PIP_ACCEPT)
    etag = first["ETag"]
    assert first["Cache-Control"] == "max-age=60, public, must-revalidate"
    assert client.get("/simple/foo/")["ETag"] != etag  # HTML is another representation

    with django_assert_num_queries(1):  # the project's index serial
        again = client.get("/simple/foo/", HTTP_ACCEPT=PIP_ACCEPT, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    assert again.content == b""
    assert again["ETag"] == etag
    assert again["Vary"] == "Accept, Accept-Encoding"
    assert again["Cache-Control"] == "max-age=60, public, must-revalidate"


def test_cached_page_costs_one_query_and_a_change_is_served_at_once(
    client, foo, django_assert_num_queries
):
    # The project's serial; its files (render); the serial its page files now have.
    with django_assert_num_queries(3):
        first = client.get("/simple/foo/", HTTP_ACCEPT=PIP_ACCEPT)
    with django_assert_num_queries(1):  # the project's serial; the page is cached
        assert client.get("/simple/foo/", HTTP_ACCEPT=PIP_ACCEPT).content == first.content

    publish(make_version(foo, "3.0"), wheel_archive("foo", "3.0"))  # a build completes

    changed = client.get("/simple/foo/", HTTP_ACCEPT=PIP_ACCEPT, HTTP_IF_NONE_MATCH=first["ETag"])
    assert changed.status_code == 200
    assert json.loads(changed.content)["versions"] == ["1.0", "2.0", "3.0"]
    assert changed["ETag"] != first["ETag"]


def test_yank_and_removal_show_once_touched(client, foo):
    version = foo.versions.get(version="1.0")
    version.yanked, version.yanked_reason = True, "oops"
    version.save()
    Project.objects.filter(pk=foo.pk).touch_index()  # as the sync does
    files = json.loads(client.get("/simple/foo/", HTTP_ACCEPT=JSON).content)["files"]
    assert files[0]["yanked"] == "oops"

    foo.versions.update(removed=True)
    Project.objects.filter(pk=foo.pk).touch_index()
    assert client.get("/simple/foo/", HTTP_ACCEPT=JSON).status_code == 404


def test_pypi_simple_parses_both_forms_without_warnings(client, foo):
    html = client.get("/simple/foo/", HTTP_ACCEPT=V1_HTML)
    js = client.get("/simple/foo/", HTTP_ACCEPT=JSON)
    root = client.get("/simple/", HTTP_ACCEPT="text/html")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pypi-simple warns on pages that bend the standard
        from_html = ProjectPage.from_html("foo", html.content.decode(), base_url="http://x/simple/foo/")
        from_json = ProjectPage.from_json_data(json.loads(js.content), base_url="http://x/simple/foo/")
        root_page = IndexPage.from_html(b"".join(root.streaming_content).decode())

    for page in (from_html, from_json):
        assert page.repository_version == "1.4"
        packages = {p.filename: p for p in page.packages}
        assert set(packages) == {
            "foo-1.0-py3-none-any.whl",
            "foo-2.0-cp311-cp311-linux_armv7l.whl",
            "foo-2.0-cp311-cp311-linux_armv6l.whl",
        }
        armv6l = packages["foo-2.0-cp311-cp311-linux_armv6l.whl"]
        assert armv6l.url == "http://x/files/foo/foo-2.0-cp311-cp311-linux_armv6l.whl"
        assert armv6l.requires_python == ">=3.9,<4"
        assert armv6l.is_yanked and armv6l.yanked_reason == '"broken" <build>'
        assert armv6l.has_metadata
        assert not packages["foo-1.0-py3-none-any.whl"].is_yanked
    assert from_json.versions == ["1.0", "2.0"]
    assert from_json.packages[0].size == len(wheel_archive("foo", "1.0").content)
    assert from_json.packages[0].upload_time is not None
    assert root_page.projects == ["foo"]


def test_root_is_gzip_for_gzip_clients_and_plain_for_others(client, foo, django_assert_num_queries):
    # the root serial; its writer did not run, so the highest index serial for the headers
    with django_assert_num_queries(2):
        zipped = client.get("/simple/", HTTP_ACCEPT_ENCODING="gzip, deflate")
    assert zipped["Content-Encoding"] == "gzip"
    assert zipped["Vary"] == "Accept-Encoding, Accept"
    assert not pages.root_is_current(rendering.root_serial())
    # the highest index serial and the project list, rendered while streamed
    with django_assert_num_queries(2):
        html = gzip.decompress(b"".join(zipped.streaming_content)).decode()
    assert '<a href="foo/">foo</a>' in html
    assert pages.root_stamp()[0] == rendering.root_serial()  # and written on the way
    assert pages.root_file("html").read_text() == html

    with django_assert_num_queries(1):  # the root serial: the files are current
        plain = client.get("/simple/", HTTP_ACCEPT=JSON)
    assert not plain.has_header("Content-Encoding")
    serial = Project.objects.get(name="foo").index_serial
    assert json.loads(b"".join(plain.streaming_content)) == {
        "meta": {"api-version": "1.4", "_last-serial": serial},
        "projects": [{"name": "foo", "_last-serial": serial}],
    }
    assert plain["X-PyPI-Last-Serial"] == zipped["X-PyPI-Last-Serial"] == str(serial)
    assert zipped["ETag"] != plain["ETag"]


def test_root_answers_304_and_moves_on_when_a_project_gains_files(client, foo):
    first = client.get("/simple/")
    assert first["Cache-Control"] == "max-age=60, public, must-revalidate"
    assert client.get("/simple/", HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304

    publish(make_version(make_project("bar"), "1.0"), wheel_archive("bar", "1.0"))

    fresh = client.get("/simple/", HTTP_IF_NONE_MATCH=first["ETag"])
    assert fresh.status_code == 200
    assert '<a href="bar/">bar</a>' in b"".join(fresh.streaming_content).decode()


def test_root_without_serial_row_is_an_empty_index(client, data_dir):
    response = client.get("/simple/", HTTP_ACCEPT=JSON)
    assert response.status_code == 200
    assert json.loads(b"".join(response.streaming_content))["projects"] == []
    assert pages.root_stamp()[0] == 0 and pages.root_file("json").exists()


def test_index_refuses_writes(client, foo):
    assert client.post("/simple/foo/").status_code == 405
    assert client.post("/simple/").status_code == 405


def wsgi_get(path, **environ):
    """GET PATH from the WSGI application gunicorn serves: (status, headers, body)."""
    from wsgiref.util import setup_testing_defaults

    from piwheels_site.wsgi import application

    path, _, query = path.partition("?")
    environ.update(PATH_INFO=path, QUERY_STRING=query, REQUEST_METHOD="GET",
                   SERVER_NAME="testserver")
    setup_testing_defaults(environ)
    answer = {}

    def start_response(status, headers):
        answer.update(status=status, headers=dict(headers))

    # The fast path checks the connection as Django's request signals do, which closes one
    # in a transaction: these tests run on transactional_db.
    body = b"".join(application(environ, start_response))
    return answer["status"], answer["headers"], body


@pytest.mark.parametrize("case", ["page", "not modified", "unknown project"])
@pytest.mark.parametrize("encoding", ["", "gzip, deflate"])
@pytest.mark.parametrize("accept", [PIP_ACCEPT, JSON, "text/html", "image/png"])
def test_the_wsgi_fast_path_answers_as_the_django_view_does(transactional_db, client, foo,
                                                           accept, encoding, case):
    request = {"HTTP_ACCEPT": accept, "HTTP_ACCEPT_ENCODING": encoding}
    path = "/simple/nonesuch/" if case == "unknown project" else "/simple/foo/"
    _, first, _ = wsgi_get(path, **request)  # both answer from the rendered page now
    if case == "not modified" and "ETag" in first:
        request["HTTP_IF_NONE_MATCH"] = first["ETag"]
    status, headers, body = wsgi_get(path, **request)
    django = client.get(path, **request)
    assert int(status.split()[0]) == django.status_code
    assert body == django.content
    assert headers.pop("Content-Length") == str(len(body))
    django_headers = dict(django.headers)
    django_headers.pop("Content-Length", None)
    assert headers == django_headers  # every header, the same values


def test_the_wsgi_fast_path_costs_one_query(transactional_db, foo, django_assert_num_queries):
    with django_assert_num_queries(1):  # the project's serial: its page files were written
        status, _, _ = wsgi_get("/simple/foo/", HTTP_ACCEPT=PIP_ACCEPT)  # at the commit
    assert status == "200 OK"
    with django_assert_num_queries(1):
        status, headers, _ = wsgi_get("/simple/foo/", HTTP_ACCEPT=PIP_ACCEPT)
    with django_assert_num_queries(1):
        status, _, body = wsgi_get("/simple/foo/", HTTP_ACCEPT=PIP_ACCEPT,
                                   HTTP_IF_NONE_MATCH=headers["ETag"])
    assert (status, body) == ("304 Not Modified", b"")
    with django_assert_num_queries(1):
        status, headers, _ = wsgi_get("/simple/nonesuch/", HTTP_ACCEPT=PIP_ACCEPT)
    assert status == "404 Not Found" and headers["Vary"] == "Accept"


@pytest.mark.parametrize("path, status", [
    ("/simple/Foo/", "301 Moved Permanently"),  # other spellings: Django redirects
    ("/simple/foo", "301 Moved Permanently"),
    (f"/simple/foo/?format={quote(JSON)}", "200 OK"),
    ("/simple/", "200 OK"),
])
def test_everything_else_goes_to_django(transactional_db, foo, path, status):
    assert wsgi_get(path, HTTP_ACCEPT=JSON)[0] == status


def test_other_pages_keep_sessions_csrf_and_auth(admin_user):
    client = Client(enforce_csrf_checks=True)
    login = client.get("/admin/login/")
    assert login.status_code == 200
    assert "csrftoken" in login.cookies
    refused = client.post("/admin/login/", {"username": "admin", "password": "password"})
    assert refused.status_code == 403  # no CSRF token
    token = login.cookies["csrftoken"].value
    client.post("/admin/login/", {"username": "admin", "password": "password",
                                  "csrfmiddlewaretoken": token})
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/")["X-Frame-Options"] == "DENY"


def test_head_takes_the_full_path_to_the_same_answer(client, foo):
    get = client.get("/simple/foo/", HTTP_ACCEPT=JSON)
    head = client.head("/simple/foo/", HTTP_ACCEPT=JSON)
    assert head.status_code == 200
    assert head["ETag"] == get["ETag"]
    assert head["Cache-Control"] == get["Cache-Control"]
    assert head.content == b""
    assert hasattr(head.wsgi_request, "session")  # went through every middleware


@pytest.mark.parametrize("etag", ["{}", "W/{}", '"other", {}', "*"])
def test_if_none_match_lists_and_weak_tags_answer_304(client, foo, etag):
    current = client.get("/simple/foo/", HTTP_ACCEPT=JSON)["ETag"]
    again = client.get("/simple/foo/", HTTP_ACCEPT=JSON, HTTP_IF_NONE_MATCH=etag.format(current))
    assert again.status_code == 304
    assert again["ETag"] == current


def test_unknown_project_404_is_not_logged_as_a_warning(client, data_dir, caplog):
    with caplog.at_level("WARNING", logger="django.request"):
        response = client.get("/simple/nonesuch/", HTTP_ACCEPT=PIP_ACCEPT)
    assert response.status_code == 404
    assert response["Vary"] == "Accept"
    assert caplog.records == []


def test_a_change_is_served_at_once_by_a_worker_holding_the_older_page(client, foo):
    old = client.get("/simple/foo/", HTTP_ACCEPT=JSON)  # now in memory and on disk
    publish(make_version(foo, "3.0"), wheel_archive("foo", "3.0"))
    new = client.get("/simple/foo/", HTTP_ACCEPT=JSON, HTTP_IF_NONE_MATCH=old["ETag"])
    assert new.status_code == 200
    assert json.loads(new.content)["versions"] == ["1.0", "2.0", "3.0"]


def test_pages_are_gzipped_for_clients_that_take_it(client, foo):
    plain = client.get("/simple/foo/", HTTP_ACCEPT=JSON)
    zipped = client.get("/simple/foo/", HTTP_ACCEPT=JSON, HTTP_ACCEPT_ENCODING="gzip, deflate")
    assert zipped["Content-Encoding"] == "gzip" and "Content-Encoding" not in plain
    assert gzip.decompress(zipped.content) == plain.content
    assert len(zipped.content) < len(plain.content)
    assert zipped["ETag"] != plain["ETag"]  # another representation
    assert zipped["Vary"] == plain["Vary"] == "Accept, Accept-Encoding"
    refused = client.get("/simple/foo/", HTTP_ACCEPT=JSON, HTTP_ACCEPT_ENCODING="gzip;q=0")
    assert "Content-Encoding" not in refused
    again = client.get("/simple/foo/", HTTP_ACCEPT=JSON, HTTP_ACCEPT_ENCODING="gzip",
                       HTTP_IF_NONE_MATCH=zipped["ETag"])
    assert again.status_code == 304


def test_a_404_for_a_known_project_with_nothing_waiting_costs_one_query(
        transactional_db, django_assert_num_queries):
    """pip with --extra-index-url asks for every dependency: most are known projects the
    farm serves nothing for, and their 404 must stay one query."""
    make_project("requests")  # its details are in (serial == upstream_serial)
    wsgi_get("/simple/requests/", HTTP_ACCEPT=PIP_ACCEPT)  # its (empty) page noted once
    with django_assert_num_queries(1):
        status, headers, _ = wsgi_get("/simple/requests/", HTTP_ACCEPT=PIP_ACCEPT)
    assert status == "404 Not Found"
    assert Project.objects.get(normalized_name="requests").demand == 0


def test_json_pages_carry_only_core_metadata_and_html_pages_both(transactional_db, client,
                                                                 foo):
    """PEP 714: pip 22.3 to 23.1 (Bookworm's 23.0.1) crash on a JSON `dist-info-metadata`,
    and pip before 23.2 reads only `data-dist-info-metadata` in HTML."""
    _, _, fast = wsgi_get("/simple/foo/", HTTP_ACCEPT=PIP_ACCEPT)
    django = client.get("/simple/foo/", HTTP_ACCEPT=JSON).content
    for body in (fast, django, (pages.project_dir("foo") / "index.json").read_bytes()):
        files = json.loads(body)["files"]
        assert files and all(f["core-metadata"]["sha256"] for f in files)
        assert b"dist-info-metadata" not in body
    html = client.get("/simple/foo/", HTTP_ACCEPT="text/html").content.decode()
    assert html.count("data-core-metadata=") == html.count("data-dist-info-metadata=") == 3


def test_a_copy_of_a_page_of_an_older_format_is_not_current(client, foo):
    """The ETag names the page format: a client that kept a page of format 1 (with
    `dist-info-metadata`) and revalidates it gets the page, not a 304."""
    old = f'"{foo.id}.{foo.index_serial}.json"'  # format 1's ETag of this very serial
    response = client.get("/simple/foo/", HTTP_ACCEPT=PIP_ACCEPT, HTTP_IF_NONE_MATCH=old)
    assert response.status_code == 200
    assert response["ETag"] == f'"{foo.id}.{foo.index_serial}.{rendering.PAGE_FORMAT}.json"'
    assert b"dist-info-metadata" not in response.content
