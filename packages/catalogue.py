"""Writing what upstream says into the catalogue: one batch of project states at a time,
each in a transaction no other catalogue writer interleaves with.

apply_states() is state-based: a project's state replaces what we know of it (new
versions created, changed ones updated, versions gone upstream marked removed), so applying
a batch twice changes nothing.
"""
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.db import connection, transaction

from packages.models import Project, Version
from packages.upstream import summary_release

WRITE_LOCK = 7_370_002  # taken by each catalogue-writing transaction (sync batch, commands)
NO_SDIST = "no source distribution"
REMOVED_BY_OPERATOR = "removed by operator"
UPSTREAM_FIELDS = ["released", "yanked", "yanked_reason", "requires_python", "has_sdist",
                   "upstream_wheels"]
# A change to one of these changes the project's index page (a new upstream wheel may
# take the farm's own files of the release off it: builds/rules.py).
INDEX_FIELDS = {"yanked", "yanked_reason", "requires_python", "removed", "upstream_wheels"}
PROJECT_FIELDS = ["name", "summary", "summary_read", "serial", "upstream_serial",
                  "last_changed", "demand", "upstream_status", "upstream_status_reason"]
# A change of one of these changes the project's index page, and may list or unlist it.
STATUS_FIELDS = ["upstream_status", "upstream_status_reason"]


@contextmanager
def writing():
    """A transaction that no other catalogue writer interleaves with."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [WRITE_LOCK])
        yield


def _getters(model, fields):
    """For each of FIELDS, how to read a model object's value as psycopg2 should send it:
    a JSON field's list or dict wrapped, which psycopg2 would otherwise send as an ARRAY
    or fail on. Decided once per field, not per value."""
    from operator import attrgetter

    from psycopg2.extras import Json

    def wrapped(name):
        return lambda obj: Json(getattr(obj, name))

    return [wrapped(f) if model._meta.get_field(f).get_internal_type() == "JSONField"
            else attrgetter(f) for f in fields]


def insert_rows(model, objs, fields):
    """bulk_create without the ORM's per-value work: on PostgreSQL one multi-row INSERT
    ... RETURNING id per page (Django's bulk_create spends most of a big batch preparing
    values); elsewhere bulk_create."""
    if connection.vendor != "postgresql" or not objs:
        model.objects.bulk_create(objs, batch_size=1000)
        return
    from psycopg2.extras import execute_values

    columns = [model._meta.get_field(f).column for f in fields]
    sql = (f'INSERT INTO {model._meta.db_table} ({", ".join(columns)}) VALUES %s '
           "RETURNING id")
    getters = _getters(model, fields)
    with connection.cursor() as cursor:
        for start in range(0, len(objs), 2000):
            page = objs[start:start + 2000]
            rows = [tuple(get(o) for get in getters) for o in page]
            ids = execute_values(cursor.cursor, sql, rows, page_size=len(rows), fetch=True)
            for obj, (pk,) in zip(page, ids, strict=True):
                obj.pk = pk


def update_rows(model, objs, fields):
    """bulk_update without its CASE WHEN per row (most of a batch's time): on PostgreSQL
    one UPDATE ... FROM (VALUES ...) per page; elsewhere bulk_update."""
    if connection.vendor != "postgresql" or not objs:
        model.objects.bulk_update(objs, fields, batch_size=1000)
        return
    from psycopg2.extras import execute_values

    table, columns = model._meta.db_table, [model._meta.get_field(f) for f in fields]
    sets = ", ".join(f"{c.column} = v.{c.column}::{c.db_type(connection)}" for c in columns)
    names = ", ".join(c.column for c in columns)
    sql = f"UPDATE {table} SET {sets} FROM (VALUES %s) AS v(id, {names}) WHERE {table}.id = v.id"
    getters = _getters(model, fields)
    with connection.cursor() as cursor:
        for start in range(0, len(objs), 2000):
            page = objs[start:start + 2000]
            rows = [(o.pk, *(get(o) for get in getters)) for o in page]
            execute_values(cursor.cursor, sql, rows, page_size=len(rows))


@dataclass
class Changes:
    """What one apply_states() call changed."""

    projects_created: int = 0
    projects_updated: int = 0
    versions_created: int = 0
    versions_updated: int = 0
    versions_without_sdist: int = 0
    new_version_ids: list = field(default_factory=list)
    # new versions of projects that waited for their first details since before the pass
    # (the catch-up backlog, not new releases)
    backlog_version_ids: list = field(default_factory=list)
    changed_version_ids: list = field(default_factory=list)
    removed_project_names: list = field(default_factory=list)
    status_changes: list = field(default_factory=list)  # "name: new PEP 792 status"
    errors: list = field(default_factory=list)


@dataclass
class _VersionWrites:
    creates: list = field(default_factory=list)
    updates: list = field(default_factory=list)
    index_changed: set = field(default_factory=set)  # project ids
    status_changed: set = field(default_factory=set)  # project ids
    root_changed: bool = False


def apply_states(states, now, only_versions=None, backlog_before=None):
    """Make the catalogue say what upstream says about these projects; returns Changes.

    STATES maps normalised name -> ProjectState. With ONLY_VERSIONS (add_package of some
    versions) only those versions are written, nothing is marked removed and the
    project's serial is left alone. New versions of projects without details until now
    that were added before BACKLOG_BEFORE count as backlog. Call it inside writing()."""
    changes = Changes()
    backlog = set(Project.objects.filter(normalized_name__in=states, serial=0,
                                         added__lt=backlog_before)
                  .values_list("id", flat=True)) if backlog_before else set()
    writes = _VersionWrites()
    projects = _write_projects(states, now, only_versions, changes, writes)
    have = _versions_of(projects[n].id for n in states)
    summary_due = []
    for norm, state in states.items():
        project = projects[norm]
        known = have.pop(project.id, {})
        if project.id in writes.status_changed:  # its jobs follow: dropped or queued again
            changes.changed_version_ids.extend(v.id for v in known.values())
        if state.releases_known:  # a quarantine keeps what we hold as it is
            if state.summary is None and _summary_moved(state, known):
                summary_due.append(project.id)
            _plan_versions(state, project, known, only_versions, writes, changes)
    _write_versions(writes, now, changes)
    if summary_due:
        Project.objects.filter(id__in=summary_due).update(summary_read=False)
    changes.backlog_version_ids.extend(v.id for v in writes.creates if v.project_id in backlog)
    return changes


def _summary_moved(state, known):
    """Whether STATE (read without its summary) may bring another summary than the one
    held with KNOWN ({version: Version}): the release PyPI takes it from is another (a
    new one, the latest yanked or removed), or the project has none held yet."""
    held = summary_release(v for v, row in known.items() if not (row.yanked or row.removed))
    return held != summary_release(v for v, r in state.releases.items() if not r.yanked)


def _project_row(norm, state, project, now, only_versions):
    """The new Project for STATE, or PROJECT changed to match it (None: unchanged)."""
    last_changed = max((r.released for r in state.releases.values() if r.released),
                       default=None)
    if project is None:
        serial = state.last_serial if only_versions is None else 0
        return Project(name=state.name[:200], normalized_name=norm, summary=state.summary or "",
                       summary_read=state.summary is not None,
                       serial=serial, upstream_serial=state.last_serial,
                       last_changed=last_changed, added=now, upstream_status=state.status,
                       upstream_status_reason=state.status_reason)
    old = [getattr(project, f) for f in PROJECT_FIELDS]
    if state.releases_known:
        project.name = state.name[:200]
        if state.summary is not None:  # None: read from a page that does not carry it
            project.summary, project.summary_read = state.summary, True
        project.last_changed = last_changed or project.last_changed
    project.upstream_status = state.status
    project.upstream_status_reason = state.status_reason
    if only_versions is None:  # all of it is in: no longer waiting, nor wanted
        project.serial = state.last_serial
        project.upstream_serial = max(project.upstream_serial, state.last_serial)
        project.demand = 0
    return project if old != [getattr(project, f) for f in PROJECT_FIELDS] else None


def _write_projects(states, now, only_versions, changes, writes):
    """Create or update the Project rows of STATES; returns normalised name -> Project.
    A project whose status changed is noted in WRITES (its page and the root change)."""
    existing = {p.normalized_name: p for p in Project.objects.filter(normalized_name__in=states)}
    new, changed = [], []
    for norm, state in states.items():
        project = existing.get(norm)
        first = project is None or project.serial == 0  # named by the root, no details yet
        status = None if project is None else [getattr(project, f) for f in STATUS_FIELDS]
        row = _project_row(norm, state, project, now, only_versions)
        if status is not None and status != [getattr(project, f) for f in STATUS_FIELDS]:
            writes.status_changed.add(project.id)
            changes.status_changes.append(f"{project.name}: {project.upstream_status}")
            writes.index_changed.add(project.id)
            writes.root_changed = True
        if row is not None:
            (changed if project else new).append(row)
            changes.projects_created += first
    insert_rows(Project, new, ["name", "normalized_name", "summary", "summary_read", "added",
                               "last_changed", "serial", "upstream_serial", "demand",
                               "skip_reason", "index_serial"])
    update_rows(Project, changed, PROJECT_FIELDS)
    changes.projects_updated += len(new) + len(changed) - changes.projects_created
    return {**existing, **{p.normalized_name: p for p in new}}


def _versions_of(project_ids):
    """project id -> {version string -> Version} of what we hold."""
    have = defaultdict(dict)
    for version in Version.objects.filter(project_id__in=list(project_ids)).only(
        "id", "project_id", "version", "skip_reason", "removed", *UPSTREAM_FIELDS
    ):
        have[version.project_id][version.version] = version
    return have


def _wanted_fields(release, version):
    """The fields VERSION should have for upstream's RELEASE."""
    wanted = {f: getattr(release, f) for f in UPSTREAM_FIELDS}
    wanted["removed"] = version.skip_reason == REMOVED_BY_OPERATOR
    if not release.has_sdist and not version.skip_reason:
        wanted["skip_reason"] = NO_SDIST
    elif release.has_sdist and version.skip_reason == NO_SDIST:
        wanted["skip_reason"] = ""
    return wanted


def _plan_versions(state, project, known, only_versions, writes, changes):
    """Plan the version rows of one project: KNOWN (version -> Version) is what we hold."""
    for release in state.releases.values():
        if only_versions is not None and release.version not in only_versions:
            known.pop(release.version, None)
            continue
        if not release.version or len(release.version) > 200:
            changes.errors.append(f"{state.name}: version {release.version[:50]!r}... "
                                  "is empty or longer than 200 characters, left out")
            continue
        version = known.pop(release.version, None)
        if version is None:
            writes.creates.append(Version(
                project_id=project.id, version=release.version,
                **{f: getattr(release, f) for f in UPSTREAM_FIELDS},
                skip_reason="" if release.has_sdist else NO_SDIST))
            changes.versions_without_sdist += not release.has_sdist
            continue
        wanted = _wanted_fields(release, version)
        changed = {f for f, value in wanted.items() if getattr(version, f) != value}
        if changed:
            for f in changed:
                setattr(version, f, wanted[f])
            writes.updates.append(version)
            if changed & INDEX_FIELDS:
                writes.index_changed.add(project.id)
            # a version's files coming or going may add or drop the project on the root
            writes.root_changed |= "removed" in changed
    if only_versions is None:
        _plan_removals(project, known.values(), writes)


def _plan_removals(project, versions, writes):
    """VERSIONS are no longer upstream: marked removed, kept so they are not rebuilt."""
    for version in versions:
        if not version.removed:
            version.removed = True
            writes.updates.append(version)
            writes.index_changed.add(project.id)
            writes.root_changed = True


def _write_versions(writes, now, changes):
    insert_rows(Version, writes.creates, ["project_id", "version", *UPSTREAM_FIELDS,
                                          "skip_reason", "removed"])
    update_rows(Version, writes.updates, [*UPSTREAM_FIELDS, "skip_reason", "removed"])
    if writes.index_changed:
        Project.objects.filter(id__in=writes.index_changed).touch_index(
            root=writes.root_changed, now=now)
    changes.versions_created += len(writes.creates)
    changes.versions_updated += len(writes.updates)
    changes.new_version_ids.extend(v.id for v in writes.creates)
    changes.changed_version_ids.extend(v.id for v in writes.creates)
    changes.changed_version_ids.extend(v.id for v in writes.updates)


def delete_projects(normalized_names, now):
    """Delete these projects (versions, builds and file rows go with them by cascade);
    returns the names deleted. Call it inside writing()."""
    gone = list(Project.objects.filter(normalized_name__in=normalized_names)
                .values_list("normalized_name", flat=True))
    if gone:
        doomed = Project.objects.filter(normalized_name__in=gone)
        doomed.touch_index(root=True, now=now)  # before the delete: their pages go too
        doomed.delete()
    return gone
