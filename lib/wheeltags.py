"""Giving a wheel another name: its filename tags, and with them the WHEEL file's `Tag:`
(and `Build:`) lines and RECORD's entry for WHEEL, kept consistent as `wheel tags` does.

Only `<dist-info>/WHEEL` and `<dist-info>/RECORD` change; every other member is copied
with its name, date, permissions and compression, and the project name and version (so
the `.dist-info` directory) stay what they were. The caller checks the result with the
same check an upload gets (builds.wheels.inspect).
"""
import base64
import csv
import hashlib
import io
import os
import tempfile
import zipfile
from pathlib import Path

from packaging.utils import canonicalize_name, canonicalize_version, parse_wheel_filename

from lib import datafiles


class RetagError(ValueError):
    """The wheel cannot be given that name; the message says why."""


def record_hash(data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode()}"


def wheel_file_text(text, tags, build):
    """The WHEEL file TEXT with its Tag lines replaced by TAGS (in order, after the other
    headers, as bdist_wheel writes them) and its Build line by BUILD (None: removed)."""
    kept = [
        line for line in text.splitlines()
        if line.strip() and line.split(":", 1)[0].strip().lower() not in ("tag", "build")
    ]
    kept += [f"Tag: {tag}" for tag in tags]
    if build:
        kept.append(f"Build: {build}")
    return "\n".join(kept) + "\n\n"


def retag(src, dest_dir, filename):
    """Write the wheel at SRC into DEST_DIR as FILENAME (its project and version, other
    tags or build number); returns its path. Written under a temporary name first, so a
    reader never sees a half-written wheel."""
    try:
        name, version, build, _ = parse_wheel_filename(filename)
    except ValueError as exc:
        raise RetagError(f"cannot name a wheel {filename}: {exc}") from None
    tag_lines = _tag_lines(filename)
    dest = Path(dest_dir) / filename
    with zipfile.ZipFile(src) as source:
        infos = source.infolist()
        wheel_name = _dist_info_member(infos, "WHEEL")
        record_name = _dist_info_member(infos, "RECORD")
        dist_name, _, dist_version = wheel_name.split("/")[0][:-len(".dist-info")].rpartition("-")
        if (canonicalize_name(dist_name), canonicalize_version(dist_version)) != (
                name, canonicalize_version(version)):
            raise RetagError(f"{filename} names another project or version than "
                             f"{wheel_name.split('/')[0]}")
        wheel_text = source.read(wheel_name).decode("utf-8")
        new_wheel = wheel_file_text(
            wheel_text, tag_lines, str(build[0]) + build[1] if build else None
        ).encode()
        new_record = _record_text(source.read(record_name).decode("utf-8"), wheel_name,
                                  new_wheel).encode()
        fd, tmp = tempfile.mkstemp(dir=dest_dir, prefix=f".{filename}.", suffix=".tmp")
        try:
            datafiles.set_file_mode(fd)  # mkstemp's 0600 would be unreadable to nginx
        finally:
            os.close(fd)
        try:
            with zipfile.ZipFile(tmp, "w") as out:
                for info in infos:
                    if info.filename == wheel_name:
                        out.writestr(_like(info), new_wheel)
                    elif info.filename == record_name:
                        out.writestr(_like(info), new_record)
                    else:
                        with source.open(info) as member, out.open(_like(info), "w") as copy:
                            while chunk := member.read(1024 * 1024):
                                copy.write(chunk)
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return dest


def _tag_lines(filename):
    """The expanded tags of a wheel filename, in its own order (py2.py3-none-any gives
    py2-none-any, py3-none-any)."""
    python, abi, platform = filename[:-4].split("-")[-3:]
    return [f"{p}-{a}-{pl}" for p in python.split(".") for a in abi.split(".")
            for pl in platform.split(".")]


def _dist_info_member(infos, member):
    found = [i.filename for i in infos
             if i.filename.count("/") == 1 and i.filename.split("/")[0].endswith(".dist-info")
             and i.filename.endswith(f"/{member}")]
    if len(found) != 1:
        raise RetagError(f"the wheel has {len(found)} .dist-info/{member} files, not one")
    return found[0]


def _record_text(text, wheel_name, new_wheel):
    rows = list(csv.reader(io.StringIO(text)))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    seen = False
    for row in rows:
        if not row:
            continue
        if row[0] == wheel_name:
            row = [wheel_name, record_hash(new_wheel), str(len(new_wheel))]
            seen = True
        writer.writerow(row)
    if not seen:
        raise RetagError(f"RECORD has no entry for {wheel_name}")
    return out.getvalue()


def _like(info):
    """A ZipInfo for writing a member as INFO was: name, date, mode, compression."""
    copy = zipfile.ZipInfo(info.filename, date_time=info.date_time)
    copy.compress_type = info.compress_type
    copy.external_attr = info.external_attr
    copy.create_system = info.create_system
    copy.comment = info.comment
    copy.extra = b""
    return copy
