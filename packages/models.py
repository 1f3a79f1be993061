"""The catalogue: projects and versions as the upstream index publishes them."""
from importlib import import_module

from django.conf import settings
from django.db import connection, models
from django.db.models import F, Q
from django.utils import timezone
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion
from packaging.version import Version as Pep440Version


class ProjectQuerySet(models.QuerySet):
    def named(self, name):
        """The project whose normalised name matches NAME (any spelling)."""
        return self.filter(normalized_name=canonicalize_name(name))

    def touch_index(self, root=False, now=None):
        """Mark these projects' index pages as changed: their serials (cache keys, ETags,
        the root's `_last-serial`) move on, and their page files are written again once
        the transaction commits.

        Serials are global, as PyPI's are: each project touched gets the next value of one
        counter (the PostgreSQL sequence INDEX_SEQUENCE; on SQLite the Serial row
        INDEX_SERIAL), so a mirror that keeps the highest `_last-serial` it has seen finds
        every later change above it. On PostgreSQL the statement also takes a shared
        advisory lock (ROOT_BARRIER) until the transaction ends: the root's writer waits
        for a moment none is held before it takes its snapshot (index.rendering.
        root_snapshot), so that no serial it lists is above one still uncommitted.

        ROOT: the change may also add or drop a project on the index root (its first file
        published, its last one removed), so the root's serial moves on too. Call it in
        the transaction of the change, so that no stale page outlives the commit; for a
        project being deleted, call it before the delete (its page files go).
        """
        ids_sql, params = self.values("id").query.sql_with_params()
        table = Project._meta.db_table
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                # One statement, as the plain update was. The lock comes first: a row's
                # new serial needs the CTE's row, which needs the lock.
                cursor.execute(
                    f"WITH barrier AS (SELECT pg_advisory_xact_lock_shared({ROOT_BARRIER}))"
                    f" UPDATE {table} SET index_serial = nextval('{INDEX_SEQUENCE}')"
                    f" FROM barrier WHERE id IN ({ids_sql}) RETURNING normalized_name",
                    params)
            else:  # SQLite serialises writers: the counter, then the projects
                cursor.execute(
                    f"UPDATE {Serial._meta.db_table} SET value = value + 1"
                    " WHERE name = %s RETURNING value", [INDEX_SERIAL])
                row = cursor.fetchone()
                if row is None:  # a database whose Serial rows were emptied
                    cursor.execute(
                        f"INSERT INTO {Serial._meta.db_table} (name, value, updated)"
                        f" SELECT %s, COALESCE(MAX(index_serial), 0) + 1, %s FROM {table}"
                        " RETURNING value", [INDEX_SERIAL, timezone.now()])
                    row = cursor.fetchone()
                (value,) = row
                cursor.execute(
                    f"UPDATE {table} SET index_serial = %s WHERE id IN ({ids_sql})"
                    " RETURNING normalized_name", [value, *params])
            names = [name for (name,) in cursor.fetchall()]
        index_pages().changed(names)
        if root:
            touch_index_root(now)
        return len(names)


class ProjectStatus(models.TextChoices):
    """PEP 792's project status markers."""

    ACTIVE = "active"
    ARCHIVED = "archived"  # no new uploads expected; files still offered
    QUARANTINED = "quarantined"  # unsafe (malware): no file may be offered
    DEPRECATED = "deprecated"  # obsolete, maybe superseded; files still offered


# Index serials (ProjectQuerySet.touch_index): a PostgreSQL sequence, or on SQLite a
# Serial row; and the advisory lock key publishers share and the root's writer waits on
# ("PWRS" in ASCII, so that it is recognisable in pg_locks).
INDEX_SEQUENCE = "packages_index_serial"
INDEX_SERIAL = "index-serial"
ROOT_BARRIER = 0x50575253


def index_serial_high():
    """The highest index serial given out so far (0 before any): every change to a page
    has a serial at most this."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END"
                f" FROM {INDEX_SEQUENCE}")
        else:
            cursor.execute(
                f"SELECT value FROM {Serial._meta.db_table} WHERE name = %s", [INDEX_SERIAL])
        row = cursor.fetchone()
    return row[0] if row else 0


class Project(models.Model):
    name = models.CharField(max_length=200, help_text="The name as published upstream.")
    normalized_name = models.CharField(max_length=200, unique=True)
    summary = models.TextField(blank=True)
    added = models.DateTimeField(default=timezone.now)
    # When upstream last changed anything about the project, and its serial then: the
    # serial of the details we hold (0: none yet).
    last_changed = models.DateTimeField(null=True, blank=True)
    serial = models.BigIntegerField(default=0)
    # The newest serial upstream has announced for it (the root's _last-serial, a
    # changelog row). Details are waiting while serial < upstream_serial.
    upstream_serial = models.BigIntegerField(default=0, db_default=0)
    # Which waiting projects are fetched first (Demand, highest first; then the most
    # downloaded from the farm: the files of all its builds, added up by index.downloads).
    demand = models.SmallIntegerField(default=0, db_default=0)
    downloads = models.BigIntegerField(default=0, db_default=0)
    skip_reason = models.CharField(max_length=400, blank=True, help_text="Empty: build it.")
    # Upstream's PEP 792 status marker, read from its simple page at each details fetch.
    # Quarantined: nothing listed, served or built, nothing deleted either, so that the
    # end of a quarantine restores the project as it was.
    upstream_status = models.CharField(max_length=20, choices=ProjectStatus.choices,
                                       default=ProjectStatus.ACTIVE,
                                       db_default=ProjectStatus.ACTIVE)
    upstream_status_reason = models.TextField(blank=True, default="", db_default="")
    # Moved on whenever the project's index page changes, to the next global index
    # serial (touch_index): the cache key and ETag of the rendered page, so a committed
    # change is never served stale, and the `_last-serial` mirrors follow.
    index_serial = models.BigIntegerField(default=0)
    # The index_serial the page files on disk render (index/pages.py): behind it only
    # while a change's writer runs, or when it died there (repaired by index.pages.repair).
    index_file_serial = models.BigIntegerField(default=0, db_default=0)
    # False while the summary waits to be read: details from the simple page alone, which
    # has none, of a project new to the farm or of a new release (sync.read_summaries).
    summary_read = models.BooleanField(default=True, db_default=True)

    objects = ProjectQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~Q(normalized_name=""), name="packages_project_name_not_empty"
            ),
        ]
        indexes = [
            # sync.fetch_details(): the next waiting projects, most wanted first.
            models.Index(
                F("demand").desc(), F("downloads").desc(), "id",
                name="packages_project_wanted",
                condition=Q(serial__lt=F("upstream_serial")),
            ),
            # search's prefix matches on the normalised name use the varchar_pattern_ops
            # index PostgreSQL gets for the unique field (a second one, dropped in 0005,
            # only slowed every insert down).
            # sync.read_summaries(): the next summaries to read, most wanted first.
            models.Index(
                F("demand").desc(), F("downloads").desc(), "id",
                name="packages_project_summary_due",
                condition=Q(summary_read=False),
            ),
            # index.pages.repair: the few projects whose page files lag.
            models.Index(
                fields=["id"],
                condition=Q(index_serial__gt=F("index_file_serial")),
                name="packages_project_files_lag",
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def is_quarantined(self):
        return self.upstream_status == ProjectStatus.QUARANTINED


def version_sort_key(version_string):
    """Sort key for upstream version strings: PEP 440 order, with the versions that
    are not PEP 440 sorted before all valid ones (by their text) rather than crashing."""
    try:
        return (1, Pep440Version(version_string), "")
    except InvalidVersion:
        return (0, Pep440Version("0"), version_string)


class Demand(models.IntegerChoices):
    """Why a waiting project's details are wanted: the order of the background fetches."""

    NONE = 0  # then by Project.downloads
    ASKED_BY_PIP = 2  # pip or uv asked the farm's index for it and got a 404
    REQUESTED = 3  # named by add_package


class VersionQuerySet(models.QuerySet):
    def buildable(self):
        """Versions the farm should build: not skipped, yanked or removed, with an sdist."""
        return self.filter(
            skip_reason="",
            yanked=False,
            removed=False,
            has_sdist=True,
            project__skip_reason="",
        ).exclude(project__upstream_status=ProjectStatus.QUARANTINED)


class Version(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="versions")
    # Verbatim as upstream has it, valid PEP 440 or not.
    version = models.CharField(max_length=200)
    released = models.DateTimeField(null=True, blank=True)
    yanked = models.BooleanField(default=False)
    yanked_reason = models.TextField(blank=True)
    requires_python = models.CharField(max_length=200, blank=True)
    has_sdist = models.BooleanField(default=False)
    # The wheel filenames upstream has for this release, sorted: the farm never lists a
    # file under one of them, nor builds a job one of them already serves (builds/rules.py).
    upstream_wheels = models.JSONField(default=list, blank=True)
    skip_reason = models.CharField(max_length=400, blank=True, help_text="Empty: build it.")
    # Removed upstream: kept so that it is not built again, hidden everywhere.
    removed = models.BooleanField(default=False)

    objects = VersionQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "version"], name="packages_version_unique_per_project"
            ),
            models.CheckConstraint(
                condition=~Q(version=""), name="packages_version_not_empty"
            ),
        ]
        indexes = [
            # stats and the home page: newest releases first.
            models.Index(fields=["-released"], name="packages_version_released"),
        ]

    def __str__(self):
        return f"{self.project.name} {self.version}"

    @property
    def sort_key(self):
        return version_sort_key(self.version)

    @property
    def is_buildable(self):
        return not (
            self.skip_reason
            or self.yanked
            or self.removed
            or not self.has_sdist
            or self.project.skip_reason
            or self.project.is_quarantined
        )


INDEX_ROOT = "index-root"


def touch_index_root(now=None):
    """Move the index root's serial on: its list of projects may have changed. Its page
    files are written again once the transaction commits."""
    now = now or timezone.now()
    if not Serial.objects.filter(name=INDEX_ROOT).update(value=F("value") + 1, updated=now):
        Serial.objects.get_or_create(name=INDEX_ROOT, defaults={"value": 1, "updated": now})
    index_pages().changed([], root=True)


def index_pages():
    """The module that writes the index's page files (settings.PIWHEELS_INDEX_PAGES:
    index.pages). Named by a setting, as the build queue is (packages/jobs.py): packages
    sits below index, which imports it, so it cannot import index. It provides
    changed(normalized_names, root=False), called in the transaction of a change."""
    return import_module(settings.PIWHEELS_INDEX_PAGES)


class Serial(models.Model):
    """A named counter that must survive restarts: "pypi" is the last upstream changelog
    serial fully applied by the sync; "index-root" moves when the list of projects on
    the index root changes; "index-serial" is the last index serial given out on SQLite
    (PostgreSQL has a sequence: touch_index)."""

    name = models.CharField(max_length=50, unique=True)
    value = models.BigIntegerField(default=0)
    updated = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"{self.name}={self.value}"


class Retry(models.Model):
    """A project the sync could not fetch (the upstream kept failing): the pass went on
    without it and every later pass asks for it again until upstream answers."""

    normalized_name = models.CharField(max_length=200, unique=True)
    name = models.CharField(max_length=200, help_text="The spelling to ask upstream for.")
    reason = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=1)
    since = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "retries"

    def __str__(self):
        return f"{self.name}: {self.reason}"


class Missing(models.Model):
    """A project upstream seems to have dropped (absent from the root, or a "remove
    project" changelog row). It is deleted only when upstream answers 404 for it twice,
    PIWHEELS_SYNC_GONE_AFTER seconds apart, so that a truncated or stale root never deletes
    a catalogue. FIRST_404: when it first answered 404 (None: not asked yet)."""

    normalized_name = models.CharField(max_length=200, unique=True)
    name = models.CharField(max_length=200)
    noticed = models.DateTimeField(default=timezone.now)
    first_404 = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return self.name


class SyncStatus(models.Model):
    """The one row (id 1) that says how the sync follows upstream and how far it is, for
    the log, sync_pypi's output and /stats/."""

    class Method(models.TextChoices):
        SIMPLE_JSON = "simple-json", "JSON simple root (_last-serial)"
        SIMPLE_HTML = "simple-html", "HTML simple root (PEP 503, names only)"
        XMLRPC = "xmlrpc", "XML-RPC changelog_since_serial"

    method = models.CharField(max_length=20, choices=Method.choices, blank=True)
    reason = models.TextField(blank=True, help_text="Why this method was used.")
    root_etag = models.CharField(max_length=200, blank=True)
    root_serial = models.BigIntegerField(default=0)
    root_checked = models.DateTimeField(null=True, blank=True)
    # When XML-RPC last failed: "auto" leaves it alone for XMLRPC_RETRY seconds after.
    xmlrpc_failed = models.DateTimeField(null=True, blank=True)
    # Where PostgreSQL's advisory lock is missing (SQLite, make run's default): the pass
    # running holds the row until then.
    lease_until = models.DateTimeField(null=True, blank=True)
    # With names only (an HTML root, no XML-RPC) the time left in a pass asks known
    # projects again, round the catalogue in id order: the last id asked.
    revisit_id = models.BigIntegerField(default=0)
    updated = models.DateTimeField(default=timezone.now)
    known = models.BigIntegerField(default=0)
    with_details = models.BigIntegerField(default=0)
    waiting = models.BigIntegerField(default=0)
    rate = models.FloatField(default=0.0, help_text=(
        "Waiting projects completed per second of the last cycle of passes (the pass and "
        "the wait for the next), not per second of fetching."))

    def __str__(self):
        return f"{self.method}: {self.reason}"

    @property
    def eta_seconds(self):
        """Seconds until every waiting project has its details, at the last pass's rate."""
        return self.waiting / self.rate if self.rate and self.waiting else None

    def progress_line(self):
        eta = self.eta_seconds
        text = (f"{self.known} projects known, {self.with_details} with details, "
                f"{self.waiting} waiting")
        if self.waiting:
            text += f" ({self.rate:.1f}/s" + (f", about {_duration(eta)} left)" if eta else ")")
        return text


def _duration(seconds):
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
