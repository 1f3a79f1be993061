from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from builds import publish, wheels


class Command(BaseCommand):
    help = (
        "Add wheels built elsewhere, checked exactly like a builder's upload, each as a "
        "succeeded build of its version (replacing an earlier build's files)."
    )

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", metavar="FILE", help="wheel files")
        parser.add_argument("--abi", help="the ABI to file them under (default: from the "
                                          "wheel's tags; needed for pure wheels)")
        parser.add_argument("--glibc", default="", metavar="X.Y",
                            help="the glibc they were built on, e.g. 2.36: a linux_<arch> "
                                 "wheel is served manylinux for it when its code keeps that "
                                 "policy (default: the oldest policy its objects meet)")
        parser.add_argument("--os-release", default="", metavar="CODENAME",
                            help="the OS release they were built on, e.g. bookworm")

    def handle(self, files, abi, glibc, os_release, **options):
        imported = []
        for name in files:
            path = Path(name)
            if not path.is_file():
                raise CommandError(f"no file {name}")
            try:
                build = publish.import_wheel(path, abi=abi, os_release=os_release,
                                             glibc=glibc)
            except (wheels.InvalidWheel, publish.FinishRefused) as exc:
                raise CommandError(
                    f"{path.name}: {exc} ({len(imported)} imported before it)"
                ) from None
            except OSError as exc:
                raise CommandError(
                    f"{path.name}: cannot be read: {exc.strerror} "
                    f"({len(imported)} imported before it)"
                ) from None
            imported.append(build)
        self.stdout.write(f"imported {len(imported)} wheels as builds "
                          + ", ".join(str(b.id) for b in imported))
