from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone


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


@pytest.mark.django_db(transaction=True)
def test_a_farm_from_before_architectures_keeps_its_builds_as_armv7l_jobs(data_dir):
    """0010 (jobs per architecture): every build becomes an armv7l job unless its wheels
    or its builder's claims name another architecture; no file is renamed, nothing is
    queued again, every ABI is built for armv7l; the queue then hands an armv7l builder
    the old queued job and an aarch64 builder nothing until aarch64 is added."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    from builds import queue
    from builds.models import Build as CurrentBuild
    from builds.models import File as CurrentFile
    from tests.factories import make_builder

    before = [("builds", "0007_rightwheel_filenames_forever")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    apps = executor.loader.project_state(before).apps
    Project = apps.get_model("packages", "Project")
    Version = apps.get_model("packages", "Version")
    Abi, Build, File, Builder = (apps.get_model("builds", m)
                                 for m in ("Abi", "Build", "File", "Builder"))
    project = Project.objects.create(name="foo", normalized_name="foo")
    versions = [Version.objects.create(project=project, version=v, has_sdist=True)
                for v in ("1.0", "2.0", "3.0", "4.0")]
    abi = Abi.objects.create(tag="cp311")
    pi3 = Builder.objects.create(name="pi3", token_hash="a" * 64, platform="linux_armv7l")
    pi5 = Builder.objects.create(name="pi5", token_hash="b" * 64, platform="linux_aarch64")
    built = Build.objects.create(version=versions[0], abi=abi, state="succeeded", builder=pi3)
    names = ["foo-1.0-cp311-cp311-manylinux_2_36_armv7l.whl",
             "foo-1.0-cp311-cp311-manylinux_2_36_aarch64.whl"]
    File.objects.create(build=built, filename=names[0], size=1, sha256="0" * 64,
                        python_tag="cp311", abi_tag="cp311",
                        platform_tag="manylinux_2_36_armv7l",
                        armv6l_filename="foo-1.0-cp311-cp311-linux_armv6l.whl")
    # An arm64 builder that took a cp311 job before the farm knew architectures.
    stray = Build.objects.create(version=versions[1], abi=abi, state="succeeded", builder=pi5)
    File.objects.create(build=stray, filename=names[1], size=1, sha256="1" * 64,
                        python_tag="cp311", abi_tag="cp311",
                        platform_tag="manylinux_2_36_aarch64")
    failed = Build.objects.create(version=versions[2], abi=abi, state="failed", builder=pi5)
    waiting = Build.objects.create(version=versions[3], abi=abi, state="queued")

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    archs = dict(CurrentBuild.objects.values_list("id", "arch"))
    assert archs == {built.id: "armv7l", stray.id: "aarch64", failed.id: "aarch64",
                     waiting.id: "armv7l"}
    assert sorted(CurrentFile.objects.values_list("filename", "armv6l_filename")) == [
        (names[1], ""), (names[0], "foo-1.0-cp311-cp311-linux_armv6l.whl")]
    from builds.models import Abi as CurrentAbi

    assert CurrentAbi.objects.get(tag="cp311").archs == "armv7l"
    assert CurrentBuild.objects.filter(state="queued").count() == 1
    arm64 = make_builder("arm64", abi=None, platform="linux_aarch64")
    with pytest.raises(queue.WrongArch, match="does not build cp311 for aarch64"):
        queue.check_arch(CurrentAbi.objects.get(tag="cp311"), "aarch64")
    assert queue.claim(arm64, "cp311", timezone.now()) is None
    armhf = make_builder("armhf", abi=None, platform="linux_armv7l")
    assert queue.claim(armhf, "cp311", timezone.now()).id == waiting.id
