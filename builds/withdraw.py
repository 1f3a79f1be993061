"""Withdrawing what one builder published: for a builder whose token was stolen, or whose
machine cannot be trusted any more (docs/untrusted-builds.md).

Everything it published since a time leaves the index in one transaction: the File rows
go (the simple index and project pages stop listing them at once), their bytes are
deleted from disk once it commits (their URLs answer 404: the code is not served any
more), and each job is queued again at REQUESTED priority for another builder. The names
stay in ServedName: a rebuild with other bytes is published under a build tag
(`foo-1.0-1-cp311-...`), never under a withdrawn name. Files the withdrawn ones had
replaced ("rebuilt as ...", listed as yanked) are listed as they were again.
"""
import logging
from dataclasses import dataclass, field

from django.db import transaction

from builds import storage
from builds.models import LIVE_STATES, Build, BuildLog, File
from packages.models import Project

log = logging.getLogger(__name__)


@dataclass
class Withdrawn:
    files: list = field(default_factory=list)  # filenames taken off the index
    requeued: int = 0  # jobs queued again
    builds: list = field(default_factory=list)  # ids of the builds withdrawn


def published_by(builder, since=None):
    """The files BUILDER published (since SINCE, if given), newest first."""
    files = File.objects.filter(build__builder=builder)
    if since is not None:
        files = files.filter(uploaded__gte=since)
    return files.order_by("-uploaded", "filename")


def withdraw_builder(builder, since, now, by=""):
    """Withdraw everything BUILDER published since SINCE (module docstring): returns a
    Withdrawn. BY (an admin's name, a command) is recorded on the requeued jobs."""
    result = Withdrawn()
    with transaction.atomic():
        builds = list(
            Build.objects.select_for_update()
            .filter(builder=builder, state=Build.State.SUCCEEDED, finished__gte=since)
            .order_by("id")
        )
        if not builds:
            return result
        ids = [b.id for b in builds]
        files = list(File.objects.filter(build_id__in=ids)
                     .values_list("id", "filename", "armv6l_filename",
                                  "build__version__project__normalized_name",
                                  "build__version__project_id"))
        # Jobs of other ABIs a withdrawn pure wheel was said to cover (publish.
        # _cover_other_abis): built by nobody, they go back to the queue too.
        covered = list(BuildLog.objects.filter(
            output__in=[f"covered by the pure-Python wheel of build {i}\n" for i in ids],
            build__state=Build.State.SUCCEEDED, build__builder__isnull=True,
        ).values_list("build_id", flat=True))
        names = [f[1] for f in files]
        File.objects.filter(id__in=[f[0] for f in files]).delete()
        File.objects.filter(superseded_by__in=names).update(superseded_by="")
        reason = f"withdrawn from builder {builder.name}" + (f" by {by}" if by else "")
        for build in Build.objects.filter(id__in=ids + covered).order_by("id"):
            live = Build.objects.filter(version_id=build.version_id, abi_id=build.abi_id,
                                        arch=build.arch,
                                        state__in=LIVE_STATES).exclude(id=build.id)
            if live.exists():  # already queued again (a rebuild): that one stands
                build.delete()
                continue
            Build.objects.filter(id=build.id).update(
                state=Build.State.QUEUED, builder=None, lease_until=None, started=None,
                finished=None, duration=None, slot=None, priority=Build.Priority.REQUESTED,
                requested_by=reason[:150], failure_reason="", cause="", cause_detail="",
            )
            result.requeued += 1
        Project.objects.filter(id__in={f[4] for f in files}).touch_index(root=True, now=now)
        doomed = [(f[3], [n for n in (f[1], f[2]) if n]) for f in files]
        transaction.on_commit(lambda: [storage.delete_files(p, ns) for p, ns in doomed])
    result.files, result.builds = sorted(names), ids
    log.warning("builder %s: %d files published since %s withdrawn (%s), %d jobs queued "
                "again: %s", builder, len(names), since.isoformat(), by or "no one named",
                result.requeued, " ".join(result.files))
    return result

