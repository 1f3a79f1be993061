from django.core.management.base import BaseCommand, CommandError

from packages import sync
from packages.jobs import queue
from packages.models import Project, Version
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
        # Every version named (all of them when none is), changed or not: the sync may
        # have queued them already, behind the backlog; asked for now, they go first.
        named = Version.objects.filter(project__in=Project.objects.named(name))
        if versions:
            named = named.filter(version__in=versions)
        ids = [*result.changed_version_ids, *named.values_list("id", flat=True)]
        queued, _ = queue().refresh(ids, "requested")
        self.stdout.write(
            f"added {name}: {result.versions_created} new versions, "
            f"{result.versions_updated} updated ({result.versions_without_sdist} without "
            f"sdist); {queued} builds queued"
        )
