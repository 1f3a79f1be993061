"""What the farm builds for, who builds, and what came out."""
import hashlib

from django.db import models
from django.db.models import Q
from django.utils import timezone

from lib import platforms
from packages.models import Version

_ARCH = "(" + "|".join(platforms.ARCHS) + ")"
ARCH_LIST = rf"^{_ARCH}(,{_ARCH})*$"  # Abi.archs: "armv7l" or "armv7l,aarch64"


class Abi(models.Model):
    tag = models.CharField(max_length=20, unique=True, help_text="e.g. cp311")
    active = models.BooleanField(default=True)
    # The OS release (VERSION_CODENAME) whose builders build this ABI: a claim from a
    # builder on another release is refused. Blank: any release.
    os_release = models.CharField(
        max_length=32, blank=True, default="", db_default="",
        help_text="e.g. bookworm: only builders on this OS release build this ABI "
                  "(blank: any)",
    )
    # The architectures it is built for (lib/platforms.ARCHS), comma-separated: a job is
    # one per (version, ABI, architecture), claimed by builders of that architecture.
    archs = models.CharField(
        max_length=100, default=platforms.DEFAULT_ARCH, db_default=platforms.DEFAULT_ARCH,
        help_text="architectures it is built for, comma-separated: armv7l (32-bit Pi OS), "
                  "aarch64 (64-bit Pi OS), x86_64 (tests); add_abi --arch queues the "
                  "backlog of one added",
    )
    added = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "ABI"
        constraints = [
            models.CheckConstraint(condition=~Q(tag=""), name="builds_abi_tag_not_empty"),
            models.CheckConstraint(condition=Q(archs__regex=ARCH_LIST),
                                   name="builds_abi_archs_valid"),
            models.CheckConstraint(
                condition=Q(os_release="") | Q(os_release__regex=platforms.OS_RELEASE.pattern),
                name="builds_abi_os_release_valid",
            ),
        ]

    def __str__(self):
        return self.tag

    def arch_list(self):
        """The architectures it is built for, in the order the operator gave them."""
        return [a for a in self.archs.split(",") if a]


def hash_token(token):
    return hashlib.sha256(token.encode()).hexdigest()


class Builder(models.Model):
    name = models.CharField(max_length=100, unique=True)
    token_hash = models.CharField(max_length=64, unique=True)
    # What the builder said it is at its last claim.
    abi = models.ForeignKey(Abi, on_delete=models.PROTECT, null=True, blank=True)
    platform = models.CharField(max_length=100, blank=True)
    python_version = models.CharField(max_length=50, blank=True)
    os = models.CharField(max_length=200, blank=True)
    # VERSION_CODENAME and glibc version, e.g. "bookworm" and "2.36".
    os_release = models.CharField(max_length=32, blank=True, default="", db_default="")
    glibc = models.CharField(max_length=16, blank=True, default="", db_default="")
    created = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(null=True, blank=True)
    enabled = models.BooleanField(default=True)

    def __str__(self):
        return self.name


class BuildQuerySet(models.QuerySet):
    def live(self):
        return self.filter(state__in=LIVE_STATES)

    def queued_for(self, abi, arch=None):
        queued = self.filter(abi=abi, state=Build.State.QUEUED)
        return queued if arch is None else queued.filter(arch=arch)


class Build(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued"
        BUILDING = "building"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        # Decided up front, never built: Requires-Python excludes the ABI's Python, or
        # upstream has a wheel that installs there (builds/rules.py); skip_reason says which.
        SKIPPED = "skipped"

    class Priority(models.IntegerChoices):
        BACKLOG = 0
        NEW_RELEASE = 1
        REQUESTED = 2  # an admin asked for it

    version = models.ForeignKey(Version, on_delete=models.CASCADE, related_name="builds")
    abi = models.ForeignKey(Abi, on_delete=models.PROTECT, related_name="builds")
    # The machine architecture it is built for (lib/platforms.ARCHS): only builders of
    # that architecture claim it. A farm from before architectures built armv7l.
    arch = models.CharField(max_length=16, default=platforms.DEFAULT_ARCH,
                            db_default=platforms.DEFAULT_ARCH)
    builder = models.ForeignKey(
        Builder, on_delete=models.SET_NULL, null=True, blank=True, related_name="builds"
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    priority = models.SmallIntegerField(choices=Priority.choices, default=Priority.BACKLOG)
    attempt = models.PositiveSmallIntegerField(default=0)
    created = models.DateTimeField(default=timezone.now)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    duration = models.DurationField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    failure_reason = models.CharField(max_length=400, blank=True)
    # (db_default: raw INSERTs of builds, add_abi's and the benchmarks', need not name these.)
    # Why it failed (builds/failures.py): one cause of failures.CAUSES and the missing
    # thing (lber.h, cairo, curl-config) or the line that says why; "" unless failed.
    cause = models.CharField(max_length=20, blank=True, default="", db_default="")
    cause_detail = models.CharField(max_length=200, blank=True, default="", db_default="")
    # The Debian package that provides the missing thing on the builder's OS release
    # (builds/depwait.py, from Debian's Contents index), and the one this failed build
    # waits for: it is queued again when a builder of its ABI and release reports it.
    apt = models.CharField(max_length=100, blank=True, default="", db_default="")
    waiting_for = models.CharField(max_length=100, blank=True, default="", db_default="")
    # Why a job is not built (builds/rules.py): "" unless skipped.
    skip_reason = models.CharField(max_length=400, blank=True, default="", db_default="")
    # Who asked for it, when an admin or operator did ("" for the farm itself).
    requested_by = models.CharField(max_length=150, blank=True)
    # The OS release and glibc of the builder that claimed it last ("" if it did not say).
    os_release = models.CharField(max_length=32, blank=True, default="", db_default="")
    glibc = models.CharField(max_length=16, blank=True, default="", db_default="")
    # Which of its builder's PIWHEELS_MAX_JOBS_PER_BUILDER places a building job takes
    # (queue.claim); unique per builder among building jobs, so that concurrent claims of
    # one builder cannot take more. Null for a job taken back by a heartbeat (queue.hold).
    slot = models.PositiveSmallIntegerField(null=True, blank=True)

    objects = BuildQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["version", "abi", "arch"],
                condition=Q(state__in=["queued", "building"]),
                name="builds_build_one_live_per_job",
            ),
            models.CheckConstraint(condition=Q(arch__regex=f"^{_ARCH}$"),
                                   name="builds_build_arch_valid"),
            models.CheckConstraint(
                condition=Q(state__in=["queued", "building", "succeeded", "failed",
                                       "skipped"]),
                name="builds_build_state_valid",
            ),
            models.CheckConstraint(condition=Q(glibc="") | Q(glibc__regex=platforms.GLIBC.pattern),
                                   name="builds_build_glibc_valid"),
            # queue.claim(): a builder holds at most PIWHEELS_MAX_JOBS_PER_BUILDER jobs.
            models.UniqueConstraint(
                fields=["builder", "slot"], condition=Q(state="building"),
                name="builds_build_one_job_per_slot",
            ),
        ]
        indexes = [
            # queue.claim(): the next job for one (ABI, architecture): most urgent
            # priority first (requested > new release > backlog), newest job first
            # within a priority.
            models.Index(
                fields=["abi", "arch", "-priority", "-id"],
                condition=Q(state="queued"),
                name="builds_build_queue",
            ),
            # queue.requeue_expired(): leases that ran out.
            models.Index(
                fields=["lease_until"],
                condition=Q(state="building"),
                name="builds_build_leases",
            ),
            # project page and index: the builds of a version.
            models.Index(fields=["version", "abi"], name="builds_build_version_abi"),
            # depwait.requeue_waiting(): failed builds waiting for a Debian package.
            models.Index(
                fields=["waiting_for", "abi"],
                condition=Q(state="failed") & ~Q(waiting_for=""),
                name="builds_build_waiting",
            ),
            # /failures/: failed builds by cause.
            models.Index(
                fields=["cause"], condition=Q(state="failed"), name="builds_build_failed_cause",
            ),
            # stats: builds finished per day.
            models.Index(
                fields=["finished"],
                condition=Q(finished__isnull=False),
                name="builds_build_finished",
            ),
        ]

    def __str__(self):
        return (f"build {self.pk} of {self.version_id} for {self.abi_id} {self.arch} "
                f"({self.state})")


LIVE_STATES = frozenset({Build.State.QUEUED, Build.State.BUILDING})
FINISHED_STATES = frozenset({Build.State.SUCCEEDED, Build.State.FAILED, Build.State.SKIPPED})


class BuilderPackages(models.Model):
    """The Debian packages installed on a builder, as it last reported them
    (`dpkg-query -W`), with its OS release: what dep-wait checks failed builds against."""

    builder = models.OneToOneField(
        Builder, on_delete=models.CASCADE, primary_key=True, related_name="debian"
    )
    os_release = models.CharField(max_length=30, blank=True)  # e.g. bookworm
    digest = models.CharField(max_length=64)  # sha256 of the sorted names, one a line
    # The sorted names, each on a line of its own and the text starting with a newline
    # (newline, libc6, newline, zlib1g, newline), so that "has X" is a LIKE on any database.
    packages = models.TextField(blank=True)
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "builder packages"

    def __str__(self):
        return f"{self.builder_id}: {len(self.names())} packages on {self.os_release}"

    def names(self):
        return self.packages.split()


class AptPath(models.Model):
    """A file of Debian's Contents index for one release that a missing header, library,
    pkg-config module or tool is looked up by (refresh_apt_contents fills it)."""

    class Kind(models.TextChoices):
        HEADER = "header"
        LIBRARY = "library"
        PKGCONFIG = "pkgconfig"
        TOOL = "tool"

    release = models.CharField(max_length=30)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    # What a lookup asks for: a header's file name, libX.so, X.pc, a program's name.
    name = models.CharField(max_length=255)
    path = models.CharField(max_length=500)  # e.g. usr/include/lber.h
    packages = models.CharField(max_length=500)  # as Contents says: "libldap-dev[,...]"

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["release", "path"], name="builds_aptpath_unique"),
        ]
        indexes = [
            # depwait.packages_for(): the files of one name in one release.
            models.Index(fields=["release", "kind", "name"], name="builds_aptpath_lookup"),
        ]

    def __str__(self):
        return f"{self.release}: {self.path} ({self.packages})"


class AptContents(models.Model):
    """The state of one release's map (AptPath): when it was last read from the archive,
    from which architectures' Contents files, and what went wrong last (builds/apt.py)."""

    release = models.CharField(max_length=30, unique=True)
    archs = models.CharField(max_length=100, blank=True)  # "armhf,arm64", as last read
    paths = models.IntegerField(default=0)
    refreshed = models.DateTimeField(null=True, blank=True)
    # When a failure last asked for a refresh at once (one background task at a time).
    requested = models.DateTimeField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)  # the last refresh's failure
    failed = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"{self.release}: {self.paths} paths, {self.refreshed or 'never read'}"


class BuildLog(models.Model):
    """A build's output, kept out of the hot build rows."""

    build = models.OneToOneField(
        Build, on_delete=models.CASCADE, primary_key=True, related_name="log"
    )
    output = models.TextField(blank=True)
    truncated = models.BooleanField(default=False)

    def __str__(self):
        return f"log of build {self.build_id}"


class Upload(models.Model):
    """A wheel received for a build being built, before the build is published: the row
    is claimed by the upload that wins (build, filename), which alone moves its bytes in
    place, so the bytes kept are always the ones whose hash is recorded. A job claimed
    afresh starts with none (queue.claim deletes them, as it clears incoming/)."""

    build = models.ForeignKey(Build, on_delete=models.CASCADE, related_name="uploads")
    filename = models.CharField(max_length=255)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    received = models.DateTimeField(default=timezone.now)
    # Why it keeps its linux_<arch> name (wheels.served_name's note; "" when it is served
    # under a manylinux name or the question does not arise): becomes File.portable_note.
    portable_note = models.TextField(blank=True, default="", db_default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["build", "filename"], name="builds_upload_one_per_name"
            ),
            models.CheckConstraint(
                condition=Q(sha256__regex=r"^[0-9a-f]{64}$"), name="builds_upload_sha256_hex"
            ),
            models.CheckConstraint(
                condition=Q(size__gte=0), name="builds_upload_size_not_negative"
            ),
        ]

    def __str__(self):
        return f"{self.filename} for build {self.build_id}"


class File(models.Model):
    build = models.ForeignKey(Build, on_delete=models.CASCADE, related_name="files")
    filename = models.CharField(max_length=255, unique=True)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    python_tag = models.CharField(max_length=100)
    abi_tag = models.CharField(max_length=100)
    platform_tag = models.CharField(max_length=200)
    requires_python = models.CharField(max_length=200, blank=True)
    # Debian packages that provide the system libraries the wheel links against.
    dependencies = models.JSONField(default=list, blank=True)
    # sha256 of the wheel's core metadata file, served at <file url>.metadata (PEP 658).
    metadata_sha256 = models.CharField(max_length=64, blank=True)
    uploaded = models.DateTimeField(default=timezone.now)
    # Where it was built: the OS release and glibc ("" when not known, e.g. imported).
    os_release = models.CharField(max_length=32, blank=True, default="", db_default="")
    glibc = models.CharField(max_length=16, blank=True, default="", db_default="")
    # Whether all its ELF objects run on ARMv6 with VFPv2 and no NEON (lib/elfarm.py),
    # checked once at publication; None for files published before the check existed.
    armv6_compatible = models.BooleanField(null=True, blank=True)
    # The linux_armv6l name it is also offered under ("" for none): lib/platforms.py.
    armv6l_filename = models.CharField(max_length=255, blank=True, default="", db_default="")
    # Why a linux_<arch> wheel is not served under a manylinux name ("" when it is, or
    # when the question does not arise): the libraries or symbols it needs outside the
    # policy (builds/wheels.served_name), shown on its project page.
    portable_note = models.TextField(blank=True, default="", db_default="")
    # Downloads folded in from the counters, not written per download.
    downloads = models.BigIntegerField(default=0)
    # The file a rebuild published in its place: this one stays downloadable (hash pins
    # keep working) and is listed as yanked, "rebuilt as <superseded_by>" (PEP 592).
    superseded_by = models.CharField(max_length=255, blank=True)
    # The upstream wheel that serves this file's users: the file is off the index (its
    # URL still answers with the same bytes). Set and cleared by builds/rules.py.
    shadowed_by = models.CharField(max_length=255, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(size__gte=0), name="builds_file_size_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(sha256__regex=r"^[0-9a-f]{64}$"), name="builds_file_sha256_hex"
            ),
            models.CheckConstraint(condition=Q(glibc="") | Q(glibc__regex=platforms.GLIBC.pattern),
                                   name="builds_file_glibc_valid"),
            # One name, one file: an armv6l name is never another file's (and the index
            # serving /files/ looks files up by it).
            models.UniqueConstraint(
                fields=["armv6l_filename"], condition=~Q(armv6l_filename=""),
                name="builds_file_armv6l_filename_unique",
            ),
        ]

    def __str__(self):
        return self.filename

    @property
    def arch(self):
        """The architecture its platform tag names, "" for a pure wheel."""
        return platforms.wheel_arch(self.platform_tag)


class ServedName(models.Model):
    """Every filename the farm ever published, with its bytes' sha256: never deleted (not
    with its file, build, version or project), so that a name once served never names
    other bytes. Publishing checks it; a rebuild takes a fresh name with a build tag."""

    filename = models.CharField(max_length=255, unique=True)
    sha256 = models.CharField(max_length=64)
    project = models.CharField(max_length=200, help_text="normalised project name")
    first_served = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(sha256__regex=r"^[0-9a-f]{64}$"),
                name="builds_servedname_sha256_hex",
            ),
        ]
        indexes = [
            # publish.fresh_name(): the names taken by one version's files.
            models.Index(fields=["filename"], name="builds_servedname_prefix",
                         opclasses=["varchar_pattern_ops"]),
        ]

    def __str__(self):
        return self.filename


class DailyDownloads(models.Model):
    """Downloads of one file on one day, folded in from the web workers' counters."""

    file = models.ForeignKey(File, on_delete=models.CASCADE, related_name="daily_downloads")
    day = models.DateField()
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["file", "day"], name="builds_dailydownloads_unique"),
        ]
        indexes = [models.Index(fields=["day"], name="builds_dailydownloads_day")]

    def __str__(self):
        return f"{self.file_id} on {self.day}: {self.count}"
