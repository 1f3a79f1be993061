"""The django-q2 schedule that puts jobs whose lease ran out back in the queue, every
minute (builds.tasks.requeue_expired). Safe to run twice: update_or_create by name."""
from django.db import migrations


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name="requeue_expired",
        defaults={"func": "builds.tasks.requeue_expired", "schedule_type": "I",
                  "minutes": 1, "repeats": -1},
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="requeue_expired").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("builds", "0002_queue_newest_first"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]
