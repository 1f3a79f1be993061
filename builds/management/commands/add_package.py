from django.core.management.base import BaseCommand, CommandError

from builds.models import Build
from builds.sync_tasks import refresh_in_batches
from packages import sync
from packages.upstream import UpstreamError


class Command(BaseCommand):
    help = "Add one project (or only some of its versions) from upstream now."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("versions", nargs="*", metavar="VERSION")

    def handle(self, name, versions, **options):
        try:
            result = sync.add_package(name, versions)
        except (LookupError, ValueError, UpstreamError) as exc:
            raise CommandError(str(exc))
        queued, _ = refresh_in_batches(result.changed_version_ids, Build.Priority.REQUESTED)
        self.stdout.write(
            f"added {name}: {result.versions_created} new versions, "
            f"{result.versions_updated} updated ({result.versions_without_sdist} without "
            f"sdist); {queued} builds queued"
        )
