"""Finished builds kept on disk until the farm confirms them.

    <work dir>/spool/<build id>/result.json    the job and the finish body (written last)
    <work dir>/spool/<build id>/<wheel>         the wheels it names

An entry without result.json is a write that was cut short: it is removed on sight.
"""
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

RESULT = "result.json"


@dataclass
class Entry:
    path: Path
    job: dict
    result: dict

    @property
    def build_id(self):
        return self.job["build_id"]

    def wheel_path(self, filename):
        return self.path / filename

    def remove(self):
        shutil.rmtree(self.path, ignore_errors=True)


class Spool:
    def __init__(self, root):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def put(self, job, result, wheel_paths):
        """Keep a finished build: move its wheels in, then write its result atomically."""
        path = self.root / str(job["build_id"])
        if path.exists():
            shutil.rmtree(path)
        path.mkdir()
        for wheel in wheel_paths:
            shutil.move(str(wheel), str(path / Path(wheel).name))
        tmp = path / (RESULT + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"job": job, "result": result}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path / RESULT)
        _fsync_dir(path)
        return Entry(path, job, result)

    def pending(self):
        """Every complete entry, oldest build first; incomplete ones are removed."""
        entries = []
        for path in sorted(self.root.iterdir(), key=_build_order):
            if not path.is_dir():
                continue
            try:
                with open(path / RESULT, encoding="utf-8") as f:
                    data = json.load(f)
            except (OSError, ValueError):
                log.warning("removing incomplete spool entry %s", path)
                shutil.rmtree(path, ignore_errors=True)
                continue
            entries.append(Entry(path, data["job"], data["result"]))
        return entries


def _build_order(path):
    name = path.name
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
