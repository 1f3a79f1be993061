"""The index's page files (index/pages.py) are written when a change commits; these
schedules repair what a writer that died left behind: every minute the pages whose
files lag the database and the root, every hour the pages of projects that are gone.
They replace prerender_root (rendering the root ahead of a request), which the writer
now does itself. update_or_create: safe twice."""
from django.db import migrations

SCHEDULES = {
    "repair_index_pages": ("index.pages.repair", 1),
    "sweep_index_pages": ("index.pages.sweep", 60),
}


def create_schedules(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.filter(name="prerender_root").delete()
    for name, (func, minutes) in SCHEDULES.items():
        Schedule.objects.update_or_create(
            name=name,
            defaults={"func": func, "schedule_type": "I", "minutes": minutes, "repeats": -1},
        )


def delete_schedules(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name__in=SCHEDULES).delete()


class Migration(migrations.Migration):
    dependencies = [("index", "0001_moved_task_paths")]

    operations = [migrations.RunPython(create_schedules, delete_schedules)]
