"""Benchmark of the failure classifier (builds/failures.py) over 10,000 build logs.

    .venv/bin/python bench/failures.py [--logs 10000]

The logs are the real excerpts and whole logs under tests/data/build-logs/, each padded
in front with lines of a real build's output (pip's progress, setuptools' copying, gcc
command lines) to 4, 16, 64 or 256 KiB in turn (mean 85 KiB), so that the rules scan as
much text as they would in a farm's logs; the error the classifier must find sits at the
end, as it does.
Goal: over 1,000 logs a second. Also times one log of PIWHEELS_MAX_LOG (2 MiB).
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0]).resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)  # bench/ has scripts named like stdlib modules (queue.py)

import argparse  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402

from builds import failures  # noqa: E402

LOGS = ROOT / "tests" / "data" / "build-logs"
GOAL = 1000  # logs a second
SIZES = (4, 16, 64, 256)  # KiB
NOISE = """\
  copying Lib/ldap/controls/sss.py -> build/lib.linux-armv7l-cpython-311/ldap/controls
  Installing build dependencies: still running...
  gcc -Wsign-compare -DNDEBUG -g -fwrapv -O3 -Wall -fPIC -DHAVE_SASL -DHAVE_TLS -IModules \
-I/usr/include/python3.11 -c Modules/LDAPObject.c -o build/temp.linux-armv7l/LDAPObject.o
  Modules/LDAPObject.c:412:9: warning: unused variable 'res' [-Wunused-variable]
  warning: no previously-included files matching '*.pyc' found anywhere in distribution
  running build_ext
  creating build/temp.linux-armv7l-cpython-311/Modules
"""


def make_logs(count):
    excerpts = [p.read_text() for p in sorted(LOGS.rglob("*.log"))]  # whole/ too
    logs = []
    for i in range(count):
        size = SIZES[i % len(SIZES)] * 1024
        tail = excerpts[i % len(excerpts)]
        logs.append(NOISE * max(0, (size - len(tail)) // len(NOISE)) + tail)
    return logs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logs", type=int, default=10_000)
    args = parser.parse_args()
    logs = make_logs(args.logs)
    reason = "pip wheel exited with status 1"
    size = sum(len(log) for log in logs)
    start = time.perf_counter()
    causes = Counter(failures.classify(log, reason).cause for log in logs)
    took = time.perf_counter() - start
    rate = len(logs) / took
    print(f"classified {len(logs)} logs ({size / 1024**2:.0f} MiB, mean "
          f"{size / len(logs) / 1024:.0f} KiB) in {took:.2f} s: {rate:,.0f} logs/s "
          f"(goal > {GOAL:,}: {'met' if rate > GOAL else 'NOT met'})")
    print("  causes:", ", ".join(f"{c} {n}" for c, n in sorted(causes.items())))
    big = NOISE * (2 * 1024**2 // len(NOISE)) + (LOGS / "python-ldap-3.4.4.log").read_text()
    start = time.perf_counter()
    found = failures.classify(big, reason)
    print(f"one 2 MiB log: {(time.perf_counter() - start) * 1000:.1f} ms ({found.cause})")


if __name__ == "__main__":
    main()
