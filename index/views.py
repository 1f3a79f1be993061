"""The Simple Repository API views: negotiate, look up, stream. What the pages say is
decided in index/rendering.py, written to files by index/pages.py (which nginx serves
as they are); these views only pick a rendering and answer conditionally.

Every answer costs one small query (the project's index serial, or the root's), which
is what keeps the cached renderings exact after any committed change.
"""
import re
import zlib

from csp.utils import build_policy
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.http import (
    FileResponse,
    HttpRequest,
    HttpResponse,
    HttpResponsePermanentRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.utils.http import parse_etags
from django.views.decorators.http import condition, require_safe
from packaging.utils import canonicalize_name

from index import pages, rendering
from packages.models import Demand, Project, index_serial_high
from packages.sync import want

# Offered media types, in the order preferred when the client rates them equally.
OFFERS = (rendering.TEXT_HTML_TYPE, rendering.HTML_TYPE, rendering.JSON_TYPE)
FORMATS = {
    rendering.TEXT_HTML_TYPE: "html", rendering.HTML_TYPE: "html", rendering.JSON_TYPE: "json"
}
CONTENT_TYPES = {
    rendering.TEXT_HTML_TYPE: "text/html; charset=utf-8",
    rendering.HTML_TYPE: rendering.HTML_TYPE,
    rendering.JSON_TYPE: rendering.JSON_TYPE,
}


def preferred_type(accept):
    """The offer an Accept header prefers (None: none of ours), decided by Django's own
    negotiation (HttpRequest.get_preferred_type); no header means */*."""
    request = HttpRequest()
    if accept is not None:
        request.META["HTTP_ACCEPT"] = accept
    return request.get_preferred_type(OFFERS)


def select_content_type(request):
    """The media type to answer REQUEST with, or None when it accepts none of ours.
    `?format=<media type>` overrides `Accept`."""
    wanted = request.GET.get("format")
    if wanted is not None:
        return wanted if wanted in OFFERS else None
    return request.get_preferred_type(OFFERS)


def accepts_gzip(request):
    return _gzip_accepted(request.headers.get("Accept-Encoding", ""))


def _gzip_accepted(accept_encoding):
    for item in accept_encoding.split(","):
        coding, _, params = item.partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            return not re.search(r"q=0(\.0*)?\s*$", params.strip())
    return False


NOT_ACCEPTABLE = ("Not Acceptable: this index serves " + ", ".join(OFFERS) + "\n").encode()


def _not_acceptable():
    return HttpResponse(NOT_ACCEPTABLE, status=406, content_type="text/plain; charset=utf-8")


def _index_headers(view):
    """Vary on Accept always; let clients keep 200 and 304 answers briefly and then
    revalidate (a 304 costs one query here)."""
    def wrapped(request, *args, **kwargs):
        return _index_response(view(request, *args, **kwargs))
    return wrapped


# --- /simple/<name>/ -----------------------------------------------------------------

# The freshness check every answer costs: a raw query, since building it with the ORM
# cost several times more than running it (226 us against 42 us on the bench machine).
# Its third column says whether a 404 should move the project's details up the sync's
# queue, so that the many 404s pip's --extra-index-url causes cost no second statement.
SERIAL_SQL = (
    "SELECT id, index_serial, serial < upstream_serial AND demand < "
    f"{Demand.ASKED_BY_PIP:d} FROM packages_project WHERE normalized_name = %s"
)

# What PyPI sends with each index page and JSON answer, and mirrors (bandersnatch) check:
# the project's serial (its last change), or on the root the highest serial it reflects.
SERIAL_HEADER = "X-PyPI-Last-Serial"

# Accept header -> chosen media type. pip and uv send a handful of distinct headers, so
# negotiation runs once per header and process; bounded against odd clients.
_NEGOTIATED = {}
_NEGOTIATED_MAX = 256


def forget_negotiated():
    """Forget the remembered answers (tests that change the offers)."""
    _NEGOTIATED.clear()


def negotiate(accept):
    """preferred_type(ACCEPT), remembered per Accept header (the WSGI fast path has no
    request object to ask, and building one per request costs more than the answer)."""
    try:
        return _NEGOTIATED[accept]
    except KeyError:
        chosen = preferred_type(accept)
        if len(_NEGOTIATED) < _NEGOTIATED_MAX:
            _NEGOTIATED[accept] = chosen
        return chosen


def _project_serial(name):
    """(project id, index serial, waiting for pip's demand?) of the project called NAME
    (normalised), or None."""
    with connection.cursor() as cursor:
        cursor.execute(SERIAL_SQL, [name])
        return cursor.fetchone()


def _cache_control():
    return f"max-age={settings.PIWHEELS_INDEX_MAX_AGE}, public, must-revalidate"


def _index_response(response):
    """Vary on Accept; Cache-Control on 200s and 304s (see _index_headers)."""
    patch_vary_headers(response, ("Accept",))
    if response.status_code in (200, 304):
        response["Cache-Control"] = _cache_control()
    return response


def _etag_matches(etag, header):
    """If-None-Match HEADER names ETAG (weak comparison, as RFC 9110 asks for GET)."""
    if header == etag:
        return True
    etags = parse_etags(header)
    return "*" in etags or etag in (e.removeprefix("W/") for e in etags)


def detail_answer(name, content_type, if_none_match, accept_encoding=None):
    """(status, headers, body) of GET /simple/NAME/ for a normalised NAME in the negotiated
    CONTENT_TYPE (None: 406): one query (the project's index serial), then the cached
    rendering (gzipped for clients that take it), a 304, a 404 or a 406. Plain values, so
    that the Django view and the WSGI fast path give the same answer."""
    if content_type is None:
        return 406, [("Content-Type", "text/plain; charset=utf-8"), ("Vary", "Accept")], (
            NOT_ACCEPTABLE
        )
    row = _project_serial(name)
    page = None
    if row is not None:
        fmt = FORMATS[content_type]
        if accept_encoding and _gzip_accepted(accept_encoding):
            fmt += ".gz"
        # The page format too: a client's copy of an older rendering is not current.
        etag = f'"{row[0]}.{row[1]}.{rendering.PAGE_FORMAT}.{fmt}"'
        headers = [("ETag", etag), ("Vary", "Accept, Accept-Encoding"),
                   ("Cache-Control", _cache_control()), (SERIAL_HEADER, str(row[1]))]
        if if_none_match and _etag_matches(etag, if_none_match):
            return 304, headers, b""
        page = pages.project_page(row[0], name, row[1])
    if page is None:
        if row is not None and row[2]:  # known upstream, details waiting: fetch them soon
            want(name, Demand.ASKED_BY_PIP)
        return 404, [("Content-Type", "text/plain; charset=utf-8"), ("Vary", "Accept")], (
            f"No files for {name}\n".encode()
        )
    headers.append(("Content-Type", CONTENT_TYPES[content_type]))
    if fmt.endswith(".gz"):
        headers.append(("Content-Encoding", "gzip"))
    return 200, headers, page[fmt]


def detail_response(request, name):
    """detail_answer() as a Django response."""
    status, headers, body = detail_answer(
        name, select_content_type(request), request.META.get("HTTP_IF_NONE_MATCH"),
        request.META.get("HTTP_ACCEPT_ENCODING"),
    )
    response = HttpResponse(body, status=status)
    for header, value in headers:
        response[header] = value
    if status == 404:
        # pip asks for every dependency with --extra-index-url: do not log each miss
        # as a warning (django.request skips responses marked as logged).
        response._has_been_logged = True
    if status == 304:
        del response["Content-Type"]
    return response


# A project name as PEP 508 (and PyPI) allows it, ASCII only: anything else is no
# project of the index, a 404 (never a redirect: "%c0%ae%c0%ae" normalises to itself).
PROJECT_NAME = re.compile(r"\A[A-Z0-9](?:[A-Z0-9._-]*[A-Z0-9])?\Z", re.IGNORECASE | re.ASCII)


def _no_such_name(name):
    response = HttpResponse(f"No project named {name[:100]!r}\n".encode(), status=404,
                            content_type="text/plain; charset=utf-8")
    response._has_been_logged = True  # as /simple/'s 404s
    return response


@require_safe
def detail(request, name):
    if not PROJECT_NAME.match(name):
        return _index_response(_no_such_name(name))
    normalized = canonicalize_name(name)
    if name != normalized or not request.path.endswith("/"):
        url = f"{reverse('simple-root')}{normalized}/"
        if request.META.get("QUERY_STRING"):
            url += "?" + request.META["QUERY_STRING"]
        return _index_response(HttpResponsePermanentRedirect(url))
    return detail_response(request, name)


# The path the index is mounted at (piwheels_site/urls.py); PATH_INFO is relative to
# the WSGI script name, as Django's URL resolver's is.
SIMPLE_PREFIX = "/simple/"
STATUS_LINES = {200: "200 OK", 304: "304 Not Modified", 404: "404 Not Found",
                406: "406 Not Acceptable"}


class SimpleIndexApp:
    """WSGI wrapper around Django's application (piwheels_site/wsgi.py): answers
    GET /simple/<normalised name>/ with detail_answer() before Django's request handling,
    which costs several times the answer itself (request objects, signals, middleware:
    nothing an index page uses). It adds the headers SecurityMiddleware (HSTS on HTTPS
    requests included), XFrameOptionsMiddleware and django-csp's CSPMiddleware would
    add, and checks the database connection before and after as Django's request
    signals do (close_old_connections; their dispatch alone cost a quarter of this
    path). Anything else (redirects, ?format=, HEAD, the root, HTTPS redirects) goes to
    Django, which answers the same through the `detail` view."""

    def __init__(self, application):
        self.application = application
        self.headers = self.hsts = self.csp = None

    def _security_headers(self):
        headers = {}
        if settings.SECURE_CONTENT_TYPE_NOSNIFF:
            headers["X-Content-Type-Options"] = "nosniff"
        if settings.SECURE_REFERRER_POLICY:
            policy = settings.SECURE_REFERRER_POLICY
            if not isinstance(policy, str):
                policy = ",".join(policy)
            headers["Referrer-Policy"] = policy
        if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
            headers["Cross-Origin-Opener-Policy"] = settings.SECURE_CROSS_ORIGIN_OPENER_POLICY
        headers["X-Frame-Options"] = getattr(settings, "X_FRAME_OPTIONS", "DENY").upper()
        return list(headers.items())

    @staticmethod
    def _hsts_header():
        """The Strict-Transport-Security header SecurityMiddleware sends, or None."""
        if not settings.SECURE_HSTS_SECONDS:
            return None
        value = f"max-age={settings.SECURE_HSTS_SECONDS}"
        if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
            value += "; includeSubDomains"
        if settings.SECURE_HSTS_PRELOAD:
            value += "; preload"
        return ("Strict-Transport-Security", value)

    @staticmethod
    def _is_secure(environ):
        """request.is_secure() of Django's HttpRequest, from the WSGI environ."""
        if settings.SECURE_PROXY_SSL_HEADER:
            header, secure_value = settings.SECURE_PROXY_SSL_HEADER
            value = environ.get(header)
            if value is not None:
                return value.split(",", 1)[0].strip() == secure_value
        return environ.get("wsgi.url_scheme") == "https"

    def __call__(self, environ, start_response):
        name = self._project_name(environ)
        if name is None:
            return self.application(environ, start_response)
        if self.headers is None:
            self.headers = self._security_headers()
            self.hsts = self._hsts_header()
            self.csp = build_policy()  # django-csp's, from CONTENT_SECURITY_POLICY
        db = connections[DEFAULT_DB_ALIAS]
        db.close_if_unusable_or_obsolete()
        try:
            status, headers, body = detail_answer(
                name, negotiate(environ.get("HTTP_ACCEPT")), environ.get("HTTP_IF_NONE_MATCH"),
                environ.get("HTTP_ACCEPT_ENCODING"),
            )
        except Exception:
            # Let Django answer (and log) whatever went wrong, as for any other page.
            return self.application(environ, start_response)
        finally:
            db.close_if_unusable_or_obsolete()
        headers.append(("Content-Length", str(len(body))))
        headers += self.headers
        if self.csp and not (status == 404 and settings.DEBUG):  # as CSPMiddleware
            headers.append(("Content-Security-Policy", self.csp))
        if self.hsts and self._is_secure(environ):
            headers.append(self.hsts)
        start_response(STATUS_LINES[status], headers)
        return [body]

    @staticmethod
    def _project_name(environ):
        """The normalised project name of a GET /simple/<name>/ this app answers, or None."""
        path = environ.get("PATH_INFO", "")
        if (
            environ.get("REQUEST_METHOD") != "GET"
            or not path.startswith(SIMPLE_PREFIX)
            or not path.endswith("/")
            or environ.get("QUERY_STRING")
            or settings.SECURE_SSL_REDIRECT
        ):
            return None
        name = path[len(SIMPLE_PREFIX):-1]
        if not name or "/" in name or name != canonicalize_name(name):
            return None
        return name


# --- /pypi/<name>/json ----------------------------------------------------------------

@require_safe
def pypi_json(request, name):
    """PyPI's JSON API of one project as its index page lists it, for mirrors that sync
    as bandersnatch does (docs/index-and-mirroring.md, "Mirroring the farm"):
    X-PyPI-Last-Serial is the project's index serial, read before the files, so the answer
    is never older than the serial it claims. Always from the database: it is what a
    mirror checks against the root's `_last-serial`. A project with nothing listed is a
    404, as on /simple/."""
    if not PROJECT_NAME.match(name):
        return _index_response(_no_such_name(name))
    normalized = canonicalize_name(name)
    if name != normalized:
        return _index_response(
            HttpResponsePermanentRedirect(reverse("pypi-json", kwargs={"name": normalized})))
    project = (Project.objects.filter(normalized_name=normalized)
               .only("id", "name", "normalized_name", "summary", "index_serial").first())
    detail = project and rendering.pypi_project(
        project, project.index_serial,
        lambda project_name, filename: request.build_absolute_uri(
            reverse("packages-wheel", kwargs={"name": project_name, "filename": filename})))
    if not detail or not detail["releases"]:
        response = HttpResponse(f"No files for {normalized}\n".encode(), status=404,
                                content_type="text/plain; charset=utf-8")
        response._has_been_logged = True  # as /simple/'s 404s
        return response
    response = JsonResponse(detail)
    response[SERIAL_HEADER] = str(project.index_serial)
    response = _index_response(response)
    # Its URLs carry the Host the request named: checked against ALLOWED_HOSTS (no
    # wildcard by default); where an operator allows any host, a shared cache must not
    # keep one client's Host for another, so the answer is not public then.
    patch_vary_headers(response, ("Host",))
    if "*" in settings.ALLOWED_HOSTS:
        response["Cache-Control"] = "private, max-age=60"
    return response


# --- /simple/ ------------------------------------------------------------------------

def _root_lookup(request):
    """(content type, root serial, gzip?, (root serial, last serial) of the answer, from
    the page files?) once per request. The files' stamp (pages.root_stamp) is read before
    a file is opened, so the file is at least as new as the ETag and X-PyPI-Last-Serial
    made from it; a root streamed as it is rendered is at least as new as the serials
    read before."""
    if not hasattr(request, "_simple_root"):
        content_type = select_content_type(request)
        serial = stamp = current = None
        if content_type:
            serial = rendering.root_serial()
            stamp = pages.root_stamp()
            current = pages.root_is_current(serial, stamp)
            if not current:
                stamp = (serial, index_serial_high())
        request._simple_root = (content_type, serial, accepts_gzip(request), stamp, current)
    return request._simple_root


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


def _root_etag(request):
    content_type, _, gzipped, stamp, _ = _root_lookup(request)
    if content_type is None:
        return None
    return f'"root.{stamp[0]}.{stamp[1]}.{FORMATS[content_type]}{".gz" if gzipped else ""}"'


def _with_last_serial(view):
    """X-PyPI-Last-Serial on the root's 200s and 304s: the highest index serial its
    `_last-serial`s reflect, as PyPI sends its global serial."""
    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        stamp = _root_lookup(request)[3]
        if stamp is not None and response.status_code in (200, 304):
            response[SERIAL_HEADER] = str(stamp[1])
        return response
    return wrapped


@require_safe
@_index_headers
@_with_last_serial
@condition(etag_func=_root_etag)
def root(request):
    content_type, serial, gzipped, _, current = _root_lookup(request)
    if content_type is None:
        return _not_acceptable()
    fmt = FORMATS[content_type]
    if not current:
        # Its writer died (or the files went): render it while streaming it to this
        # client, so the first byte leaves at once, and write its files on the way.
        chunks = pages.stream_root(serial, fmt)
        response = StreamingHttpResponse(
            _gzip(chunks) if gzipped else chunks, content_type=CONTENT_TYPES[content_type])
    else:
        # At SERIAL or newer (a writer renames a later page over them).
        path = pages.root_file(fmt + (".gz" if gzipped else ""))
        response = FileResponse(open(path, "rb"), content_type=CONTENT_TYPES[content_type])
        del response["Content-Disposition"]  # FileResponse names the file on disk
    if gzipped:
        response["Content-Encoding"] = "gzip"
    patch_vary_headers(response, ("Accept-Encoding",))
    return response
