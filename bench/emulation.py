"""Seconds per build of the same small sdists emulated (a Debian ARM userland under
qemu-user, scripts/pi-userland) and native (this x86 machine), for docs/pi.md.

    .venv/bin/python bench/emulation.py [--release bookworm] [--arch armhf] [--repeat 3]

Each build is what the agent runs: `python -m pip wheel --use-pep517 --no-deps` of one
sdist, build isolation included (the backend installed from a local folder of wheels, no
network), with the release's own python3 -m venv and pip on both sides (the native side
is this machine's /usr/bin/python3: on a Debian 12 host that is Bookworm's Python 3.11 and
pip 23.0.1, as in the userland). Times are wall-clock seconds, the median of --repeat
builds, measured inside each environment around pip alone. Venv creation (python3 -m venv,
once per agent install, not per build) is shown apart. The machine's other load counts in
both: compare the ratio, not the seconds, between machines.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

from tests.sdists import LEGACY_CEXT, LIBYAML_CEXT, PEP517_CEXT  # noqa: E402

# Timed in the environment itself: what emulation costs, not what pi-run's mounts cost.
SCRIPT = """\
set -e
t0=$(date +%s.%N); python3 -m venv {tmp}/bench-venv; t1=$(date +%s.%N)
echo "venv $t0 $t1"
for sdist in {sdists}; do
  for i in $(seq {repeat}); do
    rm -rf {tmp}/bench-out; t0=$(date +%s.%N)
    env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null PIP_NO_CACHE_DIR=1 \\
      {tmp}/bench-venv/bin/python -m pip wheel -q --use-pep517 --no-deps --no-index \\
      --find-links {wheels} -w {tmp}/bench-out {src}/$sdist >{tmp}/bench-log 2>&1 \\
      || {{ cat {tmp}/bench-log; exit 1; }}
    t1=$(date +%s.%N); echo "build $sdist $t0 $t1"
  done
done
rm -rf {tmp}/bench-venv {tmp}/bench-out
"""


def backend_wheels(folder):
    """setuptools (<70.1 would need wheel too) and wheel, for isolation without network."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--only-binary", ":all:",
         "--no-deps", "-d", str(folder), "setuptools>=70.1", "wheel>=0.40,<0.46"],
        capture_output=True, text=True,
        env={**{k: v for k, v in os.environ.items() if k != "PIP_FIND_LINKS"},
             "PIP_CONFIG_FILE": "/dev/null"},
    )
    if proc.returncode != 0:
        sys.exit(f"cannot download setuptools and wheel: {proc.stderr[-500:]}")


def parse(output):
    venv, builds = None, {}
    for line in output.splitlines():
        parts = line.split()
        if parts[:1] == ["venv"]:
            venv = float(parts[2]) - float(parts[1])
        elif parts[:1] == ["build"]:
            builds.setdefault(parts[1], []).append(float(parts[3]) - float(parts[2]))
    return venv, builds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", default="bookworm", choices=["bookworm", "trixie"])
    parser.add_argument("--arch", default="armhf", choices=["armhf", "arm64"])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    userland = subprocess.run(
        [str(ROOT / "scripts" / "pi-userland"), args.release, args.arch, "builder"],
        check=True, capture_output=True, text=True).stdout.split()[-1]
    work = Path(tempfile.mkdtemp(prefix="bench-emulation-"))
    try:
        (work / "wheels").mkdir()
        (work / "src").mkdir()
        backend_wheels(work / "wheels")
        names = []
        for sdist in (PEP517_CEXT, LEGACY_CEXT, LIBYAML_CEXT):
            filename, data = sdist.tarball()
            (work / "src" / filename).write_bytes(data)
            names.append(filename)
        native = SCRIPT.format(sdists=" ".join(names), repeat=args.repeat, tmp=work,
                               wheels=work / "wheels", src=work / "src")
        emulated = SCRIPT.format(sdists=" ".join(names), repeat=args.repeat, tmp="/tmp",
                                 wheels="/mnt/bench/wheels", src="/mnt/bench/src")
        started = time.monotonic()
        proc = subprocess.run(["/bin/sh", "-c", native], capture_output=True, text=True,
                              env={"PATH": "/usr/bin:/bin", "HOME": str(work)})
        if proc.returncode != 0:
            sys.exit(f"native builds failed:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
        native_venv, native_builds = parse(proc.stdout)
        native_wall = time.monotonic() - started
        host = subprocess.run(
            ["/usr/bin/python3", "-c", "import sys; print(sys.version.split()[0])"],
            capture_output=True, text=True).stdout.strip()

        started = time.monotonic()
        proc = subprocess.run(
            [str(ROOT / "scripts" / "pi-run"), "--bind", f"{work}:/mnt/bench", userland,
             "/bin/sh", "-c", emulated], capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"emulated builds failed:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
        emu_venv, emu_builds = parse(proc.stdout)
        emu_wall = time.monotonic() - started
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"Emulated: {args.release} {args.arch} userland under qemu-user "
          f"({userland}); native: this machine's /usr/bin/python3 {host}, x86_64.")
    print(f"Median of {args.repeat} builds each (pip wheel --use-pep517, isolation from a "
          "local folder), seconds:")
    print(f"{'sdist':<34} {'native':>8} {'emulated':>9} {'ratio':>6}")
    for name in names:
        n, e = statistics.median(native_builds[name]), statistics.median(emu_builds[name])
        print(f"{name:<34} {n:8.1f} {e:9.1f} {e / n:5.1f}x")
    print(f"{'python3 -m venv (once per agent)':<34} {native_venv:8.1f} {emu_venv:9.1f} "
          f"{emu_venv / native_venv:5.1f}x")
    print(f"whole run, wall clock: native {native_wall:.0f} s, emulated {emu_wall:.0f} s")


if __name__ == "__main__":
    main()
