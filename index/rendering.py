"""The package index (Simple Repository API): what it lists, rendered once per change.

A project page is built as one PEP 691-shaped dict (`simple_detail`) and rendered to
both JSON and HTML; the root page is rendered in pieces as it is read from the
database. What is rendered here is written to files once per change by index/pages.py,
which nginx and Django serve.

An armv7l wheel is also listed under a `linux_armv6l` name, the same bytes, for Raspberry
Pi OS on a Pi Zero / Pi 1 (which accepts only that tag), when all its code runs on ARMv6:
publication checks its ELF objects once (lib/elfarm.py) and stores the answer and the
name on the File row (`armv6_compatible`, `armv6l_filename`; lib/platforms.py names it).
Files published before that check (`armv6_compatible` NULL) keep the name they were
listed under (`armv6l_alias`) until they are checked.

A file a rebuild replaced stays listed, yanked "rebuilt as <new filename>" (PEP 592), so
that hash pins of it keep installing while new installs take the new one; a file upstream
has a wheel for (File.shadowed_by) is not listed, though its URL still answers.
"""
import json
import time
from contextlib import contextmanager

from django.db import OperationalError, connection, transaction
from django.db.models import Exists, OuterRef
from django.template.loader import render_to_string
from django.utils.html import escape

from builds import storage
from builds.models import Build, File
from packages.models import (
    INDEX_ROOT,
    ROOT_BARRIER,
    Project,
    ProjectStatus,
    Serial,
    index_serial_high,
    version_sort_key,
)

API_VERSION = "1.4"  # 1.1: versions, size, upload-time; 1.4: project-status (PEP 792)
# What a project page rendered by this code looks like: raised with every change to what
# render_detail() writes for the same files, so that page files and cached renderings of
# an older format are never served as current (index/pages.py stamps and keys them with
# it; index/views.py puts it in the ETag). 2: no `dist-info-metadata` in JSON (PEP 714).
PAGE_FORMAT = 2
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"
TEXT_HTML_TYPE = "text/html"

ROOT_CHUNK = 5000  # projects per write while rendering the root page
BARRIER_WAIT = 10  # seconds root_snapshot() waits for a moment without publishers
BARRIER_TRY = 0.5  # seconds it tries without queueing (_take_barrier)
BARRIER_POLL = 0.005  # seconds between those tries


# --- file names ------------------------------------------------------------------

def _split_platform(filename):
    """(everything before the platform tag, the platform tag) of a wheel filename."""
    if not filename.endswith(".whl") or filename.count("-") < 4:
        return None, None
    head, platform = filename[:-4].rsplit("-", 1)
    return head, platform


def _swap_platform(filename, have, want):
    """FILENAME with platform tag HAVE replaced by WANT, or None if it has no HAVE (or
    already has WANT)."""
    head, platform = _split_platform(filename)
    if head is None:
        return None
    tags = platform.split(".")
    if have not in tags or want in tags:
        return None
    return f"{head}-{platform.replace(have, want)}.whl"


def armv6l_alias(filename):
    """The `linux_armv6l` name under which an armv7l wheel is also offered, or None."""
    return _swap_platform(filename, "linux_armv7l", "linux_armv6l")


def armv7l_original(filename):
    """The armv7l wheel whose alias FILENAME would be, or None (inverse of armv6l_alias)."""
    return _swap_platform(filename, "linux_armv6l", "linux_armv7l")


def _built_files():
    """Files whose build succeeded and whose version is not removed."""
    return File.objects.filter(
        build__state=Build.State.SUCCEEDED, build__version__removed=False
    )


def published_files():
    """Files the farm serves at their URLs: built, and their project not quarantined
    upstream (PEP 792: a quarantine holds them back; they come back as they were)."""
    return _built_files().exclude(
        build__version__project__upstream_status=ProjectStatus.QUARANTINED)


def listed_files():
    """Files the index lists: the served ones, less those upstream has a wheel for
    (builds/rules.py), whose URLs still answer but which pip should not pick here."""
    return published_files().filter(shadowed_by="")


def page_files():
    """The files a project's page is made of: those it lists, or those a quarantine holds
    back (its page then says so, PEP 792)."""
    return _built_files().filter(shadowed_by="")


def yank_reason(version_yanked, version_reason, superseded_by):
    """PEP 592 "yanked" of one file: the version's yank, else "rebuilt as <name>" for a
    file a rebuild replaced, else False."""
    if version_yanked:
        return version_reason or True
    if superseded_by:
        return f"rebuilt as {superseded_by}"
    return False


# --- project pages -------------------------------------------------------------------

def _status_marker(status, reason):
    """PEP 792's "project-status" of a page: {} while the project is active."""
    if status == ProjectStatus.ACTIVE:
        return {}
    return {"status": status, **({"reason": reason} if reason else {})}


def listed_entries(project):
    """(versions in order, [(version, PEP 691 file dict), ...], PEP 792 status) of what
    PROJECT's page lists: one query. Files are sorted by version then filename; armv7l
    wheels that run on ARMv6 appear twice (their armv6l name after them). A quarantined
    project lists nothing: its status says that files are held back."""
    rows = list(
        page_files()
        .filter(build__version__project=project)
        .values_list(
            "filename", "size", "sha256", "metadata_sha256", "requires_python",
            "uploaded", "build__version__version", "build__version__yanked",
            "build__version__yanked_reason", "armv6_compatible", "armv6l_filename",
            "superseded_by", "build__version__project__upstream_status",
            "build__version__project__upstream_status_reason",
        )
    )
    status = _status_marker(*rows[0][12:]) if rows else {}
    if status.get("status") == ProjectStatus.QUARANTINED:
        return [], [], status
    keys = {version: version_sort_key(version) for version in {row[6] for row in rows}}
    rows.sort(key=lambda row: (keys[row[6]], row[0]))
    names = {row[0] for row in rows} | {row[10] for row in rows if row[10]}
    entries = []
    for (filename, size, sha256, meta_sha, requires, uploaded, version, yanked, reason,
         armv6, armv6l_name, superseded_by, *_status) in rows:
        entry = {
            "filename": filename,
            "url": storage.file_url(project.normalized_name, filename),
            "hashes": {"sha256": sha256},
            "requires-python": requires or None,
            # PEP 714: only `core-metadata` in JSON. pip 22.3 to 23.1 (Bookworm's 23.0.1)
            # crash on a JSON `dist-info-metadata`; the HTML page keeps both attributes,
            # since pip before 23.2 reads only data-dist-info-metadata there.
            "core-metadata": {"sha256": meta_sha} if meta_sha else False,
            "yanked": yank_reason(yanked, reason, superseded_by),
            "size": size,
            "upload-time": uploaded.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        entries.append((version, entry))
        if armv6 is None:  # not checked (published before the check): as it was listed
            alias = armv6l_alias(filename)
            alias = alias if alias not in names else None
        else:
            alias = armv6l_name or None
        if alias:
            entries.append((version, dict(
                entry, filename=alias, url=storage.file_url(project.normalized_name, alias))))
    return sorted(keys, key=keys.get), entries, status


def simple_detail(project):
    """The PEP 691 (API 1.4) dict of PROJECT's page: one query (listed_entries). A
    quarantined project's page lists no file, only its status (PEP 792); it is a page at
    all only while the quarantine holds files back."""
    versions, entries, status = listed_entries(project)
    detail = {
        "meta": {"api-version": API_VERSION},
        "name": project.normalized_name,
        "versions": versions,
        "files": [entry for _, entry in entries],
    }
    if status:
        detail["project-status"] = status
    return detail


def is_quarantined(detail):
    """Whether the project of page DETAIL is quarantined upstream (PEP 792)."""
    return detail.get("project-status", {}).get("status") == ProjectStatus.QUARANTINED


def is_page(detail):
    """Whether DETAIL makes a page (else the index answers 404, so that pip and uv look
    for the project on their other indexes): it lists files, or says that a quarantine
    holds them back (a project has a status only while it has files)."""
    return bool(detail["files"]) or is_quarantined(detail)


def _html_rows(detail):
    """What the HTML template loops over: attribute values ready to print (escaped by
    the template)."""
    rows = []
    for entry in detail["files"]:
        meta = entry["core-metadata"]
        yanked = entry["yanked"]
        rows.append({
            "filename": entry["filename"],
            "href": f"{entry['url']}#sha256={entry['hashes']['sha256']}",
            "requires_python": entry["requires-python"] or "",
            "metadata": f"sha256={meta['sha256']}" if meta else "",
            "yanked": yanked is not False,
            "yanked_reason": yanked if isinstance(yanked, str) else "",
        })
    return rows


def render_detail(detail):
    """(JSON bytes, HTML bytes) of a project page dict."""
    status = detail.get("project-status", {})
    body_json = json.dumps(detail, separators=(",", ":")).encode()
    body_html = render_to_string(
        "simple/detail.html",
        {"name": detail["name"], "api_version": API_VERSION, "files": _html_rows(detail),
         "status": status.get("status", ""), "status_reason": status.get("reason", "")},
    ).encode()
    return body_json, body_html


# --- the JSON API (/pypi/<name>/json), for mirrors ------------------------------------

def _python_tag(filename):
    """The Python tag of a wheel filename (PyPI's `python_version` of a wheel)."""
    parts = filename[:-4].split("-")
    return parts[-3] if len(parts) >= 5 else ""


def pypi_project(project, serial, mirror_url):
    """PyPI's JSON API dict (`/pypi/<name>/json`) of what PROJECT's index page lists:
    `info`, `last_serial` (SERIAL, its index serial, read before this), `releases` (every
    version with files) and `urls` (the latest's), one query (listed_entries). What
    bandersnatch reads: `releases`' files with `url`, `digests`, `size`,
    `upload_time_iso_8601`, `requires_python`, `yanked`. Files are at MIRROR_URL(name,
    filename): mirrors expect them under /packages/."""
    versions, entries, _status = listed_entries(project)  # a quarantine lists nothing
    releases = {version: [] for version in versions}
    for version, entry in entries:
        yanked = entry["yanked"]
        releases[version].append({
            "filename": entry["filename"],
            "url": mirror_url(project.normalized_name, entry["filename"]),
            "digests": dict(entry["hashes"]),
            "size": entry["size"],
            "upload_time": entry["upload-time"][:19],
            "upload_time_iso_8601": entry["upload-time"],
            "requires_python": entry["requires-python"],
            "yanked": yanked is not False,
            "yanked_reason": yanked if isinstance(yanked, str) else None,
            "packagetype": "bdist_wheel",
            "python_version": _python_tag(entry["filename"]),
            "has_sig": False,
            "comment_text": "",
        })
    unyanked = [v for v in versions if not all(f["yanked"] for f in releases[v])]
    latest = (unyanked or versions or [""])[-1]
    return {
        "info": {
            "name": project.name,
            "version": latest,
            "summary": project.summary or None,
            "requires_python": next(
                (f["requires_python"] for f in releases.get(latest, ()) if f["requires_python"]),
                None),
            "yanked": bool(latest) and latest not in unyanked,
        },
        "last_serial": serial,
        "releases": releases,
        "urls": releases.get(latest, []),
        "vulnerabilities": [],
    }


# --- the root page -------------------------------------------------------------------

def root_serial():
    """The serial of the root page's current content (0 before anything was published)."""
    found = Serial.objects.filter(name=INDEX_ROOT).values_list("value", flat=True)[:1]
    return next(iter(found), 0)


def listed_projects_query():
    """(normalized name, index serial) of every project with at least one published
    file, in name order (a queryset)."""
    has_files = listed_files().filter(build__version__project=OuterRef("pk"))  # not quarantined
    return (
        Project.objects.filter(Exists(has_files))
        .order_by("normalized_name")
        .values_list("normalized_name", "index_serial")
    )


def listed_projects():
    """listed_projects_query(), streamed from the database."""
    return listed_projects_query().iterator(chunk_size=ROOT_CHUNK)


class RootBusy(Exception):
    """Publishers kept the root barrier held: no consistent snapshot for the root yet."""


@contextmanager
def root_snapshot(wait=None):
    """(highest serial, listed_projects()) read consistently for rendering the root:
    every index serial up to the first is committed and in the listing, so a mirror that
    stores the root's highest `_last-serial` misses no change (serials come from a
    sequence in the order changes start, not the order they commit).

    On PostgreSQL, in a transaction of its own: take the barrier (_take_barrier) once no
    publisher holds it (touch_index's shared lock); holding it, read the serial and
    DECLARE the listing's cursor (its snapshot, no row read yet), then let the barrier go
    before the listing is run, so publishers never wait for the root to be rendered (a
    first FETCH can take a second at 100,000 projects). A session lock inside one
    transaction, so it also holds behind PgBouncer's transaction pooling. Inside a
    transaction already (tests) or on SQLite, which serialises writers, the serial as
    it stands. Raises RootBusy after WAIT seconds (BARRIER_WAIT)."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        yield index_serial_high(), listed_projects()
        return
    wait = BARRIER_WAIT if wait is None else wait
    sql, params = listed_projects_query().query.sql_with_params()
    with transaction.atomic(), connection.cursor() as cursor:
        _take_barrier(cursor, time.monotonic() + wait, wait)
        try:
            high = index_serial_high()
            cursor.execute(f"DECLARE index_root NO SCROLL CURSOR FOR {sql}", params)
        finally:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [ROOT_BARRIER])
        yield high, _fetched(cursor, "index_root")


def _fetched(cursor, name):
    """The rows of the open cursor NAME, ROOT_CHUNK at a time."""
    while True:
        cursor.execute(f"FETCH FORWARD {ROOT_CHUNK:d} FROM {name}")
        rows = cursor.fetchall()
        if not rows:
            return
        yield from rows


def _take_barrier(cursor, deadline, wait):
    """Take the root barrier exclusively: first by trying, for BARRIER_TRY seconds, which
    never holds a publisher up; then, as overlapping publishers may leave no gap, queued
    (new publishers wait behind the writer while the ones holding it finish: their
    transactions' remainder) until the DEADLINE (lock_timeout). PostgreSQL's deadlock
    check reorders such a queue rather than abort anyone if a holder waits on one of
    those new publishers."""
    try_until = min(deadline, time.monotonic() + BARRIER_TRY)
    while True:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [ROOT_BARRIER])
        if cursor.fetchone()[0]:
            return
        if time.monotonic() > try_until:
            break
        time.sleep(BARRIER_POLL)
    left_ms = max(1, int((deadline - time.monotonic()) * 1000))
    cursor.execute(f"SET LOCAL lock_timeout = {left_ms:d}")
    try:
        with transaction.atomic():  # a savepoint: a timeout leaves the transaction usable
            cursor.execute("SELECT pg_advisory_lock(%s)", [ROOT_BARRIER])
    except OperationalError as exc:
        raise RootBusy(f"publishers held the index root's barrier for {wait} s") from exc
    finally:
        cursor.execute("SET LOCAL lock_timeout TO DEFAULT")


_ROOT_HTML_HEAD = (
    "<!DOCTYPE html>\n<html>\n  <head>\n"
    f'    <meta name="pypi:repository-version" content="{API_VERSION}">\n'
    "    <title>Simple index</title>\n  </head>\n  <body>\n"
)
_ROOT_HTML_TAIL = "  </body>\n</html>\n"


def root_parts(last_serial, projects):
    """The root page in pieces: (HTML bytes, JSON bytes, projects in them), 5,000 projects
    at a time, so that a root of 500,000 projects is never held whole (index/pages.py
    writes it to its files as it comes). PROJECTS and LAST_SERIAL: root_snapshot()'s.
    The JSON lists each project's `_last-serial` (its index serial) and LAST_SERIAL in
    its meta, as PyPI's does."""
    yield (_ROOT_HTML_HEAD.encode(),
           b'{"meta":{"api-version":"%s","_last-serial":%d},"projects":['
           % (API_VERSION.encode(), last_serial), 0)
    count, html_lines, json_items = 0, [], []
    for name, serial in projects:
        # Normalised names are [a-z0-9-] only; escape anyway, cheaply.
        html_lines.append(f'    <a href="{escape(name)}/">{escape(name)}</a><br>\n')
        json_items.append(f'{{"name":{json.dumps(name)},"_last-serial":{serial:d}}}')
        if len(html_lines) >= ROOT_CHUNK:
            yield ("".join(html_lines).encode(),
                   (("," if count else "") + ",".join(json_items)).encode(), len(html_lines))
            count += len(html_lines)
            html_lines, json_items = [], []
    if html_lines:
        yield ("".join(html_lines).encode(),
               (("," if count else "") + ",".join(json_items)).encode(), len(html_lines))
    yield _ROOT_HTML_TAIL.encode(), b"]}", 0
