"""Which Debian package provides a missing header, library, pkg-config module or tool,
from Debian's own Contents index (dists/<release>/<component>/Contents-<arch>.gz and
Contents-all.gz on the archive), never a hand-kept list.

refresh() streams those files from PIWHEELS_DEBIAN_MIRROR and keeps only the paths a
failure can ask about (KEPT) in AptPath, one release at a time, replacing that release's
rows in one transaction, and records when (AptContents). packages_for() answers from the
table.

The farm keeps the maps on its own: every OS release its builders report gets a daily
django-q2 schedule (ensure_schedules(), run every 10 minutes), which reads the Contents
files of every architecture those builders run; a failure that needs a name while its
release's map is missing or old asks for a refresh at once (request_refresh(), one
background task at a time). status() says, for /failures/, which maps are missing or old.
"""
import datetime
import gzip
import io
import logging
import posixpath
import re

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task

from builds import failures
from builds.models import AptContents, AptPath, Builder
from lib.aptsources import first_debian_uri

log = logging.getLogger(__name__)

# The paths kept, by what a failure asks for: headers anywhere under usr/include; shared
# libraries for the linker (lib*.so, not the versioned runtime files); pkg-config modules;
# programs on PATH.
KEPT = (
    (AptPath.Kind.HEADER, re.compile(r"^usr/include/.+[^/]$")),
    (AptPath.Kind.LIBRARY, re.compile(r"^usr/lib/(?:[^/]+/)?lib[^/]+\.so$")),
    (AptPath.Kind.PKGCONFIG, re.compile(r"^usr/(?:lib/(?:[^/]+/)?|share/)pkgconfig/[^/]+\.pc$")),
    (AptPath.Kind.TOOL, re.compile(r"^usr/bin/[^/]+$")),
)
RELEASE = re.compile(r"^[a-z][a-z0-9-]{1,29}$")
BATCH = 5000

# Debian's architecture for each platform a builder reports (PEP 425 tags): a 32-bit
# userland on a 64-bit kernel reports linux_armv7l, and runs armhf.
DEBIAN_ARCH = {
    "linux_armv6l": "armhf", "linux_armv7l": "armhf", "linux_aarch64": "arm64",
    "linux_x86_64": "amd64", "linux_i686": "i386",
}
EVERY = datetime.timedelta(days=1)  # each release's schedule
OLD_AFTER = 3 * EVERY  # a map not read for this long is old (its schedule keeps failing)
REQUEST_PACE = datetime.timedelta(minutes=10)  # at most one refresh at once per release
SCHEDULE_FUNC = "builds.tasks.refresh_apt_contents"


class ContentsError(Exception):
    """The Contents index could not be fetched or read; the message says which and why."""


def parse_contents(lines):
    """(kind, name, path, packages) for each kept line of a Contents file: LINES are text
    lines "path<spaces>section/pkg[,section/pkg...]"; packages are the names without
    their sections, comma-separated."""
    for line in lines:
        if not line.startswith("usr/"):
            continue
        parts = line.rstrip("\n").rsplit(None, 1)
        if len(parts) != 2:
            continue
        path, where = parts
        for kind, pattern in KEPT:
            if pattern.match(path):
                packages = ",".join(p.rsplit("/", 1)[-1] for p in where.split(","))
                yield kind, posixpath.basename(path), path, packages
                break


def archive(mirror=None):
    """The Debian archive to read: MIRROR, else PIWHEELS_DEBIAN_MIRROR, else the one this
    machine's apt reads."""
    return (mirror or settings.PIWHEELS_DEBIAN_MIRROR or first_debian_uri()).rstrip("/")


def contents_urls(release, mirror=None, arch=None, components=None):
    mirror = archive(mirror)
    arch = arch or settings.PIWHEELS_DEBIAN_ARCH
    components = components or settings.PIWHEELS_DEBIAN_COMPONENTS
    return [
        f"{mirror}/dists/{release}/{component}/Contents-{name}.gz"
        for component in components for name in (arch, "all")
    ]


def _stream_lines(url, timeout):
    """The text lines of the gzipped file at URL, decompressed as they arrive."""
    try:
        response = requests.get(url, stream=True, timeout=timeout)
    except requests.RequestException as exc:
        raise ContentsError(f"{url}: {exc}") from None
    with response:
        if response.status_code != 200:
            raise ContentsError(f"{url} answered {response.status_code}")
        response.raw.decode_content = True  # a Content-Encoding, if any, is undone first
        try:
            with gzip.GzipFile(fileobj=response.raw) as data:
                yield from io.TextIOWrapper(data, encoding="utf-8", errors="replace")
        except (OSError, EOFError, requests.RequestException) as exc:
            raise ContentsError(f"{url}: {exc}") from None


def refresh(release, mirror=None, arch=None, components=None, timeout=60, now=None):
    """Replace RELEASE's map with what the archive's Contents files say now, for ARCH (one
    architecture or several: their paths together; default PIWHEELS_DEBIAN_ARCH). Returns
    the number of paths kept. Nothing changes when a file cannot be fetched or read, but
    the failure is recorded (AptContents.error) and raised."""
    if not RELEASE.match(release or ""):
        raise ContentsError(f"{release!r} is not a Debian release name (e.g. bookworm)")
    archs = [arch] if isinstance(arch, str) else list(arch or [settings.PIWHEELS_DEBIAN_ARCH])
    urls = list(dict.fromkeys(
        url for one in archs for url in contents_urls(release, mirror, one, components)))
    try:
        found = _read_contents(release, urls, timeout)
    except ContentsError as exc:
        AptContents.objects.update_or_create(release=release, defaults={
            "error": str(exc)[:500], "failed": now or timezone.now()})
        raise
    rows = (
        AptPath(release=release, kind=kind, name=name[:255], path=path[:500],
                packages=packages[:500])
        for path, (kind, name, packages) in found.items()
    )
    with transaction.atomic():
        AptPath.objects.filter(release=release).delete()
        batch = []
        for row in rows:
            batch.append(row)
            if len(batch) >= BATCH:
                AptPath.objects.bulk_create(batch)
                batch = []
        AptPath.objects.bulk_create(batch)
        AptContents.objects.update_or_create(release=release, defaults={
            "archs": ",".join(archs)[:100], "paths": len(found),
            "refreshed": now or timezone.now(), "error": "", "failed": None})
    return len(found)


def _read_contents(release, urls, timeout):
    """{path: (kind, name, packages)} of the Contents files at URLS."""
    found = {}  # a path in two files gets both lists
    for url in urls:
        count = 0
        for kind, name, path, packages in parse_contents(_stream_lines(url, timeout)):
            if path in found:
                merged = dict.fromkeys(found[path][2].split(",") + packages.split(","))
                packages = ",".join(merged)
            found[path] = (kind, name, packages)
            count += 1
        log.info("apt contents %s: %d paths kept from %s", release, count, url)
    return found


def reported():
    """{release: [Debian architectures]} of what the enabled builders said at their last
    claim (os_release, platform); an unknown platform counts as PIWHEELS_DEBIAN_ARCH."""
    found = {}
    pairs = (Builder.objects.filter(enabled=True).exclude(os_release="")
             .values_list("os_release", "platform").distinct())
    for release, platform in pairs:
        if RELEASE.match(release):
            arch = DEBIAN_ARCH.get(platform, settings.PIWHEELS_DEBIAN_ARCH)
            found.setdefault(release, set()).add(arch)
    return {release: sorted(archs) for release, archs in sorted(found.items())}


def archs_of(release):
    """The architectures RELEASE's map is read for: its builders', else the default."""
    return reported().get(release) or [settings.PIWHEELS_DEBIAN_ARCH]


def schedule_name(release):
    return f"apt_contents {release}"


def ensure_schedules(now=None):
    """Give every release the builders report a daily schedule refreshing its map, due at
    once when the map was never read (nor is being read for a failure). Returns the names
    of the schedules created."""
    now = now or timezone.now()
    # read, or being read at once for a failure (request_refresh): not due again today
    read = set(AptContents.objects.filter(
        Q(refreshed__isnull=False) | Q(requested__gte=now - REQUEST_PACE),
    ).values_list("release", flat=True))
    created = []
    for release in reported():
        _, made = Schedule.objects.get_or_create(name=schedule_name(release), defaults={
            "func": SCHEDULE_FUNC, "args": repr(release), "schedule_type": Schedule.DAILY,
            "repeats": -1, "next_run": now if release not in read else now + EVERY,
        })
        if made:
            created.append(schedule_name(release))
    return created


def request_refresh(release, now=None):
    """Ask for RELEASE's map to be read now, in the background, unless it was asked for in
    the last REQUEST_PACE (a conditional update: one task however many failures ask).
    Returns whether a task was queued (when the transaction commits)."""
    if not RELEASE.match(release or ""):
        return False
    now = now or timezone.now()
    AptContents.objects.get_or_create(release=release)
    asked = AptContents.objects.filter(
        Q(requested=None) | Q(requested__lt=now - REQUEST_PACE), release=release,
    ).update(requested=now)
    if asked:
        transaction.on_commit(lambda: async_task(SCHEDULE_FUNC, release,
                                                 task_name=f"apt contents {release} now"))
    return bool(asked)


def is_current(release, now=None):
    """Whether RELEASE's map was read within OLD_AFTER."""
    now = now or timezone.now()
    return AptContents.objects.filter(release=release, refreshed__gte=now - OLD_AFTER).exists()


def status(now=None):
    """For /failures/: each release the builders report (else the default one) with its
    map's state: "missing" (never read), "old" (not read for OLD_AFTER) or "current",
    when it was read, how many paths, and the last refresh's error."""
    now = now or timezone.now()
    releases = list(reported()) or [settings.PIWHEELS_DEBIAN_RELEASE]
    rows = {row.release: row for row in AptContents.objects.filter(release__in=releases)}
    found = []
    for release in releases:
        row = rows.get(release)
        refreshed = row.refreshed if row else None
        state = ("missing" if refreshed is None
                 else "old" if refreshed < now - OLD_AFTER else "current")
        found.append({"release": release, "state": state, "refreshed": refreshed,
                      "paths": row.paths if row else 0, "archs": row.archs if row else "",
                      "error": row.error if row else "",
                      "failed": row.failed if row else None})
    return found


def _preference(path, package):
    """Sort key among the packages providing a file: the shallowest path, then -dev
    packages (what a build needs), then the alphabetically first name. Flavours of one
    library that all provide it (curl-config: libcurl4-gnutls-dev, libcurl4-nss-dev,
    libcurl4-openssl-dev) are equals; the first by name is as good as any."""
    return (path.count("/"), not package.endswith("-dev"), package)


def packages_for(release, cause, detail):
    """The Debian packages of RELEASE that provide what a build of CAUSE missed (DETAIL:
    lber.h, ldap, cairo, curl-config; or names the build tried in turn, any of which would
    do, 'mysqlclient, mariadb or libmariadb'), best first; [] when none is known. Of
    alternatives, the package providing the most of them comes first (libmariadb-dev has
    mariadb.pc and libmariadb.pc; libmariadb-dev-compat only mysqlclient.pc)."""
    kind = failures.PROVIDED_BY_PACKAGE.get(cause)
    names = failures.split_alternatives(detail)
    if kind is None or not names:
        return []
    found = {}  # package -> (how many of the names it provides, its best preference key)
    for name in names:
        for package, key in _providers(release, kind, name).items():
            count, best = found.get(package, (0, key))
            found[package] = (count + 1, min(best, key))
    return sorted(found, key=lambda package: (-found[package][0], found[package][1]))


def _providers(release, kind, detail):
    """{package: preference key} of the packages of RELEASE providing DETAIL of KIND."""
    if kind == AptPath.Kind.HEADER:
        # The header as #include names it, in usr/include or one directory below
        # (usr/include/<triplet>/, usr/include/python3.11/), not deeper: a header found
        # only deeper is another one of the same name.
        names, accept = [posixpath.basename(detail)], re.compile(
            rf"^usr/include/(?:[^/]+/)?{re.escape(detail)}$")
    elif kind == AptPath.Kind.LIBRARY:
        names, accept = [f"lib{detail}.so"], None
    elif kind == AptPath.Kind.PKGCONFIG:
        names, accept = list(dict.fromkeys([f"{detail}.pc", f"{detail.lower()}.pc"])), None
    else:
        names, accept = [detail], None
    rows = AptPath.objects.filter(release=release, kind=kind, name__in=names)
    ranked = {}
    for path, packages in rows.values_list("path", "packages"):
        if accept is not None and not accept.match(path):
            continue
        for package in packages.split(","):
            key = _preference(path, package)
            if package not in ranked or key < ranked[package]:
                ranked[package] = key
    return ranked
