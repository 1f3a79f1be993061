"""Talking to the upstream index (PyPI): the simple root (JSON or HTML), per-project JSON
and the XML-RPC changelog, with timeouts, retries, backoff and pacing. Django-free apart
from settings.

Every fault is retried with exponential backoff (PIWHEELS_SYNC_BACKOFF seconds, doubled
each time, PIWHEELS_SYNC_RETRIES times); a 429's Retry-After is honoured by every thread.
Requests are paced to PIWHEELS_SYNC_RATE per second (0: unpaced). What still fails raises
UpstreamError (NotFound for a 404: an answer, never retried) whose message says what and why.
"""
import json
import logging
import re
import threading
import time
import urllib.request
import xmlrpc.client
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from html.parser import HTMLParser
from urllib.parse import urlsplit

import ijson
import urllib3
from django.conf import settings
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

log = logging.getLogger(__name__)

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
SIMPLE_HTML = "application/vnd.pypi.simple.v1+html"
# JSON preferred; PEP 503 HTML accepted (an old mirror, a proxy that rewrites the answer).
ROOT_ACCEPT = f"{SIMPLE_JSON}, {SIMPLE_HTML};q=0.2, text/html;q=0.1"
CHUNK = 256 * 1024
# The sdists' filenames, old formats included (what PyPI's JSON API calls packagetype
# "sdist"; a file named like one whose version does not parse is left to that API).
SDIST_SUFFIXES = (".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar.xz", ".tar")
USER_AGENT = "piwheels-farm-sync/1.0"


class UpstreamError(Exception):
    pass


class NotFound(UpstreamError):
    pass


class _Retry(Exception):
    """A fault worth another attempt; the message says what went wrong."""

    def __init__(self, why, wait=None):
        super().__init__(why)
        self.wait = wait


@dataclass
class ReleaseState:
    version: str
    released: datetime | None = None
    yanked: bool = False
    yanked_reason: str = ""
    requires_python: str = ""
    has_sdist: bool = False
    upstream_wheels: list = field(default_factory=list)  # its wheel filenames, sorted


@dataclass
class ProjectState:
    """What upstream says about one project right now."""

    name: str
    summary: str | None = ""  # None: not read (a simple page does not carry it)
    last_serial: int = 0
    releases: dict = field(default_factory=dict)  # version string -> ReleaseState
    # PEP 792, from the project's simple page. A quarantined project's releases are not
    # read (RELEASES_KNOWN False): what the catalogue holds of them is kept as it is.
    status: str = "active"
    status_reason: str = ""
    releases_known: bool = True


STATUSES = ("active", "archived", "quarantined", "deprecated")


def parse_status(data):
    """(status, reason) from a PEP 691 JSON project page ("project-status", PEP 792). A
    marker this farm does not know counts as active: it offers the files, as an index
    that predates the marker would."""
    marker = data.get("project-status") if isinstance(data, dict) else None
    if not isinstance(marker, dict):
        return "active", ""
    status = marker.get("status")
    reason = marker.get("reason")
    return (status if status in STATUSES else "active",
            _clean(reason, 1000) if isinstance(reason, str) else "")


class _StatusMeta(HTMLParser):
    """PEP 792's meta tags of a PEP 503 project page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.meta = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "meta" and (attrs.get("name") or "").startswith("pypi:"):
            self.meta[attrs["name"]] = attrs.get("content") or ""


def parse_status_html(text):
    """(status, reason) from a PEP 503 project page's meta tags."""
    parser = _StatusMeta()
    parser.feed(text)
    parser.close()
    return parse_status({"project-status": {
        "status": parser.meta.get("pypi:project-status"),
        "reason": parser.meta.get("pypi:project-status-reason")}})


def _clean(text, limit=None):
    text = (text or "").replace("\x00", "")
    return text[:limit] if limit else text


def _parse_time(text):
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def _release(version, files):
    """ReleaseState of VERSION from its FILES: (filename, upload time, yanked, yanked
    reason, requires-python, is an sdist) tuples, whichever API they were read from."""
    files = sorted(files, key=lambda f: f[0])  # the same first file, from either API
    release = ReleaseState(version=version)
    times = [t for t in (_parse_time(f[1]) for f in files) if t]
    release.released = min(times) if times else None
    release.has_sdist = any(f[5] for f in files)
    release.upstream_wheels = sorted({f[0] for f in files if f[0].endswith(".whl")})
    release.yanked = bool(files) and all(f[2] for f in files)
    if release.yanked:
        release.yanked_reason = _clean(files[0][3])
    release.requires_python = _clean(next((f[4] for f in files if f[4]), ""), 200)
    return release


def parse_project(data):
    """ProjectState from PyPI's /pypi/<name>/json document."""
    info = data.get("info") or {}
    if not isinstance(info.get("name"), str) or not isinstance(data.get("releases"), dict):
        raise ValueError("project JSON without info.name or releases")
    state = ProjectState(
        name=info["name"], summary=_clean(info.get("summary")),
        last_serial=int(data.get("last_serial") or 0),
    )
    for version, files in data["releases"].items():
        state.releases[version] = _release(version, [
            (f["filename"], f.get("upload_time_iso_8601"), bool(f.get("yanked")),
             f.get("yanked_reason"), f.get("requires_python"), f.get("packagetype") == "sdist")
            for f in files if isinstance(f.get("filename"), str)])
    return state


def parse_summary(data):
    """The summary of PyPI's /pypi/<name>/json document, its releases left unread."""
    info = data.get("info")
    if not isinstance(info, dict):
        raise ValueError("project JSON without info")
    return _clean(info.get("summary"))


# Old binary formats, "<name>-<version>" then: "-py2.7[-<platform>].egg" (bdist_egg), or
# ".win32[-py2.7].exe" (bdist_wininst, bdist_msi): what follows the version.
_EGG_TAIL = re.compile(r"-py\d+(\.\d+)?(-.+)?\Z")
_INSTALLER_TAIL = re.compile(r"\.win(32|-amd64|-arm64)(-py\d+(\.\d+)?)?\Z")


def _file_version(norm, filename):
    """The Version a wheel's, an sdist's, an egg's or a Windows installer's FILENAME names
    for project NORM; None when the name does not say (another kind of file, a name
    that does not parse)."""
    if filename.endswith(".whl"):
        try:
            name, version, _build, _tags = parse_wheel_filename(filename)
        except InvalidWheelFilename:
            return None
        return version if name == norm else None
    stem, tail = None, None
    if sdist := next((s for s in SDIST_SUFFIXES if filename.endswith(s)), None):
        stem = filename[:-len(sdist)]
    elif filename.endswith(".egg"):
        stem, tail = filename[:-4], _EGG_TAIL
    elif filename.endswith((".exe", ".msi")):
        stem, tail = filename[:-4], _INSTALLER_TAIL
    if stem is None:
        return None
    # "name-version", where the name may hold hyphens of its own: split after the name
    for at in (i for i, c in enumerate(stem) if c == "-"):
        if canonicalize_name(stem[:at]) == norm:
            version = stem[at + 1:]
            if tail is not None:
                match = tail.search(version)
                if match is None:
                    return None
                version = version[:match.start()]
            try:
                return Version(version)
            except InvalidVersion:
                return None
    return None


def summary_release(versions):
    """Which of VERSIONS (the live ones: not yanked, not removed) PyPI's JSON API takes a
    project's summary from, as Warehouse orders them: the highest, a final release before
    any pre-release; None for none."""
    parsed = []
    for version in versions:
        try:
            parsed.append(Version(version))
        except InvalidVersion:
            continue
    return max(parsed, key=lambda v: (not v.is_prerelease, v), default=None)


def parse_simple_project(data, name):
    """ProjectState of NAME from its PEP 691 JSON page with PEP 700's versions and upload
    times, the same releases the JSON API would give; None when the page cannot tell them
    all (no versions list, two spellings of one version, a file whose name does not say
    which listed version it is of: an .rpm, a post-release's file uploaded to its
    release). Its summary is not read (None)."""
    versions, files = data.get("versions"), data.get("files")
    if not isinstance(versions, list) or not isinstance(files, list):
        return None
    listed = {}
    for version in versions:
        try:
            key = Version(version)
        except (InvalidVersion, TypeError):
            return None
        if key in listed:  # two spellings of one version: only the JSON API can tell
            return None
        listed[key] = version
    norm, grouped = canonicalize_name(name), {v: [] for v in versions}
    for f in files:
        filename = f.get("filename") if isinstance(f, dict) else None
        version = _file_version(norm, filename) if isinstance(filename, str) else None
        if version not in listed or not isinstance(f.get("upload-time"), str):
            return None
        yanked = f.get("yanked")
        grouped[listed[version]].append(
            (filename, f["upload-time"], bool(yanked), yanked if isinstance(yanked, str)
             else "", f.get("requires-python"), filename.endswith(SDIST_SUFFIXES)))
    meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
    serial = str(meta.get("_last-serial", ""))  # PyPI sends it as a string
    state = ProjectState(name=name, summary=None,
                         last_serial=int(serial) if serial.isdigit() else 0)
    for version, release_files in grouped.items():
        state.releases[version] = _release(version, release_files)
    return state


class Response:
    """What the client reads of one answer (urllib3's, with requests' names)."""

    def __init__(self, raw):
        self.raw = raw  # urllib3.HTTPResponse: a file to stream from, when not read yet
        self.status_code = raw.status
        self.reason = raw.reason
        self.headers = raw.headers  # case-insensitive

    @property
    def content(self):
        return self.raw.data

    @property
    def text(self):
        return self.content.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.content)

    def close(self):
        """Give the connection back for the next request (what is unread is read and
        dropped first, so that the next answer does not start in this one's body)."""
        self.raw.drain_conn()
        self.raw.release_conn()

    def discard(self):
        """Close the connection, what is unread with it (a root given up on midway)."""
        self.raw.close()
        self.raw.release_conn()


def _cause(exc):
    """The class name of what lies under a urllib3 error (ConnectionRefusedError, ...)."""
    inner = getattr(exc, "reason", None) or (exc.args[1] if len(exc.args) > 1 else None)
    return (inner if isinstance(inner, BaseException) else exc).__class__.__name__


class Pacer:
    """At most RATE request starts per second over all threads; hold() pauses them all
    (a 429's Retry-After)."""

    def __init__(self, rate):
        self.interval = 1.0 / rate if rate else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self):
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)

    def hold(self, seconds):
        with self._lock:
            self._next = max(self._next, time.monotonic() + seconds)


@dataclass
class Root:
    """One answer of the simple root. KIND: "json" (names with their _last-serial),
    "html" (PEP 503: names only, serial None) or "not-modified" (ETag unchanged)."""

    kind: str
    etag: str = ""
    serial: int | None = None  # X-PyPI-Last-Serial, when sent
    response: object = None

    def entries(self):
        """(name, last serial or None) for each project, parsed as it arrives. Raises
        UpstreamError if the document is cut short or malformed (then nothing may be
        concluded from what came before)."""
        raw = self.response.raw
        raw.decode_content = True
        try:
            if self.kind == "json":
                for project in ijson.items(raw, "projects.item", use_float=True):
                    yield project["name"], int(project.get("_last-serial") or 0)
            else:
                parser = _AnchorText()
                while chunk := raw.read(CHUNK):
                    parser.feed(chunk.decode("utf-8", "replace"))
                    yield from parser.take()
                parser.close()
                yield from parser.take()
        except (ijson.JSONError, KeyError, TypeError, ValueError) as exc:
            raise UpstreamError(f"/simple/: malformed JSON root ({exc})") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise UpstreamError(f"/simple/: root cut short ({exc.__class__.__name__})") from None
        finally:  # read to its end, or given up on: its connection is not used again
            self.response.discard()


class _AnchorText(HTMLParser):
    """The text of each <a> of a PEP 503 root: the project names."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self._names, self._text = [], None

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self._text = []

    def handle_data(self, data):
        if self._text is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag == "a" and self._text is not None:
            name = "".join(self._text).strip()
            if name:
                self._names.append((name, None))
            self._text = None

    def take(self):
        names, self._names = self._names, []
        return names


class Upstream:
    def __init__(self, base=None, rate=None):
        self.base = (base or settings.PIWHEELS_PYPI_URL).rstrip("/")
        self.timeout = settings.PIWHEELS_SYNC_TIMEOUT
        self.retries = settings.PIWHEELS_SYNC_RETRIES
        self.backoff = settings.PIWHEELS_SYNC_BACKOFF
        self.max_wait = settings.PIWHEELS_SYNC_MAX_WAIT
        self.pacer = Pacer(settings.PIWHEELS_SYNC_RATE if rate is None else rate)

    @cached_property
    def pool(self):
        """urllib3's pool of keep-alive connections, shared by the threads (urllib3 is
        requests' own core, at under half its cost per request: requests looks up proxies
        and .netrc at every request). Through the proxy the environment names for the
        upstream, if any, as requests would."""
        size = max(settings.PIWHEELS_SYNC_WORKERS, 1) + 2
        headers = {"User-Agent": USER_AGENT}
        proxy = None if urllib.request.proxy_bypass(urlsplit(self.base).hostname or "") else (
            urllib.request.getproxies().get(urlsplit(self.base).scheme))
        if proxy:
            return urllib3.ProxyManager(proxy, maxsize=size, headers=headers)
        return urllib3.PoolManager(maxsize=size, headers=headers)

    def _call(self, what, attempt_once, retries=None):
        """Run ATTEMPT_ONCE until it returns, retrying _Retry faults with backoff."""
        retries = self.retries if retries is None else retries
        for attempt in range(retries + 1):
            try:
                return attempt_once()
            except _Retry as fault:
                if attempt == retries:
                    raise UpstreamError(f"{fault} (gave up after {attempt + 1} attempts)") from None
                wait = self.backoff * 2**attempt
                if fault.wait is not None:
                    wait = max(wait, fault.wait)
                wait = min(wait, self.max_wait)
                log.warning("upstream %s: %s; retrying in %.2fs", what, fault, wait)
                time.sleep(wait)

    def _send(self, method, url, headers=None, body=None, stream=False):
        """One request: a Response, its body read unless STREAM."""
        self.pacer.wait()
        try:
            raw = self.pool.request(method, url, headers=headers, body=body,
                                    timeout=self.timeout, retries=False, redirect=True,
                                    preload_content=not stream)
        except urllib3.exceptions.TimeoutError:
            raise _Retry(f"timed out after {self.timeout}s") from None
        except urllib3.exceptions.HTTPError as exc:  # refused, reset, cut short
            raise _Retry(f"connection failed: {_cause(exc)}") from None
        response = Response(raw)
        if response.status_code == 429:
            retry_after = response.headers.get("Retry-After", "")
            wait = min(float(retry_after), self.max_wait) if retry_after.isdigit() else None
            if wait:
                self.pacer.hold(wait)  # every thread waits, not only this one
            raise _Retry("rate limited (429)", wait=wait)
        if response.status_code >= 500:
            response.close()
            raise _Retry(f"HTTP {response.status_code}")
        return response

    @staticmethod
    def _json(response):
        try:
            return response.json()
        except ValueError:
            raise _Retry("malformed JSON") from None

    def project(self, name, summary=False):
        """ProjectState of one project; NotFound when upstream has no such project. A 404
        is an answer, not a fault: the sync asks again minutes later before it deletes.

        First the standard simple page: the project's status (PEP 792 puts it only there)
        and, on a PEP 691 JSON page with PEP 700's versions, its releases, summary left
        unread (None). PyPI's JSON API is asked as well only when that page cannot say
        every release, or for the SUMMARY too (add_package); the sync reads the summaries
        it lacks later, after every waiting project's releases (read_summaries)."""
        status, reason, serial, listed = self._simple_page(name)
        if status == "quarantined":
            return ProjectState(name=name, last_serial=serial, status=status,
                                status_reason=reason, releases_known=False)
        if listed is not None and not summary:
            listed.last_serial = listed.last_serial or serial
            listed.status, listed.status_reason = status, reason
            return listed
        try:
            state = self._json_api(name)
        except NotFound:  # listed, without releases: PyPI's JSON API answers 404
            state = ProjectState(name=name, last_serial=serial)
        state.status, state.status_reason = status, reason
        return state

    def summary(self, name):
        """The project's summary from PyPI's JSON API; "" where that API answers 404 (a
        project without releases, or one gone since: its next details fetch says so)."""
        try:
            return self._json_api(name, parse_summary)
        except NotFound:
            return ""

    def _simple_page(self, name):
        """(PEP 792 status, reason, last serial, ProjectState or None) from the project's
        simple page: JSON preferred, whose releases parse_simple_project() reads; a PEP
        503 HTML page is read for its meta tags only. NotFound for a 404."""
        url = f"{self.base}/simple/{name}/"

        def once():
            response = self._send("GET", url, headers={"Accept": ROOT_ACCEPT})
            if response.status_code == 404:
                raise NotFound(f"not found upstream (404 from {url})")
            if response.status_code != 200:
                raise UpstreamError(f"HTTP {response.status_code} from {url}")
            serial = response.headers.get("X-PyPI-Last-Serial", "")
            serial = int(serial) if serial.isdigit() else 0
            kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if kind not in (SIMPLE_JSON, "application/json"):
                return (*parse_status_html(response.text), serial, None)
            page = self._json(response)
            listed = parse_simple_project(page, name) if isinstance(page, dict) else None
            return (*parse_status(page), serial, listed)

        return self._call(name, once)

    def _json_api(self, name, parse=parse_project):
        """What PARSE reads of one project's document from PyPI's JSON API: by default its
        ProjectState (releases and files)."""
        url = f"{self.base}/pypi/{name}/json"

        def once():
            response = self._send("GET", url)
            if response.status_code == 404:
                raise NotFound(f"not found upstream (404 from {url})")
            if response.status_code != 200:
                raise UpstreamError(f"HTTP {response.status_code} from {url}")
            try:
                return parse(self._json(response))
            except (ValueError, TypeError, AttributeError, KeyError) as exc:
                raise _Retry(f"unexpected JSON: {exc}") from None

        return self._call(name, once)

    def root(self, etag=""):
        """The simple root, asked for with If-None-Match: ETAG. Its kind is decided by the
        Content-Type, not by trying to parse it; entries() streams it."""
        url = f"{self.base}/simple/"
        headers = {"Accept": ROOT_ACCEPT}
        if etag:
            headers["If-None-Match"] = etag

        def once():
            response = self._send("GET", url, headers=headers, stream=True)
            serial = response.headers.get("X-PyPI-Last-Serial", "")
            serial = int(serial) if serial.isdigit() else None
            if response.status_code == 304:
                response.close()
                return Root("not-modified", etag, serial)
            if response.status_code != 200:
                response.close()
                raise UpstreamError(f"HTTP {response.status_code} from {url}")
            kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if kind in (SIMPLE_JSON, "application/json"):
                kind = "json"
            elif kind in (SIMPLE_HTML, "text/html"):
                kind = "html"
            else:
                response.close()
                raise UpstreamError(f"{url} answered Content-Type {kind or 'none'!r}, "
                                    "neither the JSON nor the HTML simple API")
            return Root(kind, response.headers.get("ETag", ""), serial, response)

        return self._call("/simple/", once)

    def changelog_since(self, serial):
        """The XML-RPC changelog rows after SERIAL: [(name, version, time, action, serial)].
        UpstreamError at once (no retries) when XML-RPC is refused: the caller falls back."""
        url = f"{self.base}/pypi"
        body = xmlrpc.client.dumps((serial,), "changelog_since_serial", allow_none=True)

        def once():
            response = self._send("POST", url, body=body.encode(),
                                  headers={"Content-Type": "text/xml"})
            if response.status_code != 200:
                raise UpstreamError(
                    f"XML-RPC at {url} answered HTTP {response.status_code} "
                    f"{response.reason or ''}".rstrip()
                )
            try:
                (rows,), _ = xmlrpc.client.loads(response.content)
            except xmlrpc.client.Fault as fault:
                raise UpstreamError(
                    f"XML-RPC at {url} answered fault: {fault.faultString}") from None
            except Exception as exc:
                raise _Retry(f"malformed XML-RPC answer: {exc.__class__.__name__}") from None
            return [(r[0], r[1], int(r[2]), r[3], int(r[4])) for r in rows]

        return self._call("changelog", once)
