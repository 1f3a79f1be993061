"""The scheduled catalogue sync: a pass, then the build queue brought in step with it.

django-q2 runs sync_pypi() on the "sync_pypi" Schedule (packages migrations 0003 and 0004);
the sync_pypi command runs the same function.
"""
import logging

from packages.jobs import queue
from packages.sync import run_pass

log = logging.getLogger(__name__)


def run_sync(now=None):
    """One sync pass and the queue refresh that follows; returns (result, queued, dropped).
    New releases of a later pass jump the backlog; the first pass fills the backlog."""
    jobs = queue()
    result = run_pass(now=now)
    new = set(result.new_version_ids)
    changed = [v for v in result.changed_version_ids if v not in new]
    queued, dropped = jobs.refresh(
        result.new_version_ids, "backlog" if result.first_pass else "new-release"
    )
    c, d = jobs.refresh(changed, "backlog")
    jobs.delete_project_dirs(result.removed_project_names)
    jobs.delete_builds_of_removed(changed)
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
