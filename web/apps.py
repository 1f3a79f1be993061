from django.apps import AppConfig


class WebConfig(AppConfig):
    """What people read: home, project pages, logs, search, stats."""

    name = "web"
    verbose_name = "Web pages"
