"""Bench of builds.wheels.inspect, the check every upload and import goes through.

    .venv/bin/python bench/wheel_check.py [--valid-mb 256]

Each case runs in a fresh process, which reports its peak RSS (VmHWM) before and
after the check, and the time the check took:

1. the issue's bomb: a 1 MB wheel whose WHEEL file declares its true small size but
   inflates on to 1 GiB of zeros. Goal: refused within its first 64 KiB chunk, well under
   a second, peak RSS up by under 10 MB (it took a worker from 76 MB to 3.85 GB);
2. a member declaring 1 GiB from 1 MB (an honest bomb). Goal: refused from its headers;
3. a valid wheel of --valid-mb MB of incompressible members, every member inflated and
   hashed against RECORD. Goal: peak RSS does not grow with the wheel (under 20 MB up),
   at 100 MB/s or more.
"""
import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# bench/ holds a queue.py: keep it off sys.path, or it shadows the stdlib's queue.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

CHILD = """
import os, sys, time
sys.path.insert(0, {root!r})
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "piwheels_site.settings")
import django
django.setup()
from builds.wheels import InvalidWheel, inspect
def peak_rss_kb():
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec from the parent.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
before = peak_rss_kb()
started = time.perf_counter()
try:
    inspect({path!r}, filename={filename!r})
    outcome = "accepted"
except InvalidWheel as exc:
    outcome = "refused: " + str(exc)[:110]
took = time.perf_counter() - started
after = peak_rss_kb()
print(f"{{took:.6f}} {{before / 1024:.1f}} {{after / 1024:.1f}} {{outcome}}")
"""


def check(path, filename):
    out = subprocess.run(
        [sys.executable, "-c", CHILD.format(root=str(ROOT), path=str(path), filename=filename)],
        capture_output=True, text=True, check=True, cwd=ROOT,
    ).stdout.split(" ", 3)
    return float(out[0]), float(out[1]), float(out[2]), out[3].strip()


def valid_wheel(directory, megabytes):
    from tests.builds.bad_wheels import crafted, parts
    from tests.factories import with_record

    filename, members, dist_info = parts("foo", "1.0", "cp311-cp311-linux_armv7l")
    block = os.urandom(1024**2)
    for i in range(megabytes):
        members[f"foo/data{i}.bin"] = block[i:] + block[:i]
    members = with_record(members, f"{dist_info}/RECORD")
    path = Path(directory) / filename
    path.write_bytes(crafted(members))
    return path, filename


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--valid-mb", type=int, default=256)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "piwheels_site.settings")
    import django

    django.setup()
    from tests.builds.bad_wheels import TAG, bomb, lying_wheel_file

    with tempfile.TemporaryDirectory() as tmp:
        cases = []
        for label, make, goal in (
            ("WHEEL inflating to 1 GiB", lying_wheel_file, "refused < 1 s, RSS +< 10 MB"),
            ("member declaring 1 GiB", bomb(honest=True), "refused < 1 s, RSS +< 10 MB"),
        ):
            filename, data = make("foo", "1.0", TAG)
            path = Path(tmp) / label.replace(" ", "_")
            path.write_bytes(data)
            cases.append((f"{label} ({len(data) / 1e6:.1f} MB file)", path, filename, goal))
        path, filename = valid_wheel(tmp, args.valid_mb)
        cases.append((f"valid wheel, {args.valid_mb} x 1 MiB members", path, filename,
                      "accepted, RSS +< 20 MB, >= 100 MB/s"))
        for label, path, filename, goal in cases:
            took, before, after, outcome = check(path, filename)
            rate = path.stat().st_size / max(took, 1e-6) / 1e6
            speed = f" ({rate:.0f} MB/s)" if outcome == "accepted" else ""
            print(f"{label}: {took:.3f} s{speed}, peak RSS {before:.0f} -> "
                  f"{after:.0f} MB (+{after - before:.1f}); {outcome}  [goal: {goal}]")


if __name__ == "__main__":
    main()
