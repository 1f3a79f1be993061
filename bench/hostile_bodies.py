"""What two hostile bodies cost a web worker, before and after issue 20's limits:

  - a 5.2 MB gzip bomb sent as a build log (PUT /api/v1/builds/<id>/log/): the CPU
    seconds the worker spends before its 413 (before: inflated up to
    PIWHEELS_MAX_LOG_INFLATED, 4 GiB; after: refused past 64 MiB inflated at a ratio
    over PIWHEELS_LOG_MAX_RATIO, 100);
  - a 64 MiB finish body (a log inside the JSON): the worker's resident memory before
    and at its peak (before: PIWHEELS_MAX_BODY 64 MiB, read and parsed; after: 8 MiB,
    refused with 413 before it is read).

Usage:
    .venv/bin/python bench/hostile_bodies.py [--mode before|after|both]

Runs gunicorn (1 worker, gthread, 4 threads, DEBUG off) on a free 127.0.0.1 port against
DATABASE_URL (else a SQLite file under var/bench-bodies/), a builder holding a job for
each request; CPU and memory are read from /proc for the worker process.
"""
import sys
from pathlib import Path

sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import struct  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import urllib.parse  # noqa: E402
import zlib  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "var" / "bench-bodies"
PY = sys.executable
BEFORE = {"PIWHEELS_LOG_MAX_RATIO": "0", "PIWHEELS_MAX_BODY": str(64 * 1024**2)}
MAKE_JOBS = """
from django.utils import timezone
from builds.models import Abi, Build
from packages.models import Project, Version
abi = Abi.objects.get(tag="cp311")
project, _ = Project.objects.get_or_create(
    normalized_name="bench-bodies", defaults=dict(name="bench-bodies"))
for n in range(COUNT):
    version = Version.objects.create(project=project, version=f"{timezone.now():%s%f}.{n}",
                                     has_sdist=True, released=timezone.now())
    Build.objects.create(version=version, abi=abi, state="queued")
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def farm_env(extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIWHEELS_")}
    env.setdefault("DATABASE_URL", f"sqlite:///{WORK / 'db.sqlite3'}")
    env.update(DEBUG="false", SECRET_KEY="bench-" * 10, SECURE_COOKIES="false",
               PIWHEELS_DATA_DIR=str(WORK / "data"), PIWHEELS_SYNC_INTERVAL="0",
               LOG_LEVEL="WARNING", **extra)
    return env


def manage(env, *args):
    return subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True).stdout


def gzip_bomb(compressed_size=5_200_000):
    """A gzip stream of zeros of about COMPRESSED_SIZE bytes (inflating about 1,000
    times that), made in a second: 16 MiB blocks, each closed by a full flush."""
    block = 16 * 1024**2
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = deflater.compress(bytes(block)) + deflater.flush(zlib.Z_FULL_FLUSH)
    count = max(1, compressed_size // len(chunk))
    final = zlib.compressobj(9, zlib.DEFLATED, -15)
    header = b"\x1f\x8b\x08\x00" + bytes(4) + b"\x00\x03"
    crc = 0  # never reached: the farm refuses it first
    return (header + chunk * count + final.compress(b"") + final.flush()
            + struct.pack("<II", crc, (block * count) & 0xFFFFFFFF)), block * count


def worker_of(master):
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(master)], capture_output=True,
                         text=True).stdout.split()
    return int(out[0])


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory(pid):
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text()
                  .splitlines() if ":" in line)
    return (int(status["VmRSS"].split()[0]) // 1024, int(status["VmHWM"].split()[0]) // 1024)


def call(url, token, method, data, content_type, timeout=300):
    """(status, body) of one request; a server that answers before it has read the
    whole body (a 413) is heard out even though the rest could not be sent."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.putrequest(method, parts.path)
        for name, value in (("Authorization", f"Token {token}"),
                            ("Content-Type", content_type),
                            ("Content-Length", str(len(data)))):
            conn.putheader(name, value)
        conn.endheaders()
        try:
            for at in range(0, len(data), 1024 * 1024):
                conn.send(data[at:at + 1024 * 1024])
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = conn.getresponse()
        return answer.status, answer.read()
    finally:
        conn.close()


def run(mode, bomb, inflates):
    env = farm_env(BEFORE if mode == "before" else {})
    out = manage(env, "create_builder", f"bench-{mode}-{int(time.time())}")
    token = next(w for line in out.splitlines() for w in line.split() if len(w) >= 30)
    manage(env, "shell", "-c", MAKE_JOBS.replace("COUNT", "2"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [str(Path(PY).with_name("gunicorn")), "piwheels_site.wsgi", "-c",
         "piwheels_site/gunicorn.conf.py", "-b", f"127.0.0.1:{port}", "-w", "1",
         "-k", "gthread", "--threads", "4", "--timeout", "600",
         "--control-socket", str(WORK / "gunicorn.ctl")],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(WORK / f"{mode}.log", "w"),
        start_new_session=True)
    try:
        claim = json.dumps({"abi": "cp311", "wait": 0}).encode()
        deadline = time.monotonic() + 60
        while True:
            try:
                status, body = call(f"{base}/api/v1/claim/", token, "POST", claim,
                                    "application/json")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        first = json.loads(body)["build_id"]
        worker = worker_of(proc.pid)
        cpu = cpu_seconds(worker)
        began = time.monotonic()
        status, body = call(f"{base}/api/v1/builds/{first}/log/", token, "PUT", bomb,
                            "application/gzip")
        print(f"{mode:>6}: gzip bomb of {len(bomb) / 1e6:.1f} MB (inflating to "
              f"{inflates / 1e9:.1f} GB) as a log: {status} after "
              f"{time.monotonic() - began:.2f} s, worker CPU "
              f"{cpu_seconds(worker) - cpu:.2f} s; {json.loads(body).get('detail', '')}",
              flush=True)

        status, body = call(f"{base}/api/v1/claim/", token, "POST", claim,
                            "application/json")
        second = json.loads(body)["build_id"]
        rss, _ = memory(worker)
        size = 64 * 1024**2 - 1024
        result = json.dumps({"success": False, "duration": 1, "failure_reason": "x",
                             "output": "y" * (size - 80)}).encode()
        began = time.monotonic()
        status, body = call(f"{base}/api/v1/builds/{second}/finish/", token, "POST", result,
                            "application/json")
        _, peak = memory(worker)
        print(f"{mode:>6}: finish body of {len(result) / 1024**2:.0f} MiB: {status} after "
              f"{time.monotonic() - began:.2f} s, worker resident {rss} MB before, peak "
              f"{peak} MB", flush=True)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("before", "after", "both"), default="both")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    env = farm_env({})
    manage(env, "migrate", "--noinput")
    manage(env, "add_abi", "cp311")
    bomb, inflates = gzip_bomb()
    print(f"load average {os.getloadavg()[0]:.1f}", flush=True)
    for mode in (("before", "after") if args.mode == "both" else (args.mode,)):
        run(mode, bomb, inflates)


if __name__ == "__main__":
    main()
