"""Finished builds kept on disk until the farm confirms them.

    <work dir>/spool/<build id>/result.json    the job and the finish body (written last)
    <work dir>/spool/<build id>/<wheel>         the wheels it names
    <work dir>/spool/<build id>/build.log.gz    the whole build log, compressed
    <work dir>/spool/<build id>/retry.json      when a delivery the farm did not take
                                                 is next tried (absent: at once)

An entry without result.json is a write that was cut short: it is removed on sight.
(An entry of an older agent has no build.log.gz: its log is the result's "output".)
"""
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from . import logs

log = logging.getLogger(__name__)

RESULT = "result.json"
LOG = "build.log.gz"
RETRY = "retry.json"


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

    @property
    def log_path(self):
        """The whole log, gzip-compressed, or None (an older agent's entry)."""
        path = self.path / LOG
        return path if path.is_file() else None

    def retry_state(self):
        try:
            with open(self.path / RETRY, encoding="utf-8") as f:
                state = json.load(f)
            return int(state["tries"]), float(state["not_before"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0, 0.0

    def due(self, now=None):
        return self.retry_state()[1] <= (time.time() if now is None else now)

    def defer(self, delay):
        """Try this delivery again ``delay`` seconds from now; returns the tries so far."""
        tries = self.retry_state()[0] + 1
        _write_json(self.path / RETRY, {"tries": tries, "not_before": time.time() + delay})
        return tries

    def remove(self):
        shutil.rmtree(self.path, ignore_errors=True)


class Spool:
    def __init__(self, root):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def put(self, job, result, wheel_paths, log_path=None):
        """Keep a finished build: move its wheels in, compress its whole log (LOG_PATH)
        in, then write its result atomically."""
        path = self.root / str(job["build_id"])
        if path.exists():
            shutil.rmtree(path)
        path.mkdir()
        for wheel in wheel_paths:
            shutil.move(str(wheel), str(path / Path(wheel).name))
        if log_path is not None:
            logs.compress(log_path, path / LOG)
        _write_json(path / RESULT, {"job": job, "result": result})
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


def _write_json(path, data):
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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
