from django.core.management.base import BaseCommand, CommandError
from django.db.models import Exists, OuterRef

from builds import rules
from builds.models import Build
from packages import sync
from packages.models import Project


class Command(BaseCommand):
    help = (
        "Apply the index rules to what is already published: jobs that Requires-Python or "
        "an upstream wheel rules out are marked skipped (failed ones too), files upstream "
        "has a wheel for leave the index (their URLs keep answering). Prints what changed; "
        "running it again changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("names", nargs="*", metavar="NAME",
                            help="only these projects (default: all)")
        parser.add_argument(
            "--refetch", action="store_true",
            help="first read the projects the farm has builds of from upstream again, so "
                 "that a catalogue synced before upstream wheel filenames were stored "
                 "knows them",
        )

    def handle(self, names, refetch, **options):
        projects = Project.objects.all()
        if names:
            found = {p.normalized_name: p for n in names for p in Project.objects.named(n)}
            missing = [n for n in names if not Project.objects.named(n).exists()]
            if missing:
                raise CommandError(f"no project named {missing[0]!r}")
            projects = projects.filter(id__in=[p.id for p in found.values()])
        if refetch:
            built = projects.filter(
                Exists(Build.objects.filter(version__project=OuterRef("pk"))))
            result = sync.refetch(list(built.values_list("name", flat=True)))
            self.stdout.write(
                f"refetched {result.projects_fetched} projects from upstream: "
                f"{result.versions_updated} versions changed; {result.status_line()}"
                f"{len(result.errors)} errors")
            for error in result.errors:
                self.stderr.write(error)
        ids = list(projects.values_list("id", flat=True)) if names else None
        changes = rules.apply_everywhere(ids)
        self.stdout.write(changes.summary())
