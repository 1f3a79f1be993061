"""The README's walk-through ("Trying it out"), its commands read from the README itself
and run in order as a person runs them, against a live farm (gunicorn) whose upstream is a
fake PyPI on 127.0.0.1 serving the real MarkupSafe 2.1.5 sdist, with the sync already
running (it has read other projects, so add_abi queues a backlog before add_package).

What a person fills in is filled in: the farm's address (a free port, not 8000), the token
create_builder printed, and a temporary directory for the venv; createsuperuser, which
asks, is answered from the environment (--noinput). Nothing else changes."""
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.tags import sys_tags

from builds.models import Build
from packages.models import Project
from tests.servers import Gunicorn, farm_env

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "var" / "test-cache"
README_FARM = "http://127.0.0.1:8000"
README_VENV = "/tmp/try-farm"


def walkthrough():
    """The command lines of the README's first code block under "## Trying it out"."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Trying it out\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def test_the_walkthrough_is_what_the_readme_says():
    commands = walkthrough()
    assert commands[0] == ". .venv/bin/activate"
    assert "python manage.py add_package MarkupSafe 2.1.5" in commands
    assert commands[-1].endswith("pip install --index-url http://127.0.0.1:8000/simple/ "
                                 "MarkupSafe==2.1.5")


def download(spec, *options):
    """The file pip downloads for SPEC into var/test-cache/ (once), or a skip."""
    CACHE.mkdir(parents=True, exist_ok=True)
    name = spec.split("=")[0].split(">")[0]
    pattern = f"{name}-*" if "==" not in spec else f"{name}-{spec.split('==')[1]}*"
    found = sorted(CACHE.glob(pattern))
    if not found:
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", *options,
                               spec, "-d", str(CACHE)], capture_output=True, text=True,
                              timeout=300)
        found = sorted(CACHE.glob(pattern))
        if not found:
            pytest.skip(f"cannot download {spec}: {proc.stderr[-300:]}")
    return found[-1]


@pytest.mark.skipif(next(iter(sys_tags())).abi != "cp311",
                    reason="the walk-through's add_abi cp311 is make run's Python 3.11")
def test_the_walkthrough_works_as_written(transactional_db, tmp_path, fake_pypi):
    sdist = download("MarkupSafe==2.1.5", "--no-binary", ":all:")
    setuptools = download("setuptools>=70.1", "--only-binary", ":all:")
    fake_pypi.add_release("setuptools", setuptools.name.split("-")[1],
                          [(setuptools.name, setuptools.read_bytes())])
    fake_pypi.add_release("MarkupSafe", "2.1.5", [(sdist.name, sdist.read_bytes())])
    for name in ("acme-one", "acme-two"):  # the rest of the catalogue, built later
        fake_pypi.add_release(name, "1.0")

    home = tmp_path / "home"
    home.mkdir()
    env = farm_env(tmp_path, PIWHEELS_PYPI_URL=fake_pypi.url, LOG_LEVEL="WARNING")
    env = {k: v for k, v in env.items() if not k.startswith("PIP_")}
    env.update(
        HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"),
        PATH=f"{ROOT / '.venv' / 'bin'}:{env['PATH']}",  # what `. .venv/bin/activate` does
        VIRTUAL_ENV=str(ROOT / ".venv"),
        PIP_CONFIG_FILE=os.devnull, PIP_CACHE_DIR=str(tmp_path / "pip-cache"),
        DJANGO_SUPERUSER_USERNAME="admin", DJANGO_SUPERUSER_EMAIL="admin@example.com",
        DJANGO_SUPERUSER_PASSWORD="a long walk-through password",
    )
    # The sync has been running: it knows the catalogue (and queued nothing: no ABI yet).
    sync = subprocess.run([sys.executable, "manage.py", "sync_pypi"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert sync.returncode == 0, sync.stderr
    assert Project.objects.filter(name__in=["acme-one", "acme-two"]).count() == 2

    web = Gunicorn(env, tmp_path / "web.log").start()
    venv = tmp_path / "try-farm"
    token, outputs = None, ""
    try:
        for command in walkthrough():
            if command == ". .venv/bin/activate":
                continue  # done by the environment above
            if command.endswith("manage.py createsuperuser"):
                command += " --noinput"  # it asks; the answers are in the environment
            command = command.replace(README_FARM, web.url).replace(README_VENV, str(venv))
            if "<token>" in command:
                command = command.replace("<token>", shlex.quote(token))
            proc = subprocess.run(command, shell=True, cwd=ROOT, env=env, capture_output=True,
                                  text=True, timeout=900)
            assert proc.returncode == 0, (
                f"{command}\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}\n" + "\n".join(
                    f"{b.version.project.name} {b.version.version} {b.state} {b.failure_reason}"
                    f" {b.skip_reason}" for b in Build.objects.all()) + outputs)
            outputs += f"\n$ {command}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
            if "create_builder" in command:
                token = proc.stdout.strip().rsplit(" ", 1)[1]
            if "add_abi" in command:  # the backlog the sync's catalogue makes
                assert Build.objects.filter(state="queued").count() >= 2
    finally:
        web.stop()

    markupsafe = Build.objects.get(version__project__name="MarkupSafe", version__version="2.1.5")
    assert markupsafe.state == Build.State.SUCCEEDED  # --once took it, not the backlog
    assert not Build.objects.exclude(id=markupsafe.id).exclude(state="queued").exists()
    installed = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import markupsafe, markupsafe._speedups; print(markupsafe.__version__)"],
        capture_output=True, text=True, timeout=60)
    assert installed.stdout.strip() == "2.1.5", installed.stderr  # the C extension, built
