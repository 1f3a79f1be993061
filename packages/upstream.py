"""Talking to the upstream index (PyPI): the JSON simple root, per-project JSON and the
XML-RPC changelog, with timeouts, retries and backoff. Django-free apart from settings.

Every fault is retried with exponential backoff (PIWHEELS_SYNC_BACKOFF seconds, doubled
each time, PIWHEELS_SYNC_RETRIES times); a 429's Retry-After is honoured. What still fails
raises UpstreamError (NotFound for a 404) whose message says what and why.
"""
import json
import logging
import threading
import time
import xmlrpc.client
from dataclasses import dataclass, field
from datetime import datetime

import requests
from django.conf import settings

log = logging.getLogger(__name__)

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
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


@dataclass
class ProjectState:
    """What upstream says about one project right now."""

    name: str
    summary: str = ""
    last_serial: int = 0
    releases: dict = field(default_factory=dict)  # version string -> ReleaseState


def _clean(text, limit=None):
    text = (text or "").replace("\x00", "")
    return text[:limit] if limit else text


def _parse_time(text):
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


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
        release = ReleaseState(version=version)
        times = [t for t in (_parse_time(f.get("upload_time_iso_8601")) for f in files) if t]
        release.released = min(times) if times else None
        release.has_sdist = any(f.get("packagetype") == "sdist" for f in files)
        release.yanked = bool(files) and all(f.get("yanked") for f in files)
        if release.yanked:
            release.yanked_reason = _clean(files[0].get("yanked_reason"))
        release.requires_python = _clean(
            next((f["requires_python"] for f in files if f.get("requires_python")), ""), 200
        )
        state.releases[version] = release
    return state


def merge_states(states):
    """One ProjectState from several upstream spellings of one normalised name: the
    display name and summary of the most recently changed, every release (the most
    recently changed spelling wins a version present in both)."""
    states = sorted(states, key=lambda s: s.last_serial)
    merged = ProjectState(name=states[-1].name, summary=states[-1].summary,
                          last_serial=states[-1].last_serial)
    for state in states:
        merged.releases.update(state.releases)
    return merged


class Upstream:
    def __init__(self, base=None):
        self.base = (base or settings.PIWHEELS_PYPI_URL).rstrip("/")
        self.timeout = settings.PIWHEELS_SYNC_TIMEOUT
        self.retries = settings.PIWHEELS_SYNC_RETRIES
        self.backoff = settings.PIWHEELS_SYNC_BACKOFF
        self.max_wait = settings.PIWHEELS_SYNC_MAX_WAIT
        self._local = threading.local()

    @property
    def session(self):
        """One requests.Session per thread (sessions are not thread-safe)."""
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
            self._local.session.headers["User-Agent"] = USER_AGENT
        return self._local.session

    def _call(self, what, attempt_once, retries=None):
        """Run ATTEMPT_ONCE until it returns, retrying _Retry faults with backoff."""
        retries = self.retries if retries is None else retries
        for attempt in range(retries + 1):
            try:
                return attempt_once()
            except _Retry as fault:
                if attempt == retries:
                    raise UpstreamError(f"{fault} (gave up after {attempt + 1} attempts)")
                wait = self.backoff * 2**attempt
                if fault.wait is not None:
                    wait = max(wait, fault.wait)
                wait = min(wait, self.max_wait)
                log.warning("upstream %s: %s; retrying in %.2fs", what, fault, wait)
                time.sleep(wait)

    def _send(self, method, url, **kwargs):
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.Timeout:
            raise _Retry(f"timed out after {self.timeout}s")
        except requests.ConnectionError as exc:
            raise _Retry(f"connection failed: {exc.__class__.__name__}")
        if response.status_code == 429:
            retry_after = response.headers.get("Retry-After", "")
            raise _Retry("rate limited (429)",
                         wait=float(retry_after) if retry_after.isdigit() else None)
        if response.status_code >= 500:
            raise _Retry(f"HTTP {response.status_code}")
        return response

    @staticmethod
    def _json(response):
        try:
            return response.json()
        except ValueError:
            raise _Retry("malformed JSON")

    def project(self, name):
        """ProjectState of one project; NotFound when upstream has no such project (a 404
        is asked again once, in case it was a stale cache)."""
        url = f"{self.base}/pypi/{name}/json"
        not_found = []

        def once():
            response = self._send("GET", url)
            if response.status_code == 404:
                not_found.append(1)
                if len(not_found) > 1:
                    raise NotFound(f"not found upstream (404 from {url})")
                raise _Retry("not found (404)")
            if response.status_code != 200:
                raise UpstreamError(f"HTTP {response.status_code} from {url}")
            try:
                return parse_project(self._json(response))
            except (ValueError, TypeError, AttributeError, KeyError) as exc:
                raise _Retry(f"unexpected JSON: {exc}")

        try:
            return self._call(name, once)
        except UpstreamError as exc:
            if not isinstance(exc, NotFound) and "not found (404)" in str(exc):
                raise NotFound(f"not found upstream (404 from {url})")
            raise

    def listing(self):
        """(serial, [(name, last serial), ...]) of every project on the JSON simple root."""
        url = f"{self.base}/simple/"

        def once():
            response = self._send("GET", url, headers={"Accept": SIMPLE_JSON})
            if response.status_code != 200:
                raise UpstreamError(f"HTTP {response.status_code} from {url}")
            try:
                data = json.loads(response.content)
            except ValueError:
                raise _Retry("malformed JSON")
            del response
            serial = (data.get("meta") or {}).get("_last-serial")
            projects = [(p["name"], int(p.get("_last-serial") or 0))
                        for p in data.get("projects", ())]
            if serial is None:
                serial = max((s for _, s in projects), default=0)
            return int(serial), projects

        return self._call("/simple/", once)

    def changelog_since(self, serial):
        """The XML-RPC changelog rows after SERIAL: [(name, version, time, action, serial)]."""
        url = f"{self.base}/pypi"
        body = xmlrpc.client.dumps((serial,), "changelog_since_serial", allow_none=True)

        def once():
            response = self._send("POST", url, data=body.encode(),
                                  headers={"Content-Type": "text/xml"})
            if response.status_code != 200:
                raise UpstreamError(
                    f"XML-RPC at {url} answered HTTP {response.status_code} "
                    f"{response.reason or ''}".rstrip()
                )
            try:
                (rows,), _ = xmlrpc.client.loads(response.content)
            except xmlrpc.client.Fault as fault:
                raise UpstreamError(f"XML-RPC at {url} answered fault: {fault.faultString}")
            except Exception as exc:
                raise _Retry(f"malformed XML-RPC answer: {exc.__class__.__name__}")
            return [(r[0], r[1], int(r[2]), r[3], int(r[4])) for r in rows]

        return self._call("changelog", once)
