from django.core.management.base import BaseCommand, CommandError

from packages.jobs import queue
from packages.skipping import skip


class Command(BaseCommand):
    help = "Stop building a project or one version of it (queued builds are dropped)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("version", nargs="?")
        parser.add_argument("--reason", required=True, help="why (shown on the project page)")

    def handle(self, name, version, reason, **options):
        try:
            ids = skip(name, version, reason)
        except (LookupError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        _, dropped = queue().refresh(ids, "backlog")
        what = f"{name} {version}" if version else name
        self.stdout.write(f"skipped {what} ({reason}): {dropped} queued builds dropped")
