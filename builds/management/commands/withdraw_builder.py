from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from builds import withdraw
from builds.models import Builder


class Command(BaseCommand):
    help = ("Take off the index every file one builder published since a time (its token "
            "was stolen, its machine is not trusted): the files stop being served, their "
            "jobs are queued again for other builders (docs/untrusted-builds.md).")

    def add_arguments(self, parser):
        parser.add_argument("name", help="the builder's name")
        parser.add_argument("--since", required=True, metavar="ISO",
                            help="a date or time, e.g. 2026-12-01 or 2026-12-01T08:00+00:00 "
                                 "(UTC when no offset is given)")

    def handle(self, name, since, **options):
        builder = Builder.objects.filter(name=name).first()
        if builder is None:
            raise CommandError(f"no builder named {name!r}")
        try:
            when = datetime.fromisoformat(since)
        except ValueError:
            raise CommandError(f"--since {since!r} is not an ISO date or time") from None
        if timezone.is_naive(when):
            when = when.replace(tzinfo=UTC)
        done = withdraw.withdraw_builder(builder, when, timezone.now(), by="withdraw_builder")
        self.stdout.write(
            f"withdrew {len(done.files)} files builder {name} published since "
            f"{when.isoformat()}; {done.requeued} jobs queued again"
        )
        for filename in done.files:
            self.stdout.write(f"  {filename}")
