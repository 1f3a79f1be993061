"""The sync against the fake upstream over HTTP: first import and changelog events."""
from datetime import timedelta

import pytest
from django.utils import timezone

from builds.models import Build, File
from packages.models import Missing, Project, Retry, Serial, Version
from packages.sync import NO_SDIST, run_pass
from tests.factories import make_build, make_file

pytestmark = pytest.mark.django_db

WHEEL = [("foo-2.0-py3-none-any.whl", b"wheel")]


def catalogue():
    """What the catalogue says, in a comparable shape."""
    return {
        p.name: sorted(
            (v.version, v.yanked, v.yanked_reason, v.has_sdist, v.removed, v.skip_reason,
             v.requires_python)
            for v in p.versions.all()
        )
        for p in Project.objects.prefetch_related("versions")
    }


def serial(name="pypi"):
    return Serial.objects.filter(name=name).values_list("value", flat=True).first()


def first_import(fake_pypi):
    fake_pypi.add_release("foo", "1.0", summary="The foo", requires_python=">=3.8")
    fake_pypi.add_release("foo", "2.0", WHEEL)
    fake_pypi.add_release("Bar_Baz", "0.1", yanked=True)
    fake_pypi.yank("Bar_Baz", "0.1", "broken")
    return run_pass()


def test_first_pass_imports_the_whole_catalogue(fake_pypi):
    result = first_import(fake_pypi)
    assert result.status == "ok" and result.first_pass and not result.errors
    assert catalogue() == {
        "foo": [("1.0", False, "", True, False, "", ">=3.8"),
                ("2.0", False, "", False, False, NO_SDIST, "")],
        "Bar_Baz": [("0.1", True, "broken", True, False, "", "")],
    }
    foo = Project.objects.get(normalized_name="foo")
    assert foo.summary == "The foo" and foo.serial == 5
    assert Project.objects.get(name="Bar_Baz").normalized_name == "bar-baz"
    assert serial() == fake_pypi.serial == result.serial
    assert sorted(result.new_version_ids) == sorted(Version.objects.values_list("id", flat=True))
    assert result.versions_without_sdist == 1
    assert Version.objects.get(version="1.0").released is not None


def test_a_later_pass_without_changes_changes_nothing(fake_pypi):
    first_import(fake_pypi)
    before = catalogue()
    result = run_pass()
    assert (result.status, result.first_pass, result.events) == ("ok", False, 0)
    assert result.changed_version_ids == [] and catalogue() == before


def test_new_project_and_release(fake_pypi):
    first_import(fake_pypi)
    fake_pypi.add_release("newpkg", "0.1")
    fake_pypi.add_release("foo", "3.0")
    result = run_pass()
    assert result.events == 5 and result.serial == fake_pypi.serial == serial()
    assert catalogue()["newpkg"] == [("0.1", False, "", True, False, "", "")]
    assert [v for v, *_ in catalogue()["foo"]] == ["1.0", "2.0", "3.0"]
    new = Version.objects.filter(version__in=["0.1", "3.0"], project__name__in=["newpkg", "foo"])
    assert sorted(result.new_version_ids) == sorted(v.id for v in new)


def test_sdist_added_to_a_wheel_only_release_makes_it_buildable(fake_pypi):
    first_import(fake_pypi)
    fake_pypi.add_file("foo", "2.0", "foo-2.0.tar.gz", b"sdist")
    result = run_pass()
    version = Version.objects.get(project__name="foo", version="2.0")
    assert version.has_sdist and version.skip_reason == "" and version.is_buildable
    assert result.changed_version_ids == [version.id] and result.new_version_ids == []


def test_yank_and_unyank_touch_the_index(fake_pypi):
    first_import(fake_pypi)
    foo = Project.objects.get(name="foo")
    fake_pypi.yank("foo", "1.0", "oops")
    run_pass()
    version = Version.objects.get(project=foo, version="1.0")
    assert (version.yanked, version.yanked_reason) == (True, "oops")
    yanked_serial = Project.objects.get(id=foo.id).index_serial
    assert yanked_serial > foo.index_serial
    fake_pypi.unyank("foo", "1.0")
    result = run_pass()
    version.refresh_from_db()
    assert (version.yanked, version.yanked_reason) == (False, "")
    assert result.changed_version_ids == [version.id]
    assert Project.objects.get(id=foo.id).index_serial > yanked_serial


def test_removed_release_is_marked_removed(fake_pypi):
    first_import(fake_pypi)
    fake_pypi.remove_release("foo", "1.0")
    run_pass()
    assert catalogue()["foo"][0] == ("1.0", False, "", True, True, "", ">=3.8")
    assert Project.objects.get(name="foo").index_serial > 0
    # its files may have been the project's only ones: the root's list moves on too
    assert serial("index-root") == 1


def test_a_yank_leaves_the_root_alone(fake_pypi):
    first_import(fake_pypi)
    fake_pypi.yank("foo", "1.0", "oops")
    run_pass()
    assert serial("index-root") is None


def test_removed_file_updates_the_release(fake_pypi):
    first_import(fake_pypi)
    fake_pypi.remove_file("foo", "1.0", "foo-1.0.tar.gz")
    run_pass()
    assert catalogue()["foo"][0] == ("1.0", False, "", False, False, NO_SDIST, "")


@pytest.mark.parametrize("method", ["auto", "simple"])
def test_removed_project_goes_after_two_404s_minutes_apart(fake_pypi, settings, method):
    settings.PIWHEELS_SYNC_METHOD = method
    first_import(fake_pypi)
    build = make_build(Version.objects.get(project__name="foo", version="1.0"))
    make_file(build)
    fake_pypi.remove_project("foo")
    t0 = timezone.now()
    assert run_pass(now=t0).removed_project_names == []  # first 404: remembered only
    assert Missing.objects.get().first_404 == t0 and "foo" in catalogue()
    soon = t0 + timedelta(seconds=settings.PIWHEELS_SYNC_GONE_AFTER - 1)
    assert run_pass(now=soon).removed_project_names == []  # not asked again yet
    asked = fake_pypi.count("/simple/foo/")
    later = t0 + timedelta(seconds=settings.PIWHEELS_SYNC_GONE_AFTER)
    result = run_pass(now=later)
    assert result.removed_project_names == ["foo"]
    assert fake_pypi.count("/simple/foo/") == asked + 1
    assert list(catalogue()) == ["Bar_Baz"] and not Missing.objects.exists()
    assert not Build.objects.exists() and not File.objects.exists()
    assert serial("index-root") == 1


def test_a_project_that_answers_again_is_kept(fake_pypi):
    first_import(fake_pypi)
    fake_pypi.unlisted.add("foo")  # a stale root (or a remove, undone by upstream)
    fake_pypi.add_release("Bar_Baz", "0.2")
    before = catalogue()["foo"]
    run_pass(now=timezone.now())
    assert not Missing.objects.exists() and catalogue()["foo"] == before


def test_other_changelog_actions_only_move_the_serial(fake_pypi):
    first_import(fake_pypi)
    before = catalogue()
    fake_pypi._log("foo", None, "add Owner alice")
    fake_pypi._log("foo", None, "docupdate")
    result = run_pass()
    assert result.events == 2 and result.projects_fetched == 0
    assert serial() == fake_pypi.serial and catalogue() == before


def test_versions_that_are_not_pep440_are_kept_verbatim(fake_pypi):
    for version in ["banana", "1.0-final-really", "2004d", "1.0"]:
        fake_pypi.add_release("odd", version)
    run_pass()
    fake_pypi.add_release("odd", "0.9 beta")
    run_pass()
    assert [v for v, *_ in catalogue()["odd"]] == sorted(
        ["banana", "1.0-final-really", "2004d", "1.0", "0.9 beta"])


def test_spellings_of_one_name_are_one_project(fake_pypi):
    fake_pypi.add_release("Foo.Bar", "1.0")
    fake_pypi.add_release("foo_bar", "2.0", summary="newer spelling")
    run_pass()
    project = Project.objects.get()
    assert (project.name, project.normalized_name) == ("foo_bar", "foo-bar")
    assert catalogue() == {"foo_bar": [("2.0", False, "", True, False, "", "")]}
    fake_pypi.add_release("FOO-BAR", "3.0")
    run_pass()
    live = [v for v, _y, _r, _s, removed, *_ in catalogue()["FOO-BAR"] if not removed]
    assert live == ["3.0"]  # asked for by the spelling of the latest changelog row
    assert Project.objects.count() == 1


def test_a_root_that_spells_one_name_twice_gives_one_project_each(fake_pypi, settings):
    settings.PIWHEELS_SYNC_METHOD = "simple"
    fake_pypi.add_release("foo", "1.0")
    run_pass()
    fake_pypi.add_release("New.Name", "1.0")
    fake_pypi.add_release("new_name", "2.0")
    fake_pypi.add_release("FOO", "2.0")  # a known project, moved under another spelling

    result = run_pass()

    assert (result.names_added, result.projects_moved, result.listed) == (1, 1, 2)
    assert sorted(Project.objects.values_list("normalized_name", "serial")) == [
        ("foo", fake_pypi.projects["FOO"]["last_serial"]),
        ("new-name", fake_pypi.projects["new_name"]["last_serial"])]


def test_a_failed_project_is_retried_by_later_passes(fake_pypi):
    first_import(fake_pypi)
    fake_pypi.add_release("flaky", "1.0")
    fake_pypi.add_release("foo", "4.0")
    fake_pypi.fail("/simple/flaky/", 503, times=3)
    result = run_pass()
    assert result.errors == ["flaky: HTTP 503 (gave up after 3 attempts)"]
    assert serial() == fake_pypi.serial  # the pass went on past it
    assert "4.0" in [v for v, *_ in catalogue()["foo"]] and catalogue()["flaky"] == []
    assert Retry.objects.get().name == "flaky"
    assert Project.objects.named("flaky").get().serial == 0  # still waiting
    result = run_pass()
    assert result.errors == [] and catalogue()["flaky"][0][0] == "1.0"
    assert not Retry.objects.exists()
