from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from builds import storage
from builds.models import Build, File
from builds.sync_tasks import delete_files_of, refresh_in_batches
from packages import sync
from packages.models import Project


class Command(BaseCommand):
    help = "Remove a project or one version of it, with its builds and files."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("version", nargs="?")

    def handle(self, name, version, **options):
        project = Project.objects.named(name).first()
        files = File.objects.filter(build__version__project=project)
        if version is not None:
            files = files.filter(build__version__version=version)
        filenames = list(files.values_list("filename", flat=True)) if project else []
        try:
            with transaction.atomic():
                ids = sync.remove_package(name, version)
                if version is not None:
                    refresh_in_batches(ids, Build.Priority.BACKLOG)
        except LookupError as exc:
            raise CommandError(str(exc))
        if version is None:
            delete_files_of([project.normalized_name])
            self.stdout.write(f"removed {project.name}: {len(ids)} versions, "
                              f"{len(filenames)} files")
        else:
            storage.delete_files(project.normalized_name, filenames)
            self.stdout.write(f"removed {project.name} {version}: {len(filenames)} files")
