"""Learning what changed upstream, cheaply: from the simple root or the XML-RPC changelog.

Neither fetches any project's details: a new name becomes a Project row at once, a project
whose serial moved is marked waiting (upstream_serial > serial), one upstream seems to have
dropped gets a Missing row. sync.fetch_details() does the rest, paced.

The root is streamed into a temporary table (bounded memory for a million projects) and
diffed against the catalogue in SQL, in one transaction: a root that is cut short or
malformed changes nothing, and one that lists too few of the known projects is not
trusted for removals.
"""
import csv
import io
import logging
import queue
import re
import threading
import time
from dataclasses import dataclass

from django.db import connection, transaction
from packaging.utils import canonicalize_name

from packages.catalogue import update_rows, writing
from packages.models import Missing, Project, Serial

log = logging.getLogger(__name__)

ROOT_TABLE = "packages_sync_root"
DELTA_TABLE = "packages_sync_delta"  # what differs between the root and the catalogue
LOAD_CHUNK = 10_000
COPY_READ = 1 << 22  # what COPY asks its file for at a time: a whole chunk, not 8 KiB slices
# A root that lacks more of the known projects than this (and than 10% of them) is stale
# or cut short: it may add names and move serials, but it marks nothing missing.
TRUSTED_MISSING = 1000
# Changelog actions that change what we store; the others (owners, docs) only move the serial.
RELEVANT_ACTIONS = ("create", "new release", "yank release", "unyank release",
                    "remove release", "remove project")
# A PEP 792 status change (the changelog's wording for it is not specified): the project
# is read again, its status with it.
STATUS_WORDS = ("status", "quarantin", "archiv", "deprecat")


@dataclass
class Announced:
    """What one look at upstream announced."""

    listed: int = 0  # distinct projects on the root
    new: int = 0
    moved: int = 0
    missing: int = 0
    events: int = 0


def _execute(cursor, sql, params=()):
    cursor.execute(sql, params)
    return cursor.rowcount


# A name of only these characters (every valid project name) goes into COPY's csv as it
# is, a line of plain text; any other is quoted by the csv module.
PLAIN_NAME = re.compile(r"[A-Za-z0-9._-]+\Z").match


def _csv_lines(rows):
    """COPY's csv text of (norm, name, serial) ROWS: plain lines, not the csv module's
    per-row work (most of the load's time)."""
    lines, quoted = [], io.StringIO()
    quote = csv.writer(quoted)
    for norm, name, serial in rows:
        serial = "" if serial is None else serial  # csv: an empty unquoted field is NULL
        if PLAIN_NAME(name):
            lines.append(f"{norm},{name},{serial}\n")
        else:
            quote.writerow((norm, name, serial))
            lines.append(quoted.getvalue())
            quoted.seek(0)
            quoted.truncate()
    return "".join(lines)


class _Feed:
    """The file one COPY reads, fed chunk by chunk from another thread: PostgreSQL takes
    in one chunk while this process parses the next (a queue of a few chunks: bounded
    memory). A feeder's exception, put in the queue, is raised in read(), which aborts
    the COPY."""

    def __init__(self):
        self.chunks = queue.Queue(maxsize=4)
        self.buffer = ""

    def read(self, size=-1):
        while not self.buffer:
            chunk = self.chunks.get()
            if chunk is None:
                return ""
            if isinstance(chunk, BaseException):
                raise chunk
            self.buffer = chunk
        size = len(self.buffer) if size is None or size < 0 else size
        part, self.buffer = self.buffer[:size], self.buffer[size:]
        return part


def _normalised(entries):
    """(norm, name, serial) of the root's (name, serial) ENTRIES that a catalogue row can
    hold, LOAD_CHUNK at a time."""
    rows = []
    for name, serial in entries:
        norm = canonicalize_name(name)
        if norm and len(name) <= 200:
            rows.append((norm, name, serial))
            if len(rows) >= LOAD_CHUNK:
                yield rows
                rows = []
    if rows:
        yield rows


def _load(cursor, entries):
    """Stream the root's (name, serial) ENTRIES into the temporary table: on PostgreSQL
    one COPY, run in a thread of its own while this one parses; elsewhere INSERTs."""
    if connection.vendor != "postgresql":
        for rows in _normalised(entries):
            cursor.executemany(f"INSERT INTO {ROOT_TABLE} (norm, name, serial) "
                               "VALUES (%s, %s, %s)", rows)
        return
    feed, failed = _Feed(), []

    def copy():
        try:
            cursor.cursor.copy_expert(f"COPY {ROOT_TABLE} (norm, name, serial) FROM STDIN "
                                      "WITH (FORMAT csv)", feed, size=COPY_READ)
        except Exception as exc:
            failed.append(exc)
            while feed.chunks.get() is not None:  # let the feeder finish
                pass

    copier = threading.Thread(target=copy, name="sync-root-copy")
    copier.start()
    try:
        for rows in _normalised(entries):
            feed.chunks.put(_csv_lines(rows))
    except BaseException as exc:
        feed.chunks.put(exc)  # the COPY is aborted: nothing of a bad root is loaded
        feed.chunks.put(None)
        copier.join()
        raise
    feed.chunks.put(None)
    copier.join()
    if failed:
        raise failed[0]


def _create_table(cursor):
    cursor.execute(f"DROP TABLE IF EXISTS {ROOT_TABLE}")
    cursor.execute(f"CREATE TEMPORARY TABLE {ROOT_TABLE} "
                   "(norm varchar(200) NOT NULL, name varchar(200) NOT NULL, serial bigint)")


def record_root(root, now):
    """Diff the streamed ROOT (upstream.Root) against the catalogue; returns Announced.
    UpstreamError (from root.entries()) when the root is cut short: nothing changed."""
    announced = Announced()
    with connection.cursor() as cursor:
        _create_table(cursor)
        try:
            started = time.monotonic()
            with transaction.atomic():  # a COPY a bad root aborts leaves no trace
                _load(cursor, root.entries())  # outside the write lock: it is slow
            if connection.vendor == "postgresql":
                cursor.execute(f"ANALYZE {ROOT_TABLE}")  # hash joins: no index needed
            else:
                cursor.execute(f"CREATE INDEX {ROOT_TABLE}_norm ON {ROOT_TABLE} (norm)")
            loaded = time.monotonic()
            with writing():
                _diff_root(cursor, root, now, announced)
            log.info("sync: root read in %.1f s, diffed in %.1f s", loaded - started,
                     time.monotonic() - loaded)
        finally:
            cursor.execute(f"DROP TABLE IF EXISTS {ROOT_TABLE}")
    return announced


def _diff_root(cursor, root, now, announced):
    """One join of the root with the catalogue into a small table of what differs (new
    names, moved serials, known projects the root lacks); every change is made from it."""
    project = Project._meta.db_table
    cursor.execute(f"DROP TABLE IF EXISTS {DELTA_TABLE}")
    if not Project.objects.exists():  # the first pass: every name is new, nothing to join
        cursor.execute(f"CREATE TEMPORARY VIEW {DELTA_TABLE} AS SELECT norm, name, serial, "
                       f"NULL AS project_id, NULL AS known, NULL AS known_name FROM {ROOT_TABLE}")
        announced.new = announced.listed = _add_new(cursor, now)
        cursor.execute(f"DROP VIEW {DELTA_TABLE}")
        _record_serial(cursor, root, now)
        return
    # Not grouped by name first (a tenth of the diff's time): the rare name the root
    # spells twice gives two rows here, grouped below where it matters.
    cursor.execute(f"""
        CREATE TEMPORARY TABLE {DELTA_TABLE} AS
        SELECT r.norm, r.name, r.serial, p.id AS project_id, p.normalized_name AS known,
               p.name AS known_name
        FROM {ROOT_TABLE} r FULL JOIN {project} p ON p.normalized_name = r.norm
        WHERE p.id IS NULL OR r.norm IS NULL
           OR (r.serial > p.upstream_serial AND r.serial > p.serial)""")
    try:
        cursor.execute(f"SELECT count(DISTINCT norm) FILTER (WHERE project_id IS NULL), "
                       f"count(*) FILTER (WHERE norm IS NULL) FROM {DELTA_TABLE}")
        new, lacking = cursor.fetchone()
        known = Project.objects.count()  # before the new names go in
        announced.listed = known - lacking + new
        announced.moved = _execute(cursor, f"""
            UPDATE {project} SET upstream_serial = d.serial
            FROM (SELECT project_id, max(serial) AS serial FROM {DELTA_TABLE}
                  WHERE norm IS NOT NULL GROUP BY project_id) d
            WHERE {project}.id = d.project_id""")
        announced.new = _add_new(cursor, now)
        if Missing.objects.exists():  # back on the root: no longer suspected gone
            _execute(cursor, f"DELETE FROM {Missing._meta.db_table} WHERE normalized_name IN "
                             f"(SELECT norm FROM {ROOT_TABLE})")
        if lacking and lacking <= max(TRUSTED_MISSING, known // 10):
            announced.missing = _note_missing(cursor, now)
        elif lacking:
            log.warning("sync: the root lacks %d of %d known projects: not trusted for "
                        "removals", lacking, known)
    finally:
        cursor.execute(f"DROP TABLE IF EXISTS {DELTA_TABLE}")
    _record_serial(cursor, root, now)


def _record_serial(cursor, root, now):
    """The root's serial: where an XML-RPC fast path would start from."""
    if root.serial is not None:
        serial = root.serial
    else:
        cursor.execute(f"SELECT max(serial) FROM {ROOT_TABLE}")
        serial = cursor.fetchone()[0]
    if serial:
        Serial.objects.update_or_create(name="pypi", defaults={"value": serial, "updated": now})


def _add_new(cursor, now):
    """Names on the root the catalogue lacks become waiting Project rows (a root without
    serials, PEP 503, announces them at serial 1)."""
    project = Project._meta.db_table
    return _execute(cursor, f"""
        INSERT INTO {project} (name, normalized_name, summary, added, serial, upstream_serial,
                               demand, downloads, skip_reason, index_serial)
        SELECT max(name), norm, '', %s, 0, coalesce(max(serial), 1), 0, 0, '', 0
        FROM {DELTA_TABLE} WHERE project_id IS NULL GROUP BY norm""", [now])


def _note_missing(cursor, now):
    """Projects the catalogue has and the root lacks: suspected gone (Missing)."""
    missing = Missing._meta.db_table
    return _execute(cursor, f"""
        INSERT INTO {missing} (normalized_name, name, noticed)
        SELECT d.known, d.known_name, %s FROM {DELTA_TABLE} d
        WHERE d.norm IS NULL AND NOT EXISTS (SELECT 1 FROM {missing} m
                                             WHERE m.normalized_name = d.known)""", [now])


def _is_relevant(action):
    return (action in RELEVANT_ACTIONS or action.startswith("remove file ")
            or (action.startswith("add ") and " file " in action)
            or any(word in action for word in STATUS_WORDS))


def record_changelog(rows, now):
    """Apply one chunk of XML-RPC changelog ROWS (sorted by serial) and move the "pypi"
    Serial to its last; returns Announced. Idempotent, so a killed pass resumes."""
    announced = Announced(events=len(rows))
    touched = {}  # normalised name -> (latest spelling, serial, action)
    for name, _version, _when, action, serial in rows:
        if name and _is_relevant(action):
            touched[canonicalize_name(name)] = (name, serial, action)
    with writing():
        known = {n: (pk, max(up, have)) for pk, n, up, have in Project.objects.filter(
            normalized_name__in=touched).values_list("id", "normalized_name",
                                                     "upstream_serial", "serial")}
        gone = {n: t for n, t in touched.items() if t[2] == "remove project"}
        alive = {n: t for n, t in touched.items() if n not in gone}
        Missing.objects.filter(normalized_name__in=alive).delete()
        Missing.objects.bulk_create(
            [Missing(normalized_name=n, name=name[:200], noticed=now)
             for n, (name, _, _) in gone.items() if n in known],
            ignore_conflicts=True)
        Project.objects.bulk_create(
            [Project(name=name[:200], normalized_name=n, upstream_serial=serial, added=now)
             for n, (name, serial, _) in alive.items() if n not in known and len(name) <= 200],
            batch_size=1000, ignore_conflicts=True)
        # the spelling of the latest row is the one to ask upstream for
        moved = [Project(id=known[n][0], upstream_serial=serial, name=name[:200])
                 for n, (name, serial, _) in alive.items()
                 if n in known and serial > known[n][1]]
        update_rows(Project, moved, ["upstream_serial", "name"])
        announced.new = sum(1 for n in alive if n not in known)
        announced.moved, announced.missing = len(moved), len(gone)
        Serial.objects.update_or_create(name="pypi",
                                        defaults={"value": rows[-1][4], "updated": now})
    return announced
