"""Benchmark of global index serials (issue 13 §6): what they cost the publishing path, and
the root with `_last-serial`s, at 100,000 projects / 1,000,000 files.

Usage (PostgreSQL on 127.0.0.1:5432; the database is filled as bench/index.py fills it, on
the first run, and reused after; `--refill` starts it again):
    flock /tmp/bench.lock .venv/bin/python bench/serials.py [--touches 2000] [--rounds 5]
        [--threads 4] [--db bench_index]

Prints, each beside what it compares with:
  - ProjectQuerySet.touch_index of one project in autocommit (the statement every
    publication runs): the old statement (index_serial + 1) against the new one (shared
    advisory lock + nextval), interleaved rounds, medians; single-threaded and with
    --threads publishers at once (the page writer left out: the same in both);
  - the root page written whole with `_last-serial`s (write_root) beside the 2.0 s the
    docs/performance.md gives for the names-only root at this size, and the page sizes;
  - repair() when nothing moved (its cost every minute on the task worker);
  - how long the root's writer waits for a moment without publishers (root_snapshot's
    barrier) while --threads publishers touch projects back to back.
"""
import sys
from pathlib import Path

# bench/ holds scripts named like standard modules (queue.py): keep it off the path.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
README_ROOT_SECONDS = 2.0  # docs/performance.md: "root of 100,000 projects rewritten in 2.0 s"


def load_index_bench(db):
    """bench/index.py as a module, for its seed() (the same filled database)."""
    spec = importlib.util.spec_from_file_location("bench_index", ROOT / "bench" / "index.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.DB = db
    return module


def old_touch(queryset):
    """touch_index's statement before global serials (per-project counters)."""
    from django.db import connection

    from packages.models import Project

    ids_sql, params = queryset.values("id").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Project._meta.db_table} SET index_serial = index_serial + 1"
            f" WHERE id IN ({ids_sql}) RETURNING normalized_name", params)
        return len(cursor.fetchall())


def new_touch(queryset):
    return queryset.touch_index()


def per_touch_us(touch, ids, threads):
    """Microseconds of wall time per touch, THREADS publishers sharing IDS."""
    from django.db import connection

    from packages.models import Project

    def run(chunk):
        try:
            for pid in chunk:
                touch(Project.objects.filter(id=pid))
        finally:
            connection.close()

    chunks = [ids[i::threads] for i in range(threads)]
    workers = [threading.Thread(target=run, args=(chunk,)) for chunk in chunks]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return (time.perf_counter() - started) / len(ids) * 1e6


def barrier_waits(ids, threads, samples):
    """Milliseconds root_snapshot() took to take the barrier, SAMPLES times, while THREADS
    publishers touch projects back to back; and the milliseconds each touch took."""
    from django.db import connection

    from index import rendering
    from packages.models import Project

    stop = threading.Event()
    touches = []

    def publisher(chunk):
        try:
            while not stop.is_set():
                for pid in chunk:
                    started = time.perf_counter()
                    Project.objects.filter(id=pid).touch_index()
                    touches.append((time.perf_counter() - started) * 1e3)
        finally:
            connection.close()

    workers = [threading.Thread(target=publisher, args=(ids[i::threads],))
               for i in range(threads)]
    for worker in workers:
        worker.start()
    waits = []
    try:
        for _ in range(samples):
            started = time.perf_counter()
            with rendering.root_snapshot():
                waits.append((time.perf_counter() - started) * 1e3)
            time.sleep(0.05)
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    return waits, sorted(touches)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--touches", type=int, default=2000, help="touches per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=4, help="concurrent publishers")
    parser.add_argument("--db", default=os.environ.get("PIWHEELS_BENCH_DB", "bench_index"))
    parser.add_argument("--refill", action="store_true")
    args = parser.parse_args()

    bench_index = load_index_bench(args.db)
    data = ROOT / "var" / "bench-serials"
    env = dict(os.environ, DATABASE_URL=f"{bench_index.DSN}/{args.db}", DEBUG="false",
               SECRET_KEY="bench-only", PIWHEELS_DATA_DIR=str(data), LOG_LEVEL="WARNING",
               PIWHEELS_INDEX_FSYNC="true")
    bench_index.seed(env, args.refill)
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "piwheels_site.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.db import connection
    from django.db.models import F

    from index import pages
    from packages.models import Project

    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"load average before: {load}", flush=True)
    ids = list(Project.objects.order_by("id").values_list("id", flat=True)[:args.touches])
    pages.changed = lambda names, root=False: None  # the page writer: the same in both

    for threads in (1, args.threads):
        old, new = [], []
        for _ in range(args.rounds):
            old.append(per_touch_us(old_touch, ids, threads))
            new.append(per_touch_us(new_touch, ids, threads))
        o, n = statistics.median(old), statistics.median(new)
        print(f"touch_index, {threads} publisher(s), {args.rounds} x {len(ids)} touches: "
              f"old statement {o:.0f} us, global serial {n:.0f} us per touch "
              f"(ratio {n / o:.2f}; rounds old {min(old):.0f}-{max(old):.0f}, "
              f"new {min(new):.0f}-{max(new):.0f})", flush=True)
    del pages.changed  # back to the module's own
    import importlib

    importlib.reload(pages)

    with connection.cursor() as cursor:  # the touches' dead rows, as autovacuum would
        cursor.execute("VACUUM ANALYZE packages_project")
    (pages.simple_dir() / ".serial").unlink(missing_ok=True)
    started = time.perf_counter()
    count = pages.write_root()
    took = time.perf_counter() - started
    sizes = {fmt: pages.root_file(fmt).stat().st_size / 1e6 for fmt in pages.PAGE_FORMATS}
    print(f"root with _last-serials, {count:,} projects: written in {took:.2f} s "
          f"(docs/performance.md, names only: {README_ROOT_SECONDS} s); "
          f"JSON {sizes['json']:.2f} MB "
          f"({sizes['json.gz']:.2f} MB gzip), HTML {sizes['html']:.2f} MB "
          f"({sizes['html.gz']:.2f} MB gzip)", flush=True)

    # Project pages are bench/index.py's to measure: here none counts as lagging (the
    # filled database has never written them), so repair() does only the root's work.
    Project.objects.update(index_file_serial=F("index_serial"))
    runs = []
    for _ in range(10):
        started = time.perf_counter()
        pages.repair()
        runs.append((time.perf_counter() - started) * 1e3)
    print(f"repair() with nothing moved: median {statistics.median(runs):.1f} ms "
          f"(every minute on the task worker)", flush=True)

    waits, touches = barrier_waits(ids, args.threads, 20)
    p99 = touches[int(len(touches) * 0.99)]
    print(f"root barrier with {args.threads} publishers touching back to back: taken in "
          f"p50 {statistics.median(waits):.1f} ms, max {max(waits):.1f} ms over "
          f"{len(waits)} tries (RootBusy after 10 s); meanwhile {len(touches):,} touches "
          f"(page files written): p50 {statistics.median(touches):.1f} ms, p99 {p99:.1f} "
          f"ms, max {touches[-1]:.1f} ms", flush=True)


if __name__ == "__main__":
    main()
