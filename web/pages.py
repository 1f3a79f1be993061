"""The data behind the pages for people: plain functions returning plain dicts.

Views stay thin (look up, render); templates only loop over what these return, so the
number of queries per page is fixed here and pinned by the tests. Everything must stay
fast at 700,000 projects: no full counts of the big tables per request (estimates from
PostgreSQL's statistics, or cached for a minute), searches by index prefix only.
"""
import difflib
import re
from datetime import datetime, time, timedelta

from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Exists, OuterRef, Sum
from django.db.models.functions import Length, TruncDate
from django.urls import reverse
from django.utils import timezone
from packaging.utils import canonicalize_name

from builds import logs, rules, storage
from builds.models import Abi, Build, Builder, BuildLog, DailyDownloads, File
from lib import manylinux
from lib.counts import EXACT_COUNT_BELOW, table_estimate
from lib.tags import python_excluded
from packages.models import Project, SyncStatus, Version, version_sort_key
from web.failures import fix_line

# Seconds the totals of the home and stats pages are cached.
CACHE_SECONDS = 60
SEARCH_LIMIT = 50
# Names compared with difflib for the suggestions of an unknown project.
SUGGESTION_CANDIDATES = 2000
# A builder heard from within this long is online.
ONLINE_WINDOW = timedelta(minutes=5)
STATS_DAYS = 30


def log_url(build_id):
    return reverse("web-log", args=[build_id])


def project_url(normalized_name):
    return reverse("web-project", args=[normalized_name])


def abi_sort_key(tag):
    """cp39 before cp311: the interpreter prefix, then the version as a number."""
    match = re.fullmatch(r"([a-z]+)(\d+)(.*)", tag)
    if not match:
        return (tag, 0, "")
    prefix, number, rest = match.groups()
    return (prefix, int(number), rest)


# ---------------------------------------------------------------- counting cheaply


def estimated_count(model):
    """The rows in MODEL's table: PostgreSQL's estimate for big tables, else exact."""
    estimate = table_estimate(connection, model._meta.db_table)
    if estimate >= EXACT_COUNT_BELOW:
        return estimate
    return model.objects.count()


def build_state_counts():
    """{state: number of builds}. For a big table, from the planner's statistics of
    the state column (four values, all among its most common ones), else exact."""
    estimate = table_estimate(connection, Build._meta.db_table)
    if estimate >= EXACT_COUNT_BELOW:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT most_common_vals::text::text[], most_common_freqs FROM pg_stats "
                "WHERE tablename = %s AND attname = 'state'",
                [Build._meta.db_table],
            )
            row = cursor.fetchone()
        if row:
            return {
                value: int(freq * estimate) for value, freq in zip(row[0], row[1], strict=True)
            }
    rows = Build.objects.values_list("state").annotate(n=Count("id")).order_by()
    return dict(rows)


def home_totals():
    """Totals for the home page, cached for a minute."""
    totals = cache.get("pages:home-totals")
    if totals is None:
        states = build_state_counts()
        totals = {
            "projects": estimated_count(Project),
            "versions": estimated_count(Version),
            "files": estimated_count(File),
            "builds_ok": states.get(Build.State.SUCCEEDED, 0),
            "builds_failed": states.get(Build.State.FAILED, 0),
            "builds_skipped": states.get(Build.State.SKIPPED, 0),
            "queued": states.get(Build.State.QUEUED, 0),
            "building": states.get(Build.State.BUILDING, 0),
        }
        cache.set("pages:home-totals", totals, CACHE_SECONDS)
    return totals


# ---------------------------------------------------------------- the project page


def _build_summary(build, builder_names):
    state = {
        Build.State.SUCCEEDED: "built",
        Build.State.FAILED: "failed",
        Build.State.QUEUED: "pending",
        Build.State.BUILDING: "pending",
        Build.State.SKIPPED: "skipped",
    }[build.state]
    return {
        "build_id": build.id,
        "state": state,
        "build_state": build.state,
        "log_url": log_url(build.id) if build.has_log else "",
        "failure_reason": build.failure_reason,
        # Why it failed (builds/failures.py) and the Debian package that fixes it.
        "cause": build.cause if build.state == Build.State.FAILED else "",
        "cause_detail": build.cause_detail if build.state == Build.State.FAILED else "",
        "apt": build.apt if build.state == Build.State.FAILED else "",
        "waiting_for": build.waiting_for if build.state == Build.State.FAILED else "",
        "fix": fix_line(build) if build.state == Build.State.FAILED else "",
        "skip_reason": build.skip_reason,
        "builder": builder_names.get(build.builder_id, ""),
        "created": build.created,
        "finished": build.finished,
        "duration_seconds": (
            round(build.duration.total_seconds()) if build.duration is not None else None
        ),
        "requested_by": build.requested_by,
    }


def skipped_label(reason):
    """What a cell says for a job not built: "PyPI has a wheel for this: <filename>" as
    it is, any other reason as "skipped: <reason>"."""
    return reason if reason.startswith(rules.PYPI_HAS) else f"skipped: {reason}"


def _skipped(cell, reason):
    cell.update(state="skipped", label=skipped_label(reason), detail=reason,
                skip_reason=reason)
    return cell


def _cell(project, version, abi, builds, builder_names):
    """One (version, ABI) cell: the newest build decides, except that a pending rebuild
    does not hide the build whose files are still served, and that a job upstream has a
    wheel for says so whatever the farm built (pip takes upstream's)."""
    pypi = rules.upstream_wheel(version.upstream_wheels, abi.tag)
    if builds:
        summaries = [_build_summary(b, builder_names) for b in builds]  # newest first
        cell = dict(summaries[0])
        cell["history"] = summaries[1:]
        cell["abi"] = abi.tag
        if pypi:
            return _skipped(cell, rules.PYPI_HAS + pypi)
        if cell["state"] == "skipped":
            return _skipped(cell, cell["skip_reason"])
        if cell["state"] == "pending":
            cell["label"] = "building" if cell["build_state"] == "building" else "queued"
            if any(s["state"] == "built" for s in summaries[1:]):
                cell["state"] = "built"
                cell["label"] = "built, rebuild pending"
        else:
            cell["label"] = cell["state"]
        cell["detail"] = cell["fix"] if cell["state"] == "failed" else ""
        if cell["state"] == "failed" and cell["waiting_for"]:
            cell["label"] = f"waiting for {cell['waiting_for']}"
        cell["abi"] = abi.tag
        return cell
    cell = {"abi": abi.tag, "build_id": None, "log_url": "", "history": [],
            "failure_reason": "", "skip_reason": ""}
    if version.yanked:
        cell.update(state="yanked", label="skipped: yanked", detail=version.yanked_reason,
                    skip_reason="yanked")
    elif project.skip_reason or version.skip_reason:
        _skipped(cell, version.skip_reason or project.skip_reason)
    elif not version.has_sdist:
        _skipped(cell, "no source distribution")
    elif pypi:
        _skipped(cell, rules.PYPI_HAS + pypi)
    elif not abi.active:
        cell.update(state="none", label="-", detail="")
    elif python_excluded(version.requires_python, abi.tag):
        _skipped(cell, f"requires Python {version.requires_python}")
    else:
        cell.update(state="pending", label="waiting", detail="")
    return cell


def project_page(normalized_name):
    """Everything the project page and its JSON show, or None for an unknown project.

    Five queries: the project, the ABIs, its versions, their builds, their files.
    """
    # Not .first(): its ORDER BY id can make PostgreSQL walk the primary key.
    project = next(iter(Project.objects.filter(normalized_name=normalized_name)[:1]), None)
    if project is None:
        return None
    abis = {abi.id: abi for abi in Abi.objects.all()}
    versions = sorted(
        project.versions.filter(removed=False),
        key=lambda v: version_sort_key(v.version),
        reverse=True,
    )
    builds = list(
        Build.objects.filter(version__project=project, version__removed=False)
        .annotate(has_log=Exists(BuildLog.objects.filter(build=OuterRef("pk"))))
        .order_by("-id")
    )
    files = [] if project.is_quarantined else list(  # held back, not offered
        File.objects.filter(build__version__project=project, build__version__removed=False)
        .order_by("filename")
    )
    builder_ids = {b.builder_id for b in builds if b.builder_id}
    builder_names = {}
    if builder_ids:
        # Builders are few; fetched with the builds would be a join per build row.
        builder_names = dict(Builder.objects.filter(id__in=builder_ids).values_list("id", "name"))

    # Columns: the active ABIs, and any other ABI this project has builds for.
    used = {b.abi_id for b in builds}
    columns = sorted(
        (abi for abi in abis.values() if abi.active or abi.id in used),
        key=lambda abi: abi_sort_key(abi.tag),
    )
    by_job = {}
    for build in builds:
        by_job.setdefault((build.version_id, build.abi_id), []).append(build)
    build_version = {b.id: b.version_id for b in builds}
    files_by_version = {}
    dependencies = set()
    for f in files:
        # What it still needs from the system (none for a repaired, portable wheel).
        needs = manylinux.still_needed(f.dependencies)
        if not (f.superseded_by or f.shadowed_by):  # the files pip is offered
            dependencies.update(needs)
        files_by_version.setdefault(build_version.get(f.build_id), []).append({
            "filename": f.filename,
            "url": storage.file_url(project.normalized_name, f.filename),
            "size": f.size,
            "sha256": f.sha256,
            "downloads": f.downloads,
            "python_tag": f.python_tag,
            "abi_tag": f.abi_tag,
            "platform_tag": f.platform_tag,
            "requires_python": f.requires_python,
            "dependencies": list(f.dependencies or []),
            # Whether it imports without an apt step, and else the line that makes it.
            "needs_system_packages": bool(needs),
            "system_packages": needs,
            "apt_install": f"sudo apt install {' '.join(needs)}" if needs else "",
            "uploaded": f.uploaded,
            "build_id": f.build_id,
            # Where it was built, and whether a Pi Zero / Pi 1 gets it (and as what).
            "os_release": f.os_release,
            "glibc": f.glibc,
            "armv6_compatible": f.armv6_compatible,
            "armv6l_filename": f.armv6l_filename,
            # listed yanked: a rebuild replaced it (its URL and bytes stay)
            "superseded_by": f.superseded_by,
            # not listed: upstream has a wheel for it (its URL and bytes stay)
            "shadowed_by": f.shadowed_by,
        })

    rows = []
    for version in versions:
        cells = [
            _cell(project, version, abi, by_job.get((version.id, abi.id), []), builder_names)
            for abi in columns
        ]
        rows.append({
            "version": version.version,
            "released": version.released,
            "yanked": version.yanked,
            "yanked_reason": version.yanked_reason,
            "skip_reason": version.skip_reason,
            "has_sdist": version.has_sdist,
            "requires_python": version.requires_python,
            "builds": cells,
            "files": files_by_version.get(version.id, []),
        })
    deps = sorted(dependencies)
    # pip finds nothing of a project without files here, and its index page is a 404:
    # offer neither then.
    has_files = bool(files)
    return {
        "name": project.name,
        "normalized_name": project.normalized_name,
        "summary": project.summary,
        "skip_reason": project.skip_reason,
        # PEP 792, as upstream says it: active, archived, quarantined or deprecated
        "status": project.upstream_status,
        "status_reason": project.upstream_status_reason,
        "url": project_url(project.normalized_name),
        "has_files": has_files,
        "install": f"pip3 install {project.name}" if has_files else "",
        "index_url": f"/simple/{project.normalized_name}/" if has_files else "",
        "dependencies": deps,
        "apt_install": f"sudo apt install {' '.join(deps)}" if deps else "",
        "abis": [abi.tag for abi in columns],
        "versions": rows,
    }


def _with_prefix(prefix, columns, limit):
    """Rows (tuples of COLUMNS) of the first projects by name starting with PREFIX.

    On PostgreSQL this orders by the byte-wise operator of the varchar_pattern_ops
    index, so the index yields the rows in order and the scan stops after LIMIT; an
    ORDER BY in the database's collation would sort every match (27,000 for "p").
    """
    if connection.vendor != "postgresql":
        return list(
            Project.objects.filter(normalized_name__startswith=prefix)
            .order_by("normalized_name")
            .values_list(*columns)[:limit]
        )
    pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(columns)} FROM {Project._meta.db_table}"
            " WHERE normalized_name LIKE %s ORDER BY normalized_name USING ~<~ LIMIT %s",
            [pattern, limit],
        )
        return cursor.fetchall()


def suggestions(name, limit=5):
    """Names of projects close to NAME, for the page of an unknown project.

    Candidates are bounded and found by index prefix (names sharing the first letters,
    names starting with the whole query), then ranked with difflib.
    """
    normalized = canonicalize_name(name)
    if not normalized:
        return []
    starting = [row[0] for row in _with_prefix(normalized, ["normalized_name"], limit)]
    # The same first two letters; or the same first and last letters and about the
    # same length (a typo inside the name: "nmupy" -> "numpy"). Both walk the prefix
    # index over the names sharing the first letter(s) only.
    candidates = list(
        Project.objects.filter(normalized_name__startswith=normalized[:2])
        .values_list("normalized_name", flat=True)[:SUGGESTION_CANDIDATES]
    )
    candidates += (
        Project.objects.filter(normalized_name__startswith=normalized[:1],
                               normalized_name__endswith=normalized[-1])
        .annotate(length=Length("normalized_name"))
        .filter(length__range=(len(normalized) - 1, len(normalized) + 1))
        .values_list("normalized_name", flat=True)[:SUGGESTION_CANDIDATES]
    )
    close = difflib.get_close_matches(normalized, candidates, n=limit, cutoff=0.6)
    result = []
    for candidate in close + starting:
        if candidate not in result and candidate != normalized:
            result.append(candidate)
    return result[:limit]


# ---------------------------------------------------------------- search


def search(query, limit=SEARCH_LIMIT):
    """Projects whose normalised name starts with the query's, the exact match first."""
    normalized = canonicalize_name(query.strip())
    if not normalized:
        return []
    rows = _with_prefix(normalized, ["name", "normalized_name", "summary"], limit)
    rows.sort(key=lambda row: row[1] != normalized)  # stable: exact match first
    return [
        {"name": name, "normalized_name": norm, "summary": summary,
         "url": project_url(norm), "exact": norm == normalized}
        for name, norm, summary in rows
    ]


# ---------------------------------------------------------------- logs


def build_log(build_id):
    """(output, truncated) of one build, or None when it has none."""
    row = BuildLog.objects.filter(build_id=build_id).values_list("output", "truncated").first()
    return row


def whole_log_path(build_id):
    """Where the whole (gzip) log of a build is kept, or None when it is not."""
    path = logs.whole_log_path(build_id)
    return path if path.is_file() else None


# ---------------------------------------------------------------- statistics


def _days(today):
    return [today - timedelta(days=n) for n in range(STATS_DAYS - 1, -1, -1)]


def slow_stats(now=None):
    """The parts of the stats page that scan many rows, cached for a minute."""
    stats = cache.get("pages:stats")
    if stats is not None:
        return stats
    now = now or timezone.now()
    days = _days(timezone.localdate(now))
    since = timezone.make_aware(datetime.combine(days[0], time.min))
    per_day = {day: {"succeeded": 0, "failed": 0, "skipped": 0} for day in days}
    rows = (
        Build.objects.filter(finished__gte=since,
                             state__in=["succeeded", "failed", "skipped"])
        .annotate(day=TruncDate("finished"))
        .values_list("day", "state")
        .annotate(n=Count("id"))
        .order_by()
    )
    for day, state, n in rows:
        if day in per_day:
            per_day[day][state] = n
    builds_per_day = []
    for day in days:
        ok, failed = per_day[day]["succeeded"], per_day[day]["failed"]
        total = ok + failed  # skips are decided, not built: not in the success rate
        builds_per_day.append({
            "day": day, "succeeded": ok, "failed": failed, "total": total,
            "skipped": per_day[day]["skipped"],
            "success_rate": round(100 * ok / total, 1) if total else None,
        })
    downloads = dict(
        DailyDownloads.objects.filter(day__gte=days[0])
        .values_list("day")
        .annotate(n=Sum("count"))
        .order_by()
    )
    abis = {abi.id: abi for abi in Abi.objects.all()}
    live = (
        Build.objects.filter(state__in=["queued", "building"])
        .values_list("abi_id", "state")
        .annotate(n=Count("id"))
        .order_by()
    )
    queue = {abi_id: {"queued": 0, "building": 0} for abi_id, abi in abis.items()
             if abi.active}
    for abi_id, state, n in live:
        queue.setdefault(abi_id, {"queued": 0, "building": 0})[state] = n
    stats = {
        "builds_per_day": builds_per_day,
        "downloads_per_day": [{"day": day, "downloads": downloads.get(day, 0)} for day in days],
        "queue": [
            {"abi": abis[abi_id].tag, "active": abis[abi_id].active, **counts}
            for abi_id, counts in sorted(
                queue.items(), key=lambda item: abi_sort_key(abis[item[0]].tag)
            )
        ],
        "disk_bytes": File.objects.aggregate(total=Sum("size"))["total"] or 0,
        # every build by state: skipped jobs (Requires-Python, an upstream wheel) apart
        # from failed ones
        "builds": build_state_counts(),
        "skipped_recently": sum(d["skipped"] for d in builds_per_day),
        "generated": now,
    }
    # how the catalogue sync follows upstream and how far it is (packages.sync)
    stats["sync"] = SyncStatus.objects.filter(id=1).first()
    cache.set("pages:stats", stats, CACHE_SECONDS)
    return stats


def builders_online(now=None):
    """Builders heard from in the last five minutes and what each is building."""
    now = now or timezone.now()
    builders = list(
        Builder.objects.filter(last_seen__gte=now - ONLINE_WINDOW)
        .select_related("abi")
        .order_by("name")
    )
    building = {}
    if builders:
        for build in (
            Build.objects.filter(state=Build.State.BUILDING, builder__in=builders)
            .select_related("version__project", "abi")
            .order_by("started")
        ):
            building.setdefault(build.builder_id, []).append({
                "build_id": build.id,
                "project": build.version.project.name,
                "url": project_url(build.version.project.normalized_name),
                "version": build.version.version,
                "abi": build.abi.tag,
                "started": build.started,
            })
    return [
        {
            "name": b.name,
            "abi": b.abi.tag if b.abi else "",
            "platform": b.platform,
            "enabled": b.enabled,
            "last_seen": b.last_seen,
            "building": building.get(b.id, []),
        }
        for b in builders
    ]
