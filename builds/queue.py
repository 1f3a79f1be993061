"""The build queue: which (version, ABI, architecture) jobs exist, who holds them, how
they end.

A job is a Build row in state "queued". The rows are kept in step with the catalogue by
refresh_jobs(), which the sync and the operator commands call with the versions they
touched: one per version, active ABI and architecture the ABI is built for (Abi.archs).
Claims take the next row for one (ABI, architecture) with SELECT ... FOR UPDATE SKIP
LOCKED; a builder's architecture is that of the platform it reports with every claim
(lib/platforms.job_arch: linux_armv7l -> armv7l, linux_aarch64 -> aarch64).

Order: priority REQUESTED (an admin asked) > NEW_RELEASE > BACKLOG, and within one
priority the newest job first (highest id; add_abi inserts its backlog in version order,
so the newest versions come first there too). Index builds_build_queue serves it.
Each claimed job has a lease (PIWHEELS_LEASE_SECONDS) that heartbeats extend; every state
change is a conditional UPDATE, and 0 rows changed means LeaseLost. Publication of a
build's files lives in builds/publish.py.
"""
import logging
import re
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, F, Max, Min, OuterRef
from django.db.models.functions import Greatest
from django.utils import timezone

from builds import rules, sql, storage
from builds.models import LIVE_STATES, Abi, Build, Builder, Upload
from lib import platforms
from packages.models import Project, Version

log = logging.getLogger(__name__)


def refresh_jobs(version_ids, priority=Build.Priority.BACKLOG, now=None):
    """Make the builds of these versions match what should be built.

    Deletes the queued builds of versions that are no longer buildable; then applies the
    rules of builds/rules.py: a queued build for every active ABI where the version is
    buildable and has no build of that ABI yet (a failed build stays failed until a
    rebuild is asked for), a skipped one where Requires-Python or an upstream wheel rules
    the job out, and the files upstream shadows off the index. Returns (created,
    deleted). Safe to run twice.
    """
    version_ids = list(version_ids)
    if not version_ids:
        return 0, 0
    with transaction.atomic():
        deleted, _ = (
            Build.objects.filter(version_id__in=version_ids, state=Build.State.QUEUED)
            .exclude(version__in=Version.objects.buildable())
            .delete()
        )
        changes = rules.apply(version_ids, priority=priority, now=now)
    return changes.queued, deleted


class LeaseLost(Exception):
    """The job is no longer this builder's: another claimed it, or it is finished."""

    def __init__(self, build_id):
        super().__init__(f"build {build_id} is no longer yours: stop working on it")
        self.build_id = build_id


class NoSuchBuild(LookupError):
    def __init__(self, build_id):
        super().__init__(f"there is no build {build_id}")
        self.build_id = build_id


class UnknownAbi(ValueError):
    """The farm does not build for this ABI (unknown, inactive or malformed)."""


class WrongRelease(ValueError):
    """The farm builds this ABI on another OS release than the builder's."""


class WrongArch(ValueError):
    """The farm does not build this ABI for the builder's architecture (or cannot read
    the architecture named)."""


def check_arch(abi, arch):
    """Refuse (WrongArch) a builder of architecture ARCH (lib/platforms.job_arch of its
    platform; "" when it names none) for ABI, which is not built for it."""
    if arch not in abi.arch_list():
        what = f"for {arch}" if arch else "for this builder's platform"
        raise WrongArch(
            f"the farm does not build {abi.tag} {what}, only for {', '.join(abi.arch_list())}"
            f" (an operator enables one with: manage.py add_abi {abi.tag} --arch ARCH)"
        )


def parse_archs(text):
    """["armv7l", "aarch64"] from "armv7l,aarch64"; WrongArch for an unknown one."""
    archs = list(dict.fromkeys(a.strip() for a in text.split(",") if a.strip()))
    bad = [a for a in archs if not platforms.ARCH.match(a)]
    if bad or not archs:
        raise WrongArch(f"{text!r} is not a list of architectures among "
                        f"{', '.join(platforms.ARCHS)}, such as armv7l,aarch64")
    return archs


def check_release(abi, os_release, glibc):
    """Refuse (WrongRelease) a builder that may not build ABI: the ABI is built on one
    OS release and the builder is on another one, or did not say which, or did not say
    its glibc (which names the wheels it builds: lib/platforms.py)."""
    if not abi.os_release:
        return
    if not os_release or not glibc:
        raise WrongRelease(
            f"the farm builds {abi.tag} on {abi.os_release} only, and this builder did not "
            "report its os_release and glibc: update piwheels-builder"
        )
    if os_release != abi.os_release:
        raise WrongRelease(
            f"the farm builds {abi.tag} on {abi.os_release}, not on {os_release}"
        )


# Interpreter ABI tags the farm can build for: CPython (cp311, cp37m, cp313t) and PyPy.
ABI_TAG = re.compile(r"^(cp3\d{1,2}[dmut]*|pypy3\d{1,2}_pp\d{2,3})$")


def lease_length():
    return timedelta(seconds=settings.PIWHEELS_LEASE_SECONDS)


def check_in(builder, now, abi=None, platform="", python_version="", os="", os_release="",
             glibc=""):
    """Record what a builder said about itself (ABI an Abi or None); written at most
    every 30 s unless it changed, so that a busy builder costs no extra write per claim.
    Its claims then record its os_release and glibc on the builds they take. Either,
    when given, must be valid (lib/platforms.py): WrongRelease otherwise."""
    if os_release and not platforms.valid_os_release(os_release):
        raise WrongRelease(f"{os_release[:40]!r} is not an OS release codename such as "
                           "bookworm")
    if glibc and not platforms.valid_glibc(glibc):
        raise WrongRelease(f"{glibc[:40]!r} is not a glibc version from 2.17 up to 3.0, "
                           "such as 2.36")
    facts = {"abi_id": abi.id if abi else None, "platform": platform[:100],
             "python_version": python_version[:50], "os": os[:200],
             "os_release": os_release[:32], "glibc": glibc[:16]}
    fresh = builder.last_seen and now - builder.last_seen < timedelta(seconds=30)
    if fresh and all(getattr(builder, k) == v for k, v in facts.items()):
        return
    Builder.objects.filter(id=builder.id).update(last_seen=now, **facts)
    for key, value in facts.items():
        setattr(builder, key, value)
    builder.last_seen = now


def find_abi(tag):
    """The active Abi with this tag; UnknownAbi if the farm does not build for it."""
    abi = Abi.objects.filter(tag=tag, active=True).first()
    if abi is None:
        raise UnknownAbi(f"the farm does not build for ABI {tag!r}")
    return abi


def claim(builder, abi, now, arch=None):
    """Hand BUILDER the most urgent queued job for ABI (a tag or an active Abi) and ARCH,
    or None. ARCH defaults to the architecture of the platform the builder last reported
    (check_in; armv7l when it reported none). The build records the builder's os_release
    and glibc (as check_in last set them).

    The row is taken with SELECT ... FOR UPDATE SKIP LOCKED, so concurrent claimers each
    get a different job and never wait on each other. A job whose version stopped being
    buildable since it was queued (skipped, yanked, removed) is dropped on the way.
    On PostgreSQL a claim is one statement (_claim_sql), run in autocommit: one round
    trip instead of BEGIN, SELECT, UPDATE, COMMIT; other databases take the ORM path.

    A builder holds at most PIWHEELS_MAX_JOBS_PER_BUILDER jobs (so that a stolen token
    takes few): beyond it the claim finds nothing. Each building job takes one of its
    builder's numbered slots, unique among them (builds_build_one_job_per_slot): of two
    concurrent claims for the last slot one fails on the constraint and looks again.
    """
    if not isinstance(abi, Abi):
        abi = find_abi(abi)
    if arch is None:
        arch = platforms.job_arch(builder.platform)
    take = _claim_one_statement if connection.vendor == "postgresql" else _claim_orm
    for _ in range(20):
        try:
            build, dropped = take(builder, abi, arch, now)
        except IntegrityError:  # a concurrent claim of this builder took the same slot
            continue
        if dropped is not None:
            log.info("build %s: %s is no longer buildable, dropped", dropped.id,
                     dropped.version)
            continue
        if build is None:
            return None
        # A claimed job starts afresh: uploads left by an earlier holder do not count.
        Upload.objects.filter(build_id=build.id).delete()  # one DELETE, by its index
        storage.discard_incoming_on_commit(build.id)
        log.info("build %s: %s %s for %s on %s claimed by %s (attempt %d)", build.id,
                 build.version.project.name, build.version.version, abi.tag, arch, builder,
                 build.attempt)
        return build
    return None


def _claim_orm(builder, abi, arch, now):
    """(build taken, None), (None, build dropped as unbuildable) or (None, None)."""
    with transaction.atomic():
        held = set(Build.objects.filter(builder=builder, state=Build.State.BUILDING)
                   .values_list("slot", flat=True))
        slot = _free_slot(held)
        if slot is None:
            return None, None
        build = (
            Build.objects.filter(abi_id=abi.id, arch=arch, state=Build.State.QUEUED)
            .select_related("version__project")
            .select_for_update(skip_locked=True, of=("self",))
            .order_by("-priority", "-id")
            .first()
        )
        if build is None:
            return None, None
        if not build.version.is_buildable:
            Build.objects.filter(id=build.id, state=Build.State.QUEUED).delete()
            return None, build
        until = now + lease_length()
        Build.objects.filter(id=build.id, state=Build.State.QUEUED).update(
            state=Build.State.BUILDING, builder=builder, lease_until=until,
            attempt=F("attempt") + 1, started=now, os_release=builder.os_release,
            glibc=builder.glibc, slot=slot,
        )
    build.state, build.builder, build.lease_until = Build.State.BUILDING, builder, until
    build.os_release, build.glibc = builder.os_release, builder.glibc
    build.attempt += 1
    build.started = now
    build.abi = abi
    build.slot = slot
    return build, None


def _free_slot(held):
    """The lowest free slot of a builder whose building jobs have the slots HELD (None
    for a job without one), or None when it holds its PIWHEELS_MAX_JOBS_PER_BUILDER."""
    limit = settings.PIWHEELS_MAX_JOBS_PER_BUILDER
    if len(held) >= limit:
        return None
    return next((s for s in range(1, limit + 1) if s not in held), None)


def _claim_sql():
    """The claim as one PostgreSQL statement. `job` locks the most urgent queued row of
    the (ABI, architecture) (index builds_build_queue) and says whether its version is
    still buildable (the rule of VersionQuerySet.buildable); `taken` marks it held,
    `dropped` deletes it if it is not buildable. Each answer row starts with 'taken' or
    'dropped', then the build, version and project columns."""
    b, v, p = Build._meta.db_table, Version._meta.db_table, Project._meta.db_table
    rest = sql.columns(Version, "v") + sql.columns(Project, "p")
    taken, dropped = (", ".join(sql.columns(Build, a) + rest) for a in ("t", "d"))
    return f"""
        WITH held AS (
            SELECT slot FROM {b} WHERE builder_id = %(builder)s AND state = 'building'
        ), free AS (
            SELECT s FROM generate_series(1, %(max_jobs)s) s
            WHERE (SELECT count(*) FROM held) < %(max_jobs)s
              AND s NOT IN (SELECT slot FROM held WHERE slot IS NOT NULL)
            ORDER BY s LIMIT 1
        ), job AS (
            SELECT b.id, (v.skip_reason = '' AND NOT v.yanked AND NOT v.removed
                          AND v.has_sdist AND p.skip_reason = '') AS buildable
            FROM {b} b JOIN {v} v ON v.id = b.version_id JOIN {p} p ON p.id = v.project_id
            WHERE b.abi_id = %(abi)s AND b.arch = %(arch)s AND b.state = 'queued'
              AND EXISTS (SELECT FROM free)
            ORDER BY b.priority DESC, b.id DESC
            LIMIT 1
            FOR UPDATE OF b SKIP LOCKED
        ), taken AS (
            UPDATE {b} SET state = 'building', builder_id = %(builder)s,
                lease_until = %(until)s, attempt = attempt + 1, started = %(now)s,
                os_release = %(os_release)s, glibc = %(glibc)s,
                slot = (SELECT s FROM free)
            WHERE id IN (SELECT id FROM job WHERE buildable)
            RETURNING *
        ), dropped AS (
            DELETE FROM {b} WHERE id IN (SELECT id FROM job WHERE NOT buildable)
            RETURNING *
        )
        SELECT 'taken', {taken}
        FROM taken t JOIN {v} v ON v.id = t.version_id JOIN {p} p ON p.id = v.project_id
        UNION ALL
        SELECT 'dropped', {dropped}
        FROM dropped d JOIN {v} v ON v.id = d.version_id JOIN {p} p ON p.id = v.project_id
    """


def _claim_one_statement(builder, abi, arch, now):
    """(build taken, None), (None, build dropped as unbuildable) or (None, None)."""
    params = {"abi": abi.id, "arch": arch, "builder": builder.id,
              "until": now + lease_length(), "now": now, "os_release": builder.os_release,
              "glibc": builder.glibc, "max_jobs": settings.PIWHEELS_MAX_JOBS_PER_BUILDER}
    row = sql.execute_prepared("builds_claim", _claim_sql, params)
    if row is None:
        return None, None
    build = sql.build_from_row(row[1:])
    build.abi = abi
    if row[0] == "dropped":
        return None, build
    build.builder = builder
    return build, None



def hold(build_id, builder, now):
    """Check that BUILDER holds the job and extend its lease (the heartbeat).

    A job whose lease ran out while its builder was cut off went back to the queue; if
    nobody claimed it since, its builder takes it back here. Raises LeaseLost otherwise
    (another builder holds it, or it is finished), NoSuchBuild for an unknown id.
    """
    until = now + lease_length()
    jobs = Build.objects.filter(id=build_id, builder=builder)
    if jobs.filter(state=Build.State.BUILDING).update(lease_until=until) == 1:
        return
    if jobs.filter(state=Build.State.QUEUED).update(
        state=Build.State.BUILDING, lease_until=until, slot=None  # its slot may be taken
    ) == 1:
        log.info("build %s: taken back by %s after its lease ran out", build_id, builder)
        return
    if not Build.objects.filter(id=build_id).exists():
        raise NoSuchBuild(build_id)
    raise LeaseLost(build_id)


def _requeue_uncounted(jobs):
    """Put JOBS back in the queue as if never claimed: a farm decision (a release, a
    disabled builder), so the attempt does not count. Returns the number requeued."""
    return jobs.update(
        state=Build.State.QUEUED, builder=None, lease_until=None, started=None,
        attempt=Greatest(F("attempt") - 1, 0),
    )


def release(build_id, builder, now):
    """BUILDER gives the job back (it is shutting down): it returns to the queue, and the
    attempt does not count against it."""
    n = _requeue_uncounted(
        Build.objects.filter(id=build_id, builder=builder, state=Build.State.BUILDING)
    )
    if n != 1:
        if not Build.objects.filter(id=build_id).exists():
            raise NoSuchBuild(build_id)
        raise LeaseLost(build_id)
    log.info("build %s: released by %s", build_id, builder)


def disable_builders(builder_ids):
    """Stop these builders: they are refused from now on (403), and the jobs they hold go
    back to the queue at once, the attempt not counted, rather than when their leases
    run out. Returns the number of jobs requeued."""
    with transaction.atomic():
        Builder.objects.filter(id__in=builder_ids).update(enabled=False)
        requeued = _requeue_uncounted(
            Build.objects.filter(builder_id__in=builder_ids, state=Build.State.BUILDING)
        )
    if requeued:
        log.info("disabled builders %s: %d jobs requeued", builder_ids, requeued)
    return requeued


def requeue_expired(now):
    """Put jobs whose lease ran out back in the queue. A vanished builder is a farm
    fault, never the package's failure: the job is never failed for it. After
    PIWHEELS_MAX_ATTEMPTS attempts it goes on at BACKLOG priority, behind all new work,
    so that a job which keeps taking its builders down does not hold the queue up. The
    builder stays recorded, so that it can take the job back if nobody else claims it
    first. Returns (requeued, of which demoted to the backlog)."""
    limit = settings.PIWHEELS_MAX_ATTEMPTS
    expired = Build.objects.filter(state=Build.State.BUILDING, lease_until__lt=now)
    with transaction.atomic():
        demoted = expired.filter(attempt__gte=limit).update(
            state=Build.State.QUEUED, lease_until=None, priority=Build.Priority.BACKLOG,
        )
        requeued = expired.filter(attempt__lt=limit).update(
            state=Build.State.QUEUED, lease_until=None
        )
    if requeued or demoted:
        log.info("leases ran out: %d jobs requeued, %d more sent to the backlog after %d "
                 "attempts", requeued, demoted, limit)
    return requeued + demoted, demoted


def retry_farm_fault(build_id, builder, why, now):
    """BUILDER's result could not be taken for a reason of the farm's (it refused an
    upload) or of the builder's (its environment, its network, its disk: WHY): the job
    goes back to the queue, the attempt counted, and at BACKLOG priority
    after PIWHEELS_MAX_ATTEMPTS attempts, as for a vanished builder. Returns the build."""
    live = Build.objects.filter(id=build_id, builder=builder, state__in=LIVE_STATES)
    demote = {"priority": Build.Priority.BACKLOG} if live.filter(
        attempt__gte=settings.PIWHEELS_MAX_ATTEMPTS).exists() else {}
    if live.update(state=Build.State.QUEUED, builder=None, lease_until=None, started=None,
                   **demote) != 1:
        build = Build.objects.filter(id=build_id).first()
        if build is None:
            raise NoSuchBuild(build_id)
        if build.builder_id == builder.id and build.state not in LIVE_STATES:
            return build  # posted twice: the first result stands
        raise LeaseLost(build_id)
    storage.discard_incoming_on_commit(build_id)
    log.warning("build %s: not the package's fault, reported by %s (%s); queued again",
                build_id, builder, why)
    return Build.objects.get(id=build_id)


def rebuild(target, abi=None, requested_by="", now=None, arch=None):
    """Queue fresh builds of TARGET (a Project, a Version, or Versions) at REQUESTED
    priority, for ABI (a tag or Abi) or every active ABI, and for ARCH or every
    architecture each ABI is built for.

    Old builds and their files stay in the index until the new build succeeds (publish
    replaces them then). A job already queued is moved to the front; one already being
    built is left alone. Returns the number of jobs now queued at REQUESTED priority.
    """
    now = now or timezone.now()
    if isinstance(target, Project):
        versions = Version.objects.filter(project=target)
    elif isinstance(target, Version):
        versions = Version.objects.filter(id=target.id)
    else:
        versions = Version.objects.filter(id__in=[v.id for v in target])
    if abi is None:
        abis = list(Abi.objects.filter(active=True))
    else:
        tag = abi.tag if isinstance(abi, Abi) else abi
        abis = list(Abi.objects.filter(tag=tag))
        if not abis:
            raise UnknownAbi(f"the farm does not build for ABI {tag!r}")
    if arch is not None and not any(arch in a.arch_list() for a in abis):
        check_arch(abis[0], arch)
    pairs = [(a, x) for a in abis for x in a.arch_list() if arch in (None, x)]
    wanted = versions.buildable().only("id", "requires_python", "upstream_wheels")
    # Not the jobs a rule excludes (builds/rules.py): rebuilding them would make nothing
    # pip should install.
    jobs = [(v.id, a, x) for v in wanted for a, x in pairs
            if not rules.skip_reason(v, a.tag, x)]
    version_ids = sorted({vid for vid, _, _ in jobs})
    with transaction.atomic():
        queued = Build.objects.filter(
            version_id__in=version_ids, abi__in=abis, state=Build.State.QUEUED
        )
        if arch is not None:
            queued = queued.filter(arch=arch)
        bumped = queued.update(priority=Build.Priority.REQUESTED,
                               requested_by=requested_by[:150])
        live = set(
            Build.objects.filter(version_id__in=version_ids, abi__in=abis)
            .live().values_list("version_id", "abi_id", "arch")
        )
        new = [
            Build(version_id=vid, abi=a, arch=x, priority=Build.Priority.REQUESTED,
                  created=now, requested_by=requested_by[:150])
            for vid, a, x in jobs if (vid, a.id, x) not in live
        ]
        Build.objects.bulk_create(new, batch_size=5000, ignore_conflicts=True)
    log.info("rebuild: %d jobs queued, %d moved to the front (by %s)", len(new), bumped,
             requested_by or "the farm")
    return len(new) + bumped


def add_abi(tag, now=None, batch_size=100_000, os_release=None, archs=None):
    """Build for ABI TAG from now on: create or re-activate it, and queue the backlog of
    every buildable version without a build for it, at BACKLOG priority (new releases
    still go first). One INSERT ... SELECT per batch of version ids, each in its own
    transaction, so 8 million versions take minutes, not hours. OS_RELEASE (a codename,
    "" for any) says which builders may build it; None leaves it as it was. ARCHS (a
    list, or "armv7l,aarch64") are added to the architectures it is built for (a new
    ABI: armv7l when None), and the backlog is queued for each of them that lacks it.
    Returns (abi, queued)."""
    if not ABI_TAG.match(tag):
        raise UnknownAbi(f"{tag!r} does not look like an interpreter ABI tag (e.g. cp311)")
    if os_release and not platforms.valid_os_release(os_release):
        raise WrongRelease(f"{os_release!r} is not an OS release codename such as bookworm")
    if isinstance(archs, str):
        archs = parse_archs(archs)
    elif archs is not None:
        archs = parse_archs(",".join(archs))
    now = now or timezone.now()
    first = ",".join(archs) if archs else platforms.DEFAULT_ARCH
    abi, _ = Abi.objects.get_or_create(tag=tag, defaults={"added": now, "archs": first})
    changes = {} if abi.active else {"active": True}
    if os_release is not None and os_release != abi.os_release:
        changes["os_release"] = os_release
    enabled = abi.arch_list() + [a for a in archs or () if a not in abi.arch_list()]
    if enabled != abi.arch_list():
        changes["archs"] = ",".join(enabled)
    if changes:
        Abi.objects.filter(id=abi.id).update(**changes)
        for key, value in changes.items():
            setattr(abi, key, value)
    bounds = Version.objects.aggregate(lo=Min("id"), hi=Max("id"))
    if bounds["lo"] is None:
        return abi, 0
    queued = 0
    for lo in range(bounds["lo"], bounds["hi"] + 1, batch_size):
        for arch in abi.arch_list():
            versions = (
                Version.objects.buildable()
                .filter(id__gte=lo, id__lt=lo + batch_size)
                .exclude(Exists(Build.objects.filter(version=OuterRef("pk"), abi=abi,
                                                     arch=arch)))
                .order_by("id")
                .values_list("id", flat=True)
            )
            select, params = versions.query.sql_with_params()
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    f"INSERT INTO {Build._meta.db_table} (version_id, abi_id, arch, state,"
                    " priority, attempt, created, failure_reason, skip_reason, requested_by)"
                    f" SELECT v.id, %s, %s, %s, %s, 0, %s, '', '', '' FROM ({select}) AS v"
                    " WHERE 1 = 1 ON CONFLICT DO NOTHING",
                    [abi.id, arch, Build.State.QUEUED, Build.Priority.BACKLOG, now, *params],
                )
                queued += cursor.rowcount
        # The jobs a rule excludes (Requires-Python, an upstream wheel) become skipped.
        ruled = (Version.objects.filter(id__gte=lo, id__lt=lo + batch_size)
                 .exclude(requires_python="", upstream_wheels=[])
                 .values_list("id", flat=True))
        for start in range(0, len(ruled := list(ruled)), 5000):
            queued -= rules.apply(ruled[start:start + 5000], now=now).skipped
    log.info("ABI %s (%s): %d backlog jobs queued", tag, abi.archs, queued)
    return abi, queued

