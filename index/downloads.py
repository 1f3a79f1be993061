"""Download counting without a database write per download.

Each web worker counts downloads in memory (`record`) and, every FLUSH_SECONDS or
FLUSH_EVERY downloads, appends the counts to a log file of its own under
PIWHEELS_DATA_DIR/downloads/ (one small append, no database). `fold()`, run by the task
worker every few minutes, adds the logs of minutes that are over into `File.downloads`
and `DailyDownloads` and deletes them.

Log files are named `<UTC minute>-<host>-<pid>.log`; a line is `<file id> <day> <count>`.
A worker only ever appends to the file of the current minute, so fold() never reads a
file that is still being written. A worker flushes what it holds when it exits
(gunicorn's worker_exit hook in piwheels_site/gunicorn.conf.py).
"""
import logging
import os
import socket
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from builds.models import DailyDownloads, File
from lib import datafiles
from packages.models import Project

log = logging.getLogger(__name__)

FLUSH_SECONDS = 10
FLUSH_EVERY = 1000

_lock = threading.Lock()
_counts = Counter()
_pending = 0
_last_flush = time.monotonic()


def log_dir():
    return Path(settings.PIWHEELS_DATA_DIR) / "downloads"


def record(file_id, now=None):
    """Count one download of file FILE_ID (in memory; flushed now and then)."""
    global _pending
    day = (now or timezone.now()).date()
    with _lock:
        _counts[(file_id, day)] += 1
        _pending += 1
        due = _pending >= FLUSH_EVERY or time.monotonic() - _last_flush >= FLUSH_SECONDS
    if due:
        flush(now)


def flush(now=None):
    """Append the counts held in memory to this process's log for the current minute."""
    global _counts, _pending, _last_flush
    with _lock:
        counts, _counts, _pending = _counts, Counter(), 0
        _last_flush = time.monotonic()
    if not counts:
        return 0
    now = now or timezone.now()
    lines = "".join(f"{file_id} {day.isoformat()} {n}\n" for (file_id, day), n in counts.items())
    directory = log_dir()
    datafiles.makedirs(directory)
    path = directory / f"{now:%Y%m%d%H%M}-{socket.gethostname()}-{os.getpid()}.log"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, datafiles.FILE_MODE)
    try:
        datafiles.set_file_mode(fd)
        os.write(fd, lines.encode())
    finally:
        os.close(fd)
    return sum(counts.values())


def held():
    """{(file id, day): downloads} counted in memory and not yet flushed."""
    with _lock:
        return dict(_counts)


def reset():
    """Forget the counts held in memory (tests: one test's downloads are not the next's)."""
    global _counts, _pending, _last_flush
    with _lock:
        _counts, _pending, _last_flush = Counter(), 0, time.monotonic()


def _read(paths):
    counts = Counter()
    for path in paths:
        for line in path.read_text().splitlines():
            try:
                file_id, day, n = line.split()
                counts[(int(file_id), day)] += int(n)
            except ValueError:
                log.warning("downloads: bad line %r in %s", line, path.name)
    return counts


# pg_try_advisory_xact_lock key of fold(): one fold at a time, whichever task host runs it.
FOLD_LOCK = 0x70697766  # "piwf"


def fold(now=None):
    """Add the download logs of minutes that ended over a minute before NOW into
    File.downloads and DailyDownloads, then delete them. Returns the downloads added.

    Several task hosts may run this at once (the schedule, or a manual run): on
    PostgreSQL one transaction-level advisory lock lets one fold at a time take the logs,
    and another returns 0 at once (the one holding it folds every log that is due).
    Logs are renamed to *.folding under that lock; one left over by a crash is folded
    by the next run. A crash between the commit and the deletion would count those logs
    twice; downloads of files deleted since are dropped."""
    now = now or timezone.now()
    directory = log_dir()
    if not directory.is_dir():
        return 0
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [FOLD_LOCK])
                if not cursor.fetchone()[0]:
                    log.info("downloads: another fold is running")
                    return 0
        total, files, paths = _fold_locked(directory, now)
    for path in paths:
        path.unlink(missing_ok=True)
    if paths:
        log.info("downloads: folded %d downloads of %d files from %d logs",
                 total, files, len(paths))
    return total


def _fold_locked(directory, now):
    """fold()'s work inside its transaction: (downloads, files, log paths folded)."""
    cutoff = f"{now - timedelta(minutes=1):%Y%m%d%H%M}"
    paths = list(directory.glob("*.folding"))
    for path in directory.glob("*.log"):
        if path.name[:12] < cutoff:
            target = path.with_suffix(".folding")
            os.replace(path, target)
            paths.append(target)
    counts = _read(paths)
    existing = set(
        File.objects.filter(id__in={file_id for file_id, _ in counts}).values_list("id", flat=True)
    )
    per_file = Counter()
    for (file_id, _day), n in counts.items():
        if file_id in existing:
            per_file[file_id] += n
    daily_table = DailyDownloads._meta.db_table
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {File._meta.db_table} SET downloads = downloads + %s WHERE id = %s",
            [(n, file_id) for file_id, n in sorted(per_file.items())],
        )
        cursor.executemany(
            f"INSERT INTO {daily_table} (file_id, day, count) VALUES (%s, %s, %s) "
            f"ON CONFLICT (file_id, day) DO UPDATE"
            f" SET count = {daily_table}.count + excluded.count",
            [(file_id, day, n) for (file_id, day), n in sorted(counts.items())
             if file_id in existing],
        )
        # The sync fetches a waiting project's details sooner the more it is downloaded.
        per_project = Counter()
        for file_id, project_id in File.objects.filter(id__in=per_file).values_list(
                "id", "build__version__project_id"):
            per_project[project_id] += per_file[file_id]
        cursor.executemany(
            f"UPDATE {Project._meta.db_table} SET downloads = downloads + %s WHERE id = %s",
            [(n, project_id) for project_id, n in sorted(per_project.items())],
        )
    return sum(per_file.values()), len(per_file), paths
