"""What the farm builds and lists per (version, ABI, architecture), decided before
anything is built.

- A job is skipped, not queued, when the version's Requires-Python excludes the ABI's
  Python, or when upstream already has a wheel that installs for the ABI on every target
  platform of the job's architecture (lib/tags.py, target_platforms(): `linux_<arch>`
  and those of settings.PIWHEELS_TARGET_PLATFORMS that the architecture's builds serve,
  with PIWHEELS_TARGET_GLIBC). So an upstream `manylinux_2_17_aarch64` wheel skips the
  aarch64 job of its version and leaves the armv7l one to be built.
  It is a Build in state "skipped" with the reason, so that the page says why and /stats/
  counts it apart from failures. A failed build that one of these rules explains becomes
  skipped (its log and failure reason kept); when the rule stops holding (upstream drops
  the wheel, Requires-Python changes), a skipped job that was never built is queued
  again and one that failed goes back to failed.
- A published file leaves the index (File.shadowed_by) when upstream has a file of that
  name, or a wheel that serves the file's job; its URL keeps answering with its bytes.

apply() is idempotent and runs for the versions the sync or a command touched (through
queue.refresh_jobs) and, for a farm that already runs, over everything
(`manage.py apply_index_rules`).
"""
import logging
from collections import namedtuple
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from builds.models import Abi, Build, File
from lib import platforms
from lib.tags import covering_wheel, python_excluded
from packages.models import Project, Version

log = logging.getLogger(__name__)

PYPI_HAS = "PyPI has a wheel for this: "


def target_platforms(arch):
    """The platforms the wheels of ARCH's jobs serve: `linux_<arch>`, and those of
    PIWHEELS_TARGET_PLATFORMS whose builds are ARCH's (linux_armv6l: armv7l's)."""
    own = f"linux_{arch}"
    return [own] + [p for p in settings.PIWHEELS_TARGET_PLATFORMS
                    if p != own and platforms.job_arch(p) == arch]


def upstream_wheel(upstream_wheels, abi_tag, arch=platforms.DEFAULT_ARCH):
    """The upstream wheel that installs for ABI_TAG on every target platform of ARCH,
    or None."""
    if not upstream_wheels:
        return None
    return covering_wheel(upstream_wheels, abi_tag, target_platforms(arch),
                          settings.PIWHEELS_TARGET_GLIBC_VERSION)


def skip_reason(version, abi_tag, arch=platforms.DEFAULT_ARCH):
    """Why the job (VERSION, ABI_TAG, ARCH) is not built, or "" when it should be."""
    if python_excluded(version.requires_python, abi_tag):
        return f"requires Python {version.requires_python}"
    wheel = upstream_wheel(version.upstream_wheels, abi_tag, arch)
    if wheel:
        return PYPI_HAS + wheel
    return ""


def shadowing_wheel(filename, upstream_wheels, abi_tag, arch=platforms.DEFAULT_ARCH):
    """The upstream file that takes the farm's FILENAME (built for ABI_TAG and ARCH) off
    the index, or ""."""
    if filename in upstream_wheels:
        return filename
    return upstream_wheel(upstream_wheels, abi_tag, arch) or ""


_Version = namedtuple("_Version", "id project_id requires_python upstream_wheels")
_Build = namedtuple("_Build", "id version_id abi_id arch state skip_reason failure_reason")


@dataclass
class Changes:
    queued: int = 0  # new jobs
    skipped: int = 0  # jobs decided skipped: new, or queued ones that were waiting
    failed_skipped: int = 0  # failed builds that a rule explains
    unskipped: int = 0  # skipped jobs whose rule no longer holds
    files_hidden: int = 0  # files that left the index (upstream has them)
    files_listed: int = 0  # files back on the index (upstream dropped its wheel)

    def __iadd__(self, other):
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    def summary(self):
        return (f"{self.queued} jobs queued, {self.skipped} jobs skipped, "
                f"{self.failed_skipped} failed builds marked skipped, {self.unskipped} "
                f"skips lifted, {self.files_hidden} files left the index (upstream has "
                f"them), {self.files_listed} files back on it")


def apply(version_ids, priority=Build.Priority.BACKLOG, now=None):
    """Bring the jobs and listed files of these versions in step with the rules: queue
    the buildable jobs that have no build, skip those a rule excludes, hide the files
    upstream shadows. Returns Changes. Safe to run twice (the second changes nothing)."""
    now = now or timezone.now()
    changes = Changes()
    version_ids = list(version_ids)
    if not version_ids:
        return changes
    abis = {abi.id: abi for abi in Abi.objects.filter(active=True)}
    with transaction.atomic():
        # Plain tuples, not model instances: a batch is thousands of rows (a first sync
        # pass refreshes 5,000 versions at a time).
        versions = {
            row[0]: _Version(*row) for row in Version.objects.filter(id__in=version_ids)
            .values_list("id", "project_id", "requires_python", "upstream_wheels")
        }
        buildable = set(
            Version.objects.buildable().filter(id__in=version_ids).values_list("id", flat=True)
        )
        _jobs(versions, buildable, abis, priority, now, changes)
        touched = _files(versions, changes)
        if touched:
            Project.objects.filter(id__in=touched).touch_index(root=True, now=now)
    return changes


def apply_everywhere(project_ids=None, now=None, batch_size=5000):
    """apply() to every version a rule can concern (a Requires-Python, upstream wheels,
    a skipped build, a shadowed file), of PROJECT_IDS or of all projects, in batches of
    version ids, each in its own transaction: for a farm that already runs. Returns the
    summed Changes."""
    now = now or timezone.now()
    concerned = Version.objects.filter(
        ~Q(requires_python="") | ~Q(upstream_wheels=[])
        | Q(Exists(Build.objects.filter(version=OuterRef("pk"), state=Build.State.SKIPPED)))
        | Q(Exists(File.objects.filter(build__version=OuterRef("pk")).exclude(shadowed_by="")))
    )
    if project_ids is not None:
        concerned = concerned.filter(project_id__in=project_ids)
    total, last = Changes(), 0
    while True:
        ids = list(concerned.filter(id__gt=last).order_by("id")
                   .values_list("id", flat=True)[:batch_size])
        if not ids:
            return total
        total += apply(ids, now=now)
        last = ids[-1]


def _jobs(versions, buildable, abis, priority, now, changes):
    builds = {}
    for row in (Build.objects.filter(version_id__in=buildable)
                .values_list("id", "version_id", "abi_id", "arch", "state", "skip_reason",
                             "failure_reason")):
        b = _Build(*row)
        builds.setdefault((b.version_id, b.abi_id, b.arch), []).append(b)
    jobs = [(abi, arch) for abi in abis.values() for arch in abi.arch_list()]
    new, to_skip, to_fail, to_delete = [], {}, [], []
    for vid in buildable:
        version = versions[vid]
        for abi, arch in jobs:
            reason = skip_reason(version, abi.tag, arch)[:400]
            have = builds.get((vid, abi.id, arch), [])
            lifted = [b for b in have if b.state == Build.State.SKIPPED and not reason]
            # a failed build that a rule explained keeps its failure reason
            never_built = [b for b in lifted if not b.failure_reason]
            if not have or (never_built and len(never_built) == len(have)):
                # no build, or only skips that were never built and no longer hold
                state = Build.State.SKIPPED if reason else Build.State.QUEUED
                new.append(Build(version_id=vid, abi_id=abi.id, arch=arch, priority=priority,
                                 state=state, skip_reason=reason,
                                 finished=now if reason else None, created=now))
                changes.skipped += bool(reason)
                changes.queued += not reason
            to_delete += [b.id for b in never_built]
            to_fail += [b.id for b in lifted if b.failure_reason]
            changes.unskipped += len(lifted)
            for b in have:
                if not reason or b.skip_reason == reason:
                    continue
                if b.state == Build.State.QUEUED:
                    changes.skipped += 1
                elif b.state == Build.State.FAILED:
                    changes.failed_skipped += 1
                elif b.state != Build.State.SKIPPED:
                    continue  # built or being built: its files answer to _files()
                to_skip.setdefault(reason, []).append(b.id)
    for reason, ids in to_skip.items():
        Build.objects.filter(id__in=ids, state__in=["queued", "failed", "skipped"]).update(
            state=Build.State.SKIPPED, skip_reason=reason,
            finished=Coalesce(F("finished"), Value(now)),
        )
    # A build that ran goes back to what it was; one that never ran makes way for a job.
    Build.objects.filter(id__in=to_fail, state=Build.State.SKIPPED).update(
        state=Build.State.FAILED, skip_reason="")
    Build.objects.filter(id__in=to_delete, state=Build.State.SKIPPED).delete()
    # ignore_conflicts: a concurrent refresh of the same version may have won.
    Build.objects.bulk_create(new, batch_size=5000, ignore_conflicts=True)


def _files(versions, changes):
    """Set File.shadowed_by for the published files of VERSIONS; the ids of the
    projects whose index changed."""
    touched = set()
    rows = (File.objects.filter(build__version_id__in=versions,
                                build__state=Build.State.SUCCEEDED)
            .values_list("id", "filename", "shadowed_by", "build__version_id",
                         "build__abi__tag", "build__arch"))
    updates = {}
    for file_id, filename, shadowed, vid, abi_tag, arch in rows:
        version = versions[vid]
        wanted = shadowing_wheel(filename, version.upstream_wheels or [], abi_tag,
                                 arch)[:255]
        if wanted != shadowed:
            updates.setdefault(wanted, []).append(file_id)
            touched.add(version.project_id)
            if wanted:
                changes.files_hidden += 1
            else:
                changes.files_listed += 1
    for wanted, ids in updates.items():
        File.objects.filter(id__in=ids).update(shadowed_by=wanted)
    return touched
