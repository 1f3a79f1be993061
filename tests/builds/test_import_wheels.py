"""import_wheels refuses what an upload refuses (tests/builds/bad_wheels.py), with one
line and exit 1, keeping nothing."""
import io
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command

from builds.models import Build, File
from tests.builds.bad_wheels import CASES, TAG
from tests.factories import make_abi, make_project, make_version
from tests.live import ROOT, database_url


def nothing_kept(data_dir):
    kept = [p for p in data_dir.rglob("*") if p.is_file()] if data_dir.exists() else []
    return kept == [] and not Build.objects.exists() and not File.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("case", sorted(CASES))
def test_import_wheels_refuses_each_bad_wheel_and_keeps_nothing(data_dir, tmp_path, case):
    make_abi("cp311")
    make_version(make_project("foo"), "1.0")
    make, error = CASES[case]
    filename, data = make("foo", "1.0", TAG)
    path = tmp_path / filename
    path.write_bytes(data)
    with pytest.raises(CommandError) as refused:
        call_command("import_wheels", str(path), stdout=io.StringIO())
    message = str(refused.value)
    assert message.startswith(f"{filename}: ") and error in message
    assert message.endswith(" (0 imported before it)") and "\n" not in message
    assert nothing_kept(data_dir)


@pytest.mark.django_db(transaction=True)
def test_import_wheels_exits_1_with_the_reason_in_one_line(tmp_path):
    make_abi("cp311")
    make_version(make_project("foo"), "1.0")
    filename, data = CASES["symlink"][0]("foo", "1.0", TAG)
    (tmp_path / filename).write_bytes(data)
    proc = subprocess.run(
        [sys.executable, "manage.py", "import_wheels", str(tmp_path / filename)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={"DATABASE_URL": database_url(), "PIWHEELS_DATA_DIR": str(tmp_path / "data"),
             "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 1
    assert proc.stderr == (f"CommandError: {filename}: {filename} has a symbolic link: "
                           "'foo/passwd' (0 imported before it)\n")
    assert nothing_kept(tmp_path / "data")
