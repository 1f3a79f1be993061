"""The scheduled sync moved from builds/sync_tasks.py to packages/tasks.py (the app split)."""
from django.db import migrations

OLD, NEW = "builds.sync_tasks.sync_pypi", "packages.tasks.sync_pypi"


def rename(apps, old, new):
    apps.get_model("django_q", "Schedule").objects.filter(func=old).update(func=new)


class Migration(migrations.Migration):
    dependencies = [("packages", "0003_sync_schedule")]

    operations = [
        migrations.RunPython(
            lambda apps, schema_editor: rename(apps, OLD, NEW),
            lambda apps, schema_editor: rename(apps, NEW, OLD),
        )
    ]
