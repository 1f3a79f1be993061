"""The names the farm gives the wheels it serves, so that each Pi is offered only what runs
on it: glibc-versioned platform tags per OS release, and armv6l copies.

**Why glibc-versioned tags.** A wheel built on one Debian release links that release's
glibc and system libraries (OpenSSL 3 on Bookworm, 1.1 on Bullseye). `linux_armv7l` says
nothing about either, so every armv7l Pi accepts every such wheel; cryptography built on
Bookworm then broke Bullseye Pis (piwheels/packages#464). The farm therefore publishes a
`linux_<arch>` wheel built on glibc X.Y as `manylinux_X_Y_<arch>` (PEP 600), when its code
keeps that policy (lib/manylinux.py; the agent repairs wheels so that most do, and
docs/portable-wheels.md says what is served otherwise). pip and uv
already accept `manylinux_X_Y` only where the running glibc is X.Y or newer, and prefer
the highest X.Y they accept, so with nothing but `extra-index-url=<farm>/simple/`:

- a Bullseye Pi (glibc 2.31) never takes a Bookworm (2.36) build;
- a Bookworm Pi takes the Bookworm build when there is one, before any Bullseye build;
- builds of one version on two releases have two names, kept apart, never one name for
  two sets of bytes.

This holds for every ABI, not only `abi3` and `none` with a platform tag (the cases the
ABI tag leaves open): a `cp311-cp311` wheel links glibc and the system's libraries just
the same, and CPython 3.11 can be had on Bullseye too. Per-release index paths were the
other choice; they need a per-release pip.conf line, and a Pi upgraded from Bullseye to
Bookworm would keep asking the old path.

What the tags cannot say: a newer release also accepts an older release's build when it
has none of its own (glibc is backward compatible, Debian's other libraries may be gone,
e.g. libssl1.1 on Bookworm). Building every ABI on the release it belongs to (an ABI's
`os_release`, which claims must match) keeps that to versions whose newer build failed.

Only the architectures where pip and uv accept manylinux tags are renamed
(packaging.tags' list: not `armv6l`, for which they accept `linux_armv6l` only).

**armv6l copies.** An armv7l wheel whose compiled code runs on ARMv6 (lib/elfarm.py) is
also offered under a `linux_armv6l` name, the same bytes. armv6l has no glibc tag to
keep releases apart, so for `abi3` and `none` wheels (whose Python tag would let every
release's Python take them) the copy's Python tag is narrowed to the Python of the ABI
that built it, as Raspberry Pi OS pairs them (Bullseye 3.9, Bookworm 3.11, Trixie 3.13):
Bookworm's `cp39-abi3` build is offered to Pi Zeros as `cp311-abi3-linux_armv6l`, which
CPython 3.9 does not accept. Narrowing only ever removes Pythons the wheel supports.
"""
import re

# The database's check constraints (builds.models); what is taken from outside is
# checked by the strict forms below first.
OS_RELEASE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")  # VERSION_CODENAME, e.g. "bookworm"
GLIBC = re.compile(r"^\d+\.\d+$")  # e.g. "2.36"
# Whole-string, ASCII-only forms: `$` would let "bookworm\n" through and `\d` the digits
# of other scripts ("٢.٣٦").
OS_RELEASE_STRICT = re.compile(r"\A[a-z][a-z0-9-]{0,31}\Z", re.ASCII)
GLIBC_STRICT = re.compile(r"\A[1-9][0-9]{0,2}\.(?:0|[1-9][0-9]{0,2})\Z", re.ASCII)
# The glibc versions a wheel name can carry: manylinux starts at 2.17 (manylinux2014), and
# a glibc 3 would be another ABI.
GLIBC_RANGE = ((2, 17), (3, 0))

# Architectures for which pip and uv accept manylinux tags (packaging.tags._manylinux):
# an armv6l Pi accepts linux_armv6l only, so armv6l wheels keep that name.
MANYLINUX_ARCHS = frozenset({
    "x86_64", "i686", "aarch64", "armv7l", "ppc64", "ppc64le", "s390x", "riscv64",
    "loongarch64",
})
# The architectures a farm job can be for (Build.arch, Abi.archs): the Pis' 32-bit and
# 64-bit userlands, and x86_64 for tests and development machines.
ARCHS = ("armv7l", "aarch64", "x86_64")
ARCH = re.compile(r"^(armv7l|aarch64|x86_64)$")
# A farm before architectures built armv7l only: its jobs, and a claim that names no
# platform, are armv7l.
DEFAULT_ARCH = "armv7l"
_PLATFORM_ARCH = re.compile(r"^(?:linux|manylinux_\d+_\d+|manylinux\d+|musllinux_\d+_\d+)_(\w+)$")
ARMV7L_TAG = re.compile(r"^(linux|manylinux_\d+_\d+|manylinux2014)_armv7l$")
_CPYTHON_ABI = re.compile(r"^cp3(\d+)")
_PY3 = re.compile(r"^py3(\d*)$")
_CP3 = re.compile(r"^cp3(\d+)$")


def split_filename(filename):
    """(name, version, build or None, python, abi, platform) of a wheel filename (each
    as written, dotted tag sets kept), or None when it does not look like one."""
    if not filename.endswith(".whl"):
        return None
    parts = filename[:-4].split("-")
    if len(parts) == 5:
        name, version, python, abi, platform = parts
        build = None
    elif len(parts) == 6:
        name, version, build, python, abi, platform = parts
    else:
        return None
    return name, version, build, python, abi, platform


def join_filename(name, version, build, python, abi, platform):
    head = f"{name}-{version}" + (f"-{build}" if build else "")
    return f"{head}-{python}-{abi}-{platform}.whl"


def valid_os_release(text):
    """Whether TEXT is an OS release codename (VERSION_CODENAME) such as bookworm."""
    return isinstance(text, str) and bool(OS_RELEASE_STRICT.match(text))


def valid_glibc(text):
    """Whether TEXT is a glibc version "X.Y" that fits a manylinux name: ASCII digits,
    in GLIBC_RANGE (2.17 up to, not including, 3.0)."""
    if not isinstance(text, str) or not GLIBC_STRICT.match(text):
        return False
    low, high = GLIBC_RANGE
    return low <= tuple(int(n) for n in text.split(".")) < high


def glibc_platform(platform, glibc):
    """PLATFORM (a dotted tag set) with each `linux_<arch>` tag of a manylinux
    architecture replaced by `manylinux_<X>_<Y>_<arch>` for GLIBC "X.Y"."""
    if not glibc or not valid_glibc(glibc):
        return platform
    major, minor = glibc.split(".")
    tags = []
    for tag in platform.split("."):
        if tag.startswith("linux_") and tag[len("linux_"):] in MANYLINUX_ARCHS:
            tag = f"manylinux_{int(major)}_{int(minor)}_{tag[len('linux_'):]}"
        if tag not in tags:
            tags.append(tag)
    return ".".join(tags)


def served_filename(filename, glibc):
    """The name under which the farm serves a wheel uploaded as FILENAME by a builder
    whose glibc is GLIBC ("" when unknown: the name is kept)."""
    parts = split_filename(filename)
    if parts is None:
        return filename
    *head, platform = parts
    return join_filename(*head, glibc_platform(platform, glibc))


def needs_glibc(platform):
    """Whether PLATFORM has a `linux_<arch>` tag that the farm serves glibc-versioned."""
    return glibc_platform(platform, "2.17") != platform


def tag_arch(platform):
    """The machine architecture of one platform tag (`linux_aarch64`,
    `manylinux_2_17_aarch64` -> aarch64), or "" for `any` and tags of other OSes."""
    found = _PLATFORM_ARCH.match(platform)
    return found.group(1) if found else ""


def job_arch(platform):
    """The architecture of the farm's jobs that a builder reporting PLATFORM (its wheel
    platform tag, e.g. `linux_aarch64`) builds: its machine architecture, except that
    armv6l wheels come from armv7l jobs (lib/platforms.armv6l_filename) and an empty
    platform (nothing said) is the farm's historic armv7l. "" when PLATFORM names no
    Linux architecture."""
    if not platform:
        return DEFAULT_ARCH
    arch = next((a for a in map(tag_arch, platform.split(".")) if a), "")
    return DEFAULT_ARCH if arch == "armv6l" else arch


def wheel_arch(platform):
    """The architecture of the jobs that build a wheel with PLATFORM (a dotted tag set,
    as in its filename; armv6l: armv7l's), or "" for a pure (`any`) wheel."""
    arch = next((a for a in map(tag_arch, platform.split(".")) if a), "")
    return DEFAULT_ARCH if arch == "armv6l" else arch


def is_armv7l(platform):
    return any(ARMV7L_TAG.match(tag) for tag in platform.split("."))


def armv6l_filename(filename, build_abi):
    """The `linux_armv6l` name under which the armv7l wheel FILENAME, built for the
    interpreter ABI BUILD_ABI (e.g. "cp311"), is also offered; None when it is not an
    armv7l wheel or already has an armv6l tag."""
    parts = split_filename(filename)
    if parts is None:
        return None
    name, version, build, python, abi, platform = parts
    tags = platform.split(".")
    if not is_armv7l(platform) or "linux_armv6l" in tags:
        return None
    return join_filename(name, version, build, _narrowed_python(python, abi, build_abi),
                         abi, "linux_armv6l")


def _narrowed_python(python, abi, build_abi):
    """The Python tag of an armv6l copy: for abi3 and none wheels, the Python of the
    building ABI when every Python the wheel names is that one or older; else as is."""
    found = _CPYTHON_ABI.match(build_abi or "")
    if not found:
        return python
    minor = int(found.group(1))
    tags = python.split(".")
    if abi == "abi3":
        olds = [_CP3.match(t) for t in tags]
        if all(m and int(m.group(1)) <= minor for m in olds):
            return f"cp3{minor}"
    elif abi == "none":
        olds = [t == "py2" or (_PY3.match(t) and int(_PY3.match(t).group(1) or 0) <= minor)
                for t in tags]
        if all(olds):
            return f"py3{minor}"
    return python
