"""Which Debian package provides a missing header, library, pkg-config module or tool,
from Debian's own Contents index (dists/<release>/<component>/Contents-<arch>.gz and
Contents-all.gz on the archive), never a hand-kept list.

refresh() streams those files from PIWHEELS_DEBIAN_MIRROR and keeps only the paths a
failure can ask about (KEPT) in AptPath, one release at a time, replacing that release's
rows in one transaction. packages_for() answers from the table.
"""
import gzip
import io
import logging
import posixpath
import re

import requests
from django.conf import settings
from django.db import transaction

from builds import failures
from builds.models import AptPath
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


def refresh(release, mirror=None, arch=None, components=None, timeout=60):
    """Replace RELEASE's map with what the archive's Contents files say now. Returns the
    number of paths kept. Nothing changes when a file cannot be fetched or read."""
    if not RELEASE.match(release or ""):
        raise ContentsError(f"{release!r} is not a Debian release name (e.g. bookworm)")
    found = {}  # path -> (kind, name, packages); a path in two files gets both lists
    for url in contents_urls(release, mirror, arch, components):
        count = 0
        for kind, name, path, packages in parse_contents(_stream_lines(url, timeout)):
            if path in found:
                merged = dict.fromkeys(found[path][2].split(",") + packages.split(","))
                packages = ",".join(merged)
            found[path] = (kind, name, packages)
            count += 1
        log.info("apt contents %s: %d paths kept from %s", release, count, url)
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
    return len(found)


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
