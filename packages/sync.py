"""Keeping the catalogue in step with the upstream index (PyPI).

run_pass() is one sync pass, in two steps:

1. Learn what changed (packages/changes.py). By default ("auto") XML-RPC
   changelog_since_serial where it answers, else the simple root: asked for
   conditionally (If-None-Match), streamed into a temporary table and diffed in SQL
   against each project's stored serial. A JSON root gives every project's _last-serial;
   a PEP 503 HTML root (decided by its Content-Type) gives names only. Either way a new
   name becomes a Project row at once (the whole catalogue of names in one request), and
   a project whose serial moved is marked waiting (serial < upstream_serial).
2. Fetch the details (/pypi/<name>/json) of waiting projects in the background: paced
   (PIWHEELS_SYNC_RATE), most wanted first (Demand), for at most
   PIWHEELS_SYNC_PASS_SECONDS; each batch is committed on its own and handed to ON_BATCH
   (the build queue), so builds are queued as soon as a project's details are in. What is
   left waits for the next pass.

Applying upstream is state-based: a project's JSON replaces what we know of it (new
versions created, changed ones updated, versions gone upstream marked removed), so
applying a batch twice changes nothing and a killed pass resumes where it stopped. A
project upstream seems to have dropped is deleted only when it answers 404 twice, minutes
apart (Missing). A project that keeps failing is logged, left out and remembered in Retry.

A release without an sdist is recorded with has_sdist=False and skip_reason
"no source distribution" (cleared again if an sdist appears later).
"""
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import F, Q
from django.utils import timezone
from packaging.utils import canonicalize_name

from packages.catalogue import (
    NO_SDIST,
    Changes,
    apply_states,
    delete_projects,
    update_rows,
    writing,
)
from packages.changes import record_changelog, record_root
from packages.models import (
    Demand,
    Missing,
    Project,
    Retry,
    Serial,
    SyncStatus,
)
from packages.upstream import NotFound, Upstream, UpstreamError

__all__ = ["NO_SDIST", "PASS_LOCK", "SyncResult", "run_pass",
           "fetch_details", "add_package", "want"]

log = logging.getLogger(__name__)

PASS_LOCK = 7_370_001  # PostgreSQL advisory lock: one sync pass at a time
METHODS = ("auto", "simple", "xmlrpc")
# After XML-RPC fails, "auto" reads the root only (an idle pass: one conditional request)
# and asks XML-RPC again this many seconds later.
XMLRPC_RETRY = 3600
# A PEP 503 root gives names only, and often no ETag to ask for it conditionally: without
# one it is read again at most this often (PyPI's is 40 MB), not at every pass. New names
# wait that long; the passes between go on fetching details.
HTML_ROOT_EVERY = 900


@dataclass
class SyncResult(Changes):
    """What one pass did: the catalogue.Changes of all its batches, added up, and what
    only a pass knows."""

    status: str = "ok"  # "ok", "busy" (another pass is running) or "failed"
    message: str = ""
    first_pass: bool = False
    serial: int = 0  # the upstream serial the catalogue has reached
    method: str = ""  # SyncStatus.Method
    method_reason: str = ""
    root_not_modified: bool = False
    events: int = 0  # XML-RPC changelog rows read
    listed: int = 0  # projects on the root
    names_added: int = 0  # new names learnt (root or changelog)
    projects_moved: int = 0  # known projects whose serial moved
    projects_fetched: int = 0
    # waiting projects whose details this pass wrote: what /stats/'s time left counts
    projects_completed: int = 0
    summaries_read: int = 0  # read_summaries()
    write_seconds: float = 0.0  # time spent in the database transactions
    progress: str = ""  # SyncStatus.progress_line() after the pass

    def add(self, changes):
        """Count one batch's catalogue.Changes: its counts added, its lists extended."""
        for name in (f.name for f in fields(Changes)):
            mine, theirs = getattr(self, name), getattr(changes, name)
            if isinstance(mine, list):
                mine.extend(theirs)
            else:
                setattr(self, name, mine + theirs)
        for change in changes.status_changes:
            log.info("sync %s (PEP 792 status upstream)", change)

    def summary(self):
        if self.status != "ok":
            return f"sync {self.status}: {self.message}"
        kind = "first pass" if self.first_pass else (
            f"{self.events} events" if self.method == SyncStatus.Method.XMLRPC
            else "root unchanged" if self.root_not_modified else f"{self.listed} on the root")
        return (f"sync at serial {self.serial} via {self.method} ({kind}): "
                f"{self.names_added} new names, {self.projects_moved} moved; fetched "
                f"{self.projects_fetched} projects, {self.projects_created} new, "
                f"{self.projects_updated} changed, "
                f"{len(self.removed_project_names)} removed; {self.versions_created} new "
                f"versions ({self.versions_without_sdist} without sdist), "
                f"{self.versions_updated} changed; {self.summaries_read} summaries read; "
                f"{self.status_line()}"
                f"{len(self.errors)} errors; {self.progress}")

    def status_line(self):
        """"N status changes (name: status, ...); " or nothing."""
        if not self.status_changes:
            return ""
        return (f"{len(self.status_changes)} status changes "
                f"({', '.join(self.status_changes[:5])}"
                f"{', ...' if len(self.status_changes) > 5 else ''}); ")


@contextmanager
def _pass_lock():
    """True when this process may run a pass (session advisory lock on PostgreSQL, a
    lease on the SyncStatus row elsewhere)."""
    if connection.vendor != "postgresql":
        now = timezone.now()
        SyncStatus.objects.get_or_create(id=1)
        until = now + timedelta(seconds=settings.PIWHEELS_SYNC_PASS_SECONDS + 3600)
        got = bool(SyncStatus.objects.filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now),
                                             id=1).update(lease_until=until))
        try:
            yield got
        finally:
            if got:
                SyncStatus.objects.filter(id=1).update(lease_until=None)
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [PASS_LOCK])
        got = cursor.fetchone()[0]
    try:
        yield got
    finally:
        if got:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [PASS_LOCK])


# -- step 1: what changed ----------------------------------------------------------------

def _use_changelog(upstream, result, since, now):
    """Read XML-RPC changelog rows after SINCE, committed chunk by chunk."""
    rows = upstream.changelog_since(since)  # fails cleanly, before any change
    batch = settings.PIWHEELS_SYNC_EVENTS_BATCH
    for _round in range(10000):  # bounded: PyPI answers at most 50,000 rows a call
        rows = sorted((r for r in rows if r[4] > since), key=lambda r: r[4])
        if not rows:
            break
        for start in range(0, len(rows), batch):
            chunk = rows[start:start + batch]
            announced = record_changelog(chunk, now)
            result.events += announced.events
            result.names_added += announced.new
            result.projects_moved += announced.moved
            since = chunk[-1][4]
        rows = upstream.changelog_since(since)
    result.serial = since


def _use_root(upstream, status, result, now):
    """Read the simple root, conditionally; diff it against the catalogue. A root that was
    PEP 503 HTML without an ETag is read again only HTML_ROOT_EVERY seconds after the last
    time."""
    again = status.root_checked and status.root_checked + timedelta(seconds=HTML_ROOT_EVERY)
    if (status.method == SyncStatus.Method.SIMPLE_HTML and not status.root_etag
            and again and now < again):
        result.method = SyncStatus.Method.SIMPLE_HTML
        result.method_reason += (f"; the root is PEP 503 HTML, names only: read at "
                                 f"{status.root_checked:%H:%M} UTC, again from {again:%H:%M} UTC")
        return
    root = upstream.root(status.root_etag)
    status.root_checked = now
    if root.kind == "not-modified":
        result.root_not_modified = True
        result.method = status.method or SyncStatus.Method.SIMPLE_JSON
        if status.method == SyncStatus.Method.SIMPLE_HTML:
            result.method_reason += "; the root is PEP 503 HTML: names only"
        return
    announced = record_root(root, now)
    status.root_etag = root.etag
    status.root_serial = root.serial or 0
    result.method = (SyncStatus.Method.SIMPLE_JSON if root.kind == "json"
                     else SyncStatus.Method.SIMPLE_HTML)
    if root.kind == "html":
        result.method_reason += ("; the root is PEP 503 HTML (by its Content-Type): names "
                                 "only, details fetched per project")
    result.listed, result.names_added = announced.listed, announced.new
    result.projects_moved = announced.moved


def _learn_changes(upstream, status, since, result, now):
    """Step 1 by PIWHEELS_SYNC_METHOD: XML-RPC where it may and does answer, else the root."""
    method = settings.PIWHEELS_SYNC_METHOD
    if method not in METHODS:
        raise UpstreamError(f"PIWHEELS_SYNC_METHOD is {method!r}, not one of "
                            f"{', '.join(METHODS)}")
    retry_at = status.xmlrpc_failed and status.xmlrpc_failed + timedelta(seconds=XMLRPC_RETRY)
    if result.first_pass:
        result.method_reason = "first pass: every name from the root"
    elif not since:  # names only so far: nothing to ask XML-RPC from
        result.method_reason = "no upstream serial yet (the root gave names only)"
    elif method == "simple":
        result.method_reason = "PIWHEELS_SYNC_METHOD=simple"
    elif method == "auto" and retry_at and now < retry_at:
        result.method_reason = (f"XML-RPC failed at {status.xmlrpc_failed:%H:%M} UTC, so the "
                                f"simple root; XML-RPC asked again at {retry_at:%H:%M} UTC")
    else:
        try:
            _use_changelog(upstream, result, since, now)
            result.method = SyncStatus.Method.XMLRPC
            result.method_reason = (f"PIWHEELS_SYNC_METHOD={method}: changelog_since_serial "
                                    "answered")
            status.xmlrpc_failed = None
            return
        except UpstreamError as exc:
            if method == "xmlrpc":
                raise
            status.xmlrpc_failed = now
            result.method_reason = f"XML-RPC failed ({exc}), so the simple root"
            log.warning("sync: %s", result.method_reason)
    _use_root(upstream, status, result, now)
    result.serial = Serial.objects.filter(name="pypi").values_list("value", flat=True).first() or 0


# -- step 2: details, in the background --------------------------------------------------

def _fetch(upstream, name):
    """ProjectState of NAME, or None when upstream answers 404."""
    try:
        return upstream.project(name)
    except NotFound:
        return None


def _remember_failures(failures, now):
    for norm, (name, why) in failures.items():
        retry, created = Retry.objects.get_or_create(
            normalized_name=norm, defaults={"name": name, "reason": why, "since": now}
        )
        if not created:
            Retry.objects.filter(id=retry.id).update(attempts=F("attempts") + 1, reason=why)


def _write_details(fetched, result, now, on_batch, waiting=True):
    """Commit one batch of fetched details: [(project row, future)], of projects that
    were WAITING for them (or asked again: an HTML root's round). Returns the normalised
    names that failed."""
    states, failures, gone = {}, {}, {}
    for project, future in fetched:
        try:
            state = future.result()
        except UpstreamError as exc:
            failures[project.normalized_name] = (project.name, str(exc))
            result.errors.append(f"{project.name}: {exc}")
            log.warning("sync %s: %s; left for a later pass", project.name, exc)
            continue
        result.projects_fetched += 1
        if state is None:  # announced, then 404: gone only once it answers 404 again
            gone[project.normalized_name] = project.name
            continue
        # never asked again for what was announced, even from a lagging cache
        state.last_serial = max(state.last_serial, project.upstream_serial, 1)
        states[project.normalized_name] = state
    started = time.monotonic()
    with writing():
        changes = apply_states(states, now, backlog_before=None if result.first_pass else now)
        Retry.objects.filter(normalized_name__in=states).delete()
        _remember_failures(failures, now)
        Missing.objects.bulk_create(
            [Missing(normalized_name=n, name=name, noticed=now, first_404=now)
             for n, name in gone.items()], ignore_conflicts=True)
    result.write_seconds += time.monotonic() - started
    if waiting:
        result.projects_completed += len(states)
    result.add(changes)
    if on_batch:
        on_batch(changes, result.first_pass)
    return set(failures)


def _check_missing(pool, upstream, result, now, on_batch):
    """Ask again for the projects upstream seems to have dropped: back (200: kept,
    updated), first 404 (remembered), or a second 404 at least PIWHEELS_SYNC_GONE_AFTER
    seconds after the first (deleted)."""
    ripe = now - timedelta(seconds=settings.PIWHEELS_SYNC_GONE_AFTER)
    due = list(Missing.objects.filter(Q(first_404__isnull=True) | Q(first_404__lte=ripe))
               .order_by("id")[:10 * settings.PIWHEELS_SYNC_BATCH])
    answers = [(m, pool.submit(_fetch, upstream, m.name)) for m in due]
    back, first, gone = {}, [], []
    for missing, future in answers:
        try:
            state = future.result()
        except UpstreamError as exc:
            log.warning("sync %s (missing from upstream?): %s", missing.name, exc)
            continue
        if state is not None:
            back[missing.normalized_name] = state
        elif missing.first_404 is None:
            first.append(missing.id)
        else:
            gone.append(missing.normalized_name)
    with writing():
        changes = apply_states(back, now)
        changes.removed_project_names = delete_projects(gone, now)
        Missing.objects.filter(Q(id__in=first)).update(first_404=now)
        Missing.objects.filter(normalized_name__in=[*back, *gone]).delete()
    result.add(changes)
    for name in changes.removed_project_names:
        log.info("sync %s: gone upstream (404 twice), removed", name)
    if on_batch and (back or gone):
        on_batch(changes, False)


def _batch_size():
    """Small enough that a batch commits within seconds at the paced rate."""
    rate = settings.PIWHEELS_SYNC_RATE
    size = settings.PIWHEELS_SYNC_BATCH
    return max(settings.PIWHEELS_SYNC_WORKERS, min(size, int(rate * 5))) if rate else size


def fetch_details(upstream, result, now, deadline, on_batch=None):
    """Step 2: fetch waiting projects' details, most wanted first, until none waits or
    the monotonic DEADLINE passes; each batch is committed and handed to ON_BATCH."""
    failed, in_flight = set(), []
    with ThreadPoolExecutor(settings.PIWHEELS_SYNC_WORKERS) as pool:
        _check_missing(pool, upstream, result, now, on_batch)
        while True:
            batch = []
            if time.monotonic() < deadline:
                waiting = (Project.objects.filter(serial__lt=F("upstream_serial"))
                           .exclude(normalized_name__in=failed)
                           .exclude(id__in=[p.id for p, _ in in_flight])
                           .order_by("-demand", "-downloads", "id")
                           .only("id", "name", "normalized_name", "upstream_serial"))
                batch = list(waiting[:_batch_size()])
            # the next batch is fetched while the previous one is written
            fetching = [(p, pool.submit(_fetch, upstream, p.name)) for p in batch]
            if in_flight:
                failed |= _write_details(in_flight, result, now, on_batch)
            if not fetching:
                break
            in_flight = fetching
        read_summaries(pool, upstream, result, deadline)


def read_summaries(pool, upstream, result, deadline):
    """The summaries the catalogue lacks (details read from simple pages alone: a project
    new to the farm, a new release), from PyPI's JSON API, most wanted first, until none
    is due or the monotonic DEADLINE passes. After the releases, so that builds are
    queued first; one request each."""
    failed = set()
    while time.monotonic() < deadline:
        due = list(Project.objects.filter(summary_read=False).exclude(id__in=failed)
                   .order_by("-demand", "-downloads", "id").only("id", "name")
                   [:_batch_size()])
        if not due:
            return
        asked = [(p, pool.submit(upstream.summary, p.name)) for p in due]
        read = []
        for project, future in asked:
            try:
                project.summary, project.summary_read = future.result(), True
            except UpstreamError as exc:
                failed.add(project.id)
                log.warning("sync %s: summary: %s; left for a later pass", project.name, exc)
                continue
            read.append(project)
        with writing():
            update_rows(Project, read, ["summary", "summary_read"])
        result.summaries_read += len(read)


def revisit(upstream, status, result, now, deadline, on_batch=None):
    """Nothing says which known project changed when upstream gives names only (a PEP 503
    root, XML-RPC refused): the time left in a pass goes to asking known projects again,
    round the catalogue in id order from where the last pass stopped (at the paced rate)."""
    with ThreadPoolExecutor(settings.PIWHEELS_SYNC_WORKERS) as pool:
        while time.monotonic() < deadline:
            batch = list(Project.objects.filter(id__gt=status.revisit_id).order_by("id")
                         .only("id", "name", "normalized_name", "upstream_serial")
                         [:_batch_size()])
            if not batch:
                status.revisit_id = 0  # round again from the start next pass
                break
            _write_details([(p, pool.submit(_fetch, upstream, p.name)) for p in batch],
                           result, now, on_batch, waiting=False)
            status.revisit_id = batch[-1].id


def _record_status(status, result, now, pass_seconds):
    """The figures /stats/ and sync_pypi show: method, why, progress.

    The rate is what the sync really completes: waiting projects whose details were
    written, per second of the whole cycle of passes, not per second of fetching: a pass
    also reads the root, spends its paced requests on retries, 404s and summaries, and
    starts only every PIWHEELS_SYNC_INTERVAL seconds (or when the one before ends). The
    cycle is the time since the last pass ended, when that was recent, else the longer of
    this pass and the interval."""
    ended = now + timedelta(seconds=pass_seconds)
    status.known = Project.objects.count()
    status.waiting = Project.objects.filter(serial__lt=F("upstream_serial")).count()
    status.with_details = status.known - status.waiting
    interval = settings.PIWHEELS_SYNC_INTERVAL
    interval = max(1, round(interval / 60)) * 60 if interval > 0 else 0  # whole minutes
    cycle = max(pass_seconds, interval)
    since_last = (ended - status.updated).total_seconds() if status.updated else None
    if since_last is not None and cycle <= since_last <= 3 * cycle:
        cycle = since_last
    status.rate = result.projects_completed / cycle if cycle > 0 else 0.0
    status.method, status.reason = result.method, result.method_reason.lstrip("; ")
    status.updated = ended
    status.save(update_fields=[f.name for f in SyncStatus._meta.concrete_fields
                               if f.name not in ("id", "lease_until")])
    result.progress = status.progress_line()


def run_pass(now=None, on_batch=None):
    """One sync pass; returns a SyncResult (status "busy" if another pass holds the lock,
    "failed" with the reason if upstream could not be read). ON_BATCH(changes,
    first_pass) runs after each committed batch (the build queue)."""
    now = now or timezone.now()
    result = SyncResult()
    pass_started = time.monotonic()
    deadline = pass_started + settings.PIWHEELS_SYNC_PASS_SECONDS
    with _pass_lock() as got:
        if not got:
            result.status, result.message = "busy", "another pass is running"
            log.info("sync: another pass is running")
            return result
        status = SyncStatus.objects.get_or_create(id=1)[0]
        since = Serial.objects.filter(name="pypi").values_list("value", flat=True).first() or 0
        # the first pass is the one that first reads the root: after a PEP 503 root, which
        # has no serials, later passes are not (their new releases jump the backlog)
        result.first_pass, result.serial = not since and not status.root_checked, since
        upstream = Upstream()
        try:
            _learn_changes(upstream, status, since, result, now)
        except UpstreamError as exc:
            result.status = "failed"
            result.message = f"upstream {upstream.base}: {exc}"
            log.error("sync failed: %s", result.message)
            return result
        log.info("sync: %s (%s)", result.method, result.method_reason.lstrip("; "))
        fetch_details(upstream, result, now, deadline, on_batch)
        if result.method == SyncStatus.Method.SIMPLE_HTML:
            revisit(upstream, status, result, now, deadline, on_batch)
        _record_status(status, result, now, time.monotonic() - pass_started)
    log.info("%s", result.summary())
    return result


def want(name, demand=Demand.ASKED_BY_PIP):
    """Someone wants NAME's details (pip got a 404 for it, an operator named it): it moves
    up the queue of waiting projects. One UPDATE, nothing when it is not waiting."""
    return (Project.objects.named(name).filter(serial__lt=F("upstream_serial"),
                                               demand__lt=demand).update(demand=demand))


# -- operator actions -------------------------------------------------------------------

def refetch(names, now=None):
    """Read these projects from upstream again and apply what it says about their
    releases (everything the sync stores, upstream's wheel filenames among it), for
    `apply_index_rules --refetch`. A project upstream answers 404 for is left as it is:
    the sync decides about it. Returns a SyncResult (its errors name the projects that
    could not be read)."""
    now = now or timezone.now()
    result = SyncResult()
    upstream = Upstream()
    names = list(names)
    batch = settings.PIWHEELS_SYNC_BATCH
    with ThreadPoolExecutor(settings.PIWHEELS_SYNC_WORKERS) as pool:
        for start in range(0, len(names), batch):
            fetched = [(n, pool.submit(_fetch, upstream, n)) for n in names[start:start + batch]]
            states = {}
            for name, future in fetched:
                try:
                    state = future.result()
                except UpstreamError as exc:
                    result.errors.append(f"{name}: {exc}")
                    continue
                result.projects_fetched += 1
                if state is not None:
                    states[canonicalize_name(state.name)] = state
            with writing():
                result.add(apply_states(states, now))
    return result


def add_package(name, versions=(), now=None):
    """Add one project (or only VERSIONS of it) from upstream now; returns a SyncResult.
    LookupError (one line) when upstream has no such project: a 404 is an answer."""
    now = now or timezone.now()
    upstream = Upstream(rate=0)  # one operator request, not the background's pace
    try:
        state = upstream.project(name, summary=True)  # the page the farm shows, at once
    except NotFound:
        raise LookupError(f"no project named {name!r} upstream") from None
    except UpstreamError as exc:
        want(name, Demand.REQUESTED)  # first in line for the background, if it waits
        raise UpstreamError(f"{name}: {exc}") from None
    missing = [v for v in versions if v not in state.releases]
    if missing:
        raise ValueError(f"{state.name} has no version {missing[0]!r} upstream")
    result = SyncResult()
    norm = canonicalize_name(state.name)
    with writing():
        result.add(apply_states({norm: state}, now,
                                only_versions=set(versions) if versions else None))
        Retry.objects.filter(normalized_name=norm).delete()
        Missing.objects.filter(normalized_name=norm).delete()
    result.projects_fetched = 1
    return result
