from django.core.management.base import BaseCommand

from builds import logs


class Command(BaseCommand):
    help = ("Delete the whole logs under PIWHEELS_DATA_DIR/logs/ of builds that do not "
            "exist (left by refused imports before issue 20), written over an hour ago.")

    def handle(self, *args, **options):
        removed = logs.remove_stray_logs()
        self.stdout.write(f"{removed} stray logs removed")
