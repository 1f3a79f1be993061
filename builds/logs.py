"""Build logs: kept whole and gzip-compressed on disk, an excerpt in the BuildLog row.

    incoming/<build id>/build.log.gz        a log uploaded before its build's finish
    incoming/<build id>/build.log.json      its excerpt, made while it was received
    logs/<build id // 10000>/<build id>.log.gz   the whole log of a finished build

The BuildLog row keeps at most PIWHEELS_MAX_LOG characters: the whole output when it
fits, else its head and its tail with one note where the middle was cut (this module
writes the only note; pages show the row as it is).

A log arrives either on its own (receive_log: a gzip body streamed to disk, inflated
incrementally to check it and bound its size, never held whole in memory) or, from an
older agent, inside the finish body (excerpt / store_whole of that text).
"""
import codecs
import gzip
import json
import logging
import os
import shutil
import time
import uuid
import zlib
from pathlib import Path

from django.conf import settings

from builds import storage
from builds.queue import hold
from lib import datafiles

log = logging.getLogger(__name__)

UPLOADED = "build.log.gz"
UPLOADED_EXCERPT = "build.log.json"
# The head is a quarter of what is kept: the end of a log says why a build failed.
HEAD_SHARE = 4


class LogRefused(ValueError):
    """A log upload the farm cannot take; the message says why in one sentence."""


class LogTooLarge(LogRefused):
    pass


def whole_log_path(build_id):
    return Path(settings.PIWHEELS_DATA_DIR) / "logs" / str(build_id // 10000) / f"{build_id}.log.gz"


def cut_note(left_out):
    return f"\n[farm: {left_out} characters of this log left out here; it is kept whole]\n"


class Excerpt:
    """Text fed in pieces; keeps at most CAP characters of it: all of it, or the head
    and the tail around one note. NULs are dropped (PostgreSQL text cannot hold them)."""

    def __init__(self, cap=None):
        self.cap = settings.PIWHEELS_MAX_LOG if cap is None else cap
        self.head_cap = self.cap // HEAD_SHARE
        self.head = []
        self.head_len = 0
        self.tail = []  # pieces; the last tail_cap characters at least
        self.tail_len = 0
        self.total = 0

    def feed(self, text):
        text = text.replace("\x00", "")
        self.total += len(text)
        if self.head_len < self.head_cap:
            take = text[: self.head_cap - self.head_len]
            self.head.append(take)
            self.head_len += len(take)
            text = text[len(take):]
        if text:
            self.tail.append(text)
            self.tail_len += len(text)
            keep = self.cap - self.head_cap
            while len(self.tail) > 1 and self.tail_len - len(self.tail[0]) >= keep:
                self.tail_len -= len(self.tail.pop(0))

    def result(self):
        """(text, truncated)."""
        head, tail = "".join(self.head), "".join(self.tail)
        if self.total <= self.cap:
            return head + tail, False
        # Room for the tail beside a note whose count has as many digits as it can.
        room = max(0, self.cap - len(head) - len(cut_note(self.total)))
        tail = tail[max(0, len(tail) - room):] if room else ""
        return head + cut_note(self.total - len(head) - len(tail)) + tail, True


def excerpt(output):
    """(text, truncated): what the BuildLog row keeps of OUTPUT."""
    cut = Excerpt()
    cut.feed(output or "")
    return cut.result()


def receive_log(build_id, builder, chunks, size, now):
    """Store the gzip-compressed log of build BUILD_ID, which BUILDER holds, from the byte
    CHUNKS (SIZE bytes in all). A later upload replaces an earlier one until the build
    finishes. Returns (compressed bytes, inflated bytes)."""
    if size is None:
        raise LogRefused("Content-Length is required")
    if size > settings.PIWHEELS_MAX_LOG_UPLOAD:
        raise LogTooLarge(
            f"{size} bytes is over the log upload limit of "
            f"{settings.PIWHEELS_MAX_LOG_UPLOAD} bytes (compressed): send less of the log"
        )
    hold(build_id, builder, now)
    limit = settings.PIWHEELS_MAX_LOG_INFLATED
    incoming = datafiles.makedirs(storage.incoming_dir(build_id))
    part = incoming / f".{UPLOADED}.{uuid.uuid4().hex}.part"
    inflate = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip framing
    text = codecs.getincrementaldecoder("utf-8")(errors="replace")
    cut = Excerpt()
    inflated = compressed = 0
    ratio, ratio_from = settings.PIWHEELS_LOG_MAX_RATIO, settings.PIWHEELS_LOG_RATIO_MIN_SIZE

    def read(chunk):
        nonlocal inflated, compressed
        data = chunk
        compressed += len(chunk)
        while data and not inflate.eof:
            # At most 1 MiB inflated at a time: a gzip bomb never fills memory.
            piece = inflate.decompress(data, 1024 * 1024)
            inflated += len(piece)
            if inflated > limit:
                raise LogTooLarge(f"the log inflates to over {limit} bytes: send less of it")
            # A bomb is refused after RATIO_MIN_SIZE inflated, not after LIMIT: a
            # build log compresses 5-20 times, a run of zeros 1,000 times.
            if ratio and inflated > ratio_from and inflated > ratio * compressed:
                raise LogTooLarge(
                    f"the log inflates more than {ratio} times its compressed size "
                    "(PIWHEELS_LOG_MAX_RATIO): send less of it")
            cut.feed(text.decode(piece))
            data = inflate.unconsumed_tail
        if inflate.eof and (data or inflate.unused_data):
            raise LogRefused("the body must be one gzip stream and nothing after it")

    try:
        received = storage.write_chunks(part, chunks, size, read)
        if received != size:
            raise LogRefused(f"the body was not the {size} bytes Content-Length declared")
        if not inflate.eof:
            raise LogRefused("the body is not a whole gzip stream")
        cut.feed(text.decode(b"", final=True))
        kept, truncated = cut.result()
        hold(build_id, builder, now)  # still ours after a long upload?
        _write_json(incoming / UPLOADED_EXCERPT, {"output": kept, "truncated": truncated})
        os.replace(part, incoming / UPLOADED)
    except zlib.error as exc:
        raise LogRefused(f"the body is not valid gzip ({exc})") from None
    finally:
        part.unlink(missing_ok=True)
    log.info("build %s: log received from %s (%d bytes, %d inflated)", build_id, builder,
             size, inflated)
    return size, inflated


def pending_excerpt(build_id, output):
    """(text, truncated) for the row of a finishing build: the excerpt of its uploaded
    log when there is one, else of the OUTPUT the finish body carried."""
    path = storage.incoming_dir(build_id) / UPLOADED_EXCERPT
    try:
        kept = json.loads(path.read_text(encoding="utf-8"))
        return kept["output"], kept["truncated"]
    except (OSError, ValueError, KeyError):
        return excerpt(output)


def store_whole(build_id, output):
    """Keep the whole log of a finishing build under logs/: its uploaded log when there
    is one, else OUTPUT, compressed. Call before its incoming dir is removed. The
    uploaded log is linked (copied across filesystems), not moved: a finish whose
    transaction then fails leaves it in incoming/ for the retry, which would otherwise
    find none and keep the (empty) output instead."""
    target = whole_log_path(build_id)
    datafiles.makedirs(target.parent)
    uploaded = storage.incoming_dir(build_id) / UPLOADED
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    if uploaded.is_file():
        try:
            try:
                os.link(uploaded, tmp)
            except OSError:
                shutil.copyfile(uploaded, tmp)
                datafiles.set_file_mode(tmp)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return target
    if not output and target.is_file():
        return target  # kept already, by a finish that did not commit: not emptied
    try:
        with datafiles.create(tmp, "wb") as raw, gzip.open(raw, "wt", encoding="utf-8",
                                                            compresslevel=6) as f:
            f.write(output or "")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def remove_stray_logs(older_than=3600):
    """Delete the whole logs under logs/ of builds that do not exist (an import refused
    before issue 20's fix left its log behind), last written over OLDER_THAN seconds ago
    (a finish or an import writes its log before its build's row commits); their count."""
    from builds.models import Build

    root = Path(settings.PIWHEELS_DATA_DIR) / "logs"
    found = {}
    cutoff = time.time() - older_than
    for path in root.glob("*/*.log.gz") if root.is_dir() else ():
        build_id = path.name[: -len(".log.gz")]
        if build_id.isdigit() and path.stat().st_mtime < cutoff:
            found[int(build_id)] = path
    ids = list(found)
    existing = set()
    for at in range(0, len(ids), 10_000):
        existing.update(Build.objects.filter(id__in=ids[at:at + 10_000])
                        .values_list("id", flat=True))
    stray = [path for build_id, path in found.items() if build_id not in existing]
    for path in stray:
        path.unlink(missing_ok=True)
    return len(stray)


def _write_json(path, data):
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    datafiles.write_bytes(tmp, json.dumps(data).encode("utf-8"))
    os.replace(tmp, path)
