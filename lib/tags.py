"""Which wheels install on a Pi the farm builds for, decided with packaging.tags.

A farm job is (version, interpreter ABI); its wheels serve Pis running that interpreter on
the target platforms (`linux_armv7l`, maybe `linux_aarch64`) with at least the target
glibc. An upstream wheel makes the job pointless when, on every target platform, one of
its tags is among the tags pip there would accept: the same set pip computes on the Pi
(packaging.tags.cpython_tags + compatible_tags), with the manylinux tags that glibc allows.
No string matching of tags: the sets come from packaging.
"""
import re
from functools import lru_cache

from packaging import tags
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

# cp311, cp37m, cp313t; pypy39_pp73
_CPYTHON = re.compile(r"^cp(\d)(\d{1,2})[dmut]*$")
_PYPY = re.compile(r"^pypy(\d)(\d{1,2})_pp\d+$")
# The oldest manylinux (PEP 600 numbering) that exists for ARM: manylinux2014 is 2.17.
_OLDEST_GLIBC_MINOR = 17
_LEGACY = {(2, 17): "manylinux2014"}


def abi_python(abi_tag):
    """(interpreter kind "cp" or "pp", (major, minor)) of an interpreter ABI tag, or None."""
    for kind, pattern in (("cp", _CPYTHON), ("pp", _PYPY)):
        match = pattern.match(abi_tag)
        if match:
            return kind, (int(match.group(1)), int(match.group(2)))
    return None


def platform_tags(platform, glibc):
    """The platform tags pip accepts on PLATFORM (`linux_<arch>`) with GLIBC (major,
    minor), most specific first, as packaging lists them for that machine."""
    arch = platform[len("linux_"):]
    major, minor = glibc
    out = []
    for m in range(minor, _OLDEST_GLIBC_MINOR - 1, -1):
        out.append(f"manylinux_{major}_{m}_{arch}")
        if (major, m) in _LEGACY:
            out.append(f"{_LEGACY[(major, m)]}_{arch}")
    out.append(platform)
    return out


@lru_cache(maxsize=256)
def supported_tags(abi_tag, platform, glibc):
    """frozenset of the Tags pip accepts for interpreter ABI_TAG on PLATFORM with GLIBC;
    empty for an ABI tag the farm cannot read."""
    found = abi_python(abi_tag)
    if found is None:
        return frozenset()
    kind, version = found
    platforms = platform_tags(platform, glibc)
    if kind == "cp":
        own = tags.cpython_tags(version, abis=[abi_tag], platforms=platforms)
    else:
        own = tags.generic_tags(f"pp{version[0]}{version[1]}", abis=[abi_tag],
                                platforms=platforms)
    interpreter = f"{kind}{version[0]}{version[1]}"
    return frozenset(own) | frozenset(
        tags.compatible_tags(version, interpreter=interpreter, platforms=platforms)
    )


@lru_cache(maxsize=16384)
def wheel_tags(filename):
    """The Tags of a wheel filename, or an empty set when it does not parse (cached: a
    refresh asks once per ABI)."""
    try:
        return parse_wheel_filename(filename)[3]
    except InvalidWheelFilename:
        return frozenset()


def covering_wheel(filenames, abi_tag, platforms, glibc):
    """The first of FILENAMES (wheel filenames) that installs for ABI_TAG on one of
    PLATFORMS, provided the wheels together cover every platform; else None. A job whose
    users all get a wheel from upstream is not worth building."""
    if not platforms:
        return None
    first = None
    for platform in platforms:
        supported = supported_tags(abi_tag, platform, tuple(glibc))
        found = next((f for f in filenames if wheel_tags(f) & supported), None)
        if found is None:
            return None
        first = first or found
    return first


def python_excluded(requires_python, abi_tag):
    """True when the Requires-Python specifier excludes every release of ABI_TAG's
    Python (x.y.0 and a late x.y.N alike); False when it admits one, or cannot be read
    (a build then says what pip thinks)."""
    found = abi_python(abi_tag)
    if not requires_python or found is None:
        return False
    return _excludes(requires_python, found[1])


@lru_cache(maxsize=4096)
def _excludes(requires_python, python):
    """python_excluded for a (major, minor); cached: a few specifiers recur everywhere."""
    try:
        spec = SpecifierSet(requires_python)
    except InvalidSpecifier:
        return False
    major, minor = python
    return not any(spec.contains(f"{major}.{minor}.{patch}", prereleases=True)
                   for patch in (0, 99))
