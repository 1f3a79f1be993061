"""The index's scheduled tasks moved from builds/ to index/ (the app split): existing
schedules point at the new paths. Models did not move; only these strings."""
from django.db import migrations

MOVED = {
    "builds.downloads.fold": "index.downloads.fold",
    "builds.index.prerender_root": "index.rendering.prerender_root",
}


def rename(apps, mapping):
    Schedule = apps.get_model("django_q", "Schedule")
    for old, new in mapping.items():
        Schedule.objects.filter(func=old).update(func=new)


class Migration(migrations.Migration):
    dependencies = [("builds", "0004_index_schedules")]

    operations = [
        migrations.RunPython(
            lambda apps, schema_editor: rename(apps, MOVED),
            lambda apps, schema_editor: rename(apps, {v: k for k, v in MOVED.items()}),
        )
    ]
