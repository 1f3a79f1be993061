"""The django-q2 schedule that runs a catalogue sync pass every PIWHEELS_SYNC_INTERVAL
seconds (rounded to whole minutes, at least one). Operators change it afterwards in the
admin (Django Q > Scheduled tasks > sync_pypi)."""
from django.conf import settings
from django.db import migrations


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    minutes = max(1, round(getattr(settings, "PIWHEELS_SYNC_INTERVAL", 60) / 60))
    Schedule.objects.update_or_create(
        name="sync_pypi",
        defaults={"func": "builds.sync_tasks.sync_pypi", "schedule_type": "I",
                  "minutes": minutes, "repeats": -1},
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="sync_pypi").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("packages", "0002_sync_retry"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]
