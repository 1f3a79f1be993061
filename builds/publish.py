"""How a build's wheels get from a builder into the index.

Uploads are streamed into storage.incoming_dir(build_id) (hashed while written, under a
temporary name, checked whole by wheels.inspect, then renamed in place by the upload that
claims the build's Upload row for that filename, which records the hash and size);
beside each wheel goes `<wheel>.metadata` (its core metadata). Nothing in incoming/ is
served. What a wheel's platform tags claim is checked on receipt (wheels.served_name,
lib/manylinux.py): a manylinux name its code does not keep is refused. A wheel whose
platform tag is `linux_<arch>` and whose code keeps the manylinux policy of the builder's
glibc is also written, on receipt, under the name it is served by (`manylinux_2_36_armv7l`
from a Bookworm builder; lib/platforms.py says why), its WHEEL and RECORD rewritten to
match (lib/wheeltags.py) and checked again like an upload, and renamed into place with
the upload that claims the Upload row. One that does not is served as built,
`linux_<arch>`, and why goes on its Upload row, then on its File (`portable_note`: the
project page shows it). At publication each armv7l file is checked once
for ARMv6 code (lib/elfarm.py); the result and the armv6l name it is offered under go on
its File row.

finish() publishes a successful build in one transaction: File rows created,
files moved under files/, the files of the build it replaces kept and marked superseded
(listed yanked, "rebuilt as ..."), the project's index serial bumped, so the index shows
all of a build's files at once or none. A name once served never names other bytes
(ServedName): a file whose name is taken is published under the next build tag.
"""
import hashlib
import logging
import os
import re
import shutil
import uuid
import zipfile
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from packaging.utils import canonicalize_version, parse_wheel_filename

from builds import depwait, failures, inspection, logs, queue, rules, sql, storage, wheels
from builds.models import (
    FINISHED_STATES,
    LIVE_STATES,
    Abi,
    Build,
    BuildLog,
    File,
    ServedName,
    Upload,
)
from builds.queue import LeaseLost, NoSuchBuild, hold
from lib import datafiles, debian, platforms, wheeltags
from packages.models import Project, Version

log = logging.getLogger(__name__)

SHA256 = re.compile(r"^[0-9a-f]{64}$")


class UploadRefused(ValueError):
    """A bad upload (size, hash, headers); the message says why in one sentence."""


class UploadTooLarge(UploadRefused):
    pass


class UploadTimedOut(UploadRefused):
    """The body stopped coming, or came too slowly (api/ answers 408)."""


class UploadConflict(UploadRefused):
    """Other bytes were already received under this filename for this build (409)."""


class FinishRefused(ValueError):
    """A result the farm cannot accept; nothing was changed."""


def receive_file(build_id, builder, filename, chunks, size, sha256, now):
    """Store one uploaded wheel of build BUILD_ID from the byte CHUNKS (an iterable),
    which must come to SIZE bytes with hex digest SHA256. Returns True when stored,
    False when the same bytes were already there (a retry).

    Everything that can be checked without the body is checked before it is read (the
    filename first). The body goes to a temporary file, hashed on the way, and is
    checked whole (wheels.inspect); then, in one transaction holding the build's row,
    the (build, filename) Upload row is claimed, and only the upload that
    claims it renames its file in place: of two racing uploads of different bytes one
    is kept with its own hash and the other refused (UploadConflict), never mixed."""
    parsed = wheels.check_filename(filename)  # before any other work: any name is a 4xx
    if size is None:
        raise UploadRefused("Content-Length is required")
    if size > settings.PIWHEELS_MAX_UPLOAD:
        raise UploadTooLarge(
            f"{size} bytes is over the upload limit of {settings.PIWHEELS_MAX_UPLOAD} bytes"
        )
    sha256 = (sha256 or "").lower()
    if not SHA256.match(sha256):
        raise UploadRefused("X-Sha256 must be the hex sha256 of the body")
    hold(build_id, builder, now)
    build = Build.objects.select_related("version__project", "abi").get(id=build_id)
    version = build.version
    wheels.check_filename(filename, version.project.name, version.version, build.abi.tag)
    arch = platforms.wheel_arch(parsed[4])
    if arch and arch != build.arch:
        raise UploadRefused(f"{filename} is a wheel for {arch}, and build {build_id} is "
                            f"for {build.arch}")
    if _already_received(build, filename, sha256, size):
        return False
    incoming = datafiles.makedirs(storage.incoming_dir(build_id))
    # Fixed-length temporary names: a long filename must not make them too long.
    part = incoming / f".upload-{uuid.uuid4().hex}.part"
    retagged = None
    try:
        digest = hashlib.sha256()
        received = storage.write_chunks(part, chunks, size, digest.update)
        if received != size:
            raise UploadRefused(f"the body was not the {size} bytes Content-Length declared")
        if digest.hexdigest() != sha256:
            raise UploadRefused("the body's sha256 is not the X-Sha256 declared")
        info = wheels.inspect(part, version.project.name, version.version, build.abi.tag,
                              filename=filename)
        # The machine the builder said it builds for (the wheel's own platform where it
        # said none): a stolen token cannot publish code for another one.
        wheels.check_machine(part, filename, builder.platform or parsed[4])
        # What its name claims, checked; manylinux only when its code keeps it.
        portable = wheels.served_name(part, filename, build.glibc)
        served = portable.filename
        if served != filename:  # checked now, renamed into place with the upload itself
            retagged = _retag_checked(part, incoming, served, version, build.abi.tag)
        with transaction.atomic():
            hold(build_id, builder, timezone.now())  # locks the build's row till commit
            if _already_received(build, filename, sha256, size):
                return False
            Upload.objects.create(build_id=build_id, filename=filename, size=size,
                                  sha256=sha256, received=timezone.now(),
                                  portable_note="" if retagged else portable.note)
            _write(incoming / f"{filename}.metadata", info.metadata)
            if retagged is not None:
                _write(incoming / f"{served}.metadata", info.metadata)
                os.replace(retagged, incoming / served)
            os.replace(part, incoming / filename)
    finally:
        part.unlink(missing_ok=True)
        if retagged is not None:
            _discard_retagged(retagged)
    log.info("build %s: %s received from %s (%d bytes, %s)", build_id, parsed[0], builder,
             size, filename)
    return True


def _already_received(build, filename, sha256, size):
    """True when these very bytes were received for BUILD; raises UploadConflict when
    others were."""
    row = Upload.objects.filter(build_id=build.id, filename=filename).first()
    if row is None:
        return False
    if (row.sha256, row.size) != (sha256, size):
        raise UploadConflict(f"{filename} was already received for build {build.id} with "
                             f"sha256 {row.sha256}: a build's file, once received, does not "
                             "change")
    return True


def _retag_checked(path, directory, served, version, abi_tag):
    """The wheel at PATH rewritten as SERVED (lib/wheeltags.py) in a private folder under
    DIRECTORY, checked as an upload is; its path. Nothing under the served name yet."""
    private = datafiles.makedirs(Path(directory) / f".retag-{uuid.uuid4().hex}")
    try:
        target = wheeltags.retag(path, private, served)
        wheels.inspect(target, version.project.name, version.version, abi_tag)
    except (wheeltags.RetagError, zipfile.BadZipFile, KeyError, UnicodeDecodeError) as exc:
        _discard_retagged(private / served)
        raise wheels.InvalidWheel(f"cannot name the wheel {served}: {exc}") from None
    except BaseException:
        _discard_retagged(private / served)
        raise
    return target


def _discard_retagged(target):
    Path(target).unlink(missing_ok=True)
    shutil.rmtree(Path(target).parent, ignore_errors=True)


def _hash_file(path):
    """(hex sha256, size) of the file at PATH."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1024 * 1024), b""):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def finish(build_id, builder, success, duration, output, failure_reason="", files=(),
           now=None):
    """Record BUILDER's result for build BUILD_ID; on success publish its FILES (dicts
    with filename, size, sha256, and optionally requires_python and dependencies), which
    must all have been uploaded. Posting the same result again changes nothing."""
    now = now or timezone.now()
    if not success and failures.is_farm_fault(failure_reason):
        return queue.retry_farm_fault(build_id, builder, failure_reason, now)
    # Why it failed, and the Debian package that would fix it (builds/depwait.py), read
    # from the log the agent sent on its own (PUT .../log/: its finish carries no output),
    # else from the output inside the finish (older agents). Its kept excerpt ends with
    # the log's tail, where the classifier looks.
    diagnosis = {} if success else depwait.diagnose(
        builder, builder.abi_id, logs.pending_excerpt(build_id, output)[0], failure_reason)
    if diagnosis.get("cause") in failures.BUILDERS_SIDE and Build.objects.filter(
            id=build_id, builder_id=builder.id, state__in=LIVE_STATES,
            attempt__lt=settings.PIWHEELS_MAX_ATTEMPTS).exists():
        return queue.retry_farm_fault(
            build_id, builder, f"{diagnosis['cause']}: {diagnosis['cause_detail']}", now)
    if success and Build.objects.filter(id=build_id, builder_id=builder.id,
                                        state__in=LIVE_STATES).exists():
        # What is read inside the wheels is read now, bounded, before the transaction
        # that holds the build's row (builds/inspection.py); only for this builder's live
        # job (anything else is refused below, without reading a byte).
        files = [dict(decl, inspection=_inspect_upload(build_id, decl)) for decl in files]
    if not success and connection.vendor == "postgresql":
        build = _fail_one_statement(build_id, builder, duration, output, failure_reason, now,
                                    diagnosis)
        if build is not None:
            log.info("build %s: %s %s for %s %s by %s", build.id, build.version.project.name,
                     build.version.version, build.abi.tag, build.state, builder)
            return build
        # not this builder's, unknown, or finished already: the general path says which
    with transaction.atomic():
        build = (
            Build.objects.select_related("version__project", "abi")
            .select_for_update(of=("self",)).filter(id=build_id).first()
        )
        if build is None:
            raise NoSuchBuild(build_id)
        if build.builder_id != builder.id:
            raise LeaseLost(build_id)
        if build.state in FINISHED_STATES:
            return build  # posted twice: the first result stands
        published = _check_declared(build, files) if success else []
        build.state = Build.State.SUCCEEDED if success else Build.State.FAILED
        build.finished = now
        build.duration = _duration(duration)
        build.lease_until = None
        build.failure_reason = "" if success else _reason(failure_reason)
        for field, value in diagnosis.items():
            setattr(build, field, value)
        build.save(update_fields=["state", "finished", "duration", "lease_until",
                                  "failure_reason", *diagnosis])
        keep_log(build, output)
        if success:
            _publish(build, published, now)
        storage.discard_incoming_on_commit(build_id)
    log.info("build %s: %s %s for %s %s by %s", build.id, build.version.project.name,
             build.version.version, build.abi.tag, build.state, builder)
    return build


def _inspect_upload(build_id, decl):
    """The Inspection of the uploaded file DECL names, or None when there is none to read
    (its name, or its absence, is refused in the transaction)."""
    filename = decl.get("filename")
    try:
        parsed = wheels.check_filename(filename)
    except wheels.InvalidWheel:
        return None
    path = storage.incoming_dir(build_id) / filename
    if not path.is_file():
        return None
    return inspection.inspect_contents(path, parsed[4])


def _fail_sql():
    """Record a failure and its log in one statement (finish() on PostgreSQL): the
    conditional UPDATE of the build (this builder's, not finished) and the INSERT ... ON
    CONFLICT of its log, answering the build, version, project and ABI tag, or nothing
    when the build was not this builder's live job."""
    b, v, p = Build._meta.db_table, Version._meta.db_table, Project._meta.db_table
    columns = ", ".join(
        sql.columns(Build, "d") + sql.columns(Version, "v") + sql.columns(Project, "p")
    )
    return f"""
        WITH done AS (
            UPDATE {b} SET state = 'failed', finished = %(now)s, duration = %(duration)s,
                lease_until = NULL, failure_reason = %(reason)s, cause = %(cause)s,
                cause_detail = %(cause_detail)s, apt = %(apt)s, waiting_for = %(waiting_for)s
            WHERE id = %(id)s AND builder_id = %(builder)s AND state IN ('queued', 'building')
            RETURNING *
        ), logged AS (
            INSERT INTO {BuildLog._meta.db_table} (build_id, output, truncated)
            SELECT id, %(output)s, %(truncated)s FROM done
            ON CONFLICT (build_id) DO UPDATE
            SET output = EXCLUDED.output, truncated = EXCLUDED.truncated
        )
        SELECT {columns}, a.tag
        FROM done d JOIN {v} v ON v.id = d.version_id JOIN {p} p ON p.id = v.project_id
        JOIN {Abi._meta.db_table} a ON a.id = d.abi_id
    """


def _duration(seconds):
    return timedelta(seconds=max(0.0, float(seconds or 0)))


def _reason(failure_reason):
    """A failure's reason as stored: never empty, at most the column's 400 characters."""
    return (failure_reason or "build failed")[:400]


def _fail_one_statement(build_id, builder, duration, output, failure_reason, now, diagnosis):
    """The failed build, or None when it is not BUILDER's live job (nothing changed)."""
    text, truncated = logs.pending_excerpt(build_id, output)
    row = sql.execute_prepared("builds_fail", _fail_sql, {
        "id": build_id, "builder": builder.id, "now": now,
        "duration": _duration(duration), "reason": _reason(failure_reason),
        "output": text, "truncated": truncated, **diagnosis,
    })
    if row is None:
        return None
    build = sql.build_from_row(row[:-1])
    build.abi = Abi(id=build.abi_id, tag=row[-1])
    build.builder = builder
    logs.store_whole(build_id, output)  # before its incoming dir goes
    storage.discard_incoming_on_commit(build_id)
    return build


def keep_log(build, output):
    """Store the log of BUILD, finishing: whole and compressed under logs/ (its uploaded
    log, else OUTPUT), and its excerpt (builds.logs) in the BuildLog row."""
    text, truncated = logs.pending_excerpt(build.id, output)
    BuildLog.objects.bulk_create(  # one INSERT ... ON CONFLICT DO UPDATE
        [BuildLog(build=build, output=text, truncated=truncated)],
        update_conflicts=True, unique_fields=["build"], update_fields=["output", "truncated"],
    )
    logs.store_whole(build.id, output)


def import_wheel(path, abi=None, now=None, requested_by="import_wheels", os_release="",
                 glibc=""):
    """Add the wheel at PATH, built elsewhere, as a succeeded build of its version,
    checked exactly like an upload (wheels.inspect, on the copy that is kept, so that
    what was checked is what is served). ABI defaults to the wheel's ABI tag, else its
    Python tag (cp311-abi3 -> cp311); pass one for pure wheels. A `linux_<arch>` wheel
    is served as `manylinux_<glibc>_<arch>` when its compiled code keeps that name
    (wheels.served_name): for GLIBC when given (the glibc it was built on, as a builder's
    upload), else for the oldest policy its objects meet; as `linux_<arch>` when it
    loads libraries outside every policy. Returns the build."""
    path = Path(path)
    filename = path.name
    wheels.check_filename(filename)  # before reading anything
    if os_release and not platforms.valid_os_release(os_release):
        raise FinishRefused(f"{os_release!r} is not an OS release codename such as bookworm")
    if glibc and not platforms.valid_glibc(glibc):
        raise FinishRefused(f"{glibc!r} is not a glibc version such as 2.36 (2.17 to 2.x)")
    staging = datafiles.makedirs(Path(settings.PIWHEELS_DATA_DIR) / "incoming")
    copy = staging / f".import-{uuid.uuid4().hex}.part"
    retagged = None
    try:
        sha256, size = _copy_hashed(path, copy)
        info = wheels.inspect(copy, filename=filename)
        project = Project.objects.named(info.name).first()
        if project is None:
            raise FinishRefused(f"there is no project named {info.name!r}")
        version = next(
            (v for v in project.versions.all()
             if canonicalize_version(v.version) == canonicalize_version(info.version)),
            None,
        )
        if version is None:
            raise FinishRefused(f"{project.name} has no version {info.version}")
        abi = _import_abi(info, abi)
        wheels.check_filename(filename, project.name, version.version, abi.tag)
        # GLIBC given: its manylinux name when the code keeps it; else the oldest policy
        # the code meets, read from its objects. Kept `linux_<arch>` when it meets none.
        portable = wheels.served_name(copy, filename, glibc, from_objects=True)
        served, glibc = portable.filename, portable.glibc
        if served != filename:
            retagged = _retag_checked(copy, staging, served, version, abi.tag)
            info = wheels.received_info(served, info.metadata)
            sha256, size = _hash_file(retagged)
        inspected = inspection.inspect_contents(retagged or copy, info.platform_tag)
        now = now or timezone.now()
        # A pure wheel is recorded for the farm's first architecture (its publication
        # completes the other architectures' queued jobs, as a built one does).
        arch = platforms.wheel_arch(info.platform_tag) or platforms.DEFAULT_ARCH
        if not platforms.ARCH.match(arch):
            raise FinishRefused(f"the farm builds no {arch} wheels (only for "
                                f"{', '.join(platforms.ARCHS)})")
        with transaction.atomic():
            # A queued job for this wheel is done by the import; one being built goes on.
            Build.objects.filter(version=version, abi=abi, arch=arch,
                                 state=Build.State.QUEUED).delete()
            build = Build.objects.create(
                version=version, abi=abi, arch=arch, state=Build.State.SUCCEEDED, started=now,
                finished=now, duration=timedelta(0), requested_by=requested_by,
                os_release=os_release, glibc=glibc,
            )
            incoming = datafiles.makedirs(storage.incoming_dir(build.id))
            try:
                os.replace(retagged or copy, incoming / served)
                _write(incoming / f"{served}.metadata", info.metadata)
                decl = {"filename": served, "size": size, "sha256": sha256,
                        "dependencies": [], "inspection": inspected,
                        "portable_note": portable.note}
                # An import brings exactly this file: a taken name is refused, not renamed.
                _publish(build, [(decl, info)], now, refuse_taken=True)
                keep_log(build, f"imported by {requested_by} from {filename}\n")
            except BaseException:
                # The rollback keeps no row: no file of the build that never was either
                # (its log would be served for a build that does not exist).
                shutil.rmtree(incoming, ignore_errors=True)
                logs.whole_log_path(build.id).unlink(missing_ok=True)
                raise
            storage.discard_incoming_on_commit(build.id)
    finally:
        copy.unlink(missing_ok=True)
        if retagged is not None:
            _discard_retagged(retagged)
    log.info("build %s: %s imported for %s as %s", build.id, filename, abi.tag, served)
    return build


def _copy_hashed(source, target):
    """Copy SOURCE to TARGET in 1 MiB chunks; (hex sha256, size) of what was copied."""
    digest = hashlib.sha256()
    with open(source, "rb") as src:
        size = storage.write_chunks(target, iter(lambda: src.read(1024 * 1024), b""),
                                    each=digest.update)
    return digest.hexdigest(), size


def _import_abi(info, abi):
    if abi is not None:
        found = Abi.objects.filter(tag=abi.tag if isinstance(abi, Abi) else abi).first()
    else:
        tags = [t for t in info.abi_tag.split(".") if t not in wheels.UNIVERSAL_ABIS]
        tags += info.python_tag.split(".")
        found = Abi.objects.filter(tag__in=tags).order_by("-active", "tag").first()
    if found is None:
        raise FinishRefused(f"no ABI of the farm matches {info.filename}; name one with --abi")
    return found


def _check_declared(build, files):
    """The declared files, each checked against what was received for the build (its
    Upload row, claimed when it passed wheels.inspect):
    [(decl, WheelInfo)]."""
    if not files:
        raise FinishRefused("a successful build must list the files it uploaded")
    incoming = storage.incoming_dir(build.id)
    names = [f["filename"] for f in files]
    if len(set(names)) != len(names):
        raise FinishRefused("the same file is listed twice")
    received = {
        u.filename: u for u in Upload.objects.filter(build_id=build.id, filename__in=names)
    }
    checked = []
    for decl in files:
        filename = decl["filename"]
        wheels.check_filename(filename)
        bad = next((d for d in decl.get("dependencies") or ()
                    if not debian.is_package_name(d)), None)
        if bad is not None:
            raise FinishRefused(f"{filename}: {bad!r} is not a Debian package name")
        row = received.get(filename)
        path = incoming / filename
        if row is None or not path.is_file():
            raise FinishRefused(f"{filename} was not uploaded")
        if (row.sha256, row.size) != (decl["sha256"].lower(), decl["size"]):
            raise FinishRefused(f"{filename} was uploaded with another size or sha256")
        served = platforms.served_filename(filename, build.glibc)
        # An upload received before Upload.portable_note existed says so by a marker file.
        if served != filename and (row.portable_note
                                   or (incoming / f"{filename}.kept").is_file()):
            served = filename  # its code does not keep the manylinux name: served as built
            decl = dict(decl, portable_note=row.portable_note)
        if served != filename:  # published under the name made for it on receipt
            path = incoming / served
            if not path.is_file():
                raise FinishRefused(f"{filename} was uploaded before this build's glibc "
                                    "was known: upload it again")
            sha256, size = _hash_file(path)
            decl = dict(decl, filename=served, size=size)
            filename = served
        else:
            sha256 = row.sha256
        metadata = (incoming / f"{filename}.metadata").read_bytes()
        checked.append((dict(decl, sha256=sha256), wheels.received_info(filename, metadata)))
    return checked


def _taken(filename, sha256, upstream_wheels):
    """Why FILENAME cannot name bytes SHA256 here ("" when it can): upstream has a file of
    that name, or the farm once served other bytes under it."""
    if filename in upstream_wheels:
        return "upstream has a file of that name"
    served = ServedName.objects.filter(filename=filename).values_list("sha256", flat=True)
    if any(s != sha256 for s in served):
        return "the farm has served other bytes under that name"
    return ""


def _names(filename, abi_tag):
    """The names a file would be served under: its own, and its armv6l name if it has
    one (the armv6l name is given only to ARMv6 code, but it must be free either way)."""
    return [n for n in (filename, platforms.armv6l_filename(filename, abi_tag)) if n]


def _fresh_name(filename, abi_tag, upstream_wheels, taken):
    """FILENAME with the lowest build tag (PEP 427: 1, 2, ...) above every one the farm
    or upstream used for this (distribution, version), whose names are all free (TAKEN:
    the names this publication gives already)."""
    name, version, _, *tags = platforms.split_filename(filename)
    used = set(upstream_wheels) | set(taken) | set(
        ServedName.objects.filter(filename__startswith=f"{name}-{version}-")
        .values_list("filename", flat=True)
    )
    numbers = [0]
    for other in used:
        parts = platforms.split_filename(other)
        if parts and parts[:2] == (name, version) and parts[2]:
            build = parse_wheel_filename(other)[2]
            numbers.append(build[0] if build else 0)
    number = max(numbers) + 1
    while True:
        candidate = platforms.join_filename(name, version, str(number), *tags)
        if not any(n in used for n in _names(candidate, abi_tag)):
            return candidate
        number += 1


def _rename_taken(build, decl, info, incoming, refuse, taken):
    """(decl, info) of a checked file, renamed with a build tag when its name is taken
    (FinishRefused instead when REFUSE: an import names exactly the file it brings)."""
    upstream_wheels = build.version.upstream_wheels or []
    reasons = [(n, _taken(n, decl["sha256"], upstream_wheels))
               for n in _names(info.filename, build.abi.tag)]
    why = "; ".join(f"{why} ({n})" if n != info.filename else why for n, why in reasons if why)
    if not why:
        return decl, info
    if refuse:
        raise FinishRefused(f"{info.filename} is refused: {why}")
    name = _fresh_name(info.filename, build.abi.tag, upstream_wheels, taken)
    # WHEEL's Build: line and RECORD rewritten, the result checked as an upload is.
    retagged = _retag_checked(incoming / info.filename, incoming, name, build.version,
                              build.abi.tag)
    try:
        os.replace(retagged, incoming / name)
    finally:
        _discard_retagged(retagged)
    _write(incoming / f"{name}.metadata", info.metadata)
    log.info("build %s: %s is taken (%s), published as %s", build.id, info.filename, why,
             name)
    sha256, size = _hash_file(incoming / name)
    return (dict(decl, filename=name, sha256=sha256, size=size),
            wheels.received_info(name, info.metadata))


def _publish(build, published, now, refuse_taken=False):
    """Inside the caller's transaction: make BUILD's checked files the ones the index
    lists for its (version, ABI). A name never names other bytes: a file whose name is
    taken (served before with other bytes, or upstream's) gets a build tag, or is refused
    with REFUSE_TAKEN. The files of an earlier successful build it replaces stay
    downloadable and are listed as yanked, "rebuilt as <new filename>"."""
    version, project = build.version, build.version.project
    had_files = File.objects.filter(build__version__project_id=project.id).exists()
    replaced = list(
        Build.objects.filter(version=version, abi=build.abi, arch=build.arch,
                             state=Build.State.SUCCEEDED)
        .exclude(id=build.id).values_list("id", flat=True)
    )
    old = {f.filename: f for f in File.objects.filter(build_id__in=replaced)}
    existing = {
        f.filename: f
        for f in File.objects.filter(filename__in=[info.filename for _, info in published])
    }
    incoming = storage.incoming_dir(build.id)
    moves, kept, made = [], set(), []
    # Names this publication gives: its files' own, then their armv6l names as they come.
    taken = {info.filename for _, info in published}
    for decl, info in published:
        row = existing.get(info.filename)
        elsewhere = row is not None and row.filename not in old
        if refuse_taken or not elsewhere:
            decl, info = _rename_taken(build, decl, info, incoming, refuse_taken, taken)
            taken.add(info.filename)
        if elsewhere:
            # The same (pure) wheel from another ABI's build of this version: keep that.
            log.info("build %s: %s is already served by build %s", build.id,
                     info.filename, row.build_id)
            continue
        same = old.get(info.filename)  # the same bytes under the same name
        armv6, alias = _armv6l_copy(build, incoming / info.filename, info, taken,
                                    own=same.id if same else None,
                                    inspected=decl.get("inspection"))
        fields = dict(
            build=build, size=decl["size"],
            sha256=decl["sha256"],
            python_tag=info.python_tag, abi_tag=info.abi_tag, platform_tag=info.platform_tag,
            requires_python=(info.requires_python or decl.get("requires_python") or "")[:200],
            dependencies=list(decl.get("dependencies") or []),
            metadata_sha256=info.metadata_sha256, uploaded=now,
            os_release=build.os_release, glibc=build.glibc,
            armv6_compatible=armv6, armv6l_filename=alias,
            portable_note=decl.get("portable_note", ""),
            shadowed_by=rules.shadowing_wheel(info.filename, version.upstream_wheels or [],
                                              build.abi.tag, build.arch),
        )
        made.append((info, decl["sha256"], alias))
        taken.add(alias)
        if same is not None:
            # Keep the row (and its download counts); the file on disk is these bytes.
            File.objects.filter(id=same.id).update(**fields)
            kept.add(info.filename)
            continue
        File.objects.create(filename=info.filename, **fields)
        moves.append(info.filename)
    # Remembered for ever, armv6l names too: not deleted with the file, its build,
    # version or project.
    ServedName.objects.bulk_create(
        [ServedName(filename=name, sha256=sha256, project=project.normalized_name,
                    first_served=now)
         for info, sha256, alias in made for name in (info.filename, alias) if name],
        ignore_conflicts=True,
    )
    infos = [info for info, _, _ in made]
    for filename, row in old.items():
        if filename not in kept and not row.superseded_by and infos:
            twin = next((i for i in infos if (i.python_tag, i.abi_tag, i.platform_tag)
                         == (row.python_tag, row.abi_tag, row.platform_tag)), infos[0])
            File.objects.filter(id=row.id).update(superseded_by=twin.filename)
    if all(info.abi_tag == "none" for _, info in published):
        _cover_other_abis(build, all(info.platform_tag == "any" for _, info in published),
                          now)
    Project.objects.filter(id=project.id).touch_index(root=not had_files and bool(moves), now=now)
    for filename in moves:  # last, so that a failure above leaves the disk untouched
        target = storage.file_path(project.normalized_name, filename)
        datafiles.makedirs(target.parent)
        os.replace(incoming / f"{filename}.metadata",
                   storage.metadata_path(project.normalized_name, filename))
        os.replace(incoming / filename, target)


def _armv6l_copy(build, path, info, taken, own=None, inspected=None):
    """(armv6_compatible, armv6l name or "") of the wheel at PATH: checked for armv7l
    wheels only (None for others), by INSPECTED (its Inspection, made before the
    transaction; a file without one is not offered to armv6l: nothing is parsed here,
    under the build's row lock). The name is left out when another file has it, as its
    own name or as its armv6l name (TAKEN: the names this publication gives; OWN: the id
    of the row being republished, whose names are its own)."""
    if not platforms.is_armv7l(info.platform_tag):
        return None, ""
    if inspected is None or not inspected.armv6_compatible:
        why = inspected.why if inspected is not None else "it was not inspected"
        log.info("build %s: %s is not offered to armv6l: %s", build.id, info.filename, why)
        return False, ""
    alias = platforms.armv6l_filename(info.filename, build.abi.tag) or ""
    if alias and (alias in taken or File.objects.filter(
            Q(filename=alias) | Q(armv6l_filename=alias)).exclude(id=own).exists()):
        log.info("build %s: %s is not offered as %s: another file has that name",
                 build.id, info.filename, alias)
        alias = ""
    return True, alias


def _cover_other_abis(build, pure, now):
    """A wheel of ABI none serves every ABI: the other ABIs' queued jobs of this version
    are done (piwheels' rule), recorded as succeeded with a note. A pure one (`any`)
    serves every architecture too, so it completes every queued job of the version; one
    with a platform tag (not PURE) serves only its architecture and OS release, so only
    the jobs of that architecture whose ABIs are built on that release."""
    others = Build.objects.filter(version=build.version, state=Build.State.QUEUED)
    if not pure:
        if not build.os_release:
            return
        others = others.filter(abi__os_release=build.os_release, arch=build.arch)
    covered = list(others.exclude(id=build.id).values_list("id", flat=True))
    Build.objects.filter(id__in=covered, state=Build.State.QUEUED).update(
        state=Build.State.SUCCEEDED, finished=now, duration=timedelta(0)
    )
    BuildLog.objects.bulk_create(
        [BuildLog(build_id=i, output=f"covered by the pure-Python wheel of build {build.id}\n")
         for i in covered],
        ignore_conflicts=True,
    )


def _write(path, data):
    tmp = path.with_name(f".write-{uuid.uuid4().hex}.tmp")  # short, whatever PATH's name
    datafiles.write_bytes(tmp, data)
    os.replace(tmp, path)


