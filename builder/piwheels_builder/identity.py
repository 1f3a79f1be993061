"""What this builder machine is: the tags of the wheels it builds, its Python and its OS.

The OS release (VERSION_CODENAME) and glibc version go with every claim: the farm names
the wheels built here for that glibc (`manylinux_2_36_armv7l` on Bookworm), so that pip
on an older release never takes them, and builds an ABI only on the release it belongs to.
"""
import json
import os
import platform
import re
import struct
import subprocess
import sys
import sysconfig
from dataclasses import asdict, dataclass

from packaging import tags


@dataclass(frozen=True)
class Identity:
    abi: str  # e.g. "cp311"
    platform: str  # e.g. "linux_armv7l"
    python_version: str  # e.g. "3.11.2"
    os: str  # e.g. "Raspbian GNU/Linux 12 (bookworm)"
    os_release: str = ""  # VERSION_CODENAME, e.g. "bookworm"
    glibc: str = ""  # e.g. "2.36"; "" off glibc

    def as_claim(self):
        """The fields the farm's claim call expects."""
        return asdict(self)


def abi_tag():
    """The ABI tag of the running interpreter, as its most specific wheel tag names it."""
    return next(iter(tags.sys_tags())).abi


def platform_tag(sysconfig_platform=None, pointer_bytes=None):
    """The platform tag wheels built here get, e.g. ``linux_armv7l``.

    A 32-bit userland on a 64-bit kernel (common on the Pi) reports ``linux-aarch64`` (or
    ``linux-x86_64``) but builds 32-bit code: tag it as setuptools does, ``linux_armv7l``
    (or ``linux_i686``).
    """
    plat = sysconfig_platform or sysconfig.get_platform()
    plat = plat.replace("-", "_").replace(".", "_").replace(" ", "_")
    if (pointer_bytes or struct.calcsize("P")) == 4:
        plat = {"linux_aarch64": "linux_armv7l", "linux_x86_64": "linux_i686"}.get(plat, plat)
    return plat


def _os_release_fields(path):
    """The KEY=value lines of an os-release file (quotes removed), {} when unreadable."""
    fields = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                key, sep, value = line.strip().partition("=")
                if sep:
                    fields[key] = value.strip().strip("\"'")
    except OSError:
        pass
    return fields


def os_name(os_release="/etc/os-release"):
    """PRETTY_NAME from os-release, or what the platform module says when there is none."""
    return _os_release_fields(os_release).get("PRETTY_NAME") or platform.platform()


_CODENAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")  # what the farm accepts


def os_codename(os_release="/etc/os-release"):
    """VERSION_CODENAME from os-release (Raspberry Pi OS and Debian: "bookworm"), else the
    codename in VERSION ("12 (bookworm)"), lower-cased; "" when there is none."""
    fields = _os_release_fields(os_release)
    name = fields.get("VERSION_CODENAME", "")
    if not name:
        found = re.search(r"\(([^)]+)\)", fields.get("VERSION", ""))
        name = found.group(1) if found else ""
    name = name.strip().lower()
    return name if _CODENAME.match(name) else ""


def glibc_version():
    """The running glibc's version, e.g. "2.36", or "" on another C library."""
    try:
        found = os.confstr("CS_GNU_LIBC_VERSION") or ""  # "glibc 2.36"
    except (AttributeError, ValueError, OSError):
        found = ""
    lib, _, version = found.partition(" ")
    if lib != "glibc":
        lib, version = platform.libc_ver()
    found = re.match(r"^(\d+)\.(\d+)", version or "") if lib == "glibc" else None
    return f"{int(found.group(1))}.{int(found.group(2))}" if found else ""


# Run in another Python (``--python``), which need not have ``packaging`` installed.
_PROBE = """
import json, platform, struct, sys, sysconfig
print(json.dumps({
    "name": sys.implementation.name,
    "version": list(sys.version_info[:2]),
    "python_version": platform.python_version(),
    "debug": bool(sysconfig.get_config_var("Py_DEBUG")),
    "free_threaded": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
    "platform": sysconfig.get_platform(),
    "pointer_bytes": struct.calcsize("P"),
}))
"""


def probe(python):
    """Identity fields of another CPython, e.g. ``/usr/bin/python3.9``."""
    out = subprocess.run(
        [python, "-c", _PROBE], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    info = json.loads(out)
    if info["name"] != "cpython":
        raise ValueError(f"{python} is {info['name']}, not CPython: give --abi")
    abi = "cp{}{}".format(*info["version"])
    abi += ("d" if info["debug"] else "") + ("t" if info["free_threaded"] else "")
    return abi, platform_tag(info["platform"], info["pointer_bytes"]), info["python_version"]


def detect(abi=None, plat=None, python=None, os_release=None, glibc=None):
    """This machine's identity; ``abi``, ``plat``, ``os_release`` and ``glibc`` override
    what is detected.

    ``python`` is the interpreter that builds (default: the one running this agent).
    """
    if python and python != sys.executable:
        found_abi, found_plat, python_version = probe(python)
    else:
        found_abi, found_plat, python_version = abi_tag(), platform_tag(), platform.python_version()
    return Identity(
        abi=abi or found_abi,
        platform=plat or found_plat,
        python_version=python_version,
        os=os_name(),
        os_release=os_codename() if os_release is None else os_release,
        glibc=glibc_version() if glibc is None else glibc,
    )
