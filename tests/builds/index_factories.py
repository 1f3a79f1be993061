"""Factories and fixtures for the index and file-serving tests: real wheels, published
as the publisher does it (bytes on disk, File row, index serials moved on)."""
import base64
import hashlib
import io
import zipfile
from collections import namedtuple

import pytest
from django.core.cache import caches
from django.db.models import F
from packaging.utils import canonicalize_name

from builds import storage
from packages.models import Project, Serial
from tests.factories import make_build, make_file

Wheel = namedtuple("Wheel", "filename content metadata requires_python")


def _record_hash(data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode()}"


def make_wheel(name, version, tag="py3-none-any", requires_python="", requires_dist=()):
    """An installable wheel of one module NAME (underscored) holding VERSION."""
    dist = canonicalize_name(name).replace("-", "_")
    filename = f"{dist}-{version}-{tag}.whl"
    dist_info = f"{dist}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    if requires_python:
        metadata += f"Requires-Python: {requires_python}\n"
    for requirement in requires_dist:
        metadata += f"Requires-Dist: {requirement}\n"
    pure = "true" if tag.endswith("-any") else "false"
    members = {
        f"{dist}/__init__.py": f"VERSION = {version!r}\n".encode(),
        f"{dist_info}/METADATA": metadata.encode(),
        f"{dist_info}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: piwheels-tests\nRoot-Is-Purelib: {pure}\n"
            f"Tag: {tag}\n"
        ).encode(),
    }
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in members.items())
    record += f"{dist_info}/RECORD,,\n"
    members[f"{dist_info}/RECORD"] = record.encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in members.items():
            archive.writestr(zipfile.ZipInfo(path, date_time=(2024, 1, 1, 0, 0, 0)), data)
    return Wheel(filename, buffer.getvalue(), metadata.encode(), requires_python)


def bump_root():
    serial, _ = Serial.objects.get_or_create(name="index-root")
    Serial.objects.filter(pk=serial.pk).update(value=F("value") + 1)


def publish(version, wheel, abi="cp311", with_metadata=True, build=None, **fields):
    """Publish WHEEL as a file of VERSION, as the publisher does when a build succeeds."""
    project = version.project
    build = build or make_build(version, abi=abi)
    path = storage.file_path(project.normalized_name, wheel.filename)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(wheel.content)
    metadata_sha256 = ""
    if with_metadata:
        storage.metadata_path(project.normalized_name, wheel.filename).write_bytes(wheel.metadata)
        metadata_sha256 = hashlib.sha256(wheel.metadata).hexdigest()
    fields.setdefault("requires_python", wheel.requires_python)
    file = make_file(
        build, wheel.filename, content=wheel.content, metadata_sha256=metadata_sha256, **fields
    )
    Project.objects.filter(pk=project.pk).touch_index()
    bump_root()
    return file


@pytest.fixture
def data_dir(settings, tmp_path):
    """A fresh PIWHEELS_DATA_DIR and empty index caches."""
    settings.PIWHEELS_DATA_DIR = tmp_path / "data"
    settings.PIWHEELS_ACCEL_REDIRECT = ""
    caches["index"].clear()
    yield settings.PIWHEELS_DATA_DIR
    caches["index"].clear()
