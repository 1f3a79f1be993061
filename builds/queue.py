"""The build queue: which (version, ABI) jobs exist, who holds them, how they end.

A job is a Build row in state "queued". The rows are kept in step with the catalogue by
refresh_jobs(), which the sync and the operator commands call with the versions they
touched; claims take the next row for one ABI with SELECT ... FOR UPDATE SKIP LOCKED.
"""
from django.db import transaction

from builds.models import Abi, Build
from packages.models import Version


def refresh_jobs(version_ids, priority=Build.Priority.BACKLOG):
    """Make the queued builds of these versions match what should be built.

    Creates a queued build for every active ABI where the version is buildable and has
    no build of that ABI yet (a failed build stays failed until a rebuild is asked for);
    deletes the queued builds of versions that are no longer buildable. Returns
    (created, deleted). Safe to run twice.
    """
    version_ids = list(version_ids)
    if not version_ids:
        return 0, 0
    abis = list(Abi.objects.filter(active=True))
    with transaction.atomic():
        deleted, _ = (
            Build.objects.filter(version_id__in=version_ids, state=Build.State.QUEUED)
            .exclude(version__in=Version.objects.buildable())
            .delete()
        )
        buildable = list(
            Version.objects.buildable()
            .filter(id__in=version_ids)
            .values_list("id", flat=True)
        )
        have = set(
            Build.objects.filter(version_id__in=buildable).values_list("version_id", "abi_id")
        )
        new = [
            Build(version_id=vid, abi=abi, priority=priority)
            for vid in buildable
            for abi in abis
            if (vid, abi.id) not in have
        ]
        # ignore_conflicts: a concurrent refresh of the same version may have won.
        Build.objects.bulk_create(new, batch_size=5000, ignore_conflicts=True)
    return len(new), deleted
