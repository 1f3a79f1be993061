"""Index serials become global (ProjectQuerySet.touch_index): one PostgreSQL sequence,
or on SQLite a Serial row, starting above every serial a project has now, so that each
project's serial keeps growing."""
from django.db import migrations
from django.db.models import Max


def create_counter(apps, schema_editor):
    Project = apps.get_model("packages", "Project")
    Serial = apps.get_model("packages", "Serial")
    start = (Project.objects.aggregate(top=Max("index_serial"))["top"] or 0) + 1
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("CREATE SEQUENCE IF NOT EXISTS packages_index_serial AS bigint")
        schema_editor.execute(
            "SELECT setval('packages_index_serial', %s, false)", [start])
    else:
        Serial.objects.update_or_create(name="index-serial", defaults={"value": start - 1})


def drop_counter(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP SEQUENCE IF EXISTS packages_index_serial")
    else:
        apps.get_model("packages", "Serial").objects.filter(name="index-serial").delete()


class Migration(migrations.Migration):

    dependencies = [
        ('packages', '0009_project_downloads'),
    ]

    operations = [
        migrations.RunPython(create_counter, drop_counter),
    ]
