"""Failed builds that only need a Debian package on the builders (Debian buildd's
dep-wait).

A failure is diagnosed when it is recorded (diagnose(): the cause from builds/failures.py,
the Debian package that provides the missing thing from builds/apt.py). When no builder of
the build's ABI and OS release has that package, the build *waits for* it. Builders report
their installed packages (record_packages(), from the API); when a report adds a package
that builds of the builder's ABI and release wait for, those builds are queued again, once
per change: the wait is cleared as they are queued.
"""
import hashlib
import logging

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone

from builds import apt, failures, queue
from builds.models import Abi, Build, BuilderPackages
from lib import debian, platforms
from packages.models import Version

log = logging.getLogger(__name__)

# A Debian package name (Policy 5.6.1), with dpkg-query's optional :arch: lib/debian.py,
# the one check of every name taken from a builder.
PACKAGE_NAME = debian.PACKAGE_NAME
MAX_PACKAGES = 50_000
REQUESTED_BY = "dep-wait"


class BadPackageList(ValueError):
    """A builder's package report the farm cannot use; the message says why."""


def release_of(builder):
    """The OS release BUILDER runs (bookworm): what its claims said, else what its package
    report said, else PIWHEELS_DEBIAN_RELEASE."""
    if builder is None:
        return settings.PIWHEELS_DEBIAN_RELEASE
    if builder.os_release:
        return builder.os_release
    found = (BuilderPackages.objects.filter(builder_id=builder.id)
             .values_list("os_release", flat=True).first())
    return found or settings.PIWHEELS_DEBIAN_RELEASE


def _built_on(release):
    """Q of the builds made on RELEASE: as their claim recorded it, else as their
    builder's package report says, else (builds from before either) the default."""
    found = Q(os_release=release) | Q(os_release="", builder__debian__os_release=release)
    if release == settings.PIWHEELS_DEBIAN_RELEASE:
        found |= Q(os_release="", builder__isnull=True) | Q(
            os_release="", builder__debian__isnull=True)
    return found


def _has_package(release, abi_id, names):
    """Q of the builders' reports of RELEASE and ABI that include one of NAMES."""
    has = Q()
    for name in names:
        has |= Q(packages__contains=f"\n{name}\n")
    return BuilderPackages.objects.filter(has, os_release=release, builder__abi_id=abi_id)


def diagnose(builder, abi_id, output, reason):
    """The fields of a failed build: cause, cause_detail, apt (the Debian package that
    provides what was missing on BUILDER's release) and waiting_for (apt, unless a builder
    of that ABI and release has it already: then the package was not the whole story)."""
    found = failures.classify(output, reason)
    fields = {"cause": found.cause, "cause_detail": found.detail, "apt": "",
              "waiting_for": ""}
    if found.fixable_by_package:
        release = release_of(builder)
        candidates = apt.packages_for(release, found.cause, found.detail)
        if candidates:
            fields["apt"] = candidates[0][:100]
            if not _has_package(release, abi_id, candidates).exists():
                fields["waiting_for"] = fields["apt"]
        elif not apt.is_current(release):
            # The map is missing or old: read it now, in the background; its task names
            # the fix of this build (name_fixes) once it is in.
            apt.request_refresh(release)
    return fields


def name_fixes(release):
    """After the map of RELEASE changed: name the package for failed builds of that
    release that have a fixable cause and no package yet. Returns the builds named."""
    unnamed = Build.objects.filter(
        _built_on(release), state=Build.State.FAILED, apt="",
        cause__in=list(failures.PROVIDED_BY_PACKAGE),
    )
    named = 0
    pairs = unnamed.values_list("cause", "cause_detail", "abi_id").distinct()
    for cause, detail, abi_id in pairs:
        candidates = apt.packages_for(release, cause, detail)
        if not candidates:
            continue
        waiting = "" if _has_package(release, abi_id, candidates).exists() else candidates[0]
        named += unnamed.filter(cause=cause, cause_detail=detail, abi_id=abi_id).update(
            apt=candidates[0][:100], waiting_for=waiting[:100])
    return named


def digest_of(names):
    return hashlib.sha256("\n".join(sorted(set(names))).encode()).hexdigest()


def wants_packages(builder, digest):
    """True when BUILDER's claim said its packages have DIGEST and the farm's copy of its
    list differs (or there is none): the claim's answer asks for the list."""
    if not digest:
        return False
    stored = (BuilderPackages.objects.filter(builder_id=builder.id)
              .values_list("digest", flat=True).first())
    return stored != digest


def record_packages(builder, os_release, names, abi=None, now=None):
    """Store BUILDER's installed Debian packages (NAMES) on OS_RELEASE; when that adds
    packages failed builds of its ABI (ABI, else the one it last claimed for) and release
    wait for, queue them again. Returns (digest, builds requeued). The same list twice
    changes nothing."""
    now = now or timezone.now()
    if not (apt.RELEASE.match(os_release or "") and platforms.valid_os_release(os_release)):
        raise BadPackageList(f"{os_release!r} is not a Debian release name (e.g. bookworm)")
    if len(names) > MAX_PACKAGES:
        raise BadPackageList(f"{len(names)} packages is more than {MAX_PACKAGES}")
    bad = next((n for n in names if not debian.is_package_name(n)), None)
    if bad is not None:
        raise BadPackageList(f"{bad!r} is not a Debian package name")
    names = sorted({n.split(":", 1)[0] for n in names})
    digest = digest_of(names)
    abi_id = abi.id if abi is not None else builder.abi_id
    with transaction.atomic():
        row = BuilderPackages.objects.select_for_update().filter(builder_id=builder.id).first()
        if row is not None and row.digest == digest and row.os_release == os_release:
            return digest, 0
        before = set(row.names()) if row is not None and row.os_release == os_release else set()
        text = "\n" + "".join(f"{n}\n" for n in names)
        BuilderPackages.objects.update_or_create(
            builder_id=builder.id,
            defaults={"os_release": os_release, "digest": digest, "packages": text,
                      "updated": now},
        )
        added = [n for n in names if n not in before]
        arch = platforms.job_arch(builder.platform)
        requeued = requeue_waiting(abi_id, os_release, added, now, arch) if abi_id else 0
    log.info("builder %s: %d Debian packages on %s (%d new), %d builds queued again",
             builder, len(names), os_release, len(added), requeued)
    return digest, requeued


def requeue_waiting(abi_id, release, packages, now, arch=platforms.DEFAULT_ARCH):
    """Queue again the failed builds of ABI_ID and ARCH (the reporting builder's) on
    RELEASE that wait for one of PACKAGES (and have no newer build); their wait ends.
    Returns how many were queued."""
    abi = Abi.objects.get(id=abi_id)
    if not packages or arch not in abi.arch_list():
        return 0
    newer = Build.objects.filter(version_id=OuterRef("version_id"), abi_id=abi_id,
                                 arch=arch, id__gt=OuterRef("id"))
    total = 0
    waiting = (
        Build.objects.filter(_built_on(release), state=Build.State.FAILED, abi_id=abi_id,
                             arch=arch)
        .filter(waiting_for__in=packages).exclude(Exists(newer))
    )
    for package in sorted(set(waiting.values_list("waiting_for", flat=True))):
        ids = list(waiting.filter(waiting_for=package).values_list("id", flat=True))
        # The wait ends with this change, so the next failure waits (or not) afresh.
        Build.objects.filter(id__in=ids, waiting_for=package).update(waiting_for="")
        versions = Build.objects.filter(id__in=ids).values_list("version_id", flat=True)
        total += queue.rebuild(Version.objects.filter(id__in=versions), abi=abi, arch=arch,
                               requested_by=f"{REQUESTED_BY}: {package}"[:150], now=now)
    return total


def overview():
    """What /failures/ and the admin show: failed builds by cause (most first), and the
    Debian packages whose installation on the builders would fix the most builds, with the
    ABIs and releases that need them."""
    failed = Build.objects.filter(state=Build.State.FAILED)
    by_arch = (failed.exclude(cause="").values_list("cause", "arch").annotate(n=Count("id"))
               .order_by("cause", "arch"))
    counts = {}
    for cause, arch, n in by_arch:
        counts.setdefault(cause, {})[arch] = n
    causes = sorted(({"cause": cause, "builds": sum(archs.values()), "archs": archs}
                     for cause, archs in counts.items()),
                    key=lambda row: (-row["builds"], row["cause"]))
    for row in causes:
        row["description"] = failures.DESCRIPTIONS.get(row["cause"], row["cause"])
    unclassified = failed.filter(cause="").count()
    packages = list(
        failed.exclude(waiting_for="")
        .values("waiting_for", "abi__tag", "arch", "os_release",
                "builder__debian__os_release")
        .annotate(builds=Count("id"))
        .order_by("-builds", "waiting_for")
    )
    fixes = {}
    for row in packages:
        entry = fixes.setdefault(row["waiting_for"], {"package": row["waiting_for"],
                                                      "builds": 0, "where": []})
        entry["builds"] += row["builds"]
        release = (row["os_release"] or row["builder__debian__os_release"]
                   or settings.PIWHEELS_DEBIAN_RELEASE)
        where = f"{row['abi__tag']} {row['arch']} on {release}"
        if where not in entry["where"]:
            entry["where"].append(where)
    ranked = sorted(fixes.values(), key=lambda e: (-e["builds"], e["package"]))
    return {"causes": causes, "unclassified": unclassified, "packages": ranked,
            "failed": sum(row["builds"] for row in causes) + unclassified,
            "apt": apt.status()}
