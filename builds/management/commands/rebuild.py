from django.core.management.base import BaseCommand, CommandError

from builds import queue
from builds.models import Abi
from packages.models import Project


class Command(BaseCommand):
    help = (
        "Queue fresh builds of a project (or one version) ahead of everything else; "
        "the old files stay listed until the new build succeeds, then stay downloadable, "
        "listed as yanked (rebuilt as the new build-tagged file)."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="project name (any spelling)")
        parser.add_argument("version", nargs="?", help="only this version")
        parser.add_argument("--abi", help="only this ABI tag (default: every active ABI)")
        parser.add_argument("--arch", help="only this architecture, e.g. aarch64 (default: "
                                           "every one the ABI is built for)")

    def handle(self, name, version, abi, arch, **options):
        project = Project.objects.named(name).first()
        if project is None:
            raise CommandError(f"no project named {name!r}")
        target = project
        if version is not None:
            target = project.versions.filter(version=version).first()
            if target is None:
                raise CommandError(f"{project.name} has no version {version!r}")
        if abi is not None and not Abi.objects.filter(tag=abi).exists():
            raise CommandError(f"the farm does not build for ABI {abi!r}")
        try:
            queued = queue.rebuild(target, abi=abi, requested_by="manage.py rebuild",
                                   arch=arch)
        except queue.WrongArch as exc:
            raise CommandError(str(exc)) from None
        what = f"{project.name} {version}" if version else project.name
        on = f" on {arch}" if arch else ""
        self.stdout.write(f"queued {queued} builds of {what} for {abi or 'every active ABI'}"
                          f"{on}")
