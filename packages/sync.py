"""Keeping the catalogue in step with the upstream index (PyPI).

run_pass() is one sync pass. The first (no "pypi" Serial yet) imports the whole catalogue:
the JSON simple root lists every project with its last serial, and each project's
/pypi/<name>/json is fetched by a small thread pool while the previous batch is written.
Later passes read XML-RPC changelog_since_serial and refetch each touched project once
per batch of events.

Applying upstream is state-based: a project's JSON replaces what we know of it (new
versions created, changed ones updated, versions gone upstream marked removed, a project
that 404s deleted), so applying a batch twice changes nothing. Each batch is committed in
one transaction with the serial it reached (Project.serial on the first pass, the "pypi"
Serial on later ones), so a killed pass resumes where it stopped: nothing skipped, nothing
doubled. A project that keeps failing is logged, left out and remembered in Retry; every
later pass asks for it again.

A release without an sdist is recorded with has_sdist=False and skip_reason
"no source distribution" (cleared again if an sdist appears later).
"""
import logging
import time
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from packaging.utils import canonicalize_name

from packages.models import Project, Retry, Serial, Version, touch_index_root
from packages.upstream import NotFound, Upstream, UpstreamError, merge_states

log = logging.getLogger(__name__)

PASS_LOCK = 7_370_001  # PostgreSQL advisory lock: one sync pass at a time
WRITE_LOCK = 7_370_002  # taken by each catalogue-writing transaction (sync batch, commands)
NO_SDIST = "no source distribution"
REMOVED_BY_OPERATOR = "removed by operator"
# Changelog actions that change what we store; the others (owners, docs) only move the serial.
RELEVANT_ACTIONS = ("create", "new release", "yank release", "unyank release",
                    "remove release", "remove project")
UPSTREAM_FIELDS = ["released", "yanked", "yanked_reason", "requires_python", "has_sdist"]
# A change to one of these changes the project's index page.
INDEX_FIELDS = {"yanked", "yanked_reason", "requires_python", "removed"}


@dataclass
class SyncResult:
    status: str = "ok"  # "ok", "busy" (another pass is running) or "failed"
    message: str = ""
    first_pass: bool = False
    serial: int = 0  # the upstream serial the catalogue has reached
    events: int = 0
    projects_fetched: int = 0
    projects_skipped: int = 0  # first pass: already imported at their serial
    projects_created: int = 0
    projects_updated: int = 0
    versions_created: int = 0
    versions_updated: int = 0
    versions_without_sdist: int = 0
    changed_version_ids: list = field(default_factory=list)
    new_version_ids: list = field(default_factory=list)
    removed_project_names: list = field(default_factory=list)
    errors: list = field(default_factory=list)  # "project: why"
    write_seconds: float = 0.0  # time spent in the database transactions

    def summary(self):
        if self.status != "ok":
            return f"sync {self.status}: {self.message}"
        kind = "first pass" if self.first_pass else f"{self.events} events"
        text = (f"sync at serial {self.serial} ({kind}): fetched {self.projects_fetched} "
                f"projects, {self.projects_created} new, {self.projects_updated} changed, "
                f"{len(self.removed_project_names)} removed; {self.versions_created} new "
                f"versions ({self.versions_without_sdist} without sdist), "
                f"{self.versions_updated} changed; {len(self.errors)} errors")
        if self.projects_skipped:
            text += f"; {self.projects_skipped} already imported"
        return text


@contextmanager
def _pass_lock():
    """True when this process may run a pass (session advisory lock on PostgreSQL)."""
    if connection.vendor != "postgresql":
        yield True
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


@contextmanager
def _writing():
    """A transaction that no other catalogue writer interleaves with."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [WRITE_LOCK])
        yield


def _set_serial(value, now):
    Serial.objects.update_or_create(name="pypi", defaults={"value": value, "updated": now})


def _insert(model, objs, fields):
    """bulk_create without the ORM's per-value work: on PostgreSQL one multi-row INSERT
    ... RETURNING id per page (Django's bulk_create spends most of a big first pass
    preparing values); elsewhere bulk_create."""
    if connection.vendor != "postgresql" or not objs:
        model.objects.bulk_create(objs, batch_size=1000)
        return
    from psycopg2.extras import execute_values

    columns = [model._meta.get_field(f).column for f in fields]
    sql = (f'INSERT INTO {model._meta.db_table} ({", ".join(columns)}) VALUES %s '
           "RETURNING id")
    with connection.cursor() as cursor:
        for start in range(0, len(objs), 2000):
            page = objs[start:start + 2000]
            rows = [tuple(getattr(o, f) for f in fields) for o in page]
            ids = execute_values(cursor.cursor, sql, rows, page_size=len(rows), fetch=True)
            for obj, (pk,) in zip(page, ids):
                obj.pk = pk


def _apply(states, result, now, only_versions=None):
    """Make the catalogue say what upstream says about these projects.

    STATES maps normalised name -> ProjectState, or None for a project upstream no longer
    has. With ONLY_VERSIONS (add_package of some versions) only those versions are
    written, nothing is marked removed and the project's serial is left alone."""
    existing = {p.normalized_name: p for p in Project.objects.filter(normalized_name__in=states)}
    gone = {n: existing[n] for n, s in states.items() if s is None and n in existing}
    if gone:
        Project.objects.filter(id__in=[p.id for p in gone.values()]).delete()
        result.removed_project_names.extend(gone)
        touch_index_root(now)
    live = {n: s for n, s in states.items() if s is not None}
    new_projects, changed_projects = [], []
    for norm, state in live.items():
        last_changed = max((r.released for r in state.releases.values() if r.released),
                           default=None)
        serial = state.last_serial if only_versions is None else 0
        project = existing.get(norm)
        if project is None:
            new_projects.append(Project(name=state.name[:200], normalized_name=norm,
                                        summary=state.summary, serial=serial,
                                        last_changed=last_changed, added=now))
            continue
        if only_versions is not None:
            serial = project.serial
        new = (state.name[:200], state.summary, serial, last_changed or project.last_changed)
        if new != (project.name, project.summary, project.serial, project.last_changed):
            project.name, project.summary, project.serial, project.last_changed = new
            changed_projects.append(project)
    _insert(Project, new_projects, ["name", "normalized_name", "summary", "added",
                                    "last_changed", "serial", "skip_reason", "index_serial"])
    Project.objects.bulk_update(changed_projects, ["name", "summary", "serial", "last_changed"],
                                batch_size=1000)
    result.projects_created += len(new_projects)
    result.projects_updated += len(changed_projects)
    projects = {**existing, **{p.normalized_name: p for p in new_projects}}

    have = defaultdict(dict)
    for version in Version.objects.filter(project_id__in=[projects[n].id for n in live]).only(
        "id", "project_id", "version", "skip_reason", "removed", *UPSTREAM_FIELDS
    ):
        have[version.project_id][version.version] = version
    creates, updates, index_changed = [], [], set()
    root_changed = False
    for norm, state in live.items():
        project = projects[norm]
        known = have.pop(project.id, {})
        for release in state.releases.values():
            if only_versions is not None and release.version not in only_versions:
                known.pop(release.version, None)
                continue
            if not release.version or len(release.version) > 200:
                result.errors.append(f"{state.name}: version {release.version[:50]!r}... "
                                     "is empty or longer than 200 characters, left out")
                continue
            wanted = {f: getattr(release, f) for f in UPSTREAM_FIELDS}
            version = known.pop(release.version, None)
            if version is None:
                version = Version(project_id=project.id, version=release.version, **wanted,
                                  skip_reason="" if release.has_sdist else NO_SDIST)
                creates.append(version)
                result.versions_without_sdist += not release.has_sdist
                continue
            wanted["removed"] = version.skip_reason == REMOVED_BY_OPERATOR
            if not release.has_sdist and not version.skip_reason:
                wanted["skip_reason"] = NO_SDIST
            elif release.has_sdist and version.skip_reason == NO_SDIST:
                wanted["skip_reason"] = ""
            changed = {f for f, value in wanted.items() if getattr(version, f) != value}
            if changed:
                for f in changed:
                    setattr(version, f, wanted[f])
                updates.append(version)
                if changed & INDEX_FIELDS:
                    index_changed.add(project.id)
                # a version's files coming or going may add or drop the project on the root
                root_changed |= "removed" in changed
        if only_versions is None:
            for version in known.values():  # no longer upstream
                if not version.removed:
                    version.removed = True
                    updates.append(version)
                    index_changed.add(project.id)
                    root_changed = True
    _insert(Version, creates, ["project_id", "version", *UPSTREAM_FIELDS, "skip_reason",
                               "removed"])
    Version.objects.bulk_update(updates, [*UPSTREAM_FIELDS, "skip_reason", "removed"],
                                batch_size=2000)
    if index_changed:
        Project.objects.filter(id__in=index_changed).touch_index(root=root_changed, now=now)
    result.versions_created += len(creates)
    result.versions_updated += len(updates)
    result.new_version_ids.extend(v.id for v in creates)
    result.changed_version_ids.extend(v.id for v in creates)
    result.changed_version_ids.extend(v.id for v in updates)


def _fetch_group(upstream, names):
    """The merged state of the upstream spellings NAMES of one project; None when none of
    them exists upstream. UpstreamError when one of them cannot be fetched."""
    states = []
    for name in names:
        try:
            states.append(upstream.project(name))
        except NotFound:
            pass
    return merge_states(states) if states else None


def _write_batch(futures, result, now, serial=None):
    """Wait for a batch of fetches and commit it (with SERIAL when given)."""
    states, failures = {}, {}
    for norm, name, future in futures:
        try:
            states[norm] = future.result()
            result.projects_fetched += 1
            if states[norm] is None:
                log.info("sync %s: not found upstream, removed or left out", name)
        except UpstreamError as exc:
            failures[norm] = (name, str(exc))
            result.errors.append(f"{name}: {exc}")
            log.warning("sync %s: %s; left for a later pass", name, exc)
    started = time.monotonic()
    with _writing():
        _apply(states, result, now)
        Retry.objects.filter(normalized_name__in=states).delete()
        for norm, (name, why) in failures.items():
            retry, created = Retry.objects.get_or_create(
                normalized_name=norm, defaults={"name": name, "reason": why, "since": now}
            )
            if not created:
                Retry.objects.filter(id=retry.id).update(attempts=F("attempts") + 1, reason=why)
        if serial is not None:
            _set_serial(serial, now)
            result.serial = serial
    result.write_seconds += time.monotonic() - started


def _done(value):
    future = Future()
    future.set_result(value)
    return future


def _fetch_all(pool, upstream, groups):
    """Submit fetches for [(norm, [names])] and return [(norm, display name, future)]."""
    return [(norm, names[-1], pool.submit(_fetch_group, upstream, names))
            for norm, names in groups]


def _first_pass(upstream, result, now):
    serial, listing = upstream.listing()
    by_norm = defaultdict(list)  # normalised name -> [(serial, name)]
    for name, last_serial in listing:
        by_norm[canonicalize_name(name)].append((last_serial, name))
    del listing
    groups = sorted(by_norm.items())
    del by_norm
    batch = settings.PIWHEELS_SYNC_BATCH
    with ThreadPoolExecutor(settings.PIWHEELS_SYNC_WORKERS) as pool:
        previous = None
        for start in range(0, len(groups), batch):
            chunk = groups[start:start + batch]
            done = dict(Project.objects.filter(normalized_name__in=[n for n, _ in chunk])
                        .values_list("normalized_name", "serial"))
            need = [(norm, [name for _, name in sorted(spellings)]) for norm, spellings in chunk
                    if done.get(norm, -1) < max(s for s, _ in spellings)]
            result.projects_skipped += len(chunk) - len(need)
            futures = _fetch_all(pool, upstream, need)
            if previous:
                _write_batch(previous, result, now)
            previous = futures
        if previous:
            _write_batch(previous, result, now)
    listed = {norm for norm, _ in groups}
    del groups
    with _writing():
        # A resumed first pass: projects imported earlier that upstream has dropped since.
        stale = [n for n in Project.objects.filter(added__lt=now)
                 .values_list("normalized_name", flat=True).iterator(chunk_size=10000)
                 if n not in listed]
        _apply(dict.fromkeys(stale), result, now)
        _set_serial(serial, now)
    result.serial = serial


def _is_relevant(action):
    return (action in RELEVANT_ACTIONS or action.startswith("remove file ")
            or (action.startswith("add ") and " file " in action))


def _changelog_pass(upstream, result, since, now):
    rows = upstream.changelog_since(since)  # fails cleanly, before any change, if unreachable
    batch = settings.PIWHEELS_SYNC_EVENTS_BATCH
    with ThreadPoolExecutor(settings.PIWHEELS_SYNC_WORKERS) as pool:
        retries = list(Retry.objects.order_by("since").values_list("normalized_name", "name")[:1000])
        if retries:
            _write_batch(_fetch_all(pool, upstream, [(n, [name]) for n, name in retries]),
                         result, now)
        for _round in range(10000):  # bounded: PyPI answers at most 50,000 rows a call
            rows = sorted((r for r in rows if r[4] > since), key=lambda r: r[4])
            if not rows:
                break
            for start in range(0, len(rows), batch):
                chunk = rows[start:start + batch]
                touched = {}  # normalised name -> (latest spelling, serial, action)
                for name, _version, _when, action, serial in chunk:
                    if name and _is_relevant(action):
                        touched[canonicalize_name(name)] = (name, serial, action)
                result.events += len(chunk)
                done = dict(Project.objects.filter(normalized_name__in=touched)
                            .values_list("normalized_name", "serial"))
                need, gone = [], []
                for norm, (name, serial, action) in touched.items():
                    if done.get(norm, -1) >= serial:
                        continue  # already fetched at (or after) this change
                    if action == "remove project":  # its last word: nothing to fetch
                        gone.append((norm, name, _done(None)))
                    else:
                        need.append((norm, [name]))
                _write_batch(_fetch_all(pool, upstream, need) + gone, result, now,
                             serial=chunk[-1][4])
                since = chunk[-1][4]
            rows = upstream.changelog_since(since)
    result.serial = since


def run_pass(now=None):
    """One sync pass; returns a SyncResult (status "busy" if another pass holds the lock,
    "failed" with the reason if upstream could not be read)."""
    now = now or timezone.now()
    result = SyncResult()
    with _pass_lock() as got:
        if not got:
            result.status, result.message = "busy", "another pass is running"
            log.info("sync: another pass is running")
            return result
        since = Serial.objects.filter(name="pypi").values_list("value", flat=True).first() or 0
        result.first_pass, result.serial = since == 0, since
        upstream = Upstream()
        try:
            if result.first_pass:
                _first_pass(upstream, result, now)
            else:
                _changelog_pass(upstream, result, since, now)
        except UpstreamError as exc:
            result.status = "failed"
            result.message = f"upstream {upstream.base}: {exc}"
            log.error("sync failed: %s", result.message)
            return result
    log.info("%s", result.summary())
    return result


# -- operator actions -------------------------------------------------------------------

def _project(name):
    project = Project.objects.named(name).first()
    if project is None:
        raise LookupError(f"no project named {name!r}")
    return project


def _version(project, version):
    found = project.versions.filter(version=version).first()
    if found is None:
        raise LookupError(f"{project.name} has no version {version!r}")
    return found


def add_package(name, versions=(), now=None):
    """Add one project (or only VERSIONS of it) from upstream now; returns a SyncResult."""
    now = now or timezone.now()
    upstream = Upstream()
    try:
        state = upstream.project(name)
    except NotFound:
        raise LookupError(f"no project named {name!r} upstream")
    except UpstreamError as exc:
        raise UpstreamError(f"{name}: {exc}")
    missing = [v for v in versions if v not in state.releases]
    if missing:
        raise ValueError(f"{state.name} has no version {missing[0]!r} upstream")
    result = SyncResult()
    with _writing():
        _apply({canonicalize_name(state.name): state}, result, now,
               only_versions=set(versions) if versions else None)
        Retry.objects.filter(normalized_name=canonicalize_name(state.name)).delete()
    result.projects_fetched = 1
    return result


def remove_package(name, version=None, now=None):
    """Remove a project (deleted with its versions, builds and files) or one version (its
    builds and files deleted; the version kept, marked removed, so it is not rebuilt).
    Returns the ids of the versions touched."""
    now = now or timezone.now()
    with _writing():
        project = _project(name)
        if version is None:
            ids = list(project.versions.values_list("id", flat=True))
            project.delete()
            touch_index_root(now)
            return ids
        found = _version(project, version)
        found.builds.all().delete()
        Version.objects.filter(id=found.id).update(removed=True, skip_reason=REMOVED_BY_OPERATOR)
        Project.objects.filter(id=project.id).touch_index(root=True, now=now)
        return [found.id]


def skip(name, version=None, reason=""):
    """Stop building a project or one version; returns the ids of the versions touched."""
    reason = (reason or "").strip()
    if not reason:
        raise ValueError("a reason is required")
    with _writing():
        project = _project(name)
        if version is None:
            Project.objects.filter(id=project.id).update(skip_reason=reason[:400])
            return list(project.versions.values_list("id", flat=True))
        found = _version(project, version)
        Version.objects.filter(id=found.id).update(skip_reason=reason[:400])
        return [found.id]


def unskip(name, version=None):
    """Resume building a project or one version; returns the ids of the versions touched.
    (A version without an sdist stays unbuildable: it has nothing to build from.)"""
    with _writing():
        project = _project(name)
        if version is None:
            Project.objects.filter(id=project.id).update(skip_reason="")
            return list(project.versions.values_list("id", flat=True))
        found = _version(project, version)
        Version.objects.filter(id=found.id).update(skip_reason="")
        return [found.id]
