from django.core.management.base import BaseCommand, CommandError

from builds import queue


class Command(BaseCommand):
    help = (
        "Build for another ABI tag (e.g. cp311) from now on: activate it and queue the "
        "backlog of every buildable version for it, behind new releases."
    )

    def add_arguments(self, parser):
        parser.add_argument("abi", help="an interpreter ABI tag, e.g. cp311")
        parser.add_argument("--batch-size", type=int, default=100_000,
                            help="versions per INSERT (default 100000)")

    def handle(self, abi, batch_size, **options):
        try:
            abi, queued = queue.add_abi(abi, batch_size=batch_size)
        except queue.UnknownAbi as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"building for {abi.tag}: queued {queued} backlog builds")
