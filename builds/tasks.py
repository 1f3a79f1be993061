"""Tasks the django-q2 cluster runs for the build queue (scheduled in migration 0003) and
for the Debian Contents maps (migration 0008 and builds/apt.py)."""
from django.utils import timezone

from builds import apt, depwait, queue


def requeue_expired():
    """Every minute: jobs whose lease ran out go back to the queue (the backlog after
    PIWHEELS_MAX_ATTEMPTS)."""
    requeued, demoted = queue.requeue_expired(timezone.now())
    return {"requeued": requeued, "demoted": demoted}


def schedule_apt_contents():
    """Every 10 minutes: a daily schedule for each OS release the builders report."""
    return {"created": apt.ensure_schedules()}


def refresh_apt_contents(release):
    """Read RELEASE's map from the archive's Contents files (for the architectures its
    builders run), then name the fix of its failed builds that lack one."""
    archs = apt.archs_of(release)
    kept = apt.refresh(release, arch=archs)
    return {"release": release, "archs": archs, "paths": kept,
            "named": depwait.name_fixes(release)}
