"""The package index (Simple Repository API): what it lists, rendered once per change.

A project page is built as one PEP 691-shaped dict (`simple_detail`) and rendered to
both JSON and HTML; the pair is cached under (project id, `Project.index_serial`), so a
committed change moves the key on and a stale page is never served. The root page is
rendered to gzip files on disk named by `Serial("index-root")`, shared by every web
worker and streamed from there.

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
import gzip
import json
import os
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.cache import caches
from django.db.models import Exists, OuterRef
from django.template.loader import render_to_string
from django.utils.html import escape

from builds import storage
from builds.models import Build, File
from packages.models import INDEX_ROOT, Project, Serial, version_sort_key

API_VERSION = "1.1"
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"
TEXT_HTML_TYPE = "text/html"

CACHE_ALIAS = "index"
ROOT_CHUNK = 5000  # projects per write while rendering the root page


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


def published_files():
    """Files the farm serves at their URLs: their build succeeded and their version is
    not removed."""
    return File.objects.filter(
        build__state=Build.State.SUCCEEDED, build__version__removed=False
    )


def listed_files():
    """Files the index lists: the served ones, less those upstream has a wheel for
    (builds/rules.py), whose URLs still answer but which pip should not pick here."""
    return published_files().filter(shadowed_by="")


def yank_reason(version_yanked, version_reason, superseded_by):
    """PEP 592 "yanked" of one file: the version's yank, else "rebuilt as <name>" for a
    file a rebuild replaced, else False."""
    if version_yanked:
        return version_reason or True
    if superseded_by:
        return f"rebuilt as {superseded_by}"
    return False


# --- project pages -------------------------------------------------------------------

def simple_detail(project):
    """The PEP 691 (API 1.1) dict of PROJECT's page: one query. Files are sorted by
    version then filename; armv7l wheels that run on ARMv6 appear twice (their armv6l
    name after them)."""
    rows = list(
        listed_files()
        .filter(build__version__project=project)
        .values_list(
            "filename", "size", "sha256", "metadata_sha256", "requires_python",
            "uploaded", "build__version__version", "build__version__yanked",
            "build__version__yanked_reason", "armv6_compatible", "armv6l_filename",
            "superseded_by",
        )
    )
    keys = {version: version_sort_key(version) for version in {row[6] for row in rows}}
    rows.sort(key=lambda row: (keys[row[6]], row[0]))
    names = {row[0] for row in rows} | {row[10] for row in rows if row[10]}
    files = []
    for (filename, size, sha256, meta_sha, requires, uploaded, _version, yanked, reason,
         armv6, armv6l_name, superseded_by) in rows:
        entry = {
            "filename": filename,
            "url": storage.file_url(project.normalized_name, filename),
            "hashes": {"sha256": sha256},
            "requires-python": requires or None,
            "core-metadata": {"sha256": meta_sha} if meta_sha else False,
            "dist-info-metadata": {"sha256": meta_sha} if meta_sha else False,
            "yanked": yank_reason(yanked, reason, superseded_by),
            "size": size,
            "upload-time": uploaded.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        files.append(entry)
        if armv6 is None:  # not checked (published before the check): as it was listed
            alias = armv6l_alias(filename)
            alias = alias if alias not in names else None
        else:
            alias = armv6l_name or None
        if alias:
            files.append(
                dict(entry, filename=alias, url=storage.file_url(project.normalized_name, alias))
            )
    return {
        "meta": {"api-version": API_VERSION},
        "name": project.normalized_name,
        "versions": sorted(keys, key=keys.get),
        "files": files,
    }


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
    body_json = json.dumps(detail, separators=(",", ":")).encode()
    body_html = render_to_string(
        "simple/detail.html",
        {"name": detail["name"], "api_version": API_VERSION, "files": _html_rows(detail)},
    ).encode()
    return body_json, body_html


def page_dir(project_id):
    """Where the renderings of a project's page are kept, shared by every web worker."""
    return root_dir() / "pages" / str(project_id % 1000)


# The stored renderings of a project page: each format, and each gzip-compressed once
# for the clients that accept it (pip and uv do: a Pi on a slow link gets a tenth).
PAGE_FORMATS = ("json", "html", "json.gz", "html.gz")


def _read_page(project_id, index_serial):
    directory = page_dir(project_id)
    try:
        return {
            fmt: (directory / f"{project_id}-{index_serial}.{fmt}").read_bytes()
            for fmt in PAGE_FORMATS
        }
    except FileNotFoundError:
        return None


def _write_page(project_id, index_serial, page):
    """Store PAGE for every worker: temporary names renamed into place (readers see a
    whole file or none; the gzipped HTML lands last, and a reader needs all), then renderings
    of older serials removed."""
    directory = page_dir(project_id)
    directory.mkdir(parents=True, exist_ok=True)
    keep = {f"{project_id}-{index_serial}.{fmt}" for fmt in PAGE_FORMATS}
    for fmt in PAGE_FORMATS:
        with tempfile.NamedTemporaryFile(dir=directory, suffix=".tmp", delete=False) as tmp:
            tmp.write(page[fmt])
        os.replace(tmp.name, directory / f"{project_id}-{index_serial}.{fmt}")
    for old in directory.glob(f"{project_id}-*"):
        if old.name not in keep and not old.name.endswith(".tmp"):
            old.unlink(missing_ok=True)


def detail_page(project_id, normalized_name, index_serial):
    """The renderings {"json": bytes, "html": bytes, "json.gz": ..., "html.gz": ...} of a
    project's page at
    INDEX_SERIAL, or None when the project has no files (the index then answers 404,
    so that pip and uv look for it on the other indexes).

    Three levels, all keyed by the serial, so a committed change (which moves the
    serial on) is never answered from an older rendering: this worker's memory, then
    the files under PIWHEELS_DATA_DIR that every worker shares and that outlive worker
    restarts (gunicorn's --max-requests), then a render (one query) stored in both."""
    cache = caches[CACHE_ALIAS]
    key = f"simple:{project_id}:{index_serial}"
    page = cache.get(key)
    if page is None:
        page = _read_page(project_id, index_serial)
        if page is None:
            project = Project(id=project_id, normalized_name=normalized_name)
            detail = simple_detail(project)
            if detail["files"]:
                body_json, body_html = render_detail(detail)
                page = {"json": body_json, "html": body_html,
                        "json.gz": gzip.compress(body_json, mtime=0),
                        "html.gz": gzip.compress(body_html, mtime=0)}
                _write_page(project_id, index_serial, page)
            else:
                page = {}
        cache.set(key, page, timeout=None)
    return page or None


# --- the root page -------------------------------------------------------------------

def root_serial():
    """The serial of the root page's current content (0 before anything was published)."""
    found = Serial.objects.filter(name=INDEX_ROOT).values_list("value", flat=True)[:1]
    return next(iter(found), 0)


def root_dir():
    return Path(settings.PIWHEELS_DATA_DIR) / "index"


def root_path(serial, fmt):
    """The gzip file of the root page in FMT ("html" or "json") at SERIAL."""
    return root_dir() / f"root-{serial}.{fmt}.gz"


def listed_projects():
    """(normalized name, ...) of every project with at least one published file, in
    name order, streamed from the database."""
    has_files = listed_files().filter(build__version__project=OuterRef("pk"))
    return (
        Project.objects.filter(Exists(has_files))
        .order_by("normalized_name")
        .values_list("normalized_name", flat=True)
        .iterator(chunk_size=ROOT_CHUNK)
    )


_ROOT_HTML_HEAD = (
    "<!DOCTYPE html>\n<html>\n  <head>\n"
    f'    <meta name="pypi:repository-version" content="{API_VERSION}">\n'
    "    <title>Simple index</title>\n  </head>\n  <body>\n"
)
_ROOT_HTML_TAIL = "  </body>\n</html>\n"


def render_root_stream(serial, fmt):
    """Render the root page at SERIAL into its two gzip files while yielding the FMT
    rendering (uncompressed chunks) to a client that is waiting for it. The files are
    written to temporary names and renamed at the end, so readers see a whole page or
    none; older renderings are then removed. Safe to run concurrently."""
    directory = root_dir()
    directory.mkdir(parents=True, exist_ok=True)
    tmp = {
        kind: tempfile.NamedTemporaryFile(dir=directory, suffix=".tmp", delete=False)
        for kind in ("html", "json")
    }
    try:
        with gzip.GzipFile(fileobj=tmp["html"], mode="wb", compresslevel=6, mtime=0) as html, \
                gzip.GzipFile(fileobj=tmp["json"], mode="wb", compresslevel=6, mtime=0) as js:
            def write(html_part, json_part):
                html.write(html_part)
                js.write(json_part)
                return html_part if fmt == "html" else json_part

            yield write(
                _ROOT_HTML_HEAD.encode(),
                b'{"meta":{"api-version":"%s"},"projects":[' % API_VERSION.encode(),
            )
            count, html_lines, json_items = 0, [], []
            for name in listed_projects():
                # Normalised names are [a-z0-9-] only; escape anyway, cheaply.
                html_lines.append(f'    <a href="{escape(name)}/">{escape(name)}</a><br>\n')
                json_items.append(json.dumps({"name": name}))
                if len(html_lines) >= ROOT_CHUNK:
                    yield write("".join(html_lines).encode(),
                                (("," if count else "") + ",".join(json_items)).encode())
                    count += len(html_lines)
                    html_lines, json_items = [], []
            if html_lines:
                yield write("".join(html_lines).encode(),
                            (("," if count else "") + ",".join(json_items)).encode())
                count += len(html_lines)
            yield write(_ROOT_HTML_TAIL.encode(), b"]}")
        for kind, file in tmp.items():
            file.close()
            os.replace(file.name, root_path(serial, kind))
    finally:
        for file in tmp.values():
            file.close()
            if os.path.exists(file.name):
                os.unlink(file.name)
    for old in directory.glob("root-*.gz"):
        if old.name.split(".")[0] != f"root-{serial}":
            old.unlink(missing_ok=True)


def render_root(serial):
    """Render the root page at SERIAL into its two gzip files; the number of projects."""
    count = 0
    for chunk in render_root_stream(serial, "html"):
        count += chunk.count(b"<a ")
    return count


def prerender_root():
    """Task: render the root page for the current serial now, so that the first
    request after a change finds it ready. Returns the number of projects listed."""
    serial = root_serial()
    if root_path(serial, "html").exists() and root_path(serial, "json").exists():
        return None
    return render_root(serial)
