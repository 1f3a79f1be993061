from django.core.management.base import BaseCommand, CommandError

from packages.removal import remove_package


class Command(BaseCommand):
    help = "Remove a project or one version of it, with its builds and files."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("version", nargs="?")

    def handle(self, name, version, **options):
        try:
            removed = remove_package(name, version)
        except LookupError as exc:
            raise CommandError(str(exc)) from None
        if version is None:
            self.stdout.write(
                f"removed {removed.name}: {removed.versions} versions, {removed.files} files"
            )
        else:
            self.stdout.write(f"removed {removed.name} {version}: {removed.files} files")
