from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from builds import apt, depwait


class Command(BaseCommand):
    help = (
        "Rebuild the map of the Debian packages that provide headers, libraries, pkg-config "
        "modules and tools from the archive's Contents index (PIWHEELS_DEBIAN_MIRROR), for "
        "one release, then name the fix of the failed builds of that release."
    )

    def add_arguments(self, parser):
        parser.add_argument("--release", default=settings.PIWHEELS_DEBIAN_RELEASE,
                            help="Debian release, e.g. bookworm (default "
                                 "PIWHEELS_DEBIAN_RELEASE)")
        parser.add_argument("--arch", action="append",
                            help="architecture of the builders, may be given again (default: "
                                 "those the builders of the release run, else "
                                 "PIWHEELS_DEBIAN_ARCH)")
        parser.add_argument("--mirror", help="archive base URL (default PIWHEELS_DEBIAN_MIRROR, "
                                             "else the one this machine's apt reads)")

    def handle(self, release, arch, mirror, **options):
        arch = arch or apt.archs_of(release)
        try:
            kept = apt.refresh(release, mirror=mirror, arch=arch)
        except apt.ContentsError as exc:
            raise CommandError(str(exc)) from None
        named = depwait.name_fixes(release)
        self.stdout.write(f"{release} ({','.join(arch)}): {kept} paths kept from "
                          f"{apt.archive(mirror)}; the fix named for {named} failed builds")
