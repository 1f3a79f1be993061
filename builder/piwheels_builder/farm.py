"""The farm's builder API (docs/builder-api.md), with retries.

Every call retries on connection errors, 5xx and 429 with capped, jittered exponential
backoff. A refused token (401/403) is logged in one line and retried at the slow pace, or
raised as ``TokenRefused`` when the caller asked for that (``--once``). Other answers are
raised: ``LeaseLost`` (409, or 404: the job is not ours any more) and ``Rejected`` (any
other 4xx). Only the farm's own answers are definitive (docs/builder-api.md): JSON with a
``detail``. A 404 or 409 that is not (a proxy's page) is a ``Rejected`` that is not
``definitive``, and so is a 400 or 413 page: the caller keeps what it was sending.
"""
import logging
import os
import random
import threading
import time

import requests

log = logging.getLogger(__name__)

USER_AGENT = "piwheels-builder"


class Stopped(Exception):
    """The agent is shutting down (SIGTERM) while waiting on the farm."""


class TokenRefused(Exception):
    """The farm answered 401 or 403."""


class LeaseLost(Exception):
    """The job is no longer this builder's: stop working on it."""


class Rejected(Exception):
    """The farm refused the request (a 4xx other than 401, 403, 404, 409, 429).

    ``definitive`` when it is the farm's own refusal (JSON with a ``detail``) of bad input
    (400) or of a body too large (413): sending the same again will not help. Otherwise
    (another status, or a page that is not the farm's) it may be a proxy or an older farm
    speaking, and the request is worth making again later.
    """

    def __init__(self, detail, status=400, definitive=True):
        super().__init__(detail)
        self.status = status
        self.definitive = definitive


class GaveUp(Exception):
    """A call with a time budget ran out of it."""


def backoff_delays(base=1.0, cap=60.0, rand=random.random):
    """Delays before each retry: base, 2*base, 4*base, ... up to cap, each jittered to 50-100%."""
    delay = base
    while True:
        yield delay * (0.5 + rand() / 2)
        delay = min(cap, delay * 2)


def human_size(size):
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size} bytes"  # not reached


def _detail(response):
    return _answer(response)[0]


def _answer(response):
    """(one line saying why, whether it is the farm's own JSON refusal)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    if detail:
        return str(detail), True
    # Not the farm's API speaking (a proxy, or a --server that is not the farm's base URL):
    # its status, not the first line of an HTML page ("<!DOCTYPE html>").
    status = f"HTTP {response.status_code}" + (f" {response.reason}" if response.reason else "")
    kind = (response.headers.get("Content-Type") or "no Content-Type").split(";")[0].strip()
    what = f"{status} ({kind}, not the farm's API)"
    if response.status_code in (404, 405):
        what += (f" from {response.url}: --server must be the farm's base URL, the one its "
                 "pages are under (e.g. https://farm.example), where /api/v1/ answers")
    return what, False


class Farm:
    """A session with the farm's builder API at ``server`` (e.g. ``http://farm:8000``)."""

    def __init__(
        self, server, token, *, stop=None, retry_base=1.0, retry_cap=60.0,
        refused_pace=60.0, exit_on_refusal=False, connect_timeout=10.0,
    ):
        self.server = server.rstrip("/")
        self.stop = stop or threading.Event()
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.refused_pace = refused_pace
        self.exit_on_refusal = exit_on_refusal
        self.connect_timeout = connect_timeout
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"
        self.session.headers["User-Agent"] = USER_AGENT
        self._local = threading.local()
        self.packages_wanted = False

    def close(self):
        self.session.close()

    # -- the protocol -------------------------------------------------------------------

    def claim(self, identity, wait=30, packages_digest=None):
        """The next job (a dict, see the API doc) or None when there was none within ``wait``.
        ``packages_wanted`` says afterwards whether the farm asked for the package list."""
        body = dict(identity.as_claim(), wait=wait)
        if packages_digest:
            body["packages_digest"] = packages_digest
        response = self.call("POST", "/api/v1/claim/", json=body, read_timeout=wait + 30)
        self.packages_wanted = response.headers.get("X-Packages-Wanted") == "1"
        if response.status_code == 204:
            return None
        return response.json()

    def report_packages(self, os_release, abi, names, budget=60.0):
        """Send the installed Debian packages; the farm answers its digest and how many
        failed builds that waited for one of them it queued again."""
        return self.call("POST", "/api/v1/packages/", budget=budget, json={
            "os_release": os_release, "abi": abi, "packages": names,
        }).json()

    def heartbeat(self, build_id, budget=None):
        self.call("POST", f"/api/v1/builds/{build_id}/heartbeat/", budget=budget,
                  read_timeout=min(60, budget or 60))

    def upload(self, build_id, path, filename, size, sha256):
        """PUT one wheel, streamed from ``path``; safe to repeat (the farm answers 200)."""
        def body():
            return open(path, "rb")

        response = self.call(
            "PUT", f"/api/v1/builds/{build_id}/files/{filename}", body=body,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Length": str(size),
                "X-Sha256": sha256,
            },
            read_timeout=300,
        )
        return response.json()

    def upload_log(self, build_id, path):
        """PUT the gzip log at ``path``; safe to repeat (the last one sent is kept)."""
        response = self.call(
            "PUT", f"/api/v1/builds/{build_id}/log/", body=lambda: open(path, "rb"),
            headers={"Content-Type": "application/gzip",
                     "Content-Length": str(os.path.getsize(path))},
            read_timeout=300,
        )
        return response.json()

    def finish(self, build_id, result):
        return self.call(
            "POST", f"/api/v1/builds/{build_id}/finish/", json=result, read_timeout=300
        ).json()

    def release(self, build_id, budget=15.0):
        """Give the job back; tries for ``budget`` seconds only, even while stopping."""
        self.call(
            "POST", f"/api/v1/builds/{build_id}/release/", budget=budget, interruptible=False
        )

    # -- retries ------------------------------------------------------------------------

    def call(
        self, method, path, *, json=None, body=None, headers=None, read_timeout=60,
        budget=None, interruptible=True,
    ):
        """Send one request until the farm gives an answer retrying cannot change.

        ``body`` is a callable returning a fresh file object for each attempt. ``budget``
        bounds the total time in seconds (then ``GaveUp``); ``interruptible`` makes a stop
        request end the waiting with ``Stopped``.
        """
        url = self.server + path
        deadline = None if budget is None else time.monotonic() + budget
        delays = backoff_delays(self.retry_base, self.retry_cap)
        while True:
            if interruptible and self.stop.is_set():
                raise Stopped()
            data = body() if body else None
            try:
                response = self.session.request(
                    method, url, json=json, data=data, headers=headers,
                    timeout=(self.connect_timeout, read_timeout),
                )
            except requests.RequestException as exc:
                problem = f"farm unreachable ({_brief(exc)})"
                response = None
            finally:
                if data is not None:
                    data.close()
            if response is not None:
                status = response.status_code
                if status < 400:
                    return response
                if status in (401, 403):
                    detail = _detail(response)
                    if self.exit_on_refusal:
                        raise TokenRefused(f"the farm refused the token: {detail}")
                    log.error(
                        "the farm refused the token: %s; retrying in %.0fs",
                        detail, self.refused_pace,
                    )
                    self._wait(self.refused_pace, deadline, interruptible)
                    continue
                detail, farms = _answer(response)
                if status in (404, 409) and farms:
                    raise LeaseLost(detail)
                if status < 500 and status != 429:
                    raise Rejected(detail, status, farms and status in (400, 413))
                problem = f"farm answered {status} ({_detail(response)})"
                retry_after = _retry_after(response)
            else:
                retry_after = None
            delay = next(delays)
            if retry_after is not None:
                delay = min(max(delay, retry_after), self.retry_cap)
            log.warning("%s, retrying in %.0fs", problem, delay)
            self._wait(delay, deadline, interruptible)

    def _wait(self, delay, deadline, interruptible):
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise GaveUp("no answer from the farm in time")
            delay = min(delay, left)
        if interruptible:
            if self.stop.wait(delay):
                raise Stopped()
        else:
            time.sleep(delay)


def _retry_after(response):
    try:
        return float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None


def _brief(exc):
    """One readable line for a requests exception."""
    text = str(exc)
    for marker in ("Connection refused", "timed out", "Connection reset", "Connection aborted",
                   "Name or service not known", "RemoteDisconnected", "Broken pipe"):
        if marker in text:
            return marker.lower()
    return type(exc).__name__
