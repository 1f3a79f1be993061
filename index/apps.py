from django.apps import AppConfig


class IndexConfig(AppConfig):
    """What pip and uv read: the Simple API, the files, download counting."""

    name = "index"
    verbose_name = "Package index"
