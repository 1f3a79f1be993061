"""Removing a project or one version by hand (the remove_package command)."""
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from packages.catalogue import REMOVED_BY_OPERATOR, writing
from packages.jobs import queue
from packages.models import Project, Version
from packages.skipping import get_project, get_version


@dataclass
class Removed:
    name: str
    versions: int
    files: int


def remove_package(name, version=None):
    """Remove a project with its versions, builds and files, or one version's builds and
    files (the version is kept, marked removed, so it is not built again). The rows go in
    one transaction; the files on disk after it commits, so a failure leaves none missing
    from a listed build. Raises LookupError for an unknown project or version."""
    jobs = queue()
    project = Project.objects.named(name).first()
    if project is None:
        raise LookupError(f"no project named {name!r}")
    filenames = jobs.served_filenames(project.id, version)
    with transaction.atomic():
        ids = remove_rows(name, version)
        if version is not None:
            jobs.refresh(ids, "backlog")
    if version is None:
        jobs.delete_project_dirs([project.normalized_name])
    else:
        jobs.delete_files(project.normalized_name, filenames)
    return Removed(project.name, len(ids), len(filenames))


def remove_rows(name, version=None, now=None):
    """The catalogue's part: the project's rows deleted (versions, builds and file rows by
    cascade), or one version's builds deleted and the version kept, marked removed.
    Returns the ids of the versions touched."""
    now = now or timezone.now()
    with writing():
        project = get_project(name)
        if version is None:
            ids = list(project.versions.values_list("id", flat=True))
            Project.objects.filter(id=project.id).touch_index(root=True, now=now)
            project.delete()  # after touch_index, which takes its page files with it
            return ids
        found = get_version(project, version)
        found.builds.all().delete()
        Version.objects.filter(id=found.id).update(removed=True, skip_reason=REMOVED_BY_OPERATOR)
        Project.objects.filter(id=project.id).touch_index(root=True, now=now)
        return [found.id]
