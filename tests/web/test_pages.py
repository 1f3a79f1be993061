"""The pages for people: home, project (HTML and JSON), unknown projects, logs, search."""
import gzip
import re
from datetime import UTC, datetime

import pytest
from django.core.cache import cache
from django.db import transaction

from builds.models import Build
from builds.publish import keep_log
from tests.factories import (
    make_abi,
    make_build,
    make_builder,
    make_file,
    make_project,
    make_version,
)


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()


@pytest.mark.django_db
def test_the_wheel_matrix_has_a_column_for_each_architecture_with_a_wheel(client):
    version = make_version(make_project("baz"), "1.0")
    build = make_build(version, "cp311", os_release="bookworm", glibc="2.36")
    make_file(build, "baz-1.0-cp311-cp311-manylinux_2_36_aarch64.whl", os_release="bookworm",
              glibc="2.36")
    make_file(build, "baz-1.0-cp311-cp311-manylinux_2_36_x86_64.whl", os_release="bookworm",
              glibc="2.36", content=b"pc")
    wheels = client.get("/project/baz/").context["project"]["wheels"]
    assert [a["arch"] for a in wheels["arches"]] == ["aarch64", "x86_64"]
    assert [[c and c["version"] for c in r["cells"]] for r in wheels["rows"]] == [["1.0", "1.0"]]


@pytest.fixture
def foo():
    """foo with one version in each state the project page shows."""
    make_abi("cp39")
    make_abi("cp311")
    make_abi("cp37", active=False)
    project = make_project("Foo_Bar", summary="A test project")
    when = datetime(2024, 3, 1, tzinfo=UTC)
    built = make_version(project, "1.0", released=when)
    build = make_build(built, "cp311", output="building...\nok\n")
    make_file(build, dependencies=["libfoo1", "libbar2"], downloads=7, content=b"x" * 2048)
    failed = make_version(project, "1.1", released=when)
    make_build(failed, "cp311", state=Build.State.FAILED,
               failure_reason="missing header: zlib.h", output="gcc: zlib.h not found\n")
    pending = make_version(project, "2.0rc1", released=when)
    make_build(pending, "cp311", state=Build.State.QUEUED)
    make_version(project, "0.9", skip_reason="needs a GPU")
    make_version(project, "0.8", yanked=True, yanked_reason="broken metadata")
    make_version(project, "0.7", has_sdist=False)
    make_version(project, "0.1", removed=True)
    return project


def cells(data, version):
    row = next(v for v in data["versions"] if v["version"] == version)
    return {c["abi"]: c for c in row["builds"]}


@pytest.mark.django_db
def test_home_page_says_how_to_use_the_index_and_shows_totals(client, foo):
    response = client.get("/")
    assert response.status_code == 200
    text = response.content.decode()
    assert "[global]\nextra-index-url=http://testserver/simple/" in text
    totals = response.context["totals"]
    assert totals["projects"] == 1
    assert totals["versions"] == 7
    assert (totals["builds_ok"], totals["builds_failed"], totals["queued"]) == (1, 1, 1)


@pytest.mark.django_db
def test_home_totals_are_cached_for_a_minute(client, foo, django_assert_num_queries):
    client.get("/")
    make_project("another")
    with django_assert_num_queries(1):  # the change stamp of the builds
        response = client.get("/")
    assert response.context["totals"]["projects"] == 1


@pytest.mark.django_db
def test_project_page_redirects_other_spellings(client, foo):
    response = client.get("/project/Foo_Bar/")
    assert response.status_code == 301
    assert response["Location"] == "/project/foo-bar/"
    response = client.get("/project/FOO.bar/json/")
    assert response.status_code == 301
    assert response["Location"] == "/project/foo-bar/json/"


@pytest.mark.django_db
def test_project_page_shows_each_build_state(client, foo):
    response = client.get("/project/foo-bar/")
    assert response.status_code == 200
    text = response.content.decode()
    data = response.context["project"]
    assert data["abis"] == ["cp39", "cp311"]  # active ABIs, in version order
    # newest first, removed versions hidden, PEP 440 order
    assert [v["version"] for v in data["versions"]] == ["2.0rc1", "1.1", "1.0", "0.9", "0.8", "0.7"]
    built = Build.objects.get(version__version="1.0")
    failed = Build.objects.get(version__version="1.1")
    assert cells(data, "1.0")["cp311"]["state"] == "built"
    assert cells(data, "1.0")["cp39"]["state"] == "pending"  # not queued yet
    assert cells(data, "1.1")["cp311"]["state"] == "failed"
    assert cells(data, "2.0rc1")["cp311"]["label"] == "queued"
    assert cells(data, "0.9")["cp311"] == {**cells(data, "0.9")["cp311"],
                                           "state": "skipped", "detail": "needs a GPU"}
    assert cells(data, "0.8")["cp39"]["state"] == "yanked"
    assert cells(data, "0.7")["cp39"]["detail"] == "no source distribution"
    # links to the logs, the failure reason, yank reason, dates, install lines
    assert f'href="/logs/{built.id}/"' in text
    assert f'href="/logs/{failed.id}/"' in text
    assert "missing header: zlib.h" in text
    assert "Yanked: broken metadata" in text
    assert "Skipped: needs a GPU" in text
    assert "released 2024-03-01" in text
    # the install line names the farm's index, which pip does not read on its own
    assert "pip3 install --extra-index-url http://testserver/simple/ Foo_Bar" in text
    assert "extra-index-url=http://testserver/simple/" in text
    assert "sudo apt install libbar2 libfoo1" in text
    assert ">0.1<" not in text
    # each version once, newest first, the newest unfolded; "queued" as in the legend
    assert re.findall(r'<details class="version" id="v-([^"]+)"', text) == [
        "2.0rc1", "1.1", "1.0", "0.9", "0.8", "0.7"]
    assert text.count("<details class=\"version\" id=\"v-2.0rc1\" open>") == 1
    assert text.count(" open>") == 1
    assert '<span class="state pending">queued</span>' in text  # the legend
    assert "cp311 queued" in text  # the version's chip
    assert "No files." not in text and "pending</span>" not in text


@pytest.mark.django_db
def test_project_page_lists_files_with_size_hash_and_downloads(client, foo):
    text = client.get("/project/foo-bar/").content.decode()
    filename = "foo_bar-1.0-cp311-cp311-linux_armv7l.whl"
    assert f'href="/files/foo-bar/{filename}"' in text
    assert "2.0\xa0KB" in text
    assert "7 downloads" in text
    sha = re.search(r"sha256 ([0-9a-f]{64})", text).group(1)
    assert sha == Build.objects.get(version__version="1.0").files.get().sha256


@pytest.mark.django_db
def test_project_page_shows_a_pending_rebuild_beside_the_built_files(client, foo):
    version = foo.versions.get(version="1.0")
    rebuild = make_build(version, "cp311", state=Build.State.QUEUED, requested_by="alice")
    data = client.get("/project/foo-bar/").context["project"]
    cell = cells(data, "1.0")["cp311"]
    assert (cell["state"], cell["label"], cell["build_id"]) == (
        "built", "built, rebuild pending", rebuild.id)
    assert [h["build_state"] for h in cell["history"]] == ["succeeded"]
    assert data["versions"][2]["files"]  # the old wheel is still listed


@pytest.mark.django_db
def test_project_page_names_the_builder_of_a_running_build(client, foo):
    builder = make_builder("pi7", abi="cp39")
    make_build(foo.versions.get(version="1.0"), "cp39", state=Build.State.BUILDING,
               builder=builder)
    text = client.get("/project/foo-bar/").content.decode()
    assert re.search(r">building</(a|span)> on pi7", text)


@pytest.mark.django_db
def test_project_page_query_count_is_fixed(client, foo, django_assert_num_queries):
    make_builder("pi7", abi="cp39")
    for n in range(5):
        version = make_version(foo, f"3.{n}")
        make_file(make_build(version, "cp39", builder=make_builder(f"b{n}", abi=None),
                             output="log"))
    # project, ABIs, versions, builds (+ has log), files, builder names, recent downloads
    with django_assert_num_queries(7):
        response = client.get("/project/foo-bar/")
    assert response.status_code == 200
    assert len(response.context["project"]["versions"]) == 11


@pytest.mark.django_db
def test_project_json_has_the_same_data(client, foo):
    response = client.get("/project/foo-bar/json/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    data = response.json()
    assert data["name"] == "Foo_Bar"
    assert data["install"] == "pip3 install Foo_Bar"
    assert data["apt_install"] == "sudo apt install libbar2 libfoo1"
    assert data["abis"] == ["cp39", "cp311"]
    v10 = next(v for v in data["versions"] if v["version"] == "1.0")
    assert v10["released"] == "2024-03-01T00:00:00Z"
    (f,) = v10["files"]
    assert (f["size"], f["downloads"], f["url"]) == (
        2048, 7, "/files/foo-bar/foo_bar-1.0-cp311-cp311-linux_armv7l.whl")
    assert cells(data, "1.1")["cp311"]["failure_reason"] == "missing header: zlib.h"
    assert cells(data, "0.8")["cp39"]["detail"] == "broken metadata"


@pytest.mark.django_db
def test_unknown_project_suggests_close_names(client):
    for name in ["numpy", "numba", "numpy-quaternion", "pandas", "nose"]:
        make_project(name)
    response = client.get("/project/nmupy/")
    assert response.status_code == 404
    assert "numpy" in response.context["suggestions"]
    assert "pandas" not in response.context["suggestions"]
    assert 'href="/project/numpy/"' in response.content.decode()
    response = client.get("/project/nump/json/")
    assert response.status_code == 404
    assert response.json()["suggestions"][0] == "numpy"


@pytest.mark.django_db
def test_unknown_project_without_neighbours_says_so(client):
    response = client.get("/project/zzzz/")
    assert response.status_code == 404
    assert "No project has a similar name" in response.content.decode()


@pytest.mark.django_db
def test_log_is_served_as_plain_text(client, foo):
    build = Build.objects.get(version__version="1.1")
    response = client.get(f"/logs/{build.id}/")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content == b"gcc: zlib.h not found\n"


@pytest.mark.django_db
def test_a_cut_log_is_shown_with_its_one_note_and_kept_whole(client, foo, data_dir,
                                                             settings):
    settings.PIWHEELS_MAX_LOG = 200
    build = Build.objects.get(version__version="1.1")
    output = "".join(f"line {i}\n" for i in range(100))
    with transaction.atomic():
        keep_log(build, output)  # as publish.finish keeps it
    text = client.get(f"/logs/{build.id}/").content.decode()
    assert text.startswith("line 0\n") and text.endswith("line 99\n")
    assert text.count("[farm: ") == 1 and "characters of this log left out here" in text
    response = client.get(f"/logs/{build.id}/whole.log.gz")
    assert response.status_code == 200 and response["Content-Type"] == "application/gzip"
    assert gzip.decompress(b"".join(response.streaming_content)).decode() == output


@pytest.mark.django_db
def test_log_of_build_without_output_is_404(client, foo):
    build = Build.objects.get(version__version="2.0rc1")
    assert client.get(f"/logs/{build.id}/").status_code == 404
    assert client.get("/logs/999999/").status_code == 404


@pytest.mark.django_db
def test_search_finds_by_prefix_with_the_exact_match_first(client):
    for name in ["Django", "django-rest-framework", "djangorestframework", "flask", "dj"]:
        make_project(name, summary=f"about {name}")
    response = client.get("/search/", {"q": "Django"})
    assert response.status_code == 200
    names = [r["name"] for r in response.context["results"]]
    assert names[0] == "Django"
    assert sorted(names) == ["Django", "django-rest-framework", "djangorestframework"]
    assert 'href="/project/django-rest-framework/"' in response.content.decode()


@pytest.mark.django_db
def test_search_is_limited_and_handles_no_match(client, django_assert_num_queries):
    for n in range(60):
        make_project(f"pkg{n:02d}")
    client.get("/search/", {"q": "p"})  # a process's first search asks once for pg_trgm
    with django_assert_num_queries(1):
        response = client.get("/search/", {"q": "pkg"})
    assert len(response.context["results"]) == 50
    assert 'href="?q=pkg&amp;page=2" rel="next"' in response.content.decode()
    response = client.get("/search/", {"q": "pkg", "page": "2"})
    assert [r["name"] for r in response.context["results"]] == [
        f"pkg{n:02d}" for n in range(50, 60)]
    assert 'rel="prev"' in response.content.decode()
    assert 'rel="next"' not in response.content.decode()
    response = client.get("/search/", {"q": "nothing-like-it"})
    assert "No project matches “nothing-like-it”" in response.content.decode()


@pytest.mark.django_db
def test_unknown_page_uses_the_site_404(client, settings):
    settings.DEBUG = False
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    assert "There is nothing at" in response.content.decode()


@pytest.mark.django_db
def test_project_page_shows_the_newest_versions_unless_asked_for_all(client):
    project = make_project("many")
    for n in range(55):
        make_version(project, f"1.{n}")
    response = client.get("/project/many/")
    shown = [v["version"] for v in response.context["versions"]]
    assert shown[0] == "1.54" and len(shown) == 50
    assert "Show all 55 versions" in response.content.decode()
    response = client.get("/project/many/", {"all": "1"})
    assert len(response.context["versions"]) == 55
    assert "Show all" not in response.content.decode()


@pytest.mark.django_db
def test_search_treats_like_wildcards_as_text(client):
    make_project("abc")
    make_project("axyz")
    response = client.get("/search/", {"q": "a%"})
    assert response.context["results"] == []
    response = client.get("/search/", {"q": "a_c"})  # "_" normalises to "-"
    assert response.context["results"] == []


@pytest.mark.django_db
def test_project_page_and_json_say_where_each_file_was_built_and_whether_armv6_gets_it(client):
    version = make_version(make_project("bar"), "1.0")
    build = make_build(version, "cp311", os_release="bookworm", glibc="2.36")
    make_file(build, "bar-1.0-cp311-cp311-manylinux_2_36_armv7l.whl", os_release="bookworm",
              glibc="2.36", armv6_compatible=True,
              armv6l_filename="bar-1.0-cp311-cp311-linux_armv6l.whl")
    make_file(build, "bar-1.0-cp311-cp311-manylinux_2_36_aarch64.whl", os_release="bookworm",
              glibc="2.36", content=b"other")
    neon = make_build(make_version(version.project, "2.0"), "cp311", os_release="bookworm",
                      glibc="2.36")
    make_file(neon, "bar-2.0-cp311-cp311-manylinux_2_36_armv7l.whl", os_release="bookworm",
              glibc="2.36", armv6_compatible=False)

    files = {f["filename"]: f for v in client.get("/project/bar/json/").json()["versions"]
             for f in v["files"]}
    assert {name: (f["os_release"], f["glibc"], f["armv6_compatible"], f["armv6l_filename"])
            for name, f in files.items()} == {
        "bar-1.0-cp311-cp311-manylinux_2_36_armv7l.whl":
            ("bookworm", "2.36", True, "bar-1.0-cp311-cp311-linux_armv6l.whl"),
        "bar-1.0-cp311-cp311-manylinux_2_36_aarch64.whl": ("bookworm", "2.36", None, ""),
        "bar-2.0-cp311-cp311-manylinux_2_36_armv7l.whl": ("bookworm", "2.36", False, ""),
    }
    text = client.get("/project/bar/").content.decode()
    assert text.count("built on bookworm (glibc 2.36)") == 3
    assert "also for ARMv6 (Pi Zero, Pi 1) as bar-1.0-cp311-cp311-linux_armv6l.whl" in text
    assert text.count("not for ARMv6: its code needs ARMv7") == 1


@pytest.fixture
def yaml_projects():
    """Projects a search for "yaml" should find, some with wheels and downloads."""
    make_abi("cp311")
    pyyaml = make_project("PyYAML", summary="YAML parser and emitter for Python",
                          downloads=5000)
    make_file(make_build(make_version(pyyaml, "6.0.1"), "cp311"), downloads=5000)
    make_project("yamllint", summary="A linter for YAML files")
    ruamel = make_project("ruamel.yaml", summary="ruamel.yaml is a YAML parser/emitter",
                          downloads=10)
    make_file(make_build(make_version(ruamel, "0.18"), "cp311"), downloads=10)
    make_project("yaml-unbuilt", summary="")
    make_project("flask", summary="A simple framework for building web applications")


@pytest.mark.django_db
def test_search_finds_names_and_summaries_with_wheels_and_downloads_first(client,
                                                                          yaml_projects):
    response = client.get("/search/", {"q": "yaml"})
    names = [r["name"] for r in response.context["results"]]
    # the names containing it, built and most downloaded first; then the summaries
    assert names[:2] == ["PyYAML", "ruamel.yaml"]
    assert set(names) == {"PyYAML", "ruamel.yaml", "yaml-unbuilt", "yamllint"}
    assert [r["has_wheels"] for r in response.context["results"]][:2] == [True, True]
    text = response.content.decode()
    assert "5,000 downloads" in text and '<span class="state built">wheels</span>' in text
    # a typo finds it too; an exact name comes first whatever the downloads
    assert client.get("/search/", {"q": "pyyml"}).context["results"][0]["name"] == "PyYAML"
    assert client.get("/search/", {"q": "yamllint"}).context["results"][0]["exact"]


@pytest.mark.django_db
def test_search_json_ranks_as_the_page_does(client, yaml_projects):
    page = [r["name"] for r in client.get("/search/", {"q": "yaml"}).context["results"]]
    response = client.get("/search/json/", {"q": "yaml"})
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    data = response.json()
    assert [r["name"] for r in data["results"]] == page
    assert data["results"][0] == {
        "name": "PyYAML", "normalized_name": "pyyaml",
        "summary": "YAML parser and emitter for Python", "url": "/project/pyyaml/",
        "downloads": 5000, "has_wheels": True, "exact": False}
    assert (data["page"], data["has_next"]) == (1, False)
    assert client.get("/search/json/", {"q": " "}).json()["results"] == []


@pytest.mark.django_db
def test_a_blank_search_shows_the_most_downloaded_projects(client, yaml_projects):
    for query in ({}, {"q": ""}, {"q": "  "}):
        response = client.get("/search/", query)
        assert response.status_code == 200
        text = response.content.decode()
        assert "starts with" not in text and "No project matches" not in text
        assert [r["name"] for r in response.context["popular"]] == ["PyYAML", "ruamel.yaml"]
        assert "5,000 downloads" in text


@pytest.mark.django_db
def test_unknown_project_suggests_similar_names_not_unrelated_ones(client):
    for name in ["markupsafe", "dowse-context", "marko", "markdown", "mark"]:
        make_project(name)
    suggestions = client.get("/project/markupsfe/").context["suggestions"]
    assert suggestions[0] == "markupsafe"
    assert "dowse-context" not in suggestions


@pytest.mark.django_db
def test_each_file_says_whether_it_needs_system_packages(client):
    project = make_project("yamly")
    build = make_build(make_version(project, "1.0"), "cp311")
    make_file(build, "yamly-1.0-cp311-cp311-manylinux_2_36_armv7l.whl",
              dependencies=["libgcc-s1", "libstdc++6"])  # every Debian has these
    old = make_build(make_version(project, "0.9"), "cp311")
    make_file(old, "yamly-0.9-cp311-cp311-linux_armv7l.whl",
              dependencies=["libc6", "libyaml-0-2"])
    data = client.get("/project/yamly/json/").json()
    files = {f["filename"]: f for v in data["versions"] for f in v["files"]}
    portable = files["yamly-1.0-cp311-cp311-manylinux_2_36_armv7l.whl"]
    assert (portable["needs_system_packages"], portable["system_packages"],
            portable["apt_install"]) == (False, [], "")
    linked = files["yamly-0.9-cp311-cp311-linux_armv7l.whl"]
    assert (linked["needs_system_packages"], linked["system_packages"],
            linked["apt_install"]) == (True, ["libyaml-0-2"], "sudo apt install libyaml-0-2")
    assert data["apt_install"] == "sudo apt install libyaml-0-2"
    page = client.get("/project/yamly/").content.decode()
    assert page.count("needs no system packages") == 1
    assert "needs system packages: <code>sudo apt install libyaml-0-2</code>" in page


@pytest.mark.django_db
def test_no_apt_line_when_no_file_needs_one(client):
    project = make_project("plain")
    make_file(make_build(make_version(project, "1.0"), "cp311"),
              "plain-1.0-cp311-cp311-manylinux_2_36_armv7l.whl",
              dependencies=["libc6", "zlib1g", "libgcc-s1"])
    data = client.get("/project/plain/json/").json()
    assert data["apt_install"] == "" and data["dependencies"] == []
    assert "sudo apt install" not in client.get("/project/plain/").content.decode()
