"""What the farm reads inside a wheel's files once wheels.inspect() has passed it: for
now, whether an armv7l wheel's compiled code also runs on ARMv6 (lib/elfarm.py). One
function, inspect_contents(), called for every file of a build and of an import BEFORE
the transaction that publishes it (which holds the build's row lock): nothing here ever
runs while a lock is held.

Parsers of untrusted binaries can spin or swell (pyelftools loops for ever on an
`.ARM.attributes` subsection of length 0, issue 20), so the ELF reading runs in a
process of its own, bounded in CPU time, wall time and address space
(PIWHEELS_INSPECT_TIMEOUT, PIWHEELS_INSPECT_MEMORY). A parse error, a timeout or any
other failure of that process means "not known to be ARMv6-safe": the file is published
without its armv6l name, never held up, never refused for it.
"""
import json
import logging
import subprocess
import sys
from dataclasses import dataclass

from django.conf import settings

from lib import platforms

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Inspection:
    # None: not an armv7l wheel (the question does not arise); else whether every ELF
    # object in it is known to run on ARMv6 with VFPv2 and no NEON.
    armv6_compatible: object = None
    # Why armv6_compatible is False: the first object that needs more, or what stopped
    # the reading ("" when it is not False).
    why: str = ""


def inspect_contents(path, platform_tag):
    """The Inspection of the wheel at PATH (checked by wheels.inspect), whose platform
    tag is PLATFORM_TAG."""
    if not platforms.is_armv7l(platform_tag):
        return Inspection()
    timeout = settings.PIWHEELS_INSPECT_TIMEOUT
    command = [sys.executable, "-m", "lib.elfarm", "--cpu", str(max(1, int(timeout))),
               "--memory", str(settings.PIWHEELS_INSPECT_MEMORY), str(path)]
    try:
        done = subprocess.run(command, cwd=settings.BASE_DIR, capture_output=True,
                              timeout=timeout, stdin=subprocess.DEVNULL,
                              env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(settings.BASE_DIR)})
    except subprocess.TimeoutExpired:
        log.warning("%s: reading its ELF objects took over %s s: not offered to armv6l",
                    path, timeout)
        return Inspection(False, f"reading its ELF objects took over {timeout:g} s")
    if done.returncode != 0:
        log.warning("%s: reading its ELF objects failed (exit %s): %s", path,
                    done.returncode, done.stderr.decode("utf-8", "replace")[-500:])
        return Inspection(False, f"reading its ELF objects failed (exit {done.returncode})")
    try:
        first = json.loads(done.stdout)["first_non_armv6"]
    except (ValueError, KeyError, TypeError):
        return Inspection(False, "reading its ELF objects gave no answer")
    if first is not None:
        return Inspection(False, f"{first} needs more than ARMv6")
    return Inspection(True)
