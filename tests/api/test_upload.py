import hashlib
from urllib.parse import quote

import pytest

from builds import storage
from builds.models import File, Upload
from tests.builds.bad_wheels import CASES
from tests.factories import make_wheel

pytestmark = pytest.mark.django_db
NAME = "foo_bar-1.0-cp311-cp311-linux_armv7l.whl"


@pytest.fixture
def wheel(tmp_path):
    return make_wheel(tmp_path, "Foo_Bar", "1.0").read_bytes()


def test_upload_stores_the_wheel_in_incoming_only(api, held, wheel):
    response = api.upload(held.id, NAME, wheel)
    assert response.status_code == 201
    assert response.json() == {"filename": NAME, "size": len(wheel),
                               "sha256": hashlib.sha256(wheel).hexdigest()}
    assert (storage.incoming_dir(held.id) / NAME).read_bytes() == wheel
    assert not storage.file_path("foo-bar", NAME).exists()
    assert not File.objects.exists()


def test_uploading_the_same_bytes_again_answers_200(api, held, wheel):
    assert api.upload(held.id, NAME, wheel).status_code == 201
    assert api.upload(held.id, NAME, wheel).status_code == 200
    assert sorted(p.name for p in storage.incoming_dir(held.id).iterdir()) == [
        NAME, f"{NAME}.metadata"]
    row = Upload.objects.get()
    assert (row.build_id, row.filename, row.size, row.sha256) == (
        held.id, NAME, len(wheel), hashlib.sha256(wheel).hexdigest())


def test_other_bytes_under_a_name_already_received_are_refused_409(api, held, wheel, tmp_path):
    assert api.upload(held.id, NAME, wheel).status_code == 201
    other = make_wheel(tmp_path, "Foo_Bar", "1.0", requires_python=">=3").read_bytes()
    response = api.upload(held.id, NAME, other)
    assert response.status_code == 409
    assert response.json() == {"detail": (
        f"{NAME} was already received for build {held.id} with sha256 "
        f"{hashlib.sha256(wheel).hexdigest()}: a build's file, once received, does not change")}
    assert (storage.incoming_dir(held.id) / NAME).read_bytes() == wheel
    assert Upload.objects.get().sha256 == hashlib.sha256(wheel).hexdigest()


def test_a_job_claimed_afresh_takes_new_bytes_under_the_same_name(api, held, wheel, tmp_path):
    assert api.upload(held.id, NAME, wheel).status_code == 201
    assert api.release(held.id).status_code == 204
    assert api.claim().status_code == 200
    other = make_wheel(tmp_path, "Foo_Bar", "1.0", requires_python=">=3").read_bytes()
    assert api.upload(held.id, NAME, other).status_code == 201
    assert (storage.incoming_dir(held.id) / NAME).read_bytes() == other


def not_a_zip(wheel):
    return b"PK" + b"\x00" * 100


@pytest.mark.parametrize("filename, body, sha, status, detail", [
    (NAME, None, "0" * 64, 400, "the body's sha256 is not the X-Sha256 declared"),
    (NAME, None, "nothex", 400, "X-Sha256 must be the hex sha256 of the body"),
    ("bar-1.0-cp311-cp311-linux_armv7l.whl", None, None, 400,
     "'bar-1.0-cp311-cp311-linux_armv7l.whl' is not a wheel of Foo_Bar"),
    ("foo_bar-2.0-cp311-cp311-linux_armv7l.whl", None, None, 400,
     "'foo_bar-2.0-cp311-cp311-linux_armv7l.whl' is not a wheel of version 1.0"),
    ("foo_bar-1.0-cp39-cp39-linux_armv7l.whl", None, None, 400,
     "'foo_bar-1.0-cp39-cp39-linux_armv7l.whl' is tagged for ABI cp39, not cp311 (or none/abi3)"),
    ("..%5C" + NAME, None, None, 400,
     "the filename '..\\\\" + NAME + "' contains a path or control character"),
    (NAME.replace(".whl", "%00.whl"), None, None, 400, "contains a path or control character"),
    ("foo_bar-1.0.tar.gz", None, None, 400, "is not a valid wheel filename"),
    (NAME, not_a_zip, None, 400, f"{NAME} is not a zip file"),
])
def test_bad_uploads_are_refused_and_nothing_is_kept(api, held, wheel, filename, body, sha,
                                                     status, detail):
    data = body(wheel) if body else wheel
    response = api.upload(held.id, filename, data, sha256=sha)
    assert response.status_code == status
    assert detail in response.json()["detail"]
    incoming = storage.incoming_dir(held.id)
    assert not incoming.exists() or list(incoming.iterdir()) == []


def test_a_wheel_without_dist_info_files_is_refused(api, held, tmp_path):
    data = make_wheel(tmp_path, "Foo_Bar", "1.0", members={"foo_bar/__init__.py": b""}).read_bytes()
    response = api.upload(held.id, NAME, data)
    assert response.status_code == 400
    assert response.json() == {"detail": f"{NAME} has 0 .dist-info directories, not one"}


def test_a_slash_in_the_filename_does_not_reach_the_view(api, held, wheel):
    assert api.upload(held.id, "..%2F" + NAME, wheel).status_code == 404
    assert not storage.incoming_dir(held.id).exists()


def test_an_upload_over_the_limit_is_413_before_reading(api, held, wheel, settings):
    settings.PIWHEELS_MAX_UPLOAD = len(wheel) - 1
    response = api.upload(held.id, NAME, wheel)
    assert response.status_code == 413
    assert response.json() == {"detail": f"{len(wheel)} bytes is over the upload limit of "
                                         f"{len(wheel) - 1} bytes"}
    assert not storage.incoming_dir(held.id).exists()


def test_an_upload_to_a_job_not_held_is_409(api, job, wheel, data_dir):
    response = api.upload(job.id, NAME, wheel)
    assert response.status_code == 409
    assert not storage.incoming_dir(job.id).exists()


def nothing_kept(build_id):
    incoming = storage.incoming_dir(build_id)
    return (not incoming.exists() or list(incoming.iterdir()) == []) and not (
        Upload.objects.exists() or File.objects.exists())


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_bad_wheel_is_refused_400_and_nothing_is_kept(api, held, case):
    make, error = CASES[case]
    filename, data = make("Foo_Bar", "1.0", "cp311-cp311-linux_armv7l")
    response = api.upload(held.id, quote(filename), data)
    assert response.status_code == 400
    assert error in response.json()["detail"]
    assert nothing_kept(held.id)


@pytest.mark.parametrize("length", [215, 241, 300, 2000])
def test_a_filename_of_any_length_is_a_400_before_the_body_is_read(api, held, length):
    filename = "a" * (length - len(NAME)) + NAME
    response = api.upload(held.id, filename, b"not read", sha256="0" * 64)
    assert response.status_code == 400
    detail = response.json()["detail"]
    if length > 240:
        assert detail == (f"the filename {filename[:40]!r}... is {length} characters long, "
                          "over the limit of 240")
    else:
        assert detail.startswith(f"{filename!r} is not a wheel of Foo_Bar")
    assert nothing_kept(held.id)
