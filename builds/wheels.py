"""Checking a wheel before the farm keeps it: inspect() is called alike for a builder's
upload (builds/publish.py) and for `import_wheels`, and refuses, with one sentence
(InvalidWheel), what PyPI would refuse and what could hurt the people who install it:

- a filename that is not exactly the one `packaging` would write for its name, version,
  build and tags (lower-case, normalised name and version), longer than MAX_FILENAME, or
  not matching the job (project, version, ABI);
- a zip that can be read two ways (builds/zips.py), over the members limit;
- a member path that is absolute, climbs out (`..`), has a backslash or a drive letter,
  or a member that is a symlink or a special file;
- members, or the whole, over the unpacked-size limits or, past
  PIWHEELS_WHEEL_RATIO_MIN_SIZE, compressed more than PIWHEELS_WHEEL_MAX_RATIO to one;
- not exactly one `<name>-<version>.dist-info/` with WHEEL (`Wheel-Version: 1.x`,
  `Root-Is-Purelib`, `Tag:` lines giving the filename's tags), METADATA (valid core
  metadata per `packaging.metadata`, of the same project and version) and RECORD
  (every member but RECORD and its signatures, each with its sha256 and size).

Nothing is inflated whole into memory: members are streamed in 64 KiB chunks, and
reading stops as soon as a bound is passed. The METADATA bytes are kept: the index
serves them beside the wheel (PEP 658).

ABI rule: a job for ABI X accepts wheels tagged with ABI X, and also wheels tagged `none`
(pure Python, or no Python ABI at all) or `abi3` (CPython's stable ABI): building on X is
what produced them, and they serve X's users.
"""
import base64
import csv
import hashlib
import io
import os
import re
import stat
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

from django.conf import settings
from packaging.metadata import InvalidMetadata, Metadata, parse_email
from packaging.tags import parse_tag
from packaging.utils import (
    InvalidWheelFilename,
    canonicalize_name,
    canonicalize_version,
    parse_wheel_filename,
)

from builds import inspection, zips
from lib import elfmachine, manylinux, platforms

# ABI tags that any job may produce, whatever ABI it builds for.
UNIVERSAL_ABIS = frozenset({"none", "abi3"})
# Longest filename taken: stored as `<name>.metadata` beside the wheel, within the
# 255 bytes a file name may have on Linux filesystems (and File.filename's 255).
MAX_FILENAME = 240
# Largest .dist-info/WHEEL read (a dozen short lines in practice).
MAX_WHEEL_FILE = 64 * 1024
RECORD_HASHES = frozenset({"sha256", "sha384", "sha512"})
_DIST = re.compile(r"^[a-z0-9]+(?:_[a-z0-9]+)*$")
_TAG = re.compile(r"^[a-z0-9_]+$")
_DRIVE = re.compile(r"^[A-Za-z]:")


class InvalidWheel(ValueError):
    """The file is not a wheel the farm accepts; the message says why in one sentence."""


@dataclass(frozen=True)
class WheelInfo:
    filename: str
    name: str  # normalised project name
    version: str
    python_tag: str  # as in the filename, e.g. "cp311" or "py2.py3"
    abi_tag: str
    platform_tag: str
    requires_python: str
    metadata: bytes  # the core metadata file (.dist-info/METADATA)

    @property
    def metadata_sha256(self):
        return hashlib.sha256(self.metadata).hexdigest()

    @property
    def abis(self):
        return frozenset(self.abi_tag.split("."))


@dataclass(frozen=True)
class _Name:
    name: str
    version: object  # packaging Version
    build: tuple
    tags: frozenset
    python_tag: str
    abi_tag: str
    platform_tag: str


def check_filename(filename, expected_name=None, expected_version=None, expected_abi=None):
    """Parse a wheel filename and match it against the job; returns
    (name, version, python_tag, abi_tag, platform_tag). Raises InvalidWheel."""
    parsed = _parse_filename(filename, expected_name, expected_version, expected_abi)
    return (parsed.name, str(parsed.version), parsed.python_tag, parsed.abi_tag,
            parsed.platform_tag)


def _parse_filename(filename, expected_name, expected_version, expected_abi):
    if not isinstance(filename, str) or not filename:
        raise InvalidWheel("the filename is empty")
    if len(filename) > MAX_FILENAME:
        raise InvalidWheel(f"the filename {filename[:40]!r}... is {len(filename)} characters "
                           f"long, over the limit of {MAX_FILENAME}")
    if any(c in filename for c in ("/", "\\")) or ".." in filename or any(
            ord(c) < 0x20 or ord(c) == 0x7F for c in filename):
        raise InvalidWheel(f"the filename {filename!r} contains a path or control character")
    if filename.startswith("."):
        raise InvalidWheel(f"the filename {filename!r} starts with a dot")
    try:
        name, version, build, tags = parse_wheel_filename(filename)
    except InvalidWheelFilename as exc:
        raise InvalidWheel(f"{filename!r} is not a valid wheel filename: {exc}") from None
    python_tag, abi_tag, platform_tag = filename[: -len(".whl")].split("-")[-3:]
    canonical = _canonical_filename(name, version, build, python_tag, abi_tag, platform_tag)
    if filename != canonical:
        raise InvalidWheel(f"{filename!r} is not a wheel filename as packaging writes it: "
                           f"that would be {canonical!r}")
    if expected_name is not None and name != canonicalize_name(expected_name):
        raise InvalidWheel(f"{filename!r} is not a wheel of {expected_name}")
    if expected_version is not None and not _same_version(version, expected_version):
        raise InvalidWheel(f"{filename!r} is not a wheel of version {expected_version}")
    if expected_abi is not None:
        abis = set(abi_tag.split("."))
        if expected_abi not in abis and not abis & UNIVERSAL_ABIS:
            raise InvalidWheel(
                f"{filename!r} is tagged for ABI {abi_tag}, not {expected_abi} (or none/abi3)"
            )
    return _Name(str(name), version, build, tags, python_tag, abi_tag, platform_tag)


def _canonical_filename(name, version, build, python_tag, abi_tag, platform_tag):
    """The filename packaging's rules give: the name normalised with underscores, the
    version in its normal form, each tag lower-case, once, and a platform tag that looks
    like one (`any`, `win32`, or os_arch: this refuses `...-any.whl.whl`)."""
    dist = canonicalize_name(name).replace("-", "_")
    if not _DIST.match(dist):
        raise InvalidWheel(f"{name!r} is not a valid project name for a wheel filename")
    tags = []
    for part, is_platform in ((python_tag, False), (abi_tag, False), (platform_tag, True)):
        seen = []
        for tag in part.lower().split("."):
            if not _TAG.match(tag) or tag in seen:
                continue
            if is_platform and tag not in ("any", "win32") and "_" not in tag:
                continue
            seen.append(tag)
        tags.append(".".join(seen) or "any")
    build_tag = f"-{build[0]}{build[1]}" if build else ""
    return f"{dist}-{version}{build_tag}-{'-'.join(tags)}.whl"


def _same_version(parsed, expected):
    return canonicalize_version(parsed) == canonicalize_version(expected)


@dataclass(frozen=True)
class Limits:
    member_size: int
    unpacked: int
    members: int
    ratio: int
    ratio_min_size: int
    metadata: int

    @classmethod
    def from_settings(cls):
        return cls(
            member_size=settings.PIWHEELS_WHEEL_MAX_MEMBER_SIZE,
            unpacked=settings.PIWHEELS_WHEEL_MAX_UNPACKED,
            members=settings.PIWHEELS_WHEEL_MAX_MEMBERS,
            ratio=settings.PIWHEELS_WHEEL_MAX_RATIO,
            ratio_min_size=settings.PIWHEELS_WHEEL_RATIO_MIN_SIZE,
            metadata=settings.PIWHEELS_WHEEL_MAX_METADATA,
        )


def inspect(path, expected_name=None, expected_version=None, expected_abi=None, filename=None):
    """Check the wheel at PATH (named FILENAME, default the path's own name) and return
    its WheelInfo. Raises InvalidWheel with a one-sentence reason."""
    path = Path(path)
    filename = filename or path.name
    parsed = _parse_filename(filename, expected_name, expected_version, expected_abi)
    limits = Limits.from_settings()
    try:
        with open(path, "rb") as f:
            return _inspect_open(f, os.fstat(f.fileno()).st_size, filename, parsed, limits)
    except zips.BadZip as exc:
        raise InvalidWheel(f"{filename} is not a zip file the farm accepts: {exc}") from None
    except OSError as exc:
        raise InvalidWheel(f"{filename} cannot be read: {exc.strerror}") from None


def _inspect_open(f, file_size, filename, parsed, limits):
    members = zips.read_members(f, file_size, limits.members)
    for member in members:
        _check_member(filename, member)
    _check_sizes(filename, members, file_size, limits)
    dist_info = _dist_info(filename, members, parsed)
    by_name = {m.name: m for m in members}
    for part in ("WHEEL", "METADATA", "RECORD"):
        if f"{dist_info}/{part}" not in by_name:
            raise InvalidWheel(f"{filename} has no {dist_info}/{part}")
    wheel = _read(f, by_name[f"{dist_info}/WHEEL"], MAX_WHEEL_FILE, "the WHEEL file limit")
    _check_wheel_file(filename, wheel, parsed)
    metadata = _read(f, by_name[f"{dist_info}/METADATA"], limits.metadata,
                     "the METADATA limit (PIWHEELS_WHEEL_MAX_METADATA)")
    requires_python = _check_metadata(filename, metadata, parsed)
    record = _read_record(f, filename, by_name[f"{dist_info}/RECORD"], by_name, limits)
    unlisted = {f"{dist_info}/RECORD", f"{dist_info}/RECORD.jws", f"{dist_info}/RECORD.p7s"}
    for member in members:
        if member.is_dir:
            continue
        listed = record.get(member.name)
        if listed is None and member.name not in unlisted:
            raise InvalidWheel(f"{filename}: RECORD does not list {member.name}")
        algorithm, digest, size = listed or ("sha256", None, None)
        hasher = hashlib.new(algorithm)
        for chunk in zips.inflate(f, member, limits.member_size, "the member size limit"):
            hasher.update(chunk)
        if size is not None and size != member.size:
            raise InvalidWheel(f"{filename}: RECORD gives {member.name} {size} bytes, "
                               f"not its {member.size}")
        if digest is not None and _b64(hasher.digest()) != digest:
            raise InvalidWheel(f"{filename}: {member.name} does not match its hash in RECORD")
    return WheelInfo(
        filename=filename, name=parsed.name, version=str(parsed.version),
        python_tag=parsed.python_tag, abi_tag=parsed.abi_tag,
        platform_tag=parsed.platform_tag, requires_python=requires_python,
        metadata=metadata,
    )


def _check_member(filename, member):
    name = member.name
    if "\\" in name:
        raise InvalidWheel(f"{filename} has a member with a backslash in its path: {name!r}")
    if name.startswith("/"):
        raise InvalidWheel(f"{filename} has a member with an absolute path: {name!r}")
    parts = (name[:-1] if member.is_dir else name).split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise InvalidWheel(f"{filename} has a member whose path leaves the wheel or is not "
                           f"plain: {name!r}")
    if _DRIVE.match(parts[0]):
        raise InvalidWheel(f"{filename} has a member with a drive letter: {name!r}")
    kind = stat.S_IFMT(member.mode)
    if kind == stat.S_IFLNK:
        raise InvalidWheel(f"{filename} has a symbolic link: {name!r}")
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR) or (
            kind == stat.S_IFDIR) != member.is_dir and kind:
        raise InvalidWheel(f"{filename} has a member that is not a regular file: {name!r}")
    if member.is_dir and member.size:
        raise InvalidWheel(f"{filename} has a directory entry with data: {name!r}")


def _check_sizes(filename, members, file_size, limits):
    total = 0
    for m in members:
        if m.size > limits.member_size:
            raise InvalidWheel(f"{filename}: {m.name} unpacks to {m.size} bytes, over the "
                               f"limit of {limits.member_size} (PIWHEELS_WHEEL_MAX_MEMBER_SIZE)")
        if m.size > limits.ratio_min_size and m.size > limits.ratio * max(m.compressed, 1):
            raise InvalidWheel(f"{filename}: {m.name} unpacks to {m.size} bytes from "
                               f"{m.compressed}, a ratio over {limits.ratio} "
                               "(PIWHEELS_WHEEL_MAX_RATIO)")
        total += m.size
    if total > limits.unpacked:
        raise InvalidWheel(f"{filename} unpacks to {total} bytes, over the limit of "
                           f"{limits.unpacked} (PIWHEELS_WHEEL_MAX_UNPACKED)")
    if total > limits.ratio_min_size and total > limits.ratio * max(file_size, 1):
        raise InvalidWheel(f"{filename} unpacks to {total} bytes from {file_size}, a ratio "
                           f"over {limits.ratio} (PIWHEELS_WHEEL_MAX_RATIO)")


def _dist_info(filename, members, parsed):
    dist_infos = {
        m.name.split("/", 1)[0] for m in members
        if "/" in m.name and m.name.split("/", 1)[0].endswith(".dist-info")
    }
    if len(dist_infos) != 1:
        raise InvalidWheel(f"{filename} has {len(dist_infos)} .dist-info directories, not one")
    dist_info = dist_infos.pop()
    di_name, _, di_version = dist_info[: -len(".dist-info")].rpartition("-")
    if canonicalize_name(di_name) != parsed.name or not _same_version(di_version,
                                                                      parsed.version):
        raise InvalidWheel(f"{filename} holds {dist_info}, which does not match it")
    return dist_info


def _read(f, member, cap, what):
    """MEMBER's bytes, refused unread when it declares more than CAP, and never inflated
    past CAP whatever it declares."""
    if member.size > cap:
        raise InvalidWheel(f"{member.name} is {member.size} bytes, over {what} of {cap}")
    return b"".join(zips.inflate(f, member, cap, what))


def _check_wheel_file(filename, data, parsed):
    try:
        headers = Parser().parsestr(data.decode("utf-8"), headersonly=True)
    except UnicodeDecodeError:
        raise InvalidWheel(f"{filename} has a WHEEL file that is not UTF-8") from None
    version = (headers.get("Wheel-Version") or "").strip()
    if not version:
        raise InvalidWheel(f"{filename} has a WHEEL file without Wheel-Version")
    if not re.fullmatch(r"1\.\d+", version):
        raise InvalidWheel(f"{filename} has Wheel-Version {version!r}, not 1.x")
    purelib = (headers.get("Root-Is-Purelib") or "").strip().lower()
    if purelib not in ("true", "false"):
        raise InvalidWheel(f"{filename} has a WHEEL file without Root-Is-Purelib true or false")
    tags = set()
    try:
        for line in headers.get_all("Tag") or []:
            tags |= parse_tag(line.strip())
    except ValueError:
        raise InvalidWheel(f"{filename} has a malformed Tag line in WHEEL") from None
    if tags != set(parsed.tags):
        listed = ", ".join(sorted(str(t) for t in tags)) or "none"
        raise InvalidWheel(f"{filename} has WHEEL tags ({listed}) that are not its "
                           "filename's")
    # The filename's build tag, or none: a `Build:` line in a wheel whose name has no
    # build tag would tell installers another build than the one its name says.
    build = (headers.get("Build") or "").strip()
    if build != (f"{parsed.build[0]}{parsed.build[1]}" if parsed.build else ""):
        raise InvalidWheel(f"{filename} has WHEEL build {build!r}, not its filename's "
                           f"({'none' if not parsed.build else repr(parsed.build)})")


# Metadata-Versions before PEP 639's 2.4, under which a License-File is not validated.
_BEFORE_LICENSE_FILE = frozenset({"1.0", "1.1", "1.2", "2.0", "2.1", "2.2", "2.3"})


def core_metadata(data):
    """The packaging Metadata of the core metadata bytes DATA, validated as PyPI validates
    an upload: every field parsed (an unknown or malformed one is an error) and checked by
    `Metadata.from_raw`, except `License-File` under a Metadata-Version before 2.4.
    setuptools (56 to 76) and other backends wrote it there for years, before PEP 639
    defined it (pypa/packaging#862: about 75% of wheels in a real environment carry it);
    twine leaves it out of what it sends to PyPI under those versions, and PyPI, which
    validates what twine sends, stores the wheel with it. Raises InvalidMetadata or an
    ExceptionGroup of them."""
    raw, unparsed = parse_email(data)
    if unparsed:
        errors = [InvalidMetadata(key, f"unrecognized or malformed field {key!r}")
                  for key in unparsed]
        raise ExceptionGroup("invalid or unparsed metadata", errors)
    if raw.get("metadata_version") in _BEFORE_LICENSE_FILE:
        raw.pop("license_files", None)
    return Metadata.from_raw(raw, validate=True)


def _check_metadata(filename, data, parsed):
    """The Requires-Python of valid core metadata for the filename's project and version."""
    try:
        metadata = core_metadata(data)
    except ExceptionGroup as group:
        raise InvalidWheel(f"{filename} has METADATA that is not valid core metadata: "
                           f"{group.exceptions[0]}") from None
    except (InvalidMetadata, ValueError) as exc:
        raise InvalidWheel(f"{filename} has METADATA that is not valid core metadata: "
                           f"{exc}") from None
    if canonicalize_name(metadata.name) != parsed.name:
        raise InvalidWheel(f"{filename} has METADATA for {metadata.name!r}")
    if metadata.version != parsed.version:
        raise InvalidWheel(f"{filename} has METADATA for version {str(metadata.version)!r}")
    return str(metadata.requires_python or "")


class _Chunks(io.RawIOBase):
    """A readable stream over an iterator of byte chunks (a member being inflated)."""

    def __init__(self, chunks):
        self._chunks, self._left = iter(chunks), b""

    def readable(self):
        return True

    def readinto(self, buffer):
        while not self._left:
            self._left = next(self._chunks, None)
            if self._left is None:
                self._left = b""
                return 0
        n = min(len(buffer), len(self._left))
        buffer[:n], self._left = self._left[:n], self._left[n:]
        return n


def _read_record(f, filename, member, by_name, limits):
    """{member name: (hash algorithm, urlsafe-base64 digest or None, size or None)} from
    RECORD, streamed row by row: each row must name a member, once."""
    stream = io.TextIOWrapper(
        io.BufferedReader(_Chunks(zips.inflate(f, member, limits.member_size,
                                               "the member size limit"))),
        encoding="utf-8", newline="",
    )
    record = {}
    try:
        for row in csv.reader(stream):
            if not row:
                continue
            if len(row) != 3:
                raise InvalidWheel(f"{filename} has a RECORD row of {len(row)} fields, not 3")
            path, hash_, size = row
            if path not in by_name:
                raise InvalidWheel(f"{filename}: RECORD lists {path!r}, which is not in it")
            if path in record:
                raise InvalidWheel(f"{filename}: RECORD lists {path!r} twice")
            if path == member.name or path.endswith(("/RECORD.jws", "/RECORD.p7s")):
                if not hash_:
                    record[path] = ("sha256", None, None)
                    continue
            algorithm, _, digest = hash_.partition("=")
            if algorithm not in RECORD_HASHES or not digest:
                raise InvalidWheel(f"{filename}: RECORD gives {path} no sha256 (or better) "
                                   "hash")
            if not size.isdigit():
                raise InvalidWheel(f"{filename}: RECORD gives {path} no size")
            record[path] = (algorithm, digest, int(size))
    except UnicodeDecodeError:
        raise InvalidWheel(f"{filename} has a RECORD that is not UTF-8") from None
    except csv.Error as exc:
        raise InvalidWheel(f"{filename} has a malformed RECORD: {exc}") from None
    return record


def _b64(digest):
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def received_info(filename, metadata):
    """The WheelInfo of a wheel that inspect() passed, from its filename and the METADATA
    bytes kept beside it, without reading the archive again."""
    parsed = _parse_filename(filename, None, None, None)
    return WheelInfo(
        filename=filename, name=parsed.name, version=str(parsed.version),
        python_tag=parsed.python_tag, abi_tag=parsed.abi_tag,
        platform_tag=parsed.platform_tag,
        requires_python=_check_metadata(filename, metadata, parsed), metadata=metadata,
    )


def check_machine(path, filename, platform):
    """Refuse (InvalidWheel) a wheel with compiled code for another machine than the
    PLATFORM its builder said it builds for (lib/elfmachine.py)."""
    found = elfmachine.foreign_object(path, platform)
    if found is not None:
        member, machine = found
        raise InvalidWheel(
            f"{filename}: {member} is {machine} code, but this builder builds for "
            f"{platform}"
        )


@dataclass(frozen=True)
class Served:
    """The name a checked wheel is served under (docs/portable-wheels.md)."""
    filename: str
    glibc: str  # the glibc of its manylinux name, else the newest its objects need ("")
    note: str  # why a `linux_<arch>` tag was kept ("" when none was)


def served_name(path, filename, glibc="", from_objects=False):
    """Check what FILENAME's platform tags claim of the wheel at PATH (lib/manylinux.py),
    after inspect() passed it: a `manylinux` tag its compiled code does not keep is
    refused (InvalidWheel, with the reason). A `linux_<arch>` tag becomes
    `manylinux_<glibc>_<arch>` only when the code keeps that: for GLIBC "X.Y" (the
    builder's), or, when GLIBC is "" and FROM_OBJECTS (an import), for the oldest policy
    it meets; else it stays `linux_<arch>`, and the note says why. An upload from an
    agent that did not say its glibc keeps its name, as before."""
    parts = platforms.split_filename(filename)
    if parts is None:
        return Served(filename, glibc, "")
    *head, platform = parts
    tags = platform.split(".")
    claims = [(tag, manylinux.claim(tag)) for tag in tags]
    linux = [(tag, manylinux.linux_arch(tag)) for tag in tags]
    # linux_armv6l & co: no manylinux tag exists for them, nothing to check or rename.
    arches = {c.arch for _, c in claims if c} | {
        a for _, a in linux if a in platforms.MANYLINUX_ARCHS}
    if not arches:
        return Served(filename, glibc, "")  # any, win32, macosx...: nothing to check here
    try:
        analyses = inspection.analyse_manylinux(path, arches)
    except manylinux.CannotCheck as exc:
        raise InvalidWheel(f"{filename}: {exc}") from None
    served_glibc = glibc
    for _tag, found in claims:
        if found and not analyses[found.arch].keeps(found.glibc):
            raise InvalidWheel(f"{filename} claims more than it keeps: "
                               f"{analyses[found.arch].why_not(found.glibc)}")
        if found and not served_glibc:
            served_glibc = manylinux.glibc_text(found.glibc)
    wanted = _glibc_tuple(glibc)
    new_tags, notes = [], []
    for tag, arch in linux:
        if arch is None or arch not in platforms.MANYLINUX_ARCHS:
            new_tags.append(tag)
            continue
        analysis = analyses[arch]
        target = wanted or (analysis.best if from_objects else None)
        if not wanted and not from_objects:
            new_tags.append(tag)  # the builder's glibc unknown: named as it was built
            continue
        if not analysis.has_code and not wanted:
            new_tags.append(tag)  # no compiled code to read a glibc from: kept as is
            continue
        if target and analysis.keeps(target):
            new_tags.append(f"manylinux_{target[0]}_{target[1]}_{arch}")
            served_glibc = manylinux.glibc_text(target)
        else:
            new_tags.append(tag)
            newest = max(analysis.external, default=None)
            notes.append(analysis.why_not(target or newest) if (target or newest) else
                         f"auditwheel has no manylinux policy for {arch}")
            served_glibc = glibc or manylinux.glibc_text(analysis.glibc_needed)
    platform = ".".join(dict.fromkeys(new_tags))
    return Served(platforms.join_filename(*head, platform), served_glibc, "; ".join(notes))


def _glibc_tuple(glibc):
    if not glibc or not platforms.GLIBC.match(glibc):
        return None
    major, minor = glibc.split(".")
    return (int(major), int(minor))
