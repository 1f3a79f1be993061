"""What the farm reads inside a wheel's compiled code once wheels.inspect() has passed
it: whether an armv7l wheel's code also runs on ARMv6 (inspect_contents, lib/elfarm.py),
and what its manylinux name may promise (analyse_manylinux, lib/manylinux.py). Both are
called for every file of a build and of an import BEFORE the transaction that publishes
it (which holds the build's row lock): nothing here ever runs while a lock is held.

Parsers of untrusted binaries can spin or swell (pyelftools loops for ever on an
`.ARM.attributes` subsection of length 0, issue 20), and auditwheel changes the working
directory of the process that calls it, so each reading runs in a process of its own,
bounded in CPU time, wall time and address space (PIWHEELS_INSPECT_TIMEOUT,
PIWHEELS_INSPECT_MEMORY), never in a web server's thread. For ARMv6, a parse error, a
timeout or any other failure of that process means "not known to be ARMv6-safe": the
file is published without its armv6l name, never held up, never refused for it. For
manylinux it means the name cannot be checked: the wheel is refused, saying why.
"""
import json
import logging
import subprocess
import sys
from dataclasses import dataclass

from django.conf import settings

from lib import manylinux, platforms

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
    try:
        done = _run_bounded("lib.elfarm", str(path))
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


def analyse_manylinux(path, arches):
    """{arch: manylinux.Analysis} of the wheel at PATH for each of ARCHES, read in one
    bounded process. Raises manylinux.CannotCheck, saying why, when it cannot be read."""
    timeout = settings.PIWHEELS_INSPECT_TIMEOUT
    try:
        done = _run_bounded("lib.manylinux", str(path), *sorted(arches))
    except subprocess.TimeoutExpired:
        log.warning("%s: auditwheel's analysis took over %s s", path, timeout)
        raise manylinux.CannotCheck(
            f"its compiled code took over {timeout:g} s to analyse") from None
    if done.returncode != 0:
        log.warning("%s: auditwheel's analysis failed (exit %s): %s", path, done.returncode,
                    done.stderr.decode("utf-8", "replace")[-500:])
        raise manylinux.CannotCheck(
            f"its compiled code cannot be analysed (exit {done.returncode})")
    try:
        answers = json.loads(done.stdout)
        analyses = {}
        for arch in arches:
            answer = answers[arch]
            if "cannot_check" in answer:
                raise manylinux.CannotCheck(str(answer["cannot_check"]))
            analyses[arch] = manylinux.Analysis.from_json(answer["analysis"])
    except (ValueError, KeyError, TypeError):
        raise manylinux.CannotCheck("its compiled code's analysis gave no answer") from None
    return analyses


def _run_bounded(module, *args):
    """Run `python -m MODULE ARGS` in the farm's directory, bounded by the inspection
    limits; the CompletedProcess. Raises subprocess.TimeoutExpired."""
    timeout = settings.PIWHEELS_INSPECT_TIMEOUT
    command = [sys.executable, "-m", module, "--cpu", str(max(1, int(timeout))),
               "--memory", str(settings.PIWHEELS_INSPECT_MEMORY), *args]
    return subprocess.run(command, cwd=settings.BASE_DIR, capture_output=True,
                          timeout=timeout, stdin=subprocess.DEVNULL,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(settings.BASE_DIR)})
