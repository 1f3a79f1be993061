"""Where served files live on disk, under PIWHEELS_DATA_DIR.

    files/<normalised project name>/<wheel filename>            the wheel
    files/<normalised project name>/<wheel filename>.metadata   its core metadata (PEP 658)
    incoming/<build id>/<wheel filename>                        uploads of a build in progress

A file is moved from incoming/ to files/ only when its build completes successfully.
Every file written under the data directory is 0644 and every directory 0755, whatever
the umask (lib/datafiles.py): nginx's workers, another user, serve them.
"""
import shutil
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.urls import reverse

from lib import datafiles


def files_root():
    return Path(settings.PIWHEELS_DATA_DIR) / "files"


def file_path(normalized_name, filename):
    return files_root() / normalized_name / filename


def metadata_path(normalized_name, filename):
    return files_root() / normalized_name / f"{filename}.metadata"


def file_url(normalized_name, filename):
    """Where a served file is downloaded from (host-relative, so a rendering is valid
    whatever name the farm is reached by)."""
    return reverse("files-wheel", kwargs={"name": normalized_name, "filename": filename})


def incoming_dir(build_id):
    return Path(settings.PIWHEELS_DATA_DIR) / "incoming" / str(build_id)


def write_chunks(path, chunks, limit=None, each=None):
    """Write CHUNKS to a new file at PATH, calling EACH(chunk) on every chunk written, and
    return the bytes received. Past LIMIT bytes it stops reading (the caller, seeing more
    than it was promised, refuses), so a body that lies about its length never fills a disk."""
    received = 0
    with datafiles.create(path, "wb") as out:
        for chunk in chunks:
            received += len(chunk)
            if limit is not None and received > limit:
                break
            out.write(chunk)
            if each is not None:
                each(chunk)
    return received


def discard_incoming_on_commit(build_id):
    """Once the current transaction commits, delete a build's uploads: the build is
    claimed afresh, failed or published, and its incoming files are of no use."""
    directory = incoming_dir(build_id)
    transaction.on_commit(lambda: shutil.rmtree(directory, ignore_errors=True))


def delete_files(normalized_name, filenames):
    """Delete these served wheels of one project and their metadata files, if there."""
    for filename in filenames:
        file_path(normalized_name, filename).unlink(missing_ok=True)
        metadata_path(normalized_name, filename).unlink(missing_ok=True)
