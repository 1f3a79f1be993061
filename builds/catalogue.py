"""The build queue's side of a catalogue change: jobs queued or dropped, files deleted.

packages sits below builds (builds imports packages, never the reverse), so the catalogue's
commands and tasks reach these functions through packages.jobs, which loads this module by
the name in settings.PIWHEELS_JOBS. Each function takes plain ids and names, no models.
"""
import shutil

from builds import storage
from builds.models import Build, File
from builds.queue import refresh_jobs
from packages.models import Version

REFRESH_BATCH = 5000
PRIORITIES = {
    "backlog": Build.Priority.BACKLOG,
    "new-release": Build.Priority.NEW_RELEASE,
    "requested": Build.Priority.REQUESTED,
}


def refresh(version_ids, priority):
    """Bring the jobs of these versions in step with the catalogue; returns (queued, dropped).
    PRIORITY is one of PRIORITIES' names. At "requested" (add_package: someone asked for
    these versions now), their jobs already queued, by the sync's backlog say, move to the
    front too, and count as queued."""
    created = deleted = 0
    version_ids = list(dict.fromkeys(version_ids))
    for start in range(0, len(version_ids), REFRESH_BATCH):
        batch = version_ids[start:start + REFRESH_BATCH]
        if priority == "requested":
            created += (Build.objects.filter(version_id__in=batch, state=Build.State.QUEUED)
                        .exclude(priority=Build.Priority.REQUESTED)
                        .update(priority=Build.Priority.REQUESTED))
        c, d = refresh_jobs(batch, priority=PRIORITIES[priority])
        created, deleted = created + c, deleted + d
    return created, deleted


def served_filenames(project_id, version=None):
    """The filenames of a project's files (of one version only, if given), before removal."""
    files = File.objects.filter(build__version__project_id=project_id)
    if version is not None:
        files = files.filter(build__version__version=version)
    return list(files.values_list("filename", flat=True))


def delete_files(normalized_name, filenames):
    storage.delete_files(normalized_name, filenames)


def delete_project_dirs(normalized_names):
    """Remove the served files of projects that are gone (after their rows are deleted)."""
    root = storage.files_root()
    for name in normalized_names:
        path = root / name
        if name and path.parent == root and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


def delete_builds_of_removed(version_ids):
    """Versions removed upstream leave the index with their files: delete their builds
    (and so File rows), then the files on disk. Returns the number of files deleted."""
    removed = Version.objects.filter(id__in=version_ids, removed=True)
    files = list(
        File.objects.filter(build__version__in=removed)
        .values_list("build__version__project__normalized_name", "filename")
    )
    Build.objects.filter(version__in=removed).delete()
    for normalized_name, filename in files:
        storage.delete_files(normalized_name, [filename])
    return len(files)
