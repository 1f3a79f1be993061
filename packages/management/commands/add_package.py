from django.core.management.base import BaseCommand, CommandError

from packages import sync
from packages.jobs import queue
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
            raise CommandError(str(exc)) from None
        queued, _ = queue().refresh(result.changed_version_ids, "requested")
        self.stdout.write(
            f"added {name}: {result.versions_created} new versions, "
            f"{result.versions_updated} updated ({result.versions_without_sdist} without "
            f"sdist); {queued} builds queued"
        )
