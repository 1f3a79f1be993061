"""Checking a wheel before the farm accepts it: from a builder's upload or from
`import_wheels`, the same rules.

A wheel is accepted when its filename parses (packaging), names the expected project,
version and ABI, has no path tricks, and the file is a zip with exactly one
`<name>-<version>.dist-info/` holding WHEEL, METADATA and RECORD, whose METADATA names
the same project and version. The METADATA bytes are kept: the index serves them beside
the wheel (PEP 658).

ABI rule: a job for ABI X accepts wheels tagged with ABI X, and also wheels tagged `none`
(pure Python, or no Python ABI at all) or `abi3` (CPython's stable ABI): building on X is
what produced them, and they serve X's users.
"""
import hashlib
import zipfile
from dataclasses import dataclass
from email.parser import BytesParser
from pathlib import Path

from packaging.utils import (
    InvalidWheelFilename,
    canonicalize_name,
    canonicalize_version,
    parse_wheel_filename,
)

# ABI tags that any job may produce, whatever ABI it builds for.
UNIVERSAL_ABIS = frozenset({"none", "abi3"})
# Largest METADATA file read into memory.
MAX_METADATA = 10 * 1024**2


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


def check_filename(filename, expected_name=None, expected_version=None, expected_abi=None):
    """Parse a wheel filename and match it against the job; returns
    (name, version, python_tag, abi_tag, platform_tag). Raises InvalidWheel."""
    if not filename or any(c in filename for c in ("/", "\\", "\x00")) or ".." in filename:
        raise InvalidWheel(f"the filename {filename!r} contains a path or control character")
    if filename.startswith("."):
        raise InvalidWheel(f"the filename {filename!r} starts with a dot")
    try:
        name, version, _build, _tags = parse_wheel_filename(filename)
    except InvalidWheelFilename as exc:
        raise InvalidWheel(f"{filename!r} is not a valid wheel filename: {exc}") from None
    python_tag, abi_tag, platform_tag = filename[: -len(".whl")].split("-")[-3:]
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
    return str(name), str(version), python_tag, abi_tag, platform_tag


def _same_version(parsed, expected):
    return canonicalize_version(parsed) == canonicalize_version(expected)


def inspect(path, expected_name=None, expected_version=None, expected_abi=None, filename=None):
    """Check the wheel at PATH (named FILENAME, default the path's own name) and return
    its WheelInfo. Raises InvalidWheel with a one-sentence reason."""
    path = Path(path)
    filename = filename or path.name
    name, version, python_tag, abi_tag, platform_tag = check_filename(
        filename, expected_name, expected_version, expected_abi
    )
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            dist_infos = {
                n.split("/", 1)[0]
                for n in names
                if "/" in n and n.split("/", 1)[0].endswith(".dist-info")
            }
            if len(dist_infos) != 1:
                raise InvalidWheel(
                    f"{filename} has {len(dist_infos)} .dist-info directories, not one"
                )
            dist_info = dist_infos.pop()
            di_name, _, di_version = dist_info[: -len(".dist-info")].rpartition("-")
            if canonicalize_name(di_name) != name or not _same_version(di_version, version):
                raise InvalidWheel(f"{filename} holds {dist_info}, which does not match it")
            for member in ("WHEEL", "METADATA", "RECORD"):
                if f"{dist_info}/{member}" not in names:
                    raise InvalidWheel(f"{filename} has no {dist_info}/{member}")
            info = zf.getinfo(f"{dist_info}/METADATA")
            if info.file_size > MAX_METADATA:
                raise InvalidWheel(f"{filename} has a METADATA file over {MAX_METADATA} bytes")
            metadata = zf.read(info)
            wheel = zf.read(f"{dist_info}/WHEEL")
    except zipfile.BadZipFile:
        raise InvalidWheel(f"{filename} is not a zip file") from None
    except (zipfile.LargeZipFile, NotImplementedError, RuntimeError, OSError) as exc:
        raise InvalidWheel(f"{filename} cannot be read as a zip file: {exc}") from None
    if b"Wheel-Version:" not in wheel:
        raise InvalidWheel(f"{filename} has a WHEEL file without Wheel-Version")
    headers = BytesParser().parsebytes(metadata, headersonly=True)
    if canonicalize_name(headers.get("Name", "") or "") != name:
        raise InvalidWheel(f"{filename} has METADATA for {headers.get('Name')!r}")
    if not _same_version(headers.get("Version", "") or "", version):
        raise InvalidWheel(f"{filename} has METADATA for version {headers.get('Version')!r}")
    return WheelInfo(
        filename=filename,
        name=name,
        version=version,
        python_tag=python_tag,
        abi_tag=abi_tag,
        platform_tag=platform_tag,
        requires_python=(headers.get("Requires-Python") or "").strip(),
        metadata=metadata,
    )
