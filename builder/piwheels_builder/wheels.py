"""What the farm is told about each built wheel."""
import hashlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
import zipfile
from email.parser import HeaderParser
from pathlib import Path

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

log = logging.getLogger(__name__)

# Every Debian system has these (debootstrap's minbase installs them: apt needs them);
# telling users to `apt install` them says nothing.
BASE_PACKAGES = frozenset({"libc6", "libgcc-s1", "libstdc++6", "zlib1g"})

_LDD_LINE = re.compile(r"^\s*(\S+)\s+=>\s+(\S+)\s+\(0x[0-9a-fA-F]+\)")
_LDD_DIRECT = re.compile(r"^\s*(/\S+)\s+\(0x[0-9a-fA-F]+\)")


def sha256_of(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def canonical_filename(filename):
    """The name `packaging` writes for this wheel, which is the only one the farm takes:
    the project name normalised with underscores, the version in normal form, lower-case
    tags. Old build backends write others (`Foo_Bar-1.00-...`); renaming changes nothing
    for installers, which match the .dist-info inside by its normalised name. FILENAME
    itself when it does not parse (the farm then says why it refuses it)."""
    try:
        name, version, build, _ = parse_wheel_filename(filename)
    except InvalidWheelFilename:
        return filename
    tags = "-".join(part.lower() for part in filename[: -len(".whl")].split("-")[-3:])
    build_tag = f"-{build[0]}{build[1]}" if build else ""
    return f"{canonicalize_name(name).replace('-', '_')}-{version}{build_tag}-{tags}.whl"


def with_canonical_name(path):
    """PATH renamed to its canonical_filename (in its directory); the new path."""
    path = Path(path)
    target = path.with_name(canonical_filename(path.name))
    if target != path:
        log.info("renaming %s to %s, the name packaging writes", path.name, target.name)
        os.replace(path, target)
    return target


def metadata_text(path):
    """The text of the wheel's ``*.dist-info/METADATA``."""
    with zipfile.ZipFile(path) as zf:
        names = [
            n for n in zf.namelist()
            if n.count("/") == 1 and n.split("/")[0].endswith(".dist-info")
            and n.endswith("/METADATA")
        ]
        if not names:
            raise ValueError(f"{Path(path).name} has no .dist-info/METADATA")
        return zf.read(names[0]).decode("utf-8", errors="replace")


def requires_python(metadata):
    """The Requires-Python field of core metadata text, or ''."""
    headers = HeaderParser().parsestr(metadata, headersonly=True)
    return (headers.get("Requires-Python") or "").strip()


def linked_libraries(so_path):
    """(name, absolute path) of each shared library ``ldd`` says a module loads, its own
    and theirs: the name is the one asked for (``libX11.so.6``)."""
    try:
        out = subprocess.run(
            ["ldd", str(so_path)], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    found = []
    for line in out.splitlines():
        m = _LDD_LINE.match(line)
        if m and m.group(2).startswith("/"):
            found.append((m.group(1), m.group(2)))
            continue
        m = _LDD_DIRECT.match(line)
        if m:
            found.append((os.path.basename(m.group(1)), m.group(1)))
    return found


def needed_names(path):
    """The DT_NEEDED entries of the ELF object at PATH (the libraries it asks for itself),
    or None when they cannot be read (pyelftools, which auditwheel brings, missing)."""
    try:
        from elftools.common.exceptions import ELFError
        from elftools.elf.dynamic import DynamicSection
        from elftools.elf.elffile import ELFFile
    except ImportError:
        return None
    try:
        with open(path, "rb") as f:
            names = set()
            for section in ELFFile(f).iter_sections():
                if isinstance(section, DynamicSection):
                    names.update(tag.needed for tag in section.iter_tags()
                                 if tag.entry.d_tag == "DT_NEEDED")
            return names
    except (ELFError, OSError, ValueError):
        return None


def debian_packages(paths):
    """The Debian packages (``dpkg -S``) providing ``paths``; unknown paths are skipped."""
    if not paths or not shutil.which("dpkg"):
        return set()
    # Ask for each path as ldd gave it and as resolved: with merged /usr, dpkg knows
    # /lib/x86_64-linux-gnu/... under one of the two spellings only.
    queries = set()
    for path in paths:
        queries.add(path)
        queries.add(os.path.realpath(path))
        if path.startswith("/lib"):
            queries.add("/usr" + path)
        elif path.startswith("/usr/lib"):
            queries.add(path[len("/usr"):])
    try:
        out = subprocess.run(
            ["dpkg", "-S", *sorted(queries)], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return set()
    packages = set()
    for line in out.splitlines():
        owners, sep, _ = line.partition(": ")
        if not sep or owners.startswith("diversion by"):
            continue
        for owner in owners.split(","):
            packages.add(owner.strip().split(":")[0])
    return packages


def system_dependencies(path):
    """Sorted Debian packages whose libraries the wheel's compiled code asks for from the
    system (libc6 and the others every Debian has left out).

    Only the libraries an object of the wheel names itself (DT_NEEDED of its modules and
    of the libraries it carries) count, not what those load in turn: `apt install`
    brings a package's own dependencies. A pycairo repaired by auditwheel carries libcairo
    and libxcb but takes libX11 from the system (the manylinux policy counts it as the
    system's): it needs libx11-6, libxext6 and libxrender1, not also libxcb1, libxau6 and
    the rest that ldd lists behind libX11. Where DT_NEEDED cannot be read, every library
    ldd lists counts."""
    with zipfile.ZipFile(path) as zf:
        modules = [n for n in zf.namelist() if _is_compiled(n)]
        if not modules or not shutil.which("ldd"):
            return []
        tmp = tempfile.mkdtemp(prefix="piwheels-inspect-")
        try:
            libraries, asked = [], set()
            for name in modules:
                target = zf.extract(name, tmp)
                libraries.extend(linked_libraries(target))
                needed = needed_names(target)
                asked = None if needed is None or asked is None else asked | needed
            # Libraries shipped inside the wheel itself are not the system's.
            paths = [p for n, p in libraries if not p.startswith(tmp)
                     and (asked is None or n in asked)]
            return sorted(debian_packages(paths) - BASE_PACKAGES)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _is_compiled(name):
    base = name.rsplit("/", 1)[-1]
    return base.endswith(".so") or ".so." in base


def inspect(path):
    """The farm's per-wheel record: filename, size, sha256, requires_python, dependencies."""
    path = Path(path)
    return {
        "filename": path.name,
        "size": path.stat().st_size,
        "sha256": sha256_of(path),
        "requires_python": requires_python(metadata_text(path)),
        "dependencies": system_dependencies(path),
    }
