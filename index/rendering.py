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

from django.db.models import Exists, OuterRef
from django.template.loader import render_to_string
from django.utils.html import escape

from builds import storage
from builds.models import Build, File
from packages.models import INDEX_ROOT, Project, ProjectStatus, Serial, version_sort_key

API_VERSION = "1.4"  # 1.1: versions, size, upload-time; 1.4: project-status (PEP 792)
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"
TEXT_HTML_TYPE = "text/html"

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


def simple_detail(project):
    """The PEP 691 (API 1.4) dict of PROJECT's page: one query. Files are sorted by
    version then filename; armv7l wheels that run on ARMv6 appear twice (their armv6l
    name after them). A quarantined project's page lists no file, only its status
    (PEP 792); it is a page at all only while the quarantine holds files back."""
    rows = list(
        _built_files()
        .filter(build__version__project=project, shadowed_by="")
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
        return {"meta": {"api-version": API_VERSION}, "name": project.normalized_name,
                "project-status": status, "versions": [], "files": [], "held": True}
    keys = {version: version_sort_key(version) for version in {row[6] for row in rows}}
    rows.sort(key=lambda row: (keys[row[6]], row[0]))
    names = {row[0] for row in rows} | {row[10] for row in rows if row[10]}
    files = []
    for (filename, size, sha256, meta_sha, requires, uploaded, _version, yanked, reason,
         armv6, armv6l_name, superseded_by, *_status) in rows:
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
    detail = {
        "meta": {"api-version": API_VERSION},
        "name": project.normalized_name,
        "versions": sorted(keys, key=keys.get),
        "files": files,
    }
    if status:
        detail["project-status"] = status
    return detail


def is_page(detail):
    """Whether DETAIL makes a page (else the index answers 404, so that pip and uv look
    for the project on their other indexes): it lists files, or says that a quarantine
    holds them back."""
    return bool(detail["files"] or detail.get("held"))


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
    public = {key: value for key, value in detail.items() if key != "held"}
    body_json = json.dumps(public, separators=(",", ":")).encode()
    body_html = render_to_string(
        "simple/detail.html",
        {"name": detail["name"], "api_version": API_VERSION, "files": _html_rows(detail),
         "status": status.get("status", ""), "status_reason": status.get("reason", "")},
    ).encode()
    return body_json, body_html


# --- the root page -------------------------------------------------------------------

def root_serial():
    """The serial of the root page's current content (0 before anything was published)."""
    found = Serial.objects.filter(name=INDEX_ROOT).values_list("value", flat=True)[:1]
    return next(iter(found), 0)


def listed_projects():
    """(normalized name, ...) of every project with at least one published file, in
    name order, streamed from the database."""
    has_files = listed_files().filter(build__version__project=OuterRef("pk"))  # not quarantined
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


def root_parts():
    """The root page in pieces: (HTML bytes, JSON bytes, projects in them), 5,000 projects
    at a time, so that a root of 500,000 projects is never held whole (index/pages.py
    writes it to its files as it comes)."""
    yield (_ROOT_HTML_HEAD.encode(),
           b'{"meta":{"api-version":"%s"},"projects":[' % API_VERSION.encode(), 0)
    count, html_lines, json_items = 0, [], []
    for name in listed_projects():
        # Normalised names are [a-z0-9-] only; escape anyway, cheaply.
        html_lines.append(f'    <a href="{escape(name)}/">{escape(name)}</a><br>\n')
        json_items.append(json.dumps({"name": name}))
        if len(html_lines) >= ROOT_CHUNK:
            yield ("".join(html_lines).encode(),
                   (("," if count else "") + ",".join(json_items)).encode(), len(html_lines))
            count += len(html_lines)
            html_lines, json_items = [], []
    if html_lines:
        yield ("".join(html_lines).encode(),
               (("," if count else "") + ",".join(json_items)).encode(), len(html_lines))
    yield _ROOT_HTML_TAIL.encode(), b"]}", 0
