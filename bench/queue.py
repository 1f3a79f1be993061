"""Benchmark of the build queue over HTTP, as in production.

    .venv/bin/python bench/queue.py [--seconds 20] [--builders 50] [--pollers 100]

1. Fills PostgreSQL database `bench_queue` (dropped and re-created) with 1,000,000 queued
   jobs over 3 ABIs (333,334 versions of 100,000 projects; INSERT ... SELECT over
   generate_series, so it takes seconds).
2. Runs the farm under gunicorn as `make run` does (gthread, 2 workers, WEB_THREADS
   threads) on 127.0.0.1, and 50 simulated builders over HTTP (4 processes of threads,
   one requests.Session each) doing claim (wait=0) + finish(success=false, a 2 KiB log:
   no upload) for a fixed time. Prints cycles/s and claim latency p50/p99 against the goals
   (>= 200 cycles/s, p99 < 50 ms).
3. Measures a database-backed page (/project/<name>/, else /simple/<name>/, else /) with
   8 client threads, alone and then with 100 builders long-polling on an ABI with nothing
   queued, and prints the ratio (goal > 0.9).

The machine has 2 cores shared by PostgreSQL, gunicorn and this load generator: the
figures are what that gives, not what the farm does on its own machine.
"""
import sys
from pathlib import Path

# This file is named queue.py: keep its directory off sys.path, or it shadows the stdlib.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB = "bench_queue"
BASE_URL = os.environ.get("BENCH_DATABASE_SERVER", "postgres://postgres@127.0.0.1:5432")
DATABASE_URL = f"{BASE_URL}/{DB}"
ABIS = ["cp39", "cp311", "cp313"]
IDLE_ABI = "cp312"  # active, nothing queued: what the long-pollers wait on
JOBS = 1_000_000
PROJECTS = 100_000
POLL_WAIT = 10  # shorter than the builders' 30 s: more request churn, a harder test


def setup_django():
    os.environ["DATABASE_URL"] = DATABASE_URL
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "piwheels_site.settings")
    import django

    django.setup()


def recreate_database():
    import psycopg2

    conn = psycopg2.connect(f"{BASE_URL}/postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DB}")
        cur.execute(f"CREATE DATABASE {DB}")
    conn.close()
    env = dict(os.environ, DATABASE_URL=DATABASE_URL)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env,
                   check=True)


def insert_select(model, exprs, source):
    """INSERT INTO model's table SELECT ... FROM source: EXPRS gives SQL for some columns,
    every other column gets its field default (so new fields of the models still work)."""
    from django.db import connection

    columns, values, params = [], [], []
    for field in model._meta.concrete_fields:
        if field.primary_key and field.column not in exprs:
            continue
        columns.append(field.column)
        if field.column in exprs:
            values.append(exprs[field.column])
        else:
            values.append("%s")
            default = field.get_default() if field.has_default() or not field.null else None
            params.append(field.get_db_prep_save(default, connection))
    sql = (f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) "
           f"SELECT {', '.join(values)} FROM {source}")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def fill(builders, pollers):
    from django.db import connection

    from builds.models import Abi, Build, Builder, hash_token
    from packages.models import Project, Version

    started = time.monotonic()
    insert_select(Project, {"name": "'p' || i", "normalized_name": "'p' || i"},
                  f"generate_series(1, {PROJECTS}) AS i")
    versions = -(-JOBS // len(ABIS))
    insert_select(Version, {
        "project_id": f"(SELECT min(id) FROM packages_project) + mod(i, {PROJECTS})",
        "version": f"'1.' || (i / {PROJECTS})", "has_sdist": "true",
        "released": "now() - make_interval(secs => i)",
    }, f"generate_series(0, {versions - 1}) AS i")
    for tag in ABIS + [IDLE_ABI]:
        Abi.objects.get_or_create(tag=tag)
    jobs = insert_select(Build, {
        "version_id": "v.id", "abi_id": "a.id", "state": "'queued'",
        # 1 in 50 is a new release, the rest backlog
        "priority": "CASE WHEN mod(v.id, 50) = 0 THEN 1 ELSE 0 END",
    }, f"packages_version v CROSS JOIN builds_abi a WHERE a.tag IN "
       f"({', '.join(repr(t) for t in ABIS)}) ORDER BY v.id LIMIT {JOBS}")
    Builder.objects.bulk_create(
        [Builder(name=f"b{i}", token_hash=hash_token(f"token-b{i}")) for i in range(builders)]
        + [Builder(name=f"w{i}", token_hash=hash_token(f"token-w{i}")) for i in range(pollers)]
    )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    print(f"filled {jobs:,} queued jobs over {len(ABIS)} ABIs in "
          f"{time.monotonic() - started:.1f} s")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(port, threads, data_dir, conn_max_age=60):
    env = dict(os.environ, DATABASE_URL=DATABASE_URL, DEBUG="false", LOG_LEVEL="WARNING",
               DATABASE_CONN_MAX_AGE=str(conn_max_age),
               PIWHEELS_DATA_DIR=str(data_dir), ALLOWED_HOSTS="127.0.0.1")
    proc = subprocess.Popen(
        [str(ROOT / ".venv/bin/gunicorn"), "piwheels_site.wsgi", "-b", f"127.0.0.1:{port}",
         "-w", "2", "-k", "gthread", "--threads", str(threads), "--log-level", "warning"],
        cwd=ROOT, env=env, start_new_session=True,
    )
    import requests

    for _ in range(100):
        try:
            requests.get(f"http://127.0.0.1:{port}/api/schema/", timeout=2)
            return proc
        except requests.ConnectionError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("gunicorn did not start")


def builder_process(url, names, seconds, results):
    """One process of simulated builders: a thread per builder, claim + finish in a loop."""
    import requests

    deadline = time.monotonic() + seconds
    latencies, cycles, errors = [], [0], [0]
    lock = threading.Lock()

    def run(name, abi):
        session = requests.Session()
        session.headers["Authorization"] = f"Token token-{name}"
        body = {"abi": abi, "platform": "linux_armv7l", "python_version": "3.11",
                "os": "bench", "wait": 0}
        mine, done, failed = [], 0, 0
        while time.monotonic() < deadline:
            t = time.perf_counter()
            r = session.post(f"{url}/api/v1/claim/", json=body)
            mine.append(time.perf_counter() - t)
            if r.status_code != 200:
                failed += 1
                continue
            r = session.post(f"{url}/api/v1/builds/{r.json()['build_id']}/finish/", json={
                "success": False, "duration": 1.0, "output": "x" * 2048,
                "failure_reason": "bench"})
            if r.status_code == 200:
                done += 1
            else:
                failed += 1
        with lock:
            latencies.extend(mine)
            cycles[0] += done
            errors[0] += failed

    threads = [threading.Thread(target=run, args=(name, abi)) for name, abi in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results.put((latencies, cycles[0], errors[0]))


def bench_cycles(url, builders, seconds, procs=4):
    names = [(f"b{i}", ABIS[i % len(ABIS)]) for i in range(builders)]
    results = multiprocessing.Queue()
    workers = [
        multiprocessing.Process(target=builder_process,
                                args=(url, names[i::procs], seconds, results))
        for i in range(procs)
    ]
    started = time.monotonic()
    for w in workers:
        w.start()
    latencies, cycles, errors = [], 0, 0
    for _ in workers:
        lat, done, failed = results.get()
        latencies += lat
        cycles += done
        errors += failed
    for w in workers:
        w.join()
    elapsed = time.monotonic() - started
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    rate = cycles / elapsed
    print(f"{builders} builders, {elapsed:.1f} s: {cycles:,} claim+finish cycles, "
          f"{errors} errors")
    print(f"  cycles/s       {rate:8.1f}   goal >= 200   {'OK' if rate >= 200 else 'MISSED'}")
    print(f"  claim p50 (ms) {p50:8.1f}")
    print(f"  claim p99 (ms) {p99:8.1f}   goal < 50     {'OK' if p99 < 50 else 'MISSED'}")


def page_process(url, seconds, threads, results):
    import requests

    deadline = time.monotonic() + seconds
    counts = []

    def run():
        session, n = requests.Session(), 0
        while time.monotonic() < deadline:
            r = session.get(url)
            assert r.status_code == 200, r.status_code
            n += 1
        counts.append(n)

    ts = [threading.Thread(target=run) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    results.put(sum(counts))


def page_rate(url, seconds, threads=8, procs=2):
    results = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=page_process,
                                       args=(url, seconds, threads // procs, results))
               for _ in range(procs)]
    started = time.monotonic()
    for w in workers:
        w.start()
    total = sum(results.get() for _ in workers)
    for w in workers:
        w.join()
    return total / (time.monotonic() - started)


def poller_process(url, count, stop):
    """COUNT builders long-polling on the idle ABI until STOP is set."""
    import requests

    answered = [0]

    def run(i):
        session = requests.Session()
        session.headers["Authorization"] = f"Token token-w{i}"
        time.sleep(POLL_WAIT * i / count)  # real builders are not in step with each other
        while not stop.is_set():
            r = session.post(f"{url}/api/v1/claim/", json={"abi": IDLE_ABI, "wait": POLL_WAIT},
                             timeout=60)
            assert r.status_code == 204, r.status_code
            answered[0] += 1

    for i in range(count):
        threading.Thread(target=run, args=(i,), daemon=True).start()
    stop.wait()


def server_cpu(master_pid):
    """CPU seconds used so far by gunicorn's worker processes."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master_pid:  # ppid
            total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / os.sysconf("SC_CLK_TCK")


def db_stats():
    """(sessions, transactions, active ms) of database bench_queue so far."""
    import psycopg2

    conn = psycopg2.connect(f"{BASE_URL}/postgres")
    with conn.cursor() as cur:
        cur.execute("SELECT sessions, xact_commit + xact_rollback, active_time"
                    " FROM pg_stat_database WHERE datname = %s", [DB])
        row = cur.fetchone()
    conn.close()
    return row


def idle_cost(master_pid, seconds=10):
    """What the waiting builders alone cost the farm, per second."""
    cpu, db = server_cpu(master_pid), db_stats()
    time.sleep(seconds)
    cpu, db = server_cpu(master_pid) - cpu, [b - a for a, b in zip(db, db_stats())]
    return cpu / seconds, db[0] / seconds, db[1] / seconds, db[2] / seconds / 1000


def pick_page(base):
    import requests

    for path in ("/project/p1/", "/simple/p1/", "/"):
        if requests.get(base + path).status_code == 200:
            return path
    raise SystemExit("no page to measure")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--builders", type=int, default=50)
    parser.add_argument("--pollers", type=int, default=100)
    parser.add_argument("--threads", type=int, default=128, help="gunicorn threads/worker")
    parser.add_argument("--rounds", type=int, default=3, help="page measurement rounds")
    parser.add_argument("--skip-fill", action="store_true", help="reuse bench_queue as is")
    args = parser.parse_args()

    if not args.skip_fill:
        recreate_database()
    setup_django()
    if not args.skip_fill:
        fill(args.builders, args.pollers)
    import tempfile

    data_dir = Path(tempfile.mkdtemp(prefix="bench-queue-"))
    port = free_port()
    server = start_gunicorn(port, args.threads, data_dir)
    base = f"http://127.0.0.1:{port}"
    try:
        print(f"gunicorn: 2 workers x {args.threads} threads (gthread) on {base}; "
              f"{os.cpu_count()} CPUs shared with PostgreSQL and the load generator")
        bench_cycles(base, args.builders, args.seconds)

        # Every gunicorn thread keeps its own connection for CONN_MAX_AGE, and page requests
        # rotate over all 2 x 128 threads: on this shared server (max_connections=100) the
        # page phase runs with DATABASE_CONN_MAX_AGE=0, alone and with the pollers alike.
        stop_gunicorn(server)
        port = free_port()
        server = start_gunicorn(port, args.threads, data_dir, conn_max_age=0)
        base = f"http://127.0.0.1:{port}"
        page = pick_page(base)
        seconds = max(5.0, args.seconds / 4)
        alone, busy = [], []
        for round in range(args.rounds):  # interleaved: the machine's load drifts
            alone.append(page_rate(base + page, seconds))
            stop = multiprocessing.Event()
            pollers = multiprocessing.Process(target=poller_process,
                                              args=(base, args.pollers, stop))
            pollers.start()
            time.sleep(POLL_WAIT + 1)  # let every poller get its request in
            if round == 0:
                cpu, sessions, xacts, active = idle_cost(server.pid)
            busy.append(page_rate(base + page, seconds))
            stop.set()
            pollers.terminate()
            pollers.join()
            time.sleep(POLL_WAIT + 1)  # the farm ends the abandoned long polls
        ratio = statistics.median(busy) / statistics.median(alone)
        print(f"{args.pollers} builders long-polling (wait={POLL_WAIT}) on an ABI with nothing "
              "queued, nothing else running, per second:")
        print(f"  gunicorn CPU {cpu * 100:.1f}% of a core; PostgreSQL: {sessions:.1f} new "
              f"sessions, {xacts:.1f} transactions, {active * 100:.1f}% of a core busy")
        print(f"page {page} with 8 clients, {args.rounds} interleaved rounds of {seconds:.0f} s "
              "(DATABASE_CONN_MAX_AGE=0):")
        print(f"  alone            {' '.join(f'{r:7.1f}' for r in alone)} req/s")
        print(f"  with {args.pollers} waiting {' '.join(f'{r:7.1f}' for r in busy)} req/s")
        print(f"  ratio of medians {ratio:7.2f}   goal > 0.9    "
              f"{'OK' if ratio > 0.9 else 'MISSED'}")
    finally:
        stop_gunicorn(server)


def stop_gunicorn(server):
    os.killpg(server.pid, signal.SIGINT)  # quick shutdown: do not wait for long polls
    try:
        server.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


if __name__ == "__main__":
    main()
