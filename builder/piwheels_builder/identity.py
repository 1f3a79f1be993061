"""What this builder machine is: the tags of the wheels it builds, its Python and its OS."""
import json
import platform
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


def os_name(os_release="/etc/os-release"):
    """PRETTY_NAME from os-release, or what the platform module says when there is none."""
    try:
        with open(os_release, encoding="utf-8") as f:
            for line in f:
                key, sep, value = line.strip().partition("=")
                if sep and key == "PRETTY_NAME":
                    return value.strip().strip("\"'")
    except OSError:
        pass
    return platform.platform()


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
    abi = "cp%d%d" % tuple(info["version"])
    abi += ("d" if info["debug"] else "") + ("t" if info["free_threaded"] else "")
    return abi, platform_tag(info["platform"], info["pointer_bytes"]), info["python_version"]


def detect(abi=None, plat=None, python=None):
    """This machine's identity; ``abi`` and ``plat`` override what is detected.

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
    )
