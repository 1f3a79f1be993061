"""The data behind the pages for people: plain functions returning plain dicts.

Views stay thin (look up, render); templates only loop over what these return, so the
number of queries per page is fixed here and pinned by the tests. Everything must stay
fast at 700,000 projects: no full counts of the big tables per request (estimates from
PostgreSQL's statistics, or cached for a minute). Search is web.search.
"""
import re
from datetime import datetime, time, timedelta

from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Exists, Max, OuterRef, Sum
from django.db.models.functions import TruncDate
from django.urls import reverse
from django.utils import timezone

from builds import logs, rules, storage
from builds.models import Abi, Build, Builder, BuildLog, DailyDownloads, File
from lib import debian, manylinux, platforms
from lib.counts import EXACT_COUNT_BELOW, table_estimate
from lib.tags import python_excluded
from packages.models import Project, SyncStatus, Version, version_sort_key
from web import project as project_summary
from web.failures import fix_line

# Seconds the totals of the home and stats pages are cached.
CACHE_SECONDS = 60
# A builder heard from within this long is online.
ONLINE_WINDOW = timedelta(minutes=5)
STATS_DAYS = 30


def log_url(build_id):
    return reverse("web-log", args=[build_id])


def project_url(normalized_name):
    return reverse("web-project", args=[normalized_name])


# What people call each architecture's Pi OS.
ARCH_NAMES = {"armv7l": "32-bit Raspberry Pi OS (armv7l)",
              "aarch64": "64-bit Raspberry Pi OS (aarch64)", "x86_64": "x86_64"}


def _arch_order(arch):
    return platforms.ARCHS.index(arch) if arch in platforms.ARCHS else len(platforms.ARCHS)


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


def change_stamp():
    """What moves whenever a build is queued (the newest id) or finishes (the newest
    finish): the key of the cached totals, so that they are never behind a failure.
    One query of two index lookups (the primary key, builds_build_finished)."""
    row = Build.objects.aggregate(last_id=Max("id"), last_finished=Max("finished"))
    finished = row["last_finished"].timestamp() if row["last_finished"] else 0
    return f"{row['last_id'] or 0}.{finished}"


def archs_built():
    """The architectures the active ABIs are built for, in ARCHS order, with what people
    call them: [{"arch": "aarch64", "name": "64-bit Raspberry Pi OS (aarch64)"}]."""
    archs = {a for abi in Abi.objects.filter(active=True) for a in abi.arch_list()}
    return [{"arch": a, "name": ARCH_NAMES.get(a, a)} for a in sorted(archs, key=_arch_order)]


def home_totals():
    """Totals for the home page, cached for a minute or until a build is queued or
    finishes."""
    key = f"pages:home-totals:{change_stamp()}"
    totals = cache.get(key)
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
            # what the pip.conf advice names: 32-bit and/or 64-bit Raspberry Pi OS
            "archs": archs_built(),
        }
        cache.set(key, totals, CACHE_SECONDS)
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
        "arch": build.arch,
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


def _cell(project, version, abi, arch, builds, builder_names):
    """One (version, ABI, architecture) cell: the newest build decides, except that a
    pending rebuild does not hide the build whose files are still served, and that a job
    upstream has a wheel for says so whatever the farm built (pip takes upstream's)."""
    pypi = rules.upstream_wheel(version.upstream_wheels, abi.tag, arch)
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
    cell = {"abi": abi.tag, "arch": arch, "build_id": None, "log_url": "", "history": [],
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
    elif not abi.active or arch not in abi.arch_list():
        cell.update(state="none", label="-", detail="")
    elif python_excluded(version.requires_python, abi.tag):
        _skipped(cell, f"requires Python {version.requires_python}")
    else:
        cell.update(state="pending", label="waiting", detail="")
    return cell


def project_page(normalized_name, index_url="/simple/"):
    """Everything the project page and its JSON show, or None for an unknown project.

    INDEX_URL: the farm's index as the user's pip reaches it (absolute in a view).
    Seven queries at most: the project, the ABIs, its versions, their builds, their
    files, the builders' names, the recent downloads.
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

    # Columns: (ABI, architecture) for the architectures each active ABI is built for,
    # and any other ABI or architecture this project has builds for.
    used = {(b.abi_id, b.arch) for b in builds}
    columns = sorted(
        {(abi, arch) for abi in abis.values() if abi.active for arch in abi.arch_list()}
        | {(abis[abi_id], arch) for abi_id, arch in used},
        key=lambda col: (abi_sort_key(col[0].tag), _arch_order(col[1])),
    )
    several = len({arch for _, arch in columns}) > 1
    by_job = {}
    for build in builds:
        by_job.setdefault((build.version_id, build.abi_id, build.arch), []).append(build)
    build_version = {b.id: b.version_id for b in builds}
    build_abi = {b.id: abis[b.abi_id].tag for b in builds}
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
            # Built only from valid names (lib/debian.py): people paste it into a shell.
            "apt_install": debian.install_line(needs),
            "uploaded": f.uploaded,
            "build_id": f.build_id,
            "abi": build_abi.get(f.build_id, f.abi_tag),  # the ABI it was built for
            # the architecture it runs on ("" for a pure wheel: all of them)
            "arch": f.arch,
            # Where it was built, and whether a Pi Zero / Pi 1 gets it (and as what).
            "os_release": f.os_release,
            "glibc": f.glibc,
            "armv6_compatible": f.armv6_compatible,
            "armv6l_filename": f.armv6l_filename,
            # Why it is served as linux_<arch>, not manylinux ("" when the question does
            # not arise): what it needs outside the policy (docs/portable-wheels.md).
            "not_manylinux_because": f.portable_note,
            # listed yanked: a rebuild replaced it (its URL and bytes stay)
            "superseded_by": f.superseded_by,
            # not listed: upstream has a wheel for it (its URL and bytes stay)
            "shadowed_by": f.shadowed_by,
        })

    rows = []
    for version in versions:
        cells = [
            _cell(project, version, abi, arch, by_job.get((version.id, abi.id, arch), []),
                  builder_names)
            for abi, arch in columns
        ]
        for cell in cells:  # what the page calls its column
            cell["column"] = f"{cell['abi']} {cell['arch']}" if several else cell["abi"]
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
    newest_version, newest_state = project_summary.newest_state(rows)
    # The architectures its listed files serve; a pure wheel serves every one.
    listed = [f for f in files if not f.shadowed_by]
    served = {f.arch for f in listed}
    archs = sorted(({a for _, a in columns} if "" in served else served) - {""},
                   key=_arch_order)
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
        # The same line on 32-bit and 64-bit Raspberry Pi OS: pip takes the wheel of its
        # own architecture (archs says which have one).
        "install": f"pip3 install {project.name}" if has_files else "",
        "archs": archs,
        "archs_label": ", ".join(ARCH_NAMES.get(a, a) for a in archs),
        # the one line that works on a Pi whose pip does not know the farm yet
        "install_line": (f"pip3 install --extra-index-url {index_url} {project.name}"
                         if has_files else ""),
        "pip_conf": f"[global]\nextra-index-url={index_url}",
        "index_url": f"/simple/{project.normalized_name}/" if has_files else "",
        "dependencies": deps,
        # Built only from valid names (lib/debian.py): people paste it into a shell.
        "apt_install": debian.install_line(deps),
        # One per column: the ABI tag (repeated when it is built for several
        # architectures), and the columns with their architecture.
        "abis": [abi.tag for abi, _ in columns],
        "columns": [{"abi": abi.tag, "arch": arch,
                     "label": f"{abi.tag} {arch}" if several else abi.tag}
                    for abi, arch in columns],
        # which Pythons x architectures have wheels, of which version, built on which OS
        "wheels": project_summary.wheel_matrix(
            list(dict.fromkeys(abi.tag for abi, _ in columns)), rows),
        "downloads": project_summary.downloads(project, [f.id for f in files]),
        "links": project_summary.links(project, rows),
        "newest_version": newest_version,
        "newest_state": newest_state,
        "versions": rows,
    }


# ---------------------------------------------------------------- logs


def build_log(build_id):
    """(output, truncated) of one build, or None when it has none."""
    row = BuildLog.objects.filter(build_id=build_id).values_list("output", "truncated").first()
    return row


def whole_log_path(build_id):
    """Where the whole (gzip) log of a build is kept, or None when it is not, or when
    no such build exists (a file left by a refused import is not a build's log)."""
    path = logs.whole_log_path(build_id)
    if not path.is_file() or not Build.objects.filter(id=build_id).exists():
        return None
    return path


# ---------------------------------------------------------------- statistics


def _days(today):
    return [today - timedelta(days=n) for n in range(STATS_DAYS - 1, -1, -1)]


def slow_stats(now=None):
    """The parts of the stats page that scan many rows, cached for a minute or until a
    build is queued or finishes (change_stamp)."""
    key = f"pages:stats:{change_stamp()}"
    stats = cache.get(key)
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
        .values_list("abi_id", "arch", "state")
        .annotate(n=Count("id"))
        .order_by()
    )
    # per (ABI, architecture): the queue builders of one architecture take from
    queue = {(abi_id, arch): {"queued": 0, "building": 0} for abi_id, abi in abis.items()
             if abi.active for arch in abi.arch_list()}
    for abi_id, arch, state, n in live:
        queue.setdefault((abi_id, arch), {"queued": 0, "building": 0})[state] = n
    stats = {
        "builds_per_day": builds_per_day,
        "downloads_per_day": [{"day": day, "downloads": downloads.get(day, 0)} for day in days],
        "queue": [
            {"abi": abis[abi_id].tag, "arch": arch, "active": abis[abi_id].active, **counts}
            for (abi_id, arch), counts in sorted(
                queue.items(),
                key=lambda item: (abi_sort_key(abis[item[0][0]].tag), _arch_order(item[0][1])),
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
    cache.set(key, stats, CACHE_SECONDS)
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
                "arch": build.arch,
                "started": build.started,
            })
    return [
        {
            "name": b.name,
            "abi": b.abi.tag if b.abi else "",
            "platform": b.platform,
            "arch": platforms.job_arch(b.platform),
            "enabled": b.enabled,
            "last_seen": b.last_seen,
            "building": building.get(b.id, []),
        }
        for b in builders
    ]
