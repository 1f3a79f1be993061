from io import StringIO

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_the_models_and_the_migrations_agree():
    out = StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=out)
    except SystemExit:
        pytest.fail(f"models changed without a migration:\n{out.getvalue()}")
    assert "No changes detected" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_a_database_of_the_old_layout_upgrades_without_loss():
    """Before the app split the schedules named builds.* tasks; the models stayed where they
    were (builds owns the tables index and web read, so no table moved). Migrating a
    filled database of that layout keeps every row and points the schedules at the moved
    tasks, which import."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor
    from django.utils.module_loading import import_string

    old = [("index", None), ("packages", "0003_sync_schedule"),
           ("builds", "0004_index_schedules")]
    executor = MigrationExecutor(connection)
    executor.migrate(old)
    apps = executor.loader.project_state([n for n in old if n[1]]).apps
    Project = apps.get_model("packages", "Project")
    Version = apps.get_model("packages", "Version")
    Abi = apps.get_model("builds", "Abi")
    Build = apps.get_model("builds", "Build")
    Schedule = apps.get_model("django_q", "Schedule")
    project = Project.objects.create(name="Foo", normalized_name="foo")
    version = Version.objects.create(project=project, version="1.0")
    abi = Abi.objects.get_or_create(tag="cp311")[0]
    Build.objects.create(version=version, abi=abi)
    # The schedules as the old layout's migrations made them (a transactional test's flush
    # may have emptied the table since).
    for name, func in [("sync_pypi", "builds.sync_tasks.sync_pypi"),
                       ("fold_downloads", "builds.downloads.fold"),
                       ("prerender_root", "builds.index.prerender_root")]:
        Schedule.objects.update_or_create(name=name, defaults={
            "func": func, "schedule_type": "I", "minutes": 1, "repeats": -1})

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    apps = executor.loader.project_state(executor.loader.graph.leaf_nodes()).apps
    assert apps.get_model("builds", "Build").objects.filter(
        version__project__normalized_name="foo", abi__tag="cp311").count() == 1
    funcs = dict(apps.get_model("django_q", "Schedule").objects.values_list("name", "func"))
    assert funcs["sync_pypi"] == "packages.tasks.sync_pypi"
    assert funcs["fold_downloads"] == "index.downloads.fold"
    # Rendering the root ahead of a request is now the page writer's: its schedule went.
    assert "prerender_root" not in funcs
    assert funcs["repair_index_pages"] == "index.pages.repair"
    assert all(callable(import_string(func)) for func in funcs.values())


@pytest.mark.django_db(transaction=True)
def test_index_serials_go_on_above_every_serial_a_project_had(data_dir):
    """0010 makes serials global: its sequence starts above the per-project counters of
    before, so that no project's serial ever goes back (an ETag would then repeat)."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    from packages.models import Project as CurrentProject

    before = [("packages", "0009_project_downloads")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    Project = executor.loader.project_state(before).apps.get_model("packages", "Project")
    Project.objects.create(name="foo", normalized_name="foo", index_serial=5000)
    Project.objects.create(name="bar", normalized_name="bar", index_serial=3)

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    CurrentProject.objects.filter(normalized_name="bar").touch_index()
    assert CurrentProject.objects.get(normalized_name="bar").index_serial == 5001
