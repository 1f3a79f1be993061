"""Search by similarity (web.search): PostgreSQL's pg_trgm and trigram indexes on the
project names and summaries. Elsewhere (SQLite for `make run`), or where the extension
cannot be created, nothing is done and search falls back to plain LIKE matches."""
from django.db import migrations, transaction

INDEXES = [
    # web.search.popular(): the most downloaded projects, for a blank search.
    "CREATE INDEX IF NOT EXISTS web_project_popular ON packages_project"
    " (downloads DESC) WHERE downloads > 0",
    # web.search: the names starting with the query, most downloaded first, from the
    # index alone (a query of one letter has 27,000 of them at 675,000 projects).
    "CREATE INDEX IF NOT EXISTS web_project_name_downloads ON packages_project"
    " (normalized_name varchar_pattern_ops) INCLUDE (downloads, id)",
    # web.search: names containing the query, names close to it (typos), and the
    # unknown-project page's suggestions.
    "CREATE INDEX IF NOT EXISTS web_project_name_trgm ON packages_project"
    " USING gin (normalized_name gin_trgm_ops)",
    # web.search: summaries naming the query ("yaml" finds PyYAML).
    "CREATE INDEX IF NOT EXISTS web_project_summary_trgm ON packages_project"
    " USING gin (summary gin_trgm_ops)",
]


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        try:
            with transaction.atomic():  # a savepoint: a refused extension undoes only itself
                cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        except Exception:  # noqa: BLE001 (no contrib, no right: search falls back)
            indexes = INDEXES[:2]
        else:
            indexes = INDEXES
        for sql in indexes:
            cursor.execute(sql)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        for name in ("web_project_name_trgm", "web_project_summary_trgm",
                     "web_project_name_downloads", "web_project_popular"):
            cursor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    atomic = True
    dependencies = [("packages", "0011_project_summary_read")]
    operations = [migrations.RunPython(create, drop)]
