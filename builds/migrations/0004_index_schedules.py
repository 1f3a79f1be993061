"""django-q2 schedules of the index: fold the web workers' download counters into the
database every 5 minutes, and render the index root ahead of its first request after a
change (every minute; a no-op when the root is current). update_or_create: safe twice."""
from django.db import migrations

SCHEDULES = {
    "fold_downloads": ("builds.downloads.fold", 5),
    "prerender_root": ("builds.index.prerender_root", 1),
}


def create_schedules(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    for name, (func, minutes) in SCHEDULES.items():
        Schedule.objects.update_or_create(
            name=name,
            defaults={"func": func, "schedule_type": "I", "minutes": minutes, "repeats": -1},
        )


def delete_schedules(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name__in=SCHEDULES).delete()


class Migration(migrations.Migration):
    dependencies = [("builds", "0003_requeue_schedule")]

    operations = [migrations.RunPython(create_schedules, delete_schedules)]
