"""Whether a wheel's compiled code keeps what a manylinux name promises (PEP 600), read
with auditwheel's own analysis and policy data (docs/portable-wheels.md).

A `manylinux_X_Y_<arch>` wheel must need, from the system, only the libraries of the
manylinux policy for glibc X.Y (libc, libm, libgcc_s, libstdc++...), every other library
it loads being carried inside it, and no versioned symbol newer than that policy allows
(GLIBC_2.38 is refused for X.Y = 2.36). auditwheel's `analyze_wheel_abi` gives the most
compatible policy a wheel meets without copying anything in: the wheel keeps the promise
of a name when that policy is at least as old as the name's.

The farm asks this for every upload and import: a wheel named manylinux that does not keep
it is refused; a `linux_<arch>` wheel is served under the manylinux name of its builder's
glibc only when it keeps that one (lib/platforms.py), else as what it is.

The farm runs analyse() only through main(), in a process of its own bounded in CPU time
and address space (builds/inspection.py): auditwheel changes the working directory of
the whole process while it reads a wheel (its InTemporaryDirectory), so two threads of
a web server reading at once leave it in a deleted directory, and its ELF parser is
pyelftools, which a crafted object can make spin (issue 20).
"""
import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

_TAG = re.compile(r"^manylinux_(\d+)_(\d+)_([a-z0-9_]+)$")
_LINUX = re.compile(r"^linux_([a-z0-9_]+)$")
# PEP 600's names for the older PEP 513/571/599 tags.
LEGACY = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
_LEGACY_TAG = re.compile(r"^(manylinux1|manylinux2010|manylinux2014)_([a-z0-9_]+)$")


# Debian packages of libraries every Debian system has (debootstrap's minbase installs them,
# apt needs them): a wheel loading only these needs no `apt install`.
EVERY_DEBIAN = frozenset({"libc6", "libgcc-s1", "libstdc++6", "zlib1g"})


def still_needed(packages):
    """The Debian packages of PACKAGES a user must install: those every Debian has left
    out, sorted."""
    return sorted(set(packages or ()) - EVERY_DEBIAN)


class CannotCheck(ValueError):
    """The wheel's compiled code could not be analysed; the message says why."""


@dataclass(frozen=True)
class Claim:
    glibc: tuple  # (major, minor)
    arch: str

    @property
    def name(self):
        return f"manylinux_{self.glibc[0]}_{self.glibc[1]}_{self.arch}"


def claim(platform_tag):
    """The Claim of a manylinux platform tag (PEP 600 or legacy), or None for others."""
    found = _TAG.match(platform_tag)
    if found:
        return Claim((int(found.group(1)), int(found.group(2))), found.group(3))
    found = _LEGACY_TAG.match(platform_tag)
    if found:
        return Claim(LEGACY[found.group(1)], found.group(2))
    return None


def linux_arch(platform_tag):
    """ARCH of a `linux_<arch>` tag, or None."""
    found = _LINUX.match(platform_tag)
    return found.group(1) if found else None


@dataclass(frozen=True)
class Analysis:
    """What a wheel's ELF objects need, by auditwheel."""
    arch: str
    has_code: bool  # False: no ELF object, nothing to check
    best: tuple = None  # (major, minor) of the most compatible policy met; None: none is
    glibc_needed: tuple = None  # the newest GLIBC_x.y symbol version its objects use
    # per policy glibc: the libraries outside it that the wheel does not carry, ...
    external: dict = field(default_factory=dict)
    # ... the libraries it uses symbols of that the policy forbids (libpython is one),
    blacklisted: dict = field(default_factory=dict)
    # ... and the symbol versions newer than it allows.
    too_new: dict = field(default_factory=dict)
    other: str = ""  # another reason auditwheel gives (UCS2 symbols, PyFPE_jbuf, ISA)

    def keeps(self, glibc):
        """Whether a manylinux name for GLIBC (major, minor) tells the truth."""
        if not self.has_code:
            return True
        return self.best is not None and self.best <= tuple(glibc)

    def _nearest(self, glibc):
        """The policy glibc a claim of GLIBC is held to: the newest not newer than it."""
        known = [g for g in self.external if g <= tuple(glibc)]
        return max(known) if known else None

    def why_not(self, glibc):
        """One sentence: why a manylinux name for GLIBC would not tell the truth."""
        policy = self._nearest(glibc)
        label = f"manylinux_{glibc[0]}_{glibc[1]}_{self.arch}"
        if policy is None:
            return f"auditwheel has no manylinux policy for {self.arch} at glibc " \
                   f"{glibc[0]}.{glibc[1]} or older"
        parts = []
        if self.external.get(policy):
            libs = ", ".join(sorted(self.external[policy]))
            parts.append(f"it loads {libs} from the system, outside the {label} policy, "
                         "and does not carry it")
        if self.too_new.get(policy):
            parts.append(f"it needs {', '.join(sorted(self.too_new[policy]))}, newer than "
                         f"glibc {glibc[0]}.{glibc[1]}")
        if self.blacklisted.get(policy):
            libs = ", ".join(sorted(self.blacklisted[policy]))
            parts.append(f"it uses symbols of {libs} that the policy forbids")
        if not parts:
            parts.append(self.other or "auditwheel finds it meets no manylinux policy")
        return f"{label} does not hold: " + "; ".join(parts)

    def to_json(self):
        def by_glibc(table):
            return [[list(glibc), list(values)] for glibc, values in sorted(table.items())]
        return {"arch": self.arch, "has_code": self.has_code,
                "best": list(self.best) if self.best else None,
                "glibc_needed": list(self.glibc_needed) if self.glibc_needed else None,
                "external": by_glibc(self.external), "blacklisted": by_glibc(self.blacklisted),
                "too_new": by_glibc(self.too_new), "other": self.other}

    @classmethod
    def from_json(cls, data):
        def by_glibc(rows):
            return {tuple(glibc): list(values) for glibc, values in rows}
        return cls(arch=data["arch"], has_code=bool(data["has_code"]),
                   best=tuple(data["best"]) if data["best"] else None,
                   glibc_needed=tuple(data["glibc_needed"]) if data["glibc_needed"] else None,
                   external=by_glibc(data["external"]),
                   blacklisted=by_glibc(data["blacklisted"]),
                   too_new=by_glibc(data["too_new"]), other=str(data["other"]))


def analyse(path, arch):
    """The Analysis of the wheel at PATH for ARCH (e.g. "armv7l"). Raises CannotCheck."""
    try:
        from auditwheel.architecture import Architecture
        from auditwheel.error import NonPlatformWheelError
        from auditwheel.libc import Libc
        from auditwheel.wheel_abi import analyze_wheel_abi
    except ImportError as exc:  # pragma: no cover - a dependency of the farm
        raise CannotCheck(f"auditwheel is not installed: {exc}") from None
    try:
        architecture = Architecture(arch)
    except ValueError:
        raise CannotCheck(f"auditwheel knows no architecture {arch!r}") from None
    try:
        with tempfile.TemporaryDirectory(prefix="piwheels-manylinux-") as tmp:
            # auditwheel reads only files named *.whl (uploads are checked as .part).
            named = Path(tmp) / "checked.whl"
            named.symlink_to(Path(path).resolve())
            info = analyze_wheel_abi(Libc.GLIBC, architecture, named, frozenset(),
                                     disable_isa_ext_check=False, allow_graft=False)
    except NonPlatformWheelError:
        return Analysis(arch=arch, has_code=False)
    except Exception as exc:  # auditwheel raises many kinds on a broken ELF object
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CannotCheck(f"its compiled code cannot be analysed: {message}"[:300]) from None
    needed = {}
    for versions in info.versioned_symbols.values():
        for version in versions:
            kind, _, number = version.partition("_")
            needed.setdefault(kind, set()).add(number)
    glibc_needed = max((_version(v) for v in needed.get("GLIBC", ()) if _version(v)),
                       default=None)
    external, blacklisted, too_new = {}, {}, {}
    for policy in info.policies:
        glibc = _policy_glibc(policy.name, arch)
        if glibc is None:
            continue
        refs = info.external_refs.get(policy.name)
        external[glibc] = sorted(refs.libs) if refs else []
        blacklisted[glibc] = sorted(refs.blacklist) if refs else []
        too_new[glibc] = sorted(
            f"{kind}_{number}" for kind, numbers in needed.items()
            if kind in policy.symbol_versions
            for number in numbers if number not in policy.symbol_versions[kind]
        )
    best = _policy_glibc(info.overall_policy.name, arch)
    other = ""
    if best is None and not any(external.values()) and not any(blacklisted.values()):
        reasons = {
            "symbols": info.sym_policy, "UCS-2 symbols": info.ucs_policy,
            "PyFPE_jbuf": info.pyfpe_policy, "ISA extensions": info.machine_policy,
        }
        bad = [what for what, policy in reasons.items()
               if _policy_glibc(policy.name, arch) is None]
        other = f"auditwheel finds no manylinux policy met ({', '.join(bad) or 'unknown'})"
    return Analysis(arch=arch, has_code=True, best=best, glibc_needed=glibc_needed,
                    external=external, blacklisted=blacklisted, too_new=too_new, other=other)


def _version(text):
    found = re.match(r"^(\d+)\.(\d+)", text)
    return (int(found.group(1)), int(found.group(2))) if found else None


def _policy_glibc(name, arch):
    found = re.match(rf"^manylinux_(\d+)_(\d+)_{re.escape(arch)}$", name)
    return (int(found.group(1)), int(found.group(2))) if found else None


def glibc_text(glibc):
    return f"{glibc[0]}.{glibc[1]}" if glibc else ""


def main(argv=None):
    """`python -m lib.manylinux [--cpu SECONDS] [--memory BYTES] WHEEL ARCH...`: print as
    JSON, for each ARCH, {"analysis": ...} or {"cannot_check": why}, within the CPU time
    and address space given (builds/inspection.py runs it so)."""
    import argparse

    from lib import bounded

    parser = argparse.ArgumentParser(prog="python -m lib.manylinux")
    bounded.add_arguments(parser)
    parser.add_argument("wheel")
    parser.add_argument("arch", nargs="+")
    args = parser.parse_args(argv)
    bounded.apply(args)
    answers = {}
    for arch in args.arch:
        try:
            answers[arch] = {"analysis": analyse(args.wheel, arch).to_json()}
        except CannotCheck as exc:
            answers[arch] = {"cannot_check": str(exc)}
    print(json.dumps(answers))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
