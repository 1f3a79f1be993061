"""Serving wheels and their core metadata files at /files/<normalised name>/<filename>.

A file is served only while it is published (its build succeeded, its version is not
removed), whatever lies on disk. The bytes go out through the WSGI server's
file_wrapper (sendfile under gunicorn), or through nginx when
PIWHEELS_ACCEL_REDIRECT names an internal location; Python never copies them in a loop.
A filename's content never changes, so the ETag is its sha256 and caches may keep it
for a year. An armv7l wheel whose code runs on ARMv6 is also served under its
linux_armv6l name (File.armv6l_filename, decided once at publication; files published
before that check existed keep the name they had, rendering.armv6l_alias).
"""
import os

from django.conf import settings
from django.db.models import Q
from django.http import FileResponse, Http404, HttpResponse, HttpResponseGone
from django.utils.cache import get_conditional_response
from django.views.decorators.http import require_safe

from builds import storage
from index import downloads, rendering
from lib import datafiles
from lib.ranges import FileRange, parse_range
from packages.models import Project, ProjectStatus

IMMUTABLE = "public, max-age=31536000, immutable"
NGINX_DECIDES = ("Range", "If-None-Match", "If-Modified-Since")


def _published(name, filename):
    """(file id, filename on disk, sha256, metadata sha256) of the published file
    offered as FILENAME under project NAME (maybe as an armv6l alias), or 404."""
    offered = Q(filename=filename) | Q(armv6l_filename=filename)
    original = rendering.armv7l_original(filename)
    if original:  # a file from before the ARMv6 check, under its old armv6l name
        offered |= Q(filename=original, armv6_compatible__isnull=True)
    rows = (
        rendering.published_files()
        .filter(offered, build__version__project__normalized_name=name)
        .values_list("id", "filename", "sha256", "metadata_sha256", "armv6l_filename")
    )
    by_name, by_alias = {}, {}
    for row in rows:
        by_name[row[1]] = row[:4]
        if row[4]:
            by_alias[row[4]] = row[:4]
    row = by_name.get(filename) or by_alias.get(filename) or by_name.get(original)
    if row is None:
        reason = _quarantine(name)
        if reason is not None:
            raise Quarantined(reason)
        raise Http404(f"no file {filename} in {name}")
    return row


class Quarantined(Exception):
    """The project is quarantined upstream (PEP 792): no file of it may be offered."""


def _quarantine(name):
    """Upstream's reason (maybe "") when project NAME is quarantined, else None."""
    return (Project.objects.filter(normalized_name=name,
                                   upstream_status=ProjectStatus.QUARANTINED)
            .values_list("upstream_status_reason", flat=True).first())


def _gone(name, reason):
    """410 for a quarantined project's file: it may come back, so not cached for long."""
    text = f"{name} is quarantined upstream (PEP 792)" + (f": {reason}" if reason else "")
    response = HttpResponseGone(text + "\n", content_type="text/plain; charset=utf-8")
    response["Cache-Control"] = "max-age=60"
    return response


def _others_can_read(path):
    """Whether nginx's workers (another user) can read the file at PATH, made so when it
    is not (a file written 0600 before lib/datafiles.py); False when that fails, and
    Django serves it itself. A file missing on disk is a 404: never counted as a download
    and handed to nginx to refuse."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise Http404("published but missing on disk") from None
    if mode & 0o004:
        return True
    try:
        datafiles.set_file_mode(path)
    except OSError:
        return False
    return True


def _serve(request, path, etag, accel_path, content_type):
    """The response for the file at PATH: 304, 206, 416, 200, or an X-Accel-Redirect."""
    not_modified = get_conditional_response(request, etag=etag)
    if not_modified is not None:
        not_modified["ETag"] = etag
        not_modified["Cache-Control"] = IMMUTABLE
        return not_modified
    if settings.PIWHEELS_ACCEL_REDIRECT and _others_can_read(path):
        # nginx serves the bytes, Range, HEAD and its own conditional answers.
        response = HttpResponse(content_type=content_type)
        location = settings.PIWHEELS_ACCEL_REDIRECT.rstrip("/")
        response["X-Accel-Redirect"] = f"{location}/{accel_path}"
        response["ETag"] = etag
        response["Cache-Control"] = IMMUTABLE
        return response
    try:
        fileobj = open(path, "rb")
    except FileNotFoundError:
        raise Http404("published but missing on disk") from None
    size = os.fstat(fileobj.fileno()).st_size
    wanted = request.headers.get("Range")
    if_range = request.headers.get("If-Range")
    if wanted and if_range and if_range != etag:
        wanted = None  # the client's copy is another file: send it whole
    span = parse_range(wanted, size)
    if span == "unsatisfiable":
        fileobj.close()
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
    elif span is not None:
        start, end = span
        response = FileResponse(
            FileRange(fileobj, start, end - start + 1), status=206, content_type=content_type
        )
        response["Content-Length"] = end - start + 1
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
    else:
        response = FileResponse(fileobj, content_type=content_type)
        response["Content-Length"] = size
    response["Accept-Ranges"] = "bytes"
    response["ETag"] = etag
    response["Cache-Control"] = IMMUTABLE
    return response


@require_safe
def wheel(request, name, filename):
    try:
        file_id, disk_name, sha256, _ = _published(name, filename)
    except Quarantined as exc:
        return _gone(name, str(exc))
    response = _serve(
        request, storage.file_path(name, disk_name), f'"{sha256}"',
        f"{name}/{disk_name}", "application/octet-stream",
    )
    # A download is a whole file sent: not a 304, a HEAD or a range. Through nginx
    # (X-Accel-Redirect) nginx answers ranges and revalidations itself, against its own
    # ETag, so requests with those headers are not counted: a filename's bytes never
    # change, so such a request ends in a 304 or a part.
    if settings.PIWHEELS_ACCEL_REDIRECT and any(h in request.headers for h in NGINX_DECIDES):
        return response
    if request.method == "GET" and response.status_code == 200:
        downloads.record(file_id)
    return response


@require_safe
def metadata(request, name, filename):
    try:
        _, disk_name, _, metadata_sha256 = _published(name, filename)
    except Quarantined as exc:
        return _gone(name, str(exc))
    if not metadata_sha256:
        raise Http404(f"no metadata file for {filename}")
    return _serve(
        request, storage.metadata_path(name, disk_name), f'"{metadata_sha256}"',
        f"{name}/{disk_name}.metadata", "text/plain; charset=utf-8",
    )
