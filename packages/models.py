"""The catalogue: projects and versions as the upstream index publishes them."""
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version as Pep440Version


class ProjectQuerySet(models.QuerySet):
    def named(self, name):
        """The project whose normalised name matches NAME (any spelling)."""
        return self.filter(normalized_name=canonicalize_name(name))

    def touch_index(self, root=False, now=None):
        """Mark these projects' index pages as changed (their cache keys move on).

        ROOT: the change may also add or drop a project on the index root (its first file
        published, its last one removed), so the root's serial moves on too. Call it in
        the transaction of the change, so that no stale page outlives the commit.
        """
        changed = self.update(index_serial=F("index_serial") + 1)
        if root:
            touch_index_root(now)
        return changed


class Project(models.Model):
    name = models.CharField(max_length=200, help_text="The name as published upstream.")
    normalized_name = models.CharField(max_length=200, unique=True)
    summary = models.TextField(blank=True)
    added = models.DateTimeField(default=timezone.now)
    # When upstream last changed anything about the project, and its serial then.
    last_changed = models.DateTimeField(null=True, blank=True)
    serial = models.BigIntegerField(default=0)
    skip_reason = models.CharField(max_length=400, blank=True, help_text="Empty: build it.")
    # Bumped whenever the project's index page changes: the cache key and ETag of the
    # rendered page, so a committed change is never served stale.
    index_serial = models.BigIntegerField(default=0)

    objects = ProjectQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~Q(normalized_name=""), name="packages_project_name_not_empty"
            ),
        ]
        indexes = [
            # search: prefix matches on the normalised name at 700,000 projects.
            models.Index(
                fields=["normalized_name"],
                name="packages_project_name_prefix",
                opclasses=["varchar_pattern_ops"],
            ),
        ]

    def __str__(self):
        return self.name


def version_sort_key(version_string):
    """Sort key for upstream version strings: PEP 440 order, with the versions that
    are not PEP 440 sorted before all valid ones (by their text) rather than crashing."""
    try:
        return (1, Pep440Version(version_string), "")
    except InvalidVersion:
        return (0, Pep440Version("0"), version_string)


class VersionQuerySet(models.QuerySet):
    def buildable(self):
        """Versions the farm should build: not skipped, yanked or removed, with an sdist."""
        return self.filter(
            skip_reason="",
            yanked=False,
            removed=False,
            has_sdist=True,
            project__skip_reason="",
        )


class Version(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="versions")
    # Verbatim as upstream has it, valid PEP 440 or not.
    version = models.CharField(max_length=200)
    released = models.DateTimeField(null=True, blank=True)
    yanked = models.BooleanField(default=False)
    yanked_reason = models.TextField(blank=True)
    requires_python = models.CharField(max_length=200, blank=True)
    has_sdist = models.BooleanField(default=False)
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
        )


INDEX_ROOT = "index-root"


def touch_index_root(now=None):
    """Move the index root's serial on: its list of projects may have changed."""
    now = now or timezone.now()
    if not Serial.objects.filter(name=INDEX_ROOT).update(value=F("value") + 1, updated=now):
        Serial.objects.get_or_create(name=INDEX_ROOT, defaults={"value": 1, "updated": now})


class Serial(models.Model):
    """A named counter that must survive restarts: "pypi" is the last upstream changelog
    serial fully applied by the sync; "index-root" moves when the list of projects on
    the index root changes."""

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

    def __str__(self):
        return f"{self.name}: {self.reason}"
