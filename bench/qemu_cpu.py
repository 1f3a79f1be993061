"""Seconds for the same small Python run in the arm64 userlands under qemu-user with its
default CPU (`QEMU_CPU=max`) and with the one scripts/pi-run gives arm64 userlands
(`max,pauth-impdef=on`), beside Bookworm's, for docs/pi.md (problem 18).

    .venv/bin/python bench/qemu_cpu.py [--repeat 5]

Trixie builds arm64 with branch protection (pointer authentication at every call and
return); qemu-user's default CPU computes it with the QARMA5 cipher in software. The run
is `python3 -c 'import json, email, ssl'` in the clean userland (scripts/pi-userland, made
when missing), timed around scripts/pi-run: the median of --repeat runs, wall clock.
"""
import argparse
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = ["/usr/bin/python3", "-c", "import json, email, ssl"]
CPUS = {"default (max)": "max", "pi-run's (max,pauth-impdef=on)": "max,pauth-impdef=on"}


def seconds(userland, cpu, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([str(ROOT / "scripts" / "pi-run"), userland, f"QEMU_CPU={cpu}",
                        *PROGRAM], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"Median of {args.repeat} runs of {' '.join(PROGRAM)!r} in the arm64 clean "
          "userlands, seconds:")
    print(f"{'release':10}" + "".join(f"{name:>34}" for name in CPUS) + "   ratio")
    for release in ("bookworm", "trixie"):
        userland = subprocess.run(
            [str(ROOT / "scripts" / "pi-userland"), release, "arm64", "clean"],
            check=True, capture_output=True, text=True).stdout.split()[-1]
        slow, fast = (seconds(userland, cpu, args.repeat) for cpu in CPUS.values())
        print(f"{release:10}{slow:34.2f}{fast:34.2f}{slow / fast:7.1f}x")


if __name__ == "__main__":
    main()
