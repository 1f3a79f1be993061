"""Real ARM shared objects for the tests, compiled with Debian's cross compiler
(`apt-get install gcc-arm-linux-gnueabihf`; .ci/run installs it), and wheels holding them."""
import shutil
import subprocess

import pytest

from tests.factories import Wheel, _record_hash, _zip

CROSS_GCC = shutil.which("arm-linux-gnueabihf-gcc")
needs_cross_compiler = pytest.mark.skipif(
    CROSS_GCC is None,
    reason="needs Debian's ARM cross compiler: apt-get install gcc-arm-linux-gnueabihf",
)

# Pi Zero / Pi 1 (ARM1176): ARMv6 with VFPv2, in ARM state (Debian's armhf compiler
# defaults to Thumb-2, which ARMv6 lacks).
ARMV6 = ["-marm", "-march=armv6", "-mfpu=vfp", "-mfloat-abi=hard"]
ARMV7_NEON = ["-march=armv7-a", "-mfpu=neon", "-mfloat-abi=hard"]
ARMV7_VFPV3 = ["-march=armv7-a", "-mfpu=vfpv3-d16", "-mfloat-abi=hard"]  # no NEON
ARMV6_VFPV3 = ["-marm", "-march=armv6", "-mfpu=vfpv3", "-mfloat-abi=hard"]

SOURCE = """
int add(int a, int b) { return a + b; }
double scale(double x, double by) { return x * by; }
"""


def compile_so(directory, name, flags):
    """The bytes of a shared object built from SOURCE with FLAGS. -nostdlib: Debian's
    armhf start files are ARMv7 objects, and linking them in would (rightly) make every
    result need ARMv7; Raspberry Pi OS's own are ARMv6."""
    source = directory / f"{name}.c"
    source.write_text(SOURCE)
    out = directory / f"{name}.so"
    subprocess.run([CROSS_GCC, "-shared", "-fPIC", "-O2", "-nostdlib", *flags,
                    "-o", str(out), str(source)], check=True, capture_output=True)
    return out.read_bytes()


def arm_wheel(name, version, tag, objects, requires_python=""):
    """A Wheel of module NAME holding the shared objects OBJECTS ({path in the module:
    bytes}) beside an __init__.py."""
    dist = name.replace("-", "_")
    dist_info = f"{dist}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    if requires_python:
        metadata += f"Requires-Python: {requires_python}\n"
    members = {
        f"{dist}/__init__.py": b"",
        **{f"{dist}/{path}": data for path, data in objects.items()},
        f"{dist_info}/METADATA": metadata.encode(),
        f"{dist_info}/WHEEL": (f"Wheel-Version: 1.0\nGenerator: piwheels-tests\n"
                               f"Root-Is-Purelib: false\nTag: {tag}\n").encode(),
    }
    record = "".join(f"{p},{_record_hash(d)},{len(d)}\n" for p, d in members.items())
    members[f"{dist_info}/RECORD"] = (record + f"{dist_info}/RECORD,,\n").encode()
    return Wheel(f"{dist}-{version}-{tag}.whl", _zip(members), metadata.encode(),
                 requires_python)


def spinning_object():
    """A 32-bit ARM ELF object (220 bytes) whose `.ARM.attributes` section holds a
    subsection of length 0. pyelftools (`AttributesSection._make_subsections`) seeks to
    the section's start plus each subsection's length to find the next one: with 0 it
    reads the same subsection for ever, at a full core (issue 20)."""
    import struct

    shstrtab = b"\0.shstrtab\0.ARM.attributes\0"
    # format 'A', one subsection of length 0 (the fault) of another vendor than "aeabi",
    # which the reader skips, looking for the next one, for ever
    attributes = b"A" + struct.pack("<I", 0) + b"gnu\0" + bytes(12)
    header_size, section_size = 52, 40
    strtab_at = header_size
    attributes_at = strtab_at + len(shstrtab)
    sections_at = (attributes_at + len(attributes) + 3) & ~3
    ident = b"\x7fELF" + bytes([1, 1, 1, 0]) + bytes(8)  # 32-bit, little-endian
    header = ident + struct.pack(
        "<HHIIIIIHHHHHH", 1, 40, 1, 0, 0, sections_at, 0x5000400, header_size, 0, 0,
        section_size, 3, 1)  # ET_REL, EM_ARM; 3 sections, names in section 1
    null = bytes(section_size)
    strtab = struct.pack("<IIIIIIIIII", 1, 3, 0, 0, strtab_at, len(shstrtab), 0, 0, 1, 0)
    arm = struct.pack("<IIIIIIIIII", 11, 0x70000003, 0, 0, attributes_at, len(attributes),
                      0, 0, 1, 0)  # SHT_ARM_ATTRIBUTES
    body = header + shstrtab + attributes
    body += bytes(sections_at - len(body))
    return body + null + strtab + arm
