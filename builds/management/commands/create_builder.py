import secrets

from django.core.management.base import BaseCommand, CommandError

from builds.models import Builder, hash_token


class Command(BaseCommand):
    help = "Register a builder machine and print its API token (shown this once only)."

    def add_arguments(self, parser):
        parser.add_argument("name", help="a name for the machine, e.g. pi4-cp311-1")

    def handle(self, name, **options):
        name = name.strip()
        if not name:
            raise CommandError(
                "a builder needs a name: give one that is not blank, e.g. pi4-cp311-1")
        if Builder.objects.filter(name=name).exists():
            raise CommandError(f"a builder named {name!r} exists already")
        token = secrets.token_urlsafe(32)
        Builder.objects.create(name=name, token_hash=hash_token(token))
        self.stdout.write(f"created builder {name}; its token (shown only now): {token}")
