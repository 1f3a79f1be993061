"""Where served files live on disk, under PIWHEELS_DATA_DIR.

    files/<normalised project name>/<wheel filename>            the wheel
    files/<normalised project name>/<wheel filename>.metadata   its core metadata (PEP 658)
    incoming/<build id>/<wheel filename>                        uploads of a build in progress

A file is moved from incoming/ to files/ only when its build completes successfully.
"""
from pathlib import Path

from django.conf import settings


def files_root():
    return Path(settings.PIWHEELS_DATA_DIR) / "files"


def file_path(normalized_name, filename):
    return files_root() / normalized_name / filename


def metadata_path(normalized_name, filename):
    return files_root() / normalized_name / f"{filename}.metadata"


def incoming_dir(build_id):
    return Path(settings.PIWHEELS_DATA_DIR) / "incoming" / str(build_id)


def delete_files(normalized_name, filenames):
    """Delete these served wheels of one project and their metadata files, if there."""
    for filename in filenames:
        file_path(normalized_name, filename).unlink(missing_ok=True)
        metadata_path(normalized_name, filename).unlink(missing_ok=True)
