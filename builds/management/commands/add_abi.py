from django.core.management.base import BaseCommand, CommandError

from builds import queue


class Command(BaseCommand):
    help = (
        "Build for another ABI tag (e.g. cp311) from now on: activate it and queue the "
        "backlog of every buildable version for it, behind new releases; --arch adds "
        "architectures to an ABI (docs/architectures.md)."
    )

    def add_arguments(self, parser):
        parser.add_argument("abi", help="an interpreter ABI tag, e.g. cp311")
        parser.add_argument("--batch-size", type=int, default=100_000,
                            help="versions per INSERT (default 100000)")
        parser.add_argument("--os-release", default=None, metavar="CODENAME",
                            help="build it only on builders of this OS release, e.g. "
                                 "bookworm ('' for any; default: leave as it is)")
        parser.add_argument("--arch", default=None, metavar="ARCH[,ARCH]",
                            help="also build it for these architectures (armv7l, aarch64, "
                                 "x86_64), queueing their backlog behind new releases "
                                 "(a new ABI: armv7l by default)")

    def handle(self, abi, batch_size, os_release, arch, **options):
        try:
            abi, queued = queue.add_abi(abi, batch_size=batch_size, os_release=os_release,
                                        archs=arch)
        except (queue.UnknownAbi, queue.WrongRelease, queue.WrongArch) as exc:
            raise CommandError(str(exc)) from None
        where = f" on {abi.os_release}" if abi.os_release else ""
        self.stdout.write(f"building for {abi.tag}{where} ({', '.join(abi.arch_list())}): "
                          f"queued {queued} backlog builds")
