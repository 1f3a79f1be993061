"""A build's whole log, kept gzip-compressed in its spool entry until the farm has it.

The farm takes the log on its own (``PUT /api/v1/builds/<id>/log/``, gzip). When it
refuses one as too large, a shorter one is made: the head and the tail of the log around
a note saying how much was left out, each try keeping a quarter of the one before.
"""
import codecs
import gzip
import os
import shutil

# The head is a quarter of what is kept: the end of a log says why a build failed.
HEAD_SHARE = 4
CHUNK = 1024 * 1024


def compress(src, dst):
    """Write the gzip of the file SRC to DST, durably and atomically; returns its
    inflated size."""
    with open(src, "rb") as f:
        _write_gzip(dst, lambda out: shutil.copyfileobj(f, out, CHUNK))
        return f.tell()


def compress_text(text, dst):
    _write_gzip(dst, lambda out: out.write(text.encode("utf-8")))


def _write_gzip(dst, fill):
    tmp = f"{dst}.tmp"
    with open(tmp, "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as out:
            fill(out)
        raw.flush()
        os.fsync(raw.fileno())
    os.replace(tmp, dst)


def inflated_size(path):
    """Bytes the gzip file at PATH inflates to (read through, nothing kept)."""
    total = 0
    with gzip.open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            total += len(chunk)
    return total


def excerpt(path, limit):
    """At most LIMIT characters of the gzip log at PATH as text: all of it, or its head
    and its tail around a note. NULs are dropped. Memory stays about LIMIT."""
    head_cap = limit // HEAD_SHARE
    head, tail, tail_len, total = [], [], 0, 0
    decode = codecs.getincrementaldecoder("utf-8")(errors="replace").decode
    head_len = 0
    with gzip.open(path, "rb") as f:
        while True:
            chunk = f.read(CHUNK)
            text = decode(chunk, final=not chunk).replace("\x00", "")
            total += len(text)
            if head_len < head_cap:
                take = text[: head_cap - head_len]
                head.append(take)
                head_len += len(take)
                text = text[len(take):]
            if text:
                tail.append(text)
                tail_len += len(text)
                while len(tail) > 1 and tail_len - len(tail[0]) >= limit - head_cap:
                    tail_len -= len(tail.pop(0))
            if not chunk:
                break
    head, tail = "".join(head), "".join(tail)
    if total <= limit:
        return head + tail
    note_room = len(_note(total))
    room = max(0, limit - len(head) - note_room)
    tail = tail[max(0, len(tail) - room):] if room else ""
    return head + _note(total - len(head) - len(tail)) + tail


def shortened(path, limit, dst):
    """Write to DST the gzip of the log at PATH cut to LIMIT characters (excerpt)."""
    compress_text(excerpt(path, limit), dst)


def _note(left_out):
    return f"\n[piwheels-builder: {left_out} characters of this log left out here]\n"

