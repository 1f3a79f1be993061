"""A filename is forever, PyPI is never shadowed, skipped is not failed (issue 12):
ServedName (every filename ever published, with its sha256; filled here from the files
served now, one INSERT ... SELECT), Build state "skipped" with its skip_reason, and the
File marks superseded_by (rebuilt: listed as yanked) and shadowed_by (upstream has it: off
the index). `manage.py apply_index_rules` then applies the rules to what is published."""

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('builds', '0006_failures_causes'),
        ('packages', '0006_rightwheel_upstream_wheels'),
    ]

    operations = [
        migrations.CreateModel(
            name='ServedName',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('filename', models.CharField(max_length=255, unique=True)),
                ('sha256', models.CharField(max_length=64)),
                ('project', models.CharField(help_text='normalised project name', max_length=200)),
                ('first_served', models.DateTimeField(default=django.utils.timezone.now)),
            ],
        ),
        migrations.RemoveConstraint(
            model_name='build',
            name='builds_build_state_valid',
        ),
        migrations.AddField(
            model_name='build',
            name='skip_reason',
            field=models.CharField(blank=True, db_default='', default='', max_length=400),
        ),
        migrations.AddField(
            model_name='file',
            name='shadowed_by',
            field=models.CharField(blank=True, max_length=255),
        ),
        migrations.AddField(
            model_name='file',
            name='superseded_by',
            field=models.CharField(blank=True, max_length=255),
        ),
        migrations.AlterField(
            model_name='build',
            name='state',
            field=models.CharField(choices=[('queued', 'Queued'), ('building', 'Building'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('skipped', 'Skipped')], default='queued', max_length=10),
        ),
        migrations.AddConstraint(
            model_name='build',
            constraint=models.CheckConstraint(condition=models.Q(('state__in', ['queued', 'building', 'succeeded', 'failed', 'skipped'])), name='builds_build_state_valid'),
        ),
        migrations.AddIndex(
            model_name='servedname',
            index=models.Index(fields=['filename'], name='builds_servedname_prefix', opclasses=['varchar_pattern_ops']),
        ),
        migrations.AddConstraint(
            model_name='servedname',
            constraint=models.CheckConstraint(condition=models.Q(('sha256__regex', '^[0-9a-f]{64}$')), name='builds_servedname_sha256_hex'),
        ),
        migrations.RunSQL(
            """
            INSERT INTO builds_servedname (filename, sha256, project, first_served)
            SELECT f.filename, f.sha256, p.normalized_name, f.uploaded
            FROM builds_file f
            JOIN builds_build b ON b.id = f.build_id
            JOIN packages_version v ON v.id = b.version_id
            JOIN packages_project p ON p.id = v.project_id
            WHERE 1 = 1
            ON CONFLICT (filename) DO NOTHING
            """,
            migrations.RunSQL.noop,
        ),
    ]
