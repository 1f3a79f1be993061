"""The Simple Repository API views: negotiate, look up, stream. What the pages say is
decided in builds/index.py; these views only pick a rendering and answer conditionally.

Every answer costs one small query (the project's index serial, or the root's), which
is what keeps the cached renderings exact after any committed change.
"""
import re
import zlib

from django.conf import settings
from django.http import (
    FileResponse,
    HttpResponse,
    HttpResponseNotFound,
    HttpResponsePermanentRedirect,
    StreamingHttpResponse,
)
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import condition, require_safe
from packaging.utils import canonicalize_name

from builds import index
from packages.models import Project

# Offered media types, in the order preferred when the client rates them equally.
OFFERS = (index.TEXT_HTML_TYPE, index.HTML_TYPE, index.JSON_TYPE)
FORMATS = {index.TEXT_HTML_TYPE: "html", index.HTML_TYPE: "html", index.JSON_TYPE: "json"}
CONTENT_TYPES = {
    index.TEXT_HTML_TYPE: "text/html; charset=utf-8",
    index.HTML_TYPE: index.HTML_TYPE,
    index.JSON_TYPE: index.JSON_TYPE,
}


def parse_accept(header):
    """[(type, subtype, q)] of an Accept header; malformed ranges are ignored."""
    ranges = []
    for item in header.split(","):
        media, *params = item.split(";")
        media = media.strip().lower()
        if media.count("/") != 1:
            continue
        major, minor = media.split("/")
        q = 1.0
        for param in params:
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        ranges.append((major, minor, q))
    return ranges


def _quality(offer, ranges):
    """(q, specificity) the most specific matching range gives OFFER; (0, -1) if none."""
    major, minor = offer.split("/")
    best = (0.0, -1)
    for range_major, range_minor, q in ranges:
        if range_major == major and range_minor == minor:
            specificity = 2
        elif range_major == major and range_minor == "*":
            specificity = 1
        elif range_major == "*" and range_minor == "*":
            specificity = 0
        else:
            continue
        if specificity > best[1]:
            best = (q, specificity)
    return best


def select_content_type(request):
    """The media type to answer REQUEST with, or None when it accepts none of ours.
    `?format=<media type>` overrides `Accept`; no `Accept` means `*/*`."""
    wanted = request.GET.get("format")
    if wanted is not None:
        return wanted if wanted in OFFERS else None
    ranges = parse_accept(request.headers.get("Accept") or "*/*")
    best, best_score = None, (0.0, -1)
    for offer in OFFERS:
        score = _quality(offer, ranges)
        if score[0] > 0 and score > best_score:
            best, best_score = offer, score
    return best


def accepts_gzip(request):
    for item in request.headers.get("Accept-Encoding", "").split(","):
        coding, _, params = item.partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            return not re.search(r"q=0(\.0*)?\s*$", params.strip())
    return False


def _not_acceptable():
    return HttpResponse(
        "Not Acceptable: this index serves " + ", ".join(OFFERS) + "\n",
        status=406, content_type="text/plain; charset=utf-8",
    )


def _index_headers(view):
    """Vary on Accept always; let clients keep 200 and 304 answers briefly and then
    revalidate (a 304 costs one query here)."""
    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        patch_vary_headers(response, ("Accept",))
        if response.status_code in (200, 304):
            response["Cache-Control"] = (
                f"max-age={settings.PIWHEELS_INDEX_MAX_AGE}, public, must-revalidate"
            )
        return response
    return wrapped


# --- /simple/<name>/ -----------------------------------------------------------------

def _detail_lookup(request, name):
    """(content type, (project id, index serial) or None), once per request."""
    if not hasattr(request, "_simple_detail"):
        content_type = select_content_type(request)
        row = None
        if content_type and name == canonicalize_name(name) and request.path.endswith("/"):
            # Not .first(): its ORDER BY id would make PostgreSQL walk the primary key.
            found = Project.objects.filter(normalized_name=name).values_list("id", "index_serial")
            row = next(iter(found[:1]), None)
        request._simple_detail = (content_type, row)
    return request._simple_detail


def _detail_etag(request, name):
    content_type, row = _detail_lookup(request, name)
    if row is None:
        return None
    return f'"{row[0]}.{row[1]}.{FORMATS[content_type]}"'


@require_safe
@_index_headers
@condition(etag_func=_detail_etag)
def detail(request, name):
    normalized = canonicalize_name(name)
    if name != normalized or not request.path.endswith("/"):
        url = f"{reverse('simple-root')}{normalized}/"
        if request.META.get("QUERY_STRING"):
            url += "?" + request.META["QUERY_STRING"]
        return HttpResponsePermanentRedirect(url)
    content_type, row = _detail_lookup(request, name)
    if content_type is None:
        return _not_acceptable()
    page = index.project_page(row[0], name, row[1]) if row else None
    if page is None:
        response = HttpResponseNotFound(
            f"No files for {name}\n", content_type="text/plain; charset=utf-8"
        )
        # pip asks for every dependency with --extra-index-url: do not log each miss
        # as a warning (django.request skips responses marked as logged).
        response._has_been_logged = True
        return response
    return HttpResponse(page[FORMATS[content_type]], content_type=CONTENT_TYPES[content_type])


# --- /simple/ ------------------------------------------------------------------------

def _root_lookup(request):
    """(content type, serial, gzip?) once per request."""
    if not hasattr(request, "_simple_root"):
        content_type = select_content_type(request)
        serial = index.root_serial() if content_type else None
        request._simple_root = (content_type, serial, accepts_gzip(request))
    return request._simple_root


def _root_etag(request):
    content_type, serial, gzipped = _root_lookup(request)
    if content_type is None:
        return None
    return f'"root.{serial}.{FORMATS[content_type]}{".gz" if gzipped else ""}"'


def _gunzip(path, chunk_size=256 * 1024):
    decompressor = zlib.decompressobj(wbits=31)
    with open(path, "rb") as compressed:
        while chunk := compressed.read(chunk_size):
            yield decompressor.decompress(chunk)
    yield decompressor.flush()


def _gzip(chunks):
    compressor = zlib.compressobj(6, wbits=31)
    first = True
    for chunk in chunks:
        data = compressor.compress(chunk)
        if first:  # send the head now rather than when zlib's buffer fills
            data += compressor.flush(zlib.Z_SYNC_FLUSH)
            first = False
        if data:
            yield data
    yield compressor.flush()


@require_safe
@_index_headers
@condition(etag_func=_root_etag)
def root(request):
    content_type, serial, gzipped = _root_lookup(request)
    if content_type is None:
        return _not_acceptable()
    fmt = FORMATS[content_type]
    path = index.root_path(serial, fmt)
    if not path.exists():
        # First request since a change: render it (to disk, for everyone) while
        # streaming it to this client, so the first byte leaves at once.
        chunks = index.render_root_stream(serial, fmt)
        response = StreamingHttpResponse(
            _gzip(chunks) if gzipped else chunks, content_type=CONTENT_TYPES[content_type]
        )
    elif gzipped:
        response = FileResponse(open(path, "rb"), content_type=CONTENT_TYPES[content_type])
        del response["Content-Disposition"]  # FileResponse names the file on disk
    else:
        response = StreamingHttpResponse(
            _gunzip(path), content_type=CONTENT_TYPES[content_type]
        )
    if gzipped:
        response["Content-Encoding"] = "gzip"
    patch_vary_headers(response, ("Accept-Encoding",))
    return response
