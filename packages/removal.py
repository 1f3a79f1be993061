"""Removing a project or one version by hand (the remove_package command)."""
from dataclasses import dataclass

from django.db import transaction

from packages import sync
from packages.jobs import queue
from packages.models import Project


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
        ids = sync.remove_package(name, version)
        if version is not None:
            jobs.refresh(ids, "backlog")
    if version is None:
        jobs.delete_project_dirs([project.normalized_name])
    else:
        jobs.delete_files(project.normalized_name, filenames)
    return Removed(project.name, len(ids), len(filenames))
