"""The modes of what the farm writes under its data directory (PIWHEELS_DATA_DIR):
0644 for files and 0755 for directories, whatever the process's umask, so that a web
server running as another user (nginx's workers as www-data, deploy/nginx/) can serve
every wheel, metadata file, index page and log it is pointed at.

Python's own ways of making files give other modes: `tempfile.mkstemp` 0600, `open()`
and `mkdir()` 0666 / 0777 less the umask (0600 / 0700 under a umask of 077, as systemd
services often run). Every writer under the data directory therefore makes its
directories with makedirs() and its files with create() (or fixes them with
set_file_mode() before they are renamed into place).
"""
import os
from pathlib import Path

FILE_MODE = 0o644
DIR_MODE = 0o755


def makedirs(path):
    """Make the directory PATH and its missing parents, each DIR_MODE; the path."""
    path = Path(path)
    missing = []
    here = path
    while not here.is_dir():
        missing.append(here)
        if here.parent == here:
            break
        here = here.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:
            if not directory.is_dir():
                raise
            continue  # made meanwhile by another writer, which sets its mode
        os.chmod(directory, DIR_MODE)  # mkdir's mode is less the umask
    return path


def set_file_mode(target):
    """Give the file TARGET (a path or an open file's descriptor) FILE_MODE."""
    if isinstance(target, int):
        os.fchmod(target, FILE_MODE)
    else:
        os.chmod(target, FILE_MODE)


def create(path, mode="wb", **kwargs):
    """open(PATH, MODE) for a new file, which gets FILE_MODE whatever the umask."""
    f = open(path, mode, **kwargs)
    try:
        os.fchmod(f.fileno(), FILE_MODE)
    except BaseException:
        f.close()
        raise
    return f


def write_bytes(path, data):
    """Write DATA as the whole of the file PATH, FILE_MODE."""
    with create(path, "wb") as f:
        f.write(data)
