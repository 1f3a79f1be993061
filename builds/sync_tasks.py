"""The scheduled catalogue sync: a pass, then the build queue brought in step with it.

django-q2 runs sync_pypi() on the "sync_pypi" Schedule (packages migration 0003); the
sync_pypi command runs the same function.
"""
import logging
import shutil

from builds import storage
from builds.models import Build, File
from builds.queue import refresh_jobs
from packages.models import Version
from packages.sync import run_pass

log = logging.getLogger(__name__)

REFRESH_BATCH = 5000


def refresh_in_batches(version_ids, priority):
    created = deleted = 0
    version_ids = list(dict.fromkeys(version_ids))
    for start in range(0, len(version_ids), REFRESH_BATCH):
        c, d = refresh_jobs(version_ids[start:start + REFRESH_BATCH], priority=priority)
        created, deleted = created + c, deleted + d
    return created, deleted


def delete_files_of(normalized_names):
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


def run_sync(now=None):
    """One sync pass and the queue refresh that follows; returns (result, queued, dropped).
    New releases of a later pass jump the backlog; the first pass fills the backlog."""
    result = run_pass(now=now)
    priority = Build.Priority.BACKLOG if result.first_pass else Build.Priority.NEW_RELEASE
    new = set(result.new_version_ids)
    changed = [v for v in result.changed_version_ids if v not in new]
    queued, dropped = refresh_in_batches(result.new_version_ids, priority)
    c, d = refresh_in_batches(changed, Build.Priority.BACKLOG)
    delete_files_of(result.removed_project_names)
    delete_builds_of_removed(changed)
    if queued + c or dropped + d:
        log.info("sync queue: %d builds queued, %d dropped", queued + c, dropped + d)
    return result, queued + c, dropped + d


def summary(result, queued, dropped):
    line = result.summary()
    if result.status == "ok":
        line += f"; {queued} builds queued, {dropped} dropped"
    return line


class SyncFailed(RuntimeError):
    """A pass that could not run (upstream unreachable, changelog refused)."""


def sync_pypi():
    """The scheduled task: returns only a summary line (django-q stores the result). A
    failed pass raises, so that the admin lists it under Django Q's failed tasks."""
    result, queued, dropped = run_sync()
    line = summary(result, queued, dropped)
    if result.status == "failed":
        raise SyncFailed(line)
    return line
