"""Page format 2 (index/rendering.py PAGE_FORMAT): the JSON pages no longer carry
`dist-info-metadata`, on which pip 22.3 to 23.1 crash (Bookworm's pip 23.0.1). Page files
written before it are stamped in format 1 (index/pages.py): Django renders a page again
as soon as it reads it, but nginx serves the files as they are. Marking the page files of
every project that has files as lagging makes repair() (every minute, REPAIR_BATCH
projects a run) write them all again in the new format. Nothing else changes: the
serials stay, and so do the pages of projects that have no files (they have none)."""
from django.db import migrations
from django.db.models import Exists, OuterRef


def pages_lag(apps, schema_editor):
    Project = apps.get_model("packages", "Project")
    File = apps.get_model("builds", "File")
    Project.objects.filter(
        Exists(File.objects.filter(build__version__project=OuterRef("pk"))),
        index_serial__gt=0,
    ).update(index_file_serial=0)


class Migration(migrations.Migration):
    dependencies = [
        ("index", "0002_page_file_schedules"),
        ("packages", "0011_project_summary_read"),
        ("builds", "0007_rightwheel_filenames_forever"),
    ]

    operations = [migrations.RunPython(pages_lag, migrations.RunPython.noop)]
