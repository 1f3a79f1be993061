"""What one project's detail fetch asks upstream: its simple page always, PyPI's JSON API
only for what the page cannot say (a file whose name does not tell its version) and, after
every waiting project's releases, for the summaries a new project or release may bring.
The fake upstream over HTTP, the sync through run_pass."""
import pytest

from packages.models import Project, Version
from packages.sync import add_package, run_pass
from packages.upstream import Upstream

pytestmark = pytest.mark.django_db


def asked(fake_pypi, name):
    return (fake_pypi.count(f"/simple/{name}/"), fake_pypi.count(f"/pypi/{name}/json"))


def versions(name):
    return {v.version: (v.yanked, v.yanked_reason, v.removed, v.has_sdist, v.requires_python,
                        v.upstream_wheels, v.released)
            for v in Version.objects.filter(project__normalized_name=name)}


@pytest.fixture
def foo(fake_pypi, settings):
    """foo 1.0 (an sdist and a wheel) and 2.0 upstream, synced by the root."""
    settings.PIWHEELS_SYNC_METHOD = "simple"
    fake_pypi.add_release("foo", "1.0", [("foo-1.0.tar.gz", b"s"),
                                         ("foo-1.0-py3-none-any.whl", b"w")],
                          summary="The foo", requires_python=">=3.8")
    fake_pypi.add_release("foo", "2.0")
    assert run_pass().status == "ok"
    assert asked(fake_pypi, "foo") == (1, 1)  # new to the farm: page and JSON API
    return fake_pypi


def test_a_change_without_a_new_release_costs_one_request_and_keeps_the_summary(foo):
    foo.yank("foo", "1.0", "broken build")
    foo.remove_file("foo", "2.0", "foo-2.0.tar.gz")

    result = run_pass()

    assert result.status == "ok" and result.projects_fetched == 1
    assert asked(foo, "foo") == (2, 1)  # the page alone
    project = Project.objects.get(normalized_name="foo")
    assert project.summary == "The foo" and project.serial == project.upstream_serial
    held = versions("foo")
    assert held["1.0"][:2] == (True, "broken build")
    assert held["2.0"][3] is False  # its sdist gone: nothing left to build it from
    assert Version.objects.get(project=project, version="2.0").skip_reason


def test_a_summary_that_cannot_be_read_holds_nothing_up_and_waits_for_a_later_pass(
        fake_pypi, settings):
    settings.PIWHEELS_SYNC_METHOD = "simple"
    settings.PIWHEELS_SYNC_RETRIES = 0
    fake_pypi.add_release("bar", "1.0", summary="The bar")
    fake_pypi.fail("/pypi/bar/json", 503, times=1)

    first = run_pass()

    assert first.status == "ok" and first.summaries_read == 0
    project = Project.objects.get(normalized_name="bar")
    assert set(versions("bar")) == {"1.0"} and project.serial == project.upstream_serial
    assert (project.summary, project.summary_read) == ("", False)
    second = run_pass()
    project.refresh_from_db()
    assert second.summaries_read == 1 and (project.summary, project.summary_read) == (
        "The bar", True)
    assert asked(fake_pypi, "bar") == (1, 2)  # the page once; the JSON API for the summary


def test_add_package_reads_the_summary_at_once(fake_pypi):
    fake_pypi.add_release("baz", "1.0", summary="The baz")

    add_package("baz")

    project = Project.objects.get(normalized_name="baz")
    assert (project.summary, project.summary_read) == ("The baz", True)


def test_a_yank_of_the_latest_release_asks_the_json_api_for_the_summary(foo):
    foo.yank("foo", "2.0")  # PyPI's summary is then 1.0's

    assert run_pass().status == "ok"

    assert asked(foo, "foo") == (2, 2)
    assert versions("foo")["2.0"][0] is True


def test_a_new_release_asks_the_json_api_for_its_summary(foo):
    foo.add_release("foo", "3.0", summary="The new foo")

    assert run_pass().status == "ok"

    assert asked(foo, "foo") == (2, 2)
    assert Project.objects.get(normalized_name="foo").summary == "The new foo"
    assert set(versions("foo")) == {"1.0", "2.0", "3.0"}


@pytest.mark.parametrize("filename", [
    "foo-2.0-1.tar.gz",  # names 2.0.post1, uploaded to 2.0 (as cffi's 1.0.2-2 on PyPI)
    "foo-2.0-1.src.rpm",  # a kind of file whose name is not parsed
])
def test_a_file_whose_name_does_not_say_its_version_is_left_to_the_json_api(foo, filename):
    foo.add_file("foo", "2.0", filename, b"odd")

    assert run_pass().status == "ok"

    assert asked(foo, "foo") == (2, 2)
    assert versions("foo")["2.0"][3] is True


@pytest.mark.parametrize("files", [
    [("Foo_Bar-1.0.tar.gz", b"s"), ("foo_bar-1.0-cp311-cp311-linux_armv7l.whl", b"w"),
     ("foo_bar-1.0-py3-none-any.whl", b"p")],
    [("foo-bar-1.0.zip", b"z"), ("foo_bar-1.0-py2.7-linux-armv6l.egg", b"e"),
     ("Foo_Bar-1.0.win32-py2.7.exe", b"x"), ("Foo_Bar-1.0.win-amd64.msi", b"m")],
    [("foo_bar-1.0-py3-none-any.whl", b"w")],  # no sdist
    [("foo_bar-1.0-py2.7.egg", b"e"), ("Foo_Bar-1.0.win32.exe", b"x")],  # nor here
    [],  # a release without files
])
def test_the_simple_page_and_the_json_api_give_the_same_releases(fake_pypi, settings, files):
    fake_pypi.add_release("Foo_Bar", "0.9", [("Foo_Bar-0.9.tar.gz", b"old")],
                          requires_python=">=3.7")
    fake_pypi.add_release("Foo_Bar", "1.0", files, requires_python=">=3.9")
    fake_pypi.yank("Foo_Bar", "0.9", "use 1.0")
    upstream = Upstream(rate=0)

    from_page = upstream.project("Foo_Bar")
    from_api = upstream.project("Foo_Bar", summary=True)

    assert asked(fake_pypi, "Foo_Bar") == (2, 1)
    assert from_page.summary is None and from_api.summary == ""
    assert from_page.releases == from_api.releases
    assert from_page.last_serial == from_api.last_serial > 0
    assert from_page.releases["0.9"].yanked_reason == "use 1.0"
    assert from_page.releases["1.0"].has_sdist == any(
        name.endswith((".tar.gz", ".zip")) for name, _ in files)
