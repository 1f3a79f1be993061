"""Publishing for the index and file-serving tests: real wheels (tests.factories.
wheel_archive) published as the publisher does it (bytes on disk, File row, index serials
moved on)."""
import hashlib

from builds import storage
from packages.models import Project
from tests.factories import make_build, make_file


def publish(version, wheel, abi="cp311", with_metadata=True, build=None, root=True, **fields):
    """Publish WHEEL as a file of VERSION, as the publisher does when a build succeeds.
    ROOT=False: as the publisher does for a project already on the root (the root's
    page is then written by pages.repair, not at the commit)."""
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
    Project.objects.filter(pk=project.pk).touch_index(root=root)
    return file
