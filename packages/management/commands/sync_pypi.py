from django.core.management.base import BaseCommand, CommandError

from packages.tasks import run_sync, summary


class Command(BaseCommand):
    help = "Run one catalogue sync pass against PIWHEELS_PYPI_URL and refresh the build queue."

    def handle(self, *args, **options):
        result, queued, dropped = run_sync()
        for error in result.errors[:20]:
            self.stderr.write(error)
        if len(result.errors) > 20:
            self.stderr.write(f"... and {len(result.errors) - 20} more errors")
        if result.status == "failed":
            raise CommandError(summary(result, queued, dropped))
        self.stdout.write(summary(result, queued, dropped))
