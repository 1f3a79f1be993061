import pytest
from django.db import IntegrityError

from packages.models import Project, Version, version_sort_key
from tests.factories import make_project, make_version


def test_versions_sort_in_pep440_order_with_invalid_ones_first():
    versions = ["1.10", "1.2", "banana", "1.0rc1", "1.0", "2.0.dev1"]
    assert sorted(versions, key=version_sort_key) == [
        "banana", "1.0rc1", "1.0", "1.2", "1.10", "2.0.dev1"
    ]


@pytest.mark.django_db
def test_normalised_names_collide():
    make_project("Foo_Bar")
    with pytest.raises(IntegrityError):
        make_project("foo.bar")


@pytest.mark.django_db
def test_named_finds_any_spelling():
    project = make_project("Foo_Bar", versions=["1.0"])
    assert Project.objects.named("FOO-bar").get() == project


@pytest.mark.django_db
def test_buildable_excludes_skipped_yanked_removed_and_sdistless():
    project = make_project("foo")
    good = make_version(project, "1.0")
    make_version(project, "1.1", yanked=True)
    make_version(project, "1.2", removed=True)
    make_version(project, "1.3", has_sdist=False)
    make_version(project, "1.4", skip_reason="broken")
    assert list(Version.objects.buildable()) == [good]
    project.skip_reason = "too big"
    project.save()
    assert not Version.objects.buildable().exists()
