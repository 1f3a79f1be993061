"""Tasks the django-q2 cluster runs for the build queue (scheduled in migration 0003)."""
from django.utils import timezone

from builds import queue


def requeue_expired():
    """Every minute: jobs whose lease ran out go back to the queue (the backlog after
    PIWHEELS_MAX_ATTEMPTS)."""
    requeued, demoted = queue.requeue_expired(timezone.now())
    return {"requeued": requeued, "demoted": demoted}
