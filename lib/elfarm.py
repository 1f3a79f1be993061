"""Which ARM a wheel's compiled code runs on, read from each ELF object's build attributes.

A Pi Zero or Pi 1 (ARM1176, ARMv6KZ with VFPv2) runs Raspberry Pi OS's armv6l userland;
every later Pi runs ARMv7 or newer. An armv7l wheel can be offered to the first under the
`linux_armv6l` name only when none of its code needs more: ARMv7 instructions (Thumb-2,
`movw`), VFPv3 or NEON raise "Illegal instruction" there (piwheels/packages#207, #276).

The compiler and linker record what an object needs in its `.ARM.attributes` section
(ARM IHI 0045, "Addenda to the ELF for the ARM Architecture"); a linked object carries the
highest of what its inputs needed. We read three file-scope attributes with pyelftools:

- `Tag_CPU_arch` (6): 0-7 (pre-v4 to v6KZ) and 9 (v6K) run on the ARM1176; 8 (v6T2:
  Thumb-2, the ARM1156) and 10 up (v7, v8, and the Cortex-M profiles 11-13) do not;
- `Tag_FP_arch` (10): 0 (none), 1 (VFPv1), 2 (VFPv2) do; 3 up (VFPv3 and later) do not;
- `Tag_Advanced_SIMD_arch` (12): NEON, which the ARM1176 lacks: only 0 (absent) does.

An ELF object that is not 32-bit ARM, or that has no attributes to read, or that cannot
be parsed, counts as needing more: the armv6l copy is offered only when it is known safe.
Objects are found by their ELF magic, not by name, so that executables under `.data/`
and `.so.1` libraries bundled by auditwheel-like tools count too.
"""
import tempfile
import zipfile
from dataclasses import dataclass

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

ELF_MAGIC = b"\x7fELF"

# Tag_CPU_arch values that an ARMv6 core (the Pi Zero's and Pi 1's ARM1176) runs.
ARMV6_CPU_ARCHS = frozenset({0, 1, 2, 3, 4, 5, 6, 7, 9})
# Tag_FP_arch values it runs: none, VFPv1, VFPv2.
ARMV6_FP_ARCHS = frozenset({0, 1, 2})
# Members up to this size are parsed in memory; bigger ones through a temporary file.
IN_MEMORY = 32 * 1024**2


@dataclass(frozen=True)
class ArmAttributes:
    cpu_arch: int  # Tag_CPU_arch
    fp_arch: int  # Tag_FP_arch
    simd_arch: int  # Tag_Advanced_SIMD_arch

    @property
    def runs_on_armv6(self):
        return (self.cpu_arch in ARMV6_CPU_ARCHS and self.fp_arch in ARMV6_FP_ARCHS
                and self.simd_arch == 0)


def arm_attributes(stream):
    """The ArmAttributes of the ELF object in STREAM (seekable binary), or None when it
    is not a 32-bit ARM object or has no `.ARM.attributes` section. Attributes an object
    leaves out have the value 0, as the ABI defines."""
    elf = ELFFile(stream)
    if elf["e_machine"] != "EM_ARM":
        return None
    found, values = False, {}
    for section in elf.iter_sections(type="SHT_ARM_ATTRIBUTES"):
        for subsection in section.iter_subsections(vendor_name="aeabi"):
            for scope in subsection.iter_subsubsections(scope="TAG_FILE"):
                found = True
                for attribute in scope.iter_attributes():
                    values[attribute.tag] = attribute.value
    if not found:
        return None
    return ArmAttributes(
        cpu_arch=values.get("TAG_CPU_ARCH", 0),
        fp_arch=values.get("TAG_FP_ARCH", 0),
        simd_arch=values.get("TAG_ADVANCED_SIMD_ARCH", 0),
    )


def object_runs_on_armv6(stream):
    """Whether the ELF object in STREAM is known to run on ARMv6 with VFPv2."""
    try:
        attributes = arm_attributes(stream)
    except (ELFError, ValueError, EOFError, OSError, KeyError, AssertionError):
        return False  # unreadable: not known to be safe
    return attributes is not None and attributes.runs_on_armv6


def first_non_armv6_object(path):
    """The name of the first ELF object in the wheel (zip) at PATH that is not known to
    run on ARMv6 with VFPv2 and no NEON, or None when every one does (or it has none)."""
    with zipfile.ZipFile(path) as wheel:
        for info in wheel.infolist():
            if info.is_dir() or info.file_size < len(ELF_MAGIC):
                continue
            with wheel.open(info) as member:
                if member.read(len(ELF_MAGIC)) != ELF_MAGIC:
                    continue
            with tempfile.SpooledTemporaryFile(max_size=IN_MEMORY) as copy:
                with wheel.open(info) as member:
                    while chunk := member.read(1024 * 1024):
                        copy.write(chunk)
                copy.seek(0)
                if not object_runs_on_armv6(copy):
                    return info.filename
    return None


def wheel_runs_on_armv6(path):
    """Whether all the compiled code in the wheel at PATH runs on a Pi Zero / Pi 1."""
    return first_non_armv6_object(path) is None


def main(argv=None):
    """`python -m lib.elfarm [--cpu SECONDS] [--memory BYTES] WHEEL`: print as JSON
    {"first_non_armv6": name or null} for the wheel, within the CPU time and address
    space given (builds/inspection.py runs it so, in a process of its own: a parser
    that spins or swells is stopped there, never in a web thread)."""
    import argparse
    import json

    from lib import bounded

    parser = argparse.ArgumentParser(prog="python -m lib.elfarm")
    bounded.add_arguments(parser)
    parser.add_argument("wheel")
    args = parser.parse_args(argv)
    bounded.apply(args)
    print(json.dumps({"first_non_armv6": first_non_armv6_object(args.wheel)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
