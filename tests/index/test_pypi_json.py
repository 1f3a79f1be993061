"""/pypi/<name>/json and /packages/: what a mirror (bandersnatch) reads from the farm, over
real HTTP (the live server), beside the X-PyPI-Last-Serial of the index pages."""
import hashlib
import json

import pytest
import requests

from packages.models import Project
from tests.factories import make_project, make_version, wheel_archive
from tests.index.factories import publish

pytestmark = pytest.mark.django_db(transaction=True)

JSON = "application/vnd.pypi.simple.v1+json"


@pytest.fixture
def farm(live_server, data_dir):
    """demo 1.0 (pure), 2.0 yanked "broken" (armv7l, also listed as armv6l), 3.0 for
    Python >= 3.99; nothing: a project without files."""
    demo = make_project("Demo_Pkg", summary="A demo")
    publish(make_version(demo, "1.0"), wheel_archive("demo_pkg", "1.0"))
    publish(make_version(demo, "2.0", yanked=True, yanked_reason="broken"),
            wheel_archive("demo_pkg", "2.0", "cp311-cp311-linux_armv7l"),
            armv6_compatible=True,
            armv6l_filename="demo_pkg-2.0-cp311-cp311-linux_armv6l.whl")
    publish(make_version(demo, "3.0"),
            wheel_archive("demo_pkg", "3.0", requires_python=">=3.99"))
    make_project("nothing", versions=["1.0"])
    return live_server.url


def get(url, **headers):
    return requests.get(url, headers=headers, timeout=10, allow_redirects=False)


def test_pypi_json_lists_the_index_files_by_release_with_its_serial(farm):
    demo = Project.objects.get(normalized_name="demo-pkg")

    response = get(f"{farm}/pypi/demo-pkg/json")

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["X-PyPI-Last-Serial"] == str(demo.index_serial)
    body = response.json()
    assert body["last_serial"] == demo.index_serial
    assert body["info"]["name"] == "Demo_Pkg" and body["info"]["summary"] == "A demo"
    assert body["info"]["version"] == "3.0"
    assert body["info"]["requires_python"] == ">=3.99"
    assert list(body["releases"]) == ["1.0", "2.0", "3.0"]
    assert body["urls"] == body["releases"]["3.0"]
    pure, = body["releases"]["1.0"]
    wheel = wheel_archive("demo_pkg", "1.0")
    assert pure == {
        "filename": wheel.filename,
        "url": f"{farm}/packages/demo-pkg/{wheel.filename}",
        "digests": {"sha256": hashlib.sha256(wheel.content).hexdigest()},
        "size": len(wheel.content),
        "upload_time": pure["upload_time_iso_8601"][:19],
        "upload_time_iso_8601": pure["upload_time_iso_8601"],
        "requires_python": None,
        "yanked": False,
        "yanked_reason": None,
        "packagetype": "bdist_wheel",
        "python_version": "py3",
        "has_sig": False,
        "comment_text": "",
    }
    assert pure["upload_time_iso_8601"].endswith("Z")
    armv7l, armv6l = body["releases"]["2.0"]
    assert armv7l["filename"] == "demo_pkg-2.0-cp311-cp311-linux_armv7l.whl"
    assert armv6l["filename"] == "demo_pkg-2.0-cp311-cp311-linux_armv6l.whl"
    assert armv6l["digests"] == armv7l["digests"]
    assert (armv7l["yanked"], armv7l["yanked_reason"]) == (True, "broken")
    assert armv7l["python_version"] == "cp311"

    # the same files, the same order, as the index page lists them
    page = get(f"{farm}/simple/demo-pkg/", Accept=JSON).json()
    assert [f["filename"] for f in page["files"]] == [
        f["filename"] for files in body["releases"].values() for f in files]


def test_pypi_json_files_download_from_packages_with_their_bytes(farm):
    body = get(f"{farm}/pypi/demo-pkg/json").json()
    for files in body["releases"].values():
        for file in files:
            download = get(file["url"])
            assert download.status_code == 200, file["url"]
            assert hashlib.sha256(download.content).hexdigest() == file["digests"]["sha256"]
            assert len(download.content) == file["size"]
    assert get(f"{farm}/packages/demo-pkg/nope-1.0-py3-none-any.whl").status_code == 404


def test_pypi_json_redirects_other_spellings_and_404s_projects_without_files(farm):
    moved = get(f"{farm}/pypi/Demo_Pkg/json")
    assert moved.status_code == 301 and moved.headers["Location"] == "/pypi/demo-pkg/json"
    assert get(f"{farm}/pypi/nothing/json").status_code == 404
    assert get(f"{farm}/pypi/unknown/json").status_code == 404


def test_index_pages_send_the_serial_a_mirror_checks(farm):
    demo = Project.objects.get(normalized_name="demo-pkg")

    for accept in (JSON, "text/html"):
        page = get(f"{farm}/simple/demo-pkg/", Accept=accept)  # the WSGI fast path
        assert page.headers["X-PyPI-Last-Serial"] == str(demo.index_serial)
        again = get(f"{farm}/simple/demo-pkg/", Accept=accept, **{
            "If-None-Match": page.headers["ETag"]})
        assert again.status_code == 304
        assert again.headers["X-PyPI-Last-Serial"] == str(demo.index_serial)
    assert "X-PyPI-Last-Serial" not in get(f"{farm}/simple/nothing/").headers

    root = get(f"{farm}/simple/", Accept=JSON)
    listed = json.loads(root.content)
    assert listed["projects"] == [{"name": "demo-pkg", "_last-serial": demo.index_serial}]
    assert root.headers["X-PyPI-Last-Serial"] == str(listed["meta"]["_last-serial"])
    assert listed["meta"]["_last-serial"] >= demo.index_serial
