from django.core.management.base import BaseCommand, CommandError

from packages.jobs import queue
from packages.skipping import unskip


class Command(BaseCommand):
    help = "Resume building a project or one version of it."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("version", nargs="?")

    def handle(self, name, version, **options):
        try:
            ids = unskip(name, version)
        except LookupError as exc:
            raise CommandError(str(exc)) from None
        queued, _ = queue().refresh(ids, "backlog")
        what = f"{name} {version}" if version else name
        self.stdout.write(f"unskipped {what}: {queued} builds queued")
