"""The scheduled catalogue sync: a pass, then the build queue brought in step with it.

django-q2 runs sync_pypi() on the "sync_pypi" Schedule (packages migrations 0003 and 0004);
the sync_pypi command runs the same function.
"""
import logging

from django.conf import settings

from packages.jobs import queue
from packages.sync import run_pass

log = logging.getLogger(__name__)


class _Queueing:
    """Brings the build queue in step after each committed batch of a pass, so that a
    project's builds are queued as soon as its details are in."""

    def __init__(self):
        self.jobs = queue()
        self.queued = self.dropped = 0

    def __call__(self, changes, first_pass):
        """New releases jump the backlog; the first pass, and projects that waited for
        their first details since an earlier pass, fill the backlog."""
        backlog = set(changes.backlog_version_ids)
        new = [v for v in changes.new_version_ids if v not in backlog]
        known = set(changes.new_version_ids)
        changed = [v for v in changes.changed_version_ids if v not in known]
        refreshed = [self.jobs.refresh(new, "backlog" if first_pass else "new-release"),
                     self.jobs.refresh([*backlog, *changed], "backlog")]
        for q, d in refreshed:
            self.queued, self.dropped = self.queued + q, self.dropped + d
        self.jobs.delete_project_dirs(changes.removed_project_names)
        self.jobs.delete_builds_of_removed(changed)


def run_sync(now=None):
    """One sync pass, the build queue refreshed after each batch; returns (result,
    queued, dropped)."""
    queueing = _Queueing()
    result = run_pass(now=now, on_batch=queueing)
    if queueing.queued or queueing.dropped:
        log.info("sync queue: %d builds queued, %d dropped", queueing.queued, queueing.dropped)
    return result, queueing.queued, queueing.dropped


def summary(result, queued, dropped):
    line = result.summary()
    if result.status == "ok":
        line += f"; {queued} builds queued, {dropped} dropped"
    return line


class SyncFailed(RuntimeError):
    """A pass that could not run (upstream unreachable, changelog refused)."""


def follow_interval():
    """Bring the schedule's interval in step with PIWHEELS_SYNC_INTERVAL (read at run
    time, not only when migration 0003 created the schedule); returns the minutes."""
    from django_q.models import Schedule

    minutes = max(1, round(settings.PIWHEELS_SYNC_INTERVAL / 60))
    Schedule.objects.filter(name="sync_pypi").exclude(minutes=minutes).update(minutes=minutes)
    return minutes


def sync_pypi():
    """The scheduled task: returns only a summary line (django-q stores the result). A
    failed pass raises, so that the admin lists it under Django Q's failed tasks.
    PIWHEELS_SYNC_INTERVAL=0 pauses it."""
    if settings.PIWHEELS_SYNC_INTERVAL <= 0:
        log.info("sync paused (PIWHEELS_SYNC_INTERVAL=0)")
        return "sync paused (PIWHEELS_SYNC_INTERVAL=0)"
    follow_interval()
    result, queued, dropped = run_sync()
    line = summary(result, queued, dropped)
    if result.status == "failed":
        raise SyncFailed(line)
    return line
