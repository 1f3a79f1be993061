"""Slow clients against the web server of `make run`: before (gunicorn alone, gthread,
2 workers x 32 threads, waiting claims unbounded, as `make run` served until issue 20)
and after (scripts/run-web: nginx in front where installed, waiting claims bounded).

Usage:
    .venv/bin/python bench/slowloris.py [--mode before|after|both] [--slow 200]
        [--polls 70] [--probes 20] [--seconds 40]

For each mode it starts the server on a free 127.0.0.1 port (DATABASE_URL, else a
SQLite file under var/bench-slowloris/), makes one builder, then at once:
  - SLOW sockets that send a request's headers one byte at a time (one byte per socket
    per second, reconnecting when closed: slowloris);
  - POLLS long-polling claims (wait 60 s) from that one builder's token, each asking
    again as soon as it is answered;
and, after 5 s, PROBES requests of /simple/markupsafe/ (pip's Accept; a 404 from Django,
the worst case: every answer needs a Django thread), one a second, 5 s timeout each.
Prints per mode: probes answered, answered under 1 s, median and max latency, and what
the claims got. All traffic goes to 127.0.0.1; the load ends after SECONDS.
"""
import sys
from pathlib import Path

sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import collections  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import urllib.error  # noqa: E402
import urllib.request  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "var" / "bench-slowloris"
PY = sys.executable
PIP_ACCEPT = ("application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; "
              "q=0.1, text/html; q=0.01")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def farm_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIWHEELS_")}
    env.setdefault("DATABASE_URL", f"sqlite:///{WORK / 'db.sqlite3'}")
    env.update(DEBUG="false", SECRET_KEY="bench-" * 10, SECURE_COOKIES="false",
               PIWHEELS_DATA_DIR=str(WORK / "data"), PIWHEELS_SYNC_INTERVAL="0",
               LOG_LEVEL="WARNING")
    return env


def manage(env, *args):
    return subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True).stdout


def setup(env):
    WORK.mkdir(parents=True, exist_ok=True)
    manage(env, "migrate", "--noinput")
    manage(env, "add_abi", "cp311")
    name = f"bench-{int(time.time())}"
    out = manage(env, "create_builder", name)
    token = next(w for line in out.splitlines() for w in line.split() if len(w) >= 30)
    return token


def start(mode, env, port):
    bind = f"127.0.0.1:{port}"
    if mode == "before":
        env = dict(env, PIWHEELS_LONGPOLL_PER_BUILDER="0", PIWHEELS_LONGPOLL_MAX="0")
        args = [str(Path(PY).with_name("gunicorn")), "piwheels_site.wsgi",
                "-c", "piwheels_site/gunicorn.conf.py", "-b", bind, "-w", "2",
                "-k", "gthread", "--threads", "32"]
    else:
        args = [PY, "scripts/run-web", bind, "2", "32"]
    args += ["--control-socket", str(WORK / "gunicorn.ctl")]  # not ~/.gunicorn's
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=open(WORK / f"{mode}.log", "w"), start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://{bind}/simple/", timeout=2).read()
            return proc
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return proc
            time.sleep(0.3)
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{mode}: the server did not start (see {WORK / f'{mode}.log'})")


def stop(proc):
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def slow_sockets(port, count, until, stats):
    """COUNT sockets each sending one header byte a second until UNTIL."""
    socks = {}
    line = b"GET /simple/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100000

    def connect(i):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            s.setblocking(False)
            socks[i] = [s, 0]
            stats["connected"] += 1
        except OSError:
            socks.pop(i, None)
            stats["refused"] += 1

    for i in range(count):
        connect(i)
    while time.monotonic() < until:
        for i in range(count):
            entry = socks.get(i)
            if entry is None:
                connect(i)
                continue
            s, at = entry
            try:
                s.send(line[at:at + 1])
                entry[1] = at + 1
            except BlockingIOError:
                pass
            except OSError:
                s.close()
                stats["closed by server"] += 1
                connect(i)
        time.sleep(1)
    for s, _ in socks.values():
        s.close()


def long_polls(port, token, until, stats):
    body = json.dumps({"abi": "cp311", "wait": 60}).encode()
    while time.monotonic() < until:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/claim/", data=body, method="POST",
            headers={"Authorization": f"Token {token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=max(1, until - time.monotonic())) as r:
                stats[r.status] += 1
        except urllib.error.HTTPError as exc:
            stats[exc.code] += 1
            if exc.code == 429:  # as the agent does: wait as told (at most 60 s)
                pause = min(60, float(exc.headers.get("Retry-After") or 1))
                time.sleep(max(0, min(pause, until - time.monotonic())))
        except OSError:
            stats["no answer"] += 1
        time.sleep(1)  # as the agent pauses after a claim answered at once (IDLE_PAUSE)


def probe(port, count, timeout=5):
    latencies = []  # None: no answer within TIMEOUT
    for _ in range(count):
        began = time.monotonic()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/simple/markupsafe/",
                                         headers={"Accept": PIP_ACCEPT})
        try:
            urllib.request.urlopen(request, timeout=timeout).read()
            latencies.append(time.monotonic() - began)
        except urllib.error.HTTPError:
            latencies.append(time.monotonic() - began)  # the 404: an answer
        except OSError:
            latencies.append(None)
        time.sleep(max(0, 1 - (time.monotonic() - began)))
    return latencies


def run(mode, env, token, args):
    port = free_port()
    proc = start(mode, env, port)
    try:
        until = time.monotonic() + args.seconds
        slow, polls = collections.Counter(), collections.Counter()
        threads = [threading.Thread(target=slow_sockets, args=(port, args.slow, until, slow),
                                    daemon=True)]
        threads += [threading.Thread(target=long_polls, args=(port, token, until, polls),
                                     daemon=True) for _ in range(args.polls)]
        for t in threads:
            t.start()
        time.sleep(5)
        latencies = probe(port, args.probes)
        for t in threads:
            t.join(max(0.1, until - time.monotonic() + 5))
    finally:
        stop(proc)
    answered = [x for x in latencies if x is not None]
    fast = [x for x in answered if x < 1]
    print(f"{mode:>6}: probes answered {len(answered)}/{len(latencies)}, under 1 s "
          f"{len(fast)}/{len(latencies)}; latency median "
          f"{statistics.median(answered) * 1000 if answered else float('nan'):.0f} ms, max "
          f"{max(answered) * 1000 if answered else float('nan'):.0f} ms; slow sockets "
          f"{dict(slow)}; claims {dict(polls)}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("before", "after", "both"), default="both")
    parser.add_argument("--slow", type=int, default=200, help="slow sockets (max 1000)")
    parser.add_argument("--polls", type=int, default=70, help="long-polls (max 500)")
    parser.add_argument("--probes", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=40, help="load duration (max 300)")
    args = parser.parse_args()
    args.slow, args.polls = min(args.slow, 1000), min(args.polls, 500)
    args.seconds = min(args.seconds, 300)
    args.probes = min(args.probes, int(args.seconds) - 6)
    env = farm_env()
    token = setup(env)
    print(f"{args.slow} slow sockets, {args.polls} long-polls from one token, "
          f"{args.probes} probes of /simple/markupsafe/ (5 s timeout), "
          f"load {args.seconds:.0f} s; load average {os.getloadavg()[0]:.1f}", flush=True)
    for mode in (("before", "after") if args.mode == "both" else (args.mode,)):
        run(mode, env, token, args)


if __name__ == "__main__":
    main()
