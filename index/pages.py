"""The index's pages as files, always current: what nginx serves and Django reads.

Under PIWHEELS_DATA_DIR/index/simple/ (the URL path below /simple/, so that nginx maps
one to the other; deploy/nginx/piwheels.conf):

    index.html  index.html.gz  index.json  index.json.gz        the root page
    .serial       "<root serial> <highest index serial>" those files render, written last
    <name>/index.html  ...  <name>/index.json.gz                a project's page
    <name>/.serial  "<project id> <index serial> <files listed> <page format>", written last

and index/locks/: the writers' locks (flock), the root's and 256 shared by the projects.

No page files for a project: it has no published files, or no longer exists (nginx
then hands the request to Django, which answers 404). A project that never had files
gets no directory at all (most of the catalogue).

The code that publishes a change moves the project's `index_serial` on in the change's
transaction (`ProjectQuerySet.touch_index`), which calls `changed()`: once the change
commits, the pages are rendered and written (transaction.on_commit, in the committing
process, before its request or command goes on). A file a page lists is stored before the
change commits (builds/publish.py), so it is on disk before any page names it.

Each file is written to a temporary name, fsynced and renamed over the old one, so a
reader sees a whole page, old or new, never part of one. Writers of one page take its
lock and read the database after taking it, so a slow writer never puts an older page
back over a newer one. If the writing process dies between the commit and the rename,
the old page stays until it is repaired, by whichever comes first: a request that reaches
Django (its `.serial` is behind the database: rendered and written again), or `repair()`,
which the task worker runs every minute over the projects whose `index_file_serial` lags.

A page is current only in the format this code renders (rendering.PAGE_FORMAT, the last
word of its .serial; a stamp of three words is format 1): a page written by an older
version is rendered again when Django reads it, and migration 0003 of this app makes
repair() rewrite every page on disk after an upgrade that changes the format, so that
nginx stops serving the old ones within minutes.
"""
import fcntl
import gzip
import logging
import os
import uuid
import zlib
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.core.cache import caches
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef

from index import rendering
from lib import datafiles
from packages.models import Project, index_serial_high

log = logging.getLogger(__name__)

CACHE_ALIAS = "index"
# The renderings of a page, each a file index.<format>: pip and uv take the gzip ones
# (a Pi on a slow link gets a tenth), browsers and curl the plain ones.
PAGE_FORMATS = ("json", "html", "json.gz", "html.gz")
QUARANTINE_MARKER = ".quarantined"
REPAIR_BATCH = 5000  # projects repaired per run of repair(); the next run goes on
SWEEP_CHUNK = 1000
LOCK_STRIPES = 256  # project writers wait for each other only when they share one


def simple_dir():
    return Path(settings.PIWHEELS_DATA_DIR) / "index" / "simple"


def project_dir(name):
    return simple_dir() / name


def root_file(fmt):
    """The root page's file in FMT ("html", "json", "html.gz", "json.gz")."""
    return simple_dir() / f"index.{fmt}"


# --- writing files -------------------------------------------------------------------

def _lock_path(name=None):
    """The lock of project NAME's page (one of LOCK_STRIPES), or the root's."""
    stripe = "root" if name is None else f"{zlib.crc32(name.encode()) % LOCK_STRIPES:03d}"
    return Path(settings.PIWHEELS_DATA_DIR) / "index" / "locks" / stripe


@contextmanager
def _locked(path):
    """Hold the writer lock PATH (flock: released if the holder dies)."""
    datafiles.makedirs(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, datafiles.FILE_MODE)
    try:
        datafiles.set_file_mode(fd)  # os.open's mode is less the umask
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _temporary(path):
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")


def _install(tmp, path):
    """Rename TMP (written, closed) over PATH, with a modification time in a later second
    than PATH's: nginx's ETag and Last-Modified are (mtime in seconds, size), so two
    versions of a page written in one second with one size would otherwise look alike
    and a client revalidating would be told the old one is current."""
    try:
        old = os.stat(path).st_mtime_ns // 10**9
    except FileNotFoundError:
        old = None
    if old is not None and os.stat(tmp).st_mtime_ns // 10**9 <= old:
        os.utime(tmp, (old + 1, old + 1))
    os.replace(tmp, path)


def _fsync(fd):
    if settings.PIWHEELS_INDEX_FSYNC:
        os.fsync(fd)


def _replace(path, data):
    """Atomically make PATH hold DATA: on disk (fsync, PIWHEELS_INDEX_FSYNC) before the
    rename, so that after a power cut the name holds the old page or the new one, never
    an empty file."""
    tmp = _temporary(path)
    try:
        with datafiles.create(tmp, "wb") as f:
            f.write(data)
            f.flush()
            _fsync(f.fileno())
        _install(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _remove_pages(directory):
    for fmt in PAGE_FORMATS:
        (directory / f"index.{fmt}").unlink(missing_ok=True)


def _mark_quarantine(directory, quarantined):
    """nginx serves core metadata files from disk: the .quarantined file beside a
    project's pages tells it to hand them to Django instead, which answers 410."""
    marker = directory / QUARANTINE_MARKER
    if quarantined:
        datafiles.write_bytes(marker, b"")
    else:
        marker.unlink(missing_ok=True)


def _stamp(directory):
    """The words of DIRECTORY's .serial file, or None."""
    try:
        return (directory / ".serial").read_text().split()
    except FileNotFoundError:
        return None


def _is_current(stamp, project_id, serial):
    """STAMP (a project's .serial) renders PROJECT_ID at SERIAL or later, in the page
    format of this code."""
    return (stamp is not None and len(stamp) == 4 and stamp[0] == str(project_id)
            and int(stamp[1]) >= serial and stamp[3] == str(rendering.PAGE_FORMAT))


def _read_pages(directory, stamp):
    """{format: bytes} of the page files STAMP describes ({} for none), or None when one
    is missing."""
    if stamp[2] == "0":
        return {}
    try:
        return {fmt: (directory / f"index.{fmt}").read_bytes() for fmt in PAGE_FORMATS}
    except FileNotFoundError:
        return None


def _serial_of(name):
    """(id, index_serial) of the project called NAME (normalised), or None."""
    return Project.objects.filter(normalized_name=name).values_list("id", "index_serial").first()


def write_project(name, known=None):
    """Write the page files of project NAME (normalised) as the database has it now and
    return them ({format: bytes}; {} when it lists no files or the project is gone).
    KNOWN: its (id, index_serial) as the caller just read them, to spare a query.

    The serial is read before the files are, so the page is never older than the
    serial it is stamped with (at worst newer, rendered again by the next change)."""
    directory = project_dir(name)
    with _locked(_lock_path(name)):
        row = known or _serial_of(name)
        if row is None:  # removed: nginx hands the request to Django, which says 404
            _remove_pages(directory)
            (directory / ".serial").unlink(missing_ok=True)
            _mark_quarantine(directory, False)
            return {}
        project_id, serial = row
        stamp = _stamp(directory)
        if _is_current(stamp, project_id, serial):
            page = _read_pages(directory, stamp)
            if page is not None:
                return page
        detail = rendering.simple_detail(Project(id=project_id, normalized_name=name))
        page = {}
        if rendering.is_page(detail):
            body_json, body_html = rendering.render_detail(detail)
            page = {"json": body_json, "html": body_html,
                    "json.gz": gzip.compress(body_json, mtime=0),
                    "html.gz": gzip.compress(body_html, mtime=0)}
            datafiles.makedirs(directory)
            for fmt in PAGE_FORMATS:
                _replace(directory / f"index.{fmt}", page[fmt])
        elif directory.exists():  # its last files went
            _remove_pages(directory)
        _mark_quarantine(directory, rendering.is_quarantined(detail))
        if directory.exists():
            _replace(directory / ".serial",
                     f"{project_id} {serial} {len(detail['files']) or len(page)} "
                     f"{rendering.PAGE_FORMAT}\n".encode())
    Project.objects.filter(id=project_id, index_file_serial__lt=serial).update(
        index_file_serial=serial)
    return page


def root_stamp():
    """(root serial, highest index serial) the root page's files render, or None. A
    stamp from before serials were listed counts as rendering serial 0."""
    stamp = _stamp(simple_dir())
    if not stamp:
        return None
    return int(stamp[0]), int(stamp[1]) if len(stamp) > 1 else 0


def _render_root(last_serial, projects, tmp):
    """Render the root page into the four temporary files TMP ({format: path}), 5,000
    projects at a time (a root of 500,000 projects is never held in memory), yielding
    each (HTML part, JSON part, projects in it) as it is written. LAST_SERIAL and
    PROJECTS: rendering.root_snapshot()'s."""
    files = {fmt: datafiles.create(path, "wb") for fmt, path in tmp.items()}
    try:
        zipped = {fmt: gzip.GzipFile(fileobj=files[f"{fmt}.gz"], mode="wb",
                                     compresslevel=6, mtime=0) for fmt in ("html", "json")}
        for html_part, json_part, n in rendering.root_parts(last_serial, projects):
            for fmt, part in (("html", html_part), ("json", json_part)):
                files[fmt].write(part)
                zipped[fmt].write(part)
            yield html_part, json_part, n
        for fmt in ("html", "json"):
            zipped[fmt].close()
        for f in files.values():
            f.flush()
            _fsync(f.fileno())
    finally:
        for f in files.values():
            f.close()


def _install_root(tmp, serial, last_serial):
    """Rename the rendered root files TMP into place, then its .serial (last)."""
    for fmt in PAGE_FORMATS:
        _install(tmp[fmt], root_file(fmt))
    _replace(simple_dir() / ".serial", f"{serial} {last_serial}\n".encode())


def _root_is_newer(current, serial, last_serial):
    """The root stamp CURRENT is at SERIAL and LAST_SERIAL or later."""
    return current is not None and current[0] >= serial and current[1] >= last_serial


def write_root():
    """Write the root page's files for the current root serial and index serials,
    unless they are current. Returns the number of projects listed, or None when nothing
    needed writing. The lock is held throughout, so writers that queue behind one find
    its page current.

    Every change to a listed project's page changes the root (its `_last-serial`), but
    only a change of the list itself (touch_index(root=True)) writes it when the change
    commits; the rest is written by repair(), on the task worker's schedule, once for all
    the changes since its last run: a build's finish never waits for a 100,000-project
    root to be rendered for a serial."""
    with _locked(_lock_path()):
        datafiles.makedirs(simple_dir())
        serial = rendering.root_serial()
        if _root_is_newer(root_stamp(), serial, index_serial_high()):
            return None
        tmp = {fmt: _temporary(root_file(fmt)) for fmt in PAGE_FORMATS}
        try:
            with rendering.root_snapshot() as (last_serial, projects):
                count = sum(n for _, _, n in _render_root(last_serial, projects, tmp))
            _install_root(tmp, serial, last_serial)
        finally:
            for path in tmp.values():
                path.unlink(missing_ok=True)
    return count


def stream_root(serial, fmt):
    """Render the root page at SERIAL while yielding its FMT ("html" or "json") parts to
    a client that waits for it (the first bytes leave at once), writing its files on the
    way; they are renamed into place unless a newer page got there first. Without the
    lock while rendering: a slow client must not hold up the writers."""
    datafiles.makedirs(simple_dir())
    tmp = {fmt: _temporary(root_file(fmt)) for fmt in PAGE_FORMATS}
    try:
        with rendering.root_snapshot() as (last_serial, projects):
            for html_part, json_part, _ in _render_root(last_serial, projects, tmp):
                yield html_part if fmt == "html" else json_part
        with _locked(_lock_path()):
            if not _root_is_newer(root_stamp(), serial, last_serial):
                _install_root(tmp, serial, last_serial)
    finally:
        for path in tmp.values():
            path.unlink(missing_ok=True)


# --- what publishing calls -----------------------------------------------------------

def changed(names, root=False):
    """The pages of projects NAMES (and the root's, with ROOT) change in the current
    transaction: write them once it commits (at once outside a transaction; never if it
    rolls back). A failure to write is logged, not raised: the change is committed, and
    the next request or repair() writes the page."""
    names = sorted(set(names))
    if names or root:
        transaction.on_commit(lambda: write(names, root), robust=True)


def write(names, root=False):
    """Write the pages of projects NAMES, and the root's with ROOT."""
    _write_projects(names)
    if root:
        write_root()


def _write_projects(names):
    """write_project() each of NAMES that has a page, or page files on disk; the rest
    (most of a sync batch: projects the farm has built nothing of) have nothing to write
    and are only stamped current, in one UPDATE. Their serials and whether they have a
    page are read in one query, one snapshot: a file published since then moves the
    serial on, and the stamp, conditional on the serial read, is not made."""
    page_files = rendering.page_files().filter(build__version__project=OuterRef("pk"))
    rows = list(Project.objects.filter(normalized_name__in=names)
                .annotate(has_page=Exists(page_files))
                .values_list("normalized_name", "id", "index_serial", "has_page"))
    pageless = []
    for name, project_id, serial, has_page in rows:
        if has_page or project_dir(name).exists():
            write_project(name, known=(project_id, serial))
        else:
            pageless.append((project_id, serial))
    for name in set(names).difference(name for name, *_ in rows):
        write_project(name)  # gone: its page files, if any, go too
    _stamp_current(pageless)


def _stamp_current(rows):
    """Stamp the page files of these (project id, index serial) ROWS current, where the
    serial is still the one read. One UPDATE per thousand, in SQL: an ORM filter of a
    thousand (id, serial) conditions costs more to build than the statement does to run."""
    table = Project._meta.db_table
    for start in range(0, len(rows), 1000):
        page = rows[start:start + 1000]
        with connection.cursor() as cursor:
            cursor.execute(
                f"WITH v (id, serial) AS (VALUES {', '.join(['(%s, %s)'] * len(page))}) "
                f"UPDATE {table} SET index_file_serial = v.serial FROM v "
                f"WHERE {table}.id = v.id AND {table}.index_serial = v.serial "
                f"AND {table}.index_file_serial < v.serial",
                [value for row in page for value in row])


# --- what Django reads ---------------------------------------------------------------

def page_cache_key(project_id, serial):
    """The key of a project's renderings in the CACHE_ALIAS cache."""
    return f"simple:{rendering.PAGE_FORMAT}:{project_id}:{serial}"


def project_page(project_id, name, serial):
    """The renderings {"json": bytes, "html": bytes, "json.gz": ..., "html.gz": ...} of
    project NAME's page at SERIAL (its index_serial), or None when it lists no files (the
    index then answers 404, so that pip and uv look for it on the other indexes).

    From this worker's memory (keyed by the serial and the page format, so a committed
    change is never answered from an older rendering), else from the page files when
    their .serial is current, else rendered and written now (the repair of a page whose
    writer died, or one of an older format)."""
    cache = caches[CACHE_ALIAS]
    key = page_cache_key(project_id, serial)
    page = cache.get(key)
    if page is None:
        directory = project_dir(name)
        stamp = _stamp(directory)
        if _is_current(stamp, project_id, serial):
            page = _read_pages(directory, stamp)
        if page is None:
            page = write_project(name, known=(project_id, serial))
        cache.set(key, page, timeout=None)
    return page or None


def root_is_current(serial, current=None):
    """The root page's files (their stamp CURRENT, else read now) render root serial
    SERIAL (or later): they list the projects the database lists. Their `_last-serial`s
    may be up to one repair() run behind (write_root)."""
    current = current or root_stamp()
    return current is not None and current[0] >= serial


# --- repair --------------------------------------------------------------------------

def repair(limit=REPAIR_BATCH):
    """Task: write the pages whose files lag behind the database (their writer died
    between the commit and the rename, or could not write), then the root's when any
    project's serial moved since it was written (write_root). Returns the number of
    project pages written."""
    names = list(
        Project.objects.filter(index_serial__gt=F("index_file_serial"))
        .values_list("normalized_name", flat=True)[:limit]
    )
    _write_projects(names)
    try:
        write_root()  # after the projects: their pages are current for the serials listed
    except rendering.RootBusy as exc:
        log.warning("index root not written: %s; the next run tries again", exc)
    if names:
        log.info("index pages: repaired %d project pages", len(names))
    return len(names)


def sweep():
    """Task: remove the page files of projects that no longer exist (their removal's
    writer died before removing them; repair() cannot find them in the database).
    Returns the number of pages removed."""
    root = simple_dir()
    if not root.is_dir():
        return 0
    removed = 0
    listed = [entry.name for entry in os.scandir(root)
              if entry.is_dir() and os.path.exists(os.path.join(entry.path, ".serial"))]
    for start in range(0, len(listed), SWEEP_CHUNK):
        chunk = listed[start:start + SWEEP_CHUNK]
        known = set(Project.objects.filter(normalized_name__in=chunk)
                    .values_list("normalized_name", flat=True))
        for name in chunk:
            if name not in known:
                write_project(name)
                removed += 1
    return removed
