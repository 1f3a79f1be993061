"""Small factory functions with explicit defaults: no random data."""
import base64
import hashlib
import io
import struct
import zipfile
import zlib
from collections import namedtuple
from datetime import timedelta
from pathlib import Path

from django.utils import timezone
from packaging.utils import canonicalize_name

from builds.models import Abi, Build, Builder, BuildLog, File, hash_token
from packages.models import Project, Version


def make_project(name="foo", versions=(), **fields):
    project = Project.objects.create(
        name=name, normalized_name=canonicalize_name(name), **fields
    )
    for version in versions:
        make_version(project, version)
    return project


def make_version(project, version="1.0", **fields):
    fields.setdefault("has_sdist", True)
    fields.setdefault("released", timezone.now())
    return Version.objects.create(project=project, version=version, **fields)


def make_abi(tag="cp311", active=True, archs=None):
    """The ABI TAG, built for ARCHS ("armv7l,aarch64"; None: as it is, armv7l if new)."""
    abi = Abi.objects.get_or_create(tag=tag, defaults={"active": active})[0]
    if archs is not None and abi.archs != archs:
        abi.archs = archs
        abi.save(update_fields=["archs"])
    return abi


def make_builder(name="pi1", token=None, abi="cp311", **fields):
    token = token or f"token-{name}"
    builder = Builder.objects.create(
        name=name, token_hash=hash_token(token), abi=make_abi(abi) if abi else None, **fields
    )
    builder.token = token  # the plain token, for tests to authenticate with
    return builder


def make_build(version, abi="cp311", state=Build.State.SUCCEEDED, builder=None, output="",
               **fields):
    now = timezone.now()
    if state in (Build.State.SUCCEEDED, Build.State.FAILED):
        fields.setdefault("started", now - timedelta(minutes=1))
        fields.setdefault("finished", now)
        fields.setdefault("duration", timedelta(minutes=1))
    build = Build.objects.create(
        version=version, abi=make_abi(abi) if isinstance(abi, str) else abi,
        state=state, builder=builder, **fields
    )
    if output:
        BuildLog.objects.create(build=build, output=output)
    return build


def make_file(build, filename=None, content=b"wheel", **fields):
    version = build.version
    if filename is None:
        name = canonicalize_name(version.project.name).replace("-", "_")
        filename = f"{name}-{version.version}-{build.abi.tag}-{build.abi.tag}-linux_armv7l.whl"
    python_tag, abi_tag, platform_tag = filename[:-4].split("-")[-3:]
    fields.setdefault("size", len(content))
    fields.setdefault("sha256", hashlib.sha256(content).hexdigest())
    return File.objects.create(
        build=build, filename=filename, python_tag=python_tag, abi_tag=abi_tag,
        platform_tag=platform_tag, **fields
    )


Wheel = namedtuple("Wheel", "filename content metadata requires_python")


def _record_hash(data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode()}"


def wheel_members(name, version, tag="py3-none-any", requires_python="", requires_dist=(),
                  dist=None):
    """(filename, {archive name: bytes}) of an installable wheel of one module DIST (NAME
    normalised, underscored) holding VERSION, RECORD last and listing the others."""
    dist = dist or canonicalize_name(name).replace("-", "_")
    filename = f"{dist}-{version}-{tag}.whl"
    dist_info = f"{dist}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    if requires_python:
        metadata += f"Requires-Python: {requires_python}\n"
    for requirement in requires_dist:
        metadata += f"Requires-Dist: {requirement}\n"
    pure = "true" if tag.endswith("-any") else "false"
    members = {
        f"{dist}/__init__.py": f"VERSION = {version!r}\n".encode(),
        f"{dist_info}/METADATA": metadata.encode(),
        f"{dist_info}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: piwheels-tests\nRoot-Is-Purelib: {pure}\n"
            f"Tag: {tag}\n"
        ).encode(),
    }
    return filename, with_record(members, f"{dist_info}/RECORD")


def with_record(members, record_path):
    """MEMBERS with a RECORD at RECORD_PATH listing each of them (after them)."""
    members = {k: v for k, v in members.items() if k != record_path}
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n"
                     for path, data in members.items() if not path.endswith("/"))
    return {**members, record_path: (record + f"{record_path},,\n").encode()}


def wheel_archive(name, version, tag="py3-none-any", requires_python="", requires_dist=(),
                  dist=None):
    """An installable wheel of one module DIST (NAME normalised, underscored) holding
    VERSION, as a Wheel of its filename, bytes and core metadata."""
    filename, members = wheel_members(name, version, tag, requires_python, requires_dist, dist)
    metadata = next(v for k, v in members.items() if k.endswith(".dist-info/METADATA"))
    return Wheel(filename, _zip(members), metadata, requires_python)


def zip_entry(name, content=b"", method=zipfile.ZIP_DEFLATED, **fields):
    """One member for craft_zip: CONTENT deflated (or stored), with its true CRC-32 and
    sizes, a regular file (mode 0o100644) made on Unix, unless FIELDS say otherwise:
    raw (the bytes stored), crc, size, mode, flags, extra, comment, hidden (a local entry
    the central directory leaves out), local (fields of a local header that disagrees:
    name, flags, method, crc, csize, size)."""
    if "raw" not in fields:
        if method == zipfile.ZIP_DEFLATED:
            deflater = zlib.compressobj(6, zlib.DEFLATED, -15)
            fields["raw"] = deflater.compress(content) + deflater.flush()
        else:
            fields["raw"] = content
    entry = {"name": name, "method": method, "crc": zlib.crc32(content), "size": len(content),
             "flags": 0 if name.isascii() else 0x800, "mode": 0o100644, "extra": b"",
             "comment": b"", "hidden": False, "local": {}}
    entry.update(fields)
    return entry


def craft_zip(entries, prefix=b"", between=b"", suffix=b"", comment=b""):
    """The bytes of a zip of ENTRIES (zip_entry dicts), written field by field so that a
    test can make it malformed: PREFIX before the first entry, BETWEEN after the first,
    SUFFIX after the end record, an archive COMMENT."""
    out, central = bytearray(prefix), []
    for i, e in enumerate(entries):
        offset, name = len(out), e["name"].encode()
        local = {"name": name, "flags": e["flags"], "method": e["method"], "crc": e["crc"],
                 "csize": len(e["raw"]), "size": e["size"], **e["local"]}
        out += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, local["flags"],
                           local["method"], 0, 0x5821, local["crc"], local["csize"],
                           local["size"], len(local["name"]), 0)
        out += local["name"] + e["raw"]
        if i == 0:
            out += between
        if not e["hidden"]:
            central.append(struct.pack(
                "<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", (3 << 8) | 20, 20, e["flags"],
                e["method"], 0, 0x5821, e["crc"], len(e["raw"]), e["size"], len(name),
                len(e["extra"]), len(e["comment"]), 0, 0, e["mode"] << 16, offset,
            ) + name + e["extra"] + e["comment"])
    start = len(out)
    out += b"".join(central)
    out += struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(central), len(central),
                       len(out) - start, start, len(comment))
    return bytes(out + comment + suffix)


def _zip(members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in members.items():
            archive.writestr(zipfile.ZipInfo(path, date_time=(2024, 1, 1, 0, 0, 0)), data)
    return buffer.getvalue()


def make_wheel(directory, name="foo", version="1.0", tags="cp311-cp311-linux_armv7l",
               requires_python="", members=None, filename=None):
    """Write a small valid wheel into DIRECTORY and return its path. MEMBERS (a dict of
    archive name -> bytes) replaces the whole archive, to make broken ones."""
    built = wheel_archive(name, version, tags, requires_python)
    path = Path(directory) / (filename or built.filename)
    path.write_bytes(built.content if members is None else _zip(members))
    return path
