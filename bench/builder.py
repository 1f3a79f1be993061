"""Bench of the builder agent's own costs, against the stand-in farm on 127.0.0.1.

    .venv/bin/python bench/builder.py [--jobs 40] [--wheel-mb 256]

1. Overhead per job: one agent process works through N jobs whose "pip" (a stand-in that
   writes a small wheel at once) costs nothing, so what is measured is the agent: claim,
   start pip, inspect the wheel, spool it, upload, finish. Goal: well under 1 s a job,
   nothing next to real builds of tens of seconds to hours.
2. One big wheel: the agent builds (stand-in) and uploads a wheel of --wheel-mb MB.
   Goal: the agent's peak memory does not grow with the wheel (streamed from disk), i.e.
   stays under 100 MB for a 256 MB wheel, and the upload runs at loopback speed.
"""
import argparse
import os
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# bench/ holds a queue.py: keep it off sys.path, or it shadows the stdlib's queue.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT / "builder" / "tests"))

from farm_standin import StandinFarm  # noqa: E402

FAKE_PIP = """\
#!{python}
import os, sys, zipfile
args = sys.argv[1:]
if args[:1] == ["-c"]:
    os.execv(sys.executable, [sys.executable] + args)
wheel_dir = args[args.index("--wheel-dir") + 1]
name, version = args[-1].split("==")
dist = name.replace("-", "_")
info = "%s-%s.dist-info" % (dist, version)
megabytes = int(os.environ.get("BENCH_WHEEL_MB", "0"))
print("Building wheel for", name, flush=True)
with zipfile.ZipFile(os.path.join(wheel_dir, "%s-%s-py3-none-any.whl" % (dist, version)),
                     "w", zipfile.ZIP_STORED) as zf:
    zf.writestr(dist + "/__init__.py", "")
    if megabytes:
        block = os.urandom(1 << 20)
        with zf.open(dist + "/blob.bin", "w", force_zip64=True) as f:
            for _ in range(megabytes):
                f.write(block)
    zf.writestr(info + "/METADATA",
                "Metadata-Version: 2.1\\nName: %s\\nVersion: %s\\n" % (name, version))
    zf.writestr(info + "/WHEEL", "Wheel-Version: 1.0\\nTag: py3-none-any\\n")
    zf.writestr(info + "/RECORD", "")
"""


def agent(farm, work, fake, *args, env=None):
    command = [sys.executable, "-m", "piwheels_builder.main", "--server", farm.url,
               "--token", farm.token, "--work-dir", str(work), "--python", fake,
               "--abi", "cp311", "--platform", "linux_armv7l", "--wait", "0", "-q", *args]
    proc = subprocess.Popen(command, env=dict(os.environ, **(env or {})))
    return proc


def wait_rusage(proc):
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--wheel-mb", type=int, default=256)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        fake = tmp / "fake-python"
        fake.write_text(FAKE_PIP.format(python=sys.executable))
        fake.chmod(fake.stat().st_mode | stat.S_IXUSR)

        farm = StandinFarm().start()
        ids = [farm.add_job(f"bench-{i}") for i in range(args.jobs)]
        proc = agent(farm, tmp / "work1", str(fake))
        farm.wait_for(lambda: len(farm.claims) >= 1, timeout=60)
        start = time.monotonic()
        farm.wait_for(lambda: all(farm.builds[i]["state"] == "succeeded" for i in ids),
                      timeout=600)
        elapsed = time.monotonic() - start
        proc.terminate()
        proc.wait()
        farm.stop()
        print(f"overhead: {args.jobs} jobs in {elapsed:.2f}s = {elapsed / args.jobs * 1000:.0f} ms"
              f" per job (claim, pip, inspect, spool, upload, finish)   goal: < 1000 ms")

        farm = StandinFarm().start()
        build_id = farm.add_job("bench-big")
        start = time.monotonic()
        proc = agent(farm, tmp / "work2", str(fake), "--once",
                     env={"BENCH_WHEEL_MB": str(args.wheel_mb)})
        usage = wait_rusage(proc)
        total = time.monotonic() - start
        build = farm.builds[build_id]
        assert proc.returncode == 0 and build["state"] == "succeeded", build
        (size,) = [len(d) for d in build["files"].values()]
        upload = [r for r in farm.log if r[0] == "PUT"]
        farm.stop()
        rss_mb = usage.ru_maxrss / 1024  # Linux: kB
        print(f"big wheel: {size / 1e6:.0f} MB built, inspected, uploaded and finished in "
              f"{total:.1f}s ({size / 1e6 / total:.0f} MB/s end to end, {len(upload)} PUT)")
        print(f"agent peak memory: {rss_mb:.0f} MB with a {size / 1e6:.0f} MB wheel   "
              f"goal: < 100 MB (streamed, not held)")


if __name__ == "__main__":
    main()
