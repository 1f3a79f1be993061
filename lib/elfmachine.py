"""Which machine a wheel's compiled code is for, read from each ELF header (20 bytes: no
parser that could hang), against the platform a builder said it builds for.

A builder claims jobs saying its platform (`linux_armv7l`); a stolen token could claim so
and upload code for another machine (an x86_64 wheel for the Pis). Every ELF object in the
wheel must be for that platform's machine: `e_machine` and the ELF class (32/64-bit).
Objects are found by their magic, not by name, as in lib/elfarm.py.
"""
import re
import struct
import zipfile

ELF_MAGIC = b"\x7fELF"
HEADER = 20  # e_ident (16), e_type (2), e_machine (2)

# Architecture of a platform tag -> (e_machine, ELF class: 1 is 32-bit, 2 is 64-bit).
MACHINES = {
    "armv6l": (40, 1), "armv7l": (40, 1), "armv8l": (40, 1),  # EM_ARM
    "aarch64": (183, 2),  # EM_AARCH64
    "x86_64": (62, 2),  # EM_X86_64
    "i686": (3, 1), "i386": (3, 1),  # EM_386
    "ppc64le": (21, 2), "ppc64": (21, 2),  # EM_PPC64
    "s390x": (22, 2),  # EM_S390
    "riscv64": (243, 2),  # EM_RISCV
}
NAMES = {40: "ARM", 183: "AArch64", 62: "x86-64", 3: "i386", 21: "PowerPC64",
         22: "S/390", 243: "RISC-V"}

# linux_armv7l, manylinux_2_36_armv7l, manylinux2014_aarch64, musllinux_1_2_x86_64
_ARCH = re.compile(r"^(?:linux|manylinux1|manylinux2010|manylinux2014|"
                   r"(?:many|musl)linux_\d+_\d+)_(\w+)$")


def platform_machine(platform):
    """(e_machine, class) of the platform tag PLATFORM (or of each of a compressed tag set:
    the first one known), or None for one this module does not know (`any`, macOS...)."""
    for tag in (platform or "").split("."):
        match = _ARCH.match(tag)
        if match and match.group(1) in MACHINES:
            return MACHINES[match.group(1)]
    return None


def header_machine(header):
    """(e_machine, class) from the first 20 bytes of an ELF object; None if not ELF."""
    if len(header) < HEADER or header[:4] != ELF_MAGIC:
        return None
    elf_class, data = header[4], header[5]
    order = ">" if data == 2 else "<"  # ELFDATA2MSB, else little-endian
    return struct.unpack(order + "H", header[18:20])[0], elf_class


def describe(machine):
    number, elf_class = machine
    bits = {1: "32-bit", 2: "64-bit"}.get(elf_class, f"class {elf_class}")
    return f"{bits} {NAMES.get(number, f'machine {number}')}"


def foreign_object(path, platform):
    """(member name, what it is for) of the first ELF object in the wheel at PATH that is
    not for PLATFORM's machine, or None when all are (or PLATFORM is not one we know)."""
    wanted = platform_machine(platform)
    if wanted is None:
        return None
    with zipfile.ZipFile(path) as wheel:
        for info in wheel.infolist():
            if info.is_dir() or info.file_size < HEADER:
                continue
            with wheel.open(info) as member:
                machine = header_machine(member.read(HEADER))
            if machine is not None and machine != wanted:
                return info.filename, describe(machine)
    return None
