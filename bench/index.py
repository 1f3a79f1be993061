"""Benchmark of the package index at PyPI scale, over 127.0.0.1 with wrk.

Usage (PostgreSQL on 127.0.0.1:5432; the database is filled on the first run, reused
after; `--refill` starts it again):
    flock /tmp/bench.lock .venv/bin/python bench/index.py [--seconds 10] [--refill]
        [--workers 3 --threads 4] [--quick] [--db bench_index] [--window-rounds 500]
(--quick: only the cached 200s, 304s and 404s and nginx, to compare settings.)

Fills database `bench_index` with 100,000 projects x 5 versions x 2 ABIs = 1,000,000
files (armv7l wheels, so every page also lists their armv6l aliases: 20 links), starts
the farm under gunicorn as in production (gthread, 3 workers x 4 threads by default: one
more process than cores, since /simple/ is answered in a few Python calls per request and
threads of one process share its GIL; DEBUG=false) and measures
with wrk (16 connections, a Lua script rotating over project names):
  - /simple/<name>/ 200s over 2,000 names (cached after a warm-up), pip's Accept header
  - the same as 304s (If-None-Match with each page's ETag)
  - /simple/<name>/ first hits over names not seen before (renders), and 404s
  - the root page's time to first byte and size, fresh after a change and cached
then, side by side while the farm idles, the same pages as static files with a plain
nginx and through the shipped deploy/nginx/piwheels.conf (the page files the farm wrote:
same bytes, gzip, 304s), the window from a committed change to its page file in place
(--window-rounds changes), and a 1% sample of the wheels (1,000 projects, 10,000 files:
empty files with the real names) with pypiserver, and prints our rates as ratios of
theirs against the goals: >= 1/20 of nginx from gunicorn, >= 0.8 of it through the
shipped config, >= 100x pypiserver, p99 < 25 ms, window p99 < 50 ms, root < 1 s to
first byte.
wrk, gunicorn and PostgreSQL share the machine's cores (in production the database is
elsewhere): the load average before the run is printed, since other work skews it.
"""
import sys
from pathlib import Path

# bench/ holds scripts named like standard modules (queue.py): keep it off the path.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import concurrent.futures  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402

import psycopg2  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "var" / "bench-index"
# PIWHEELS_BENCH_DB: another database name, so that checkouts with other schemas on one
# PostgreSQL server each keep their own filled database.
DB = os.environ.get("PIWHEELS_BENCH_DB", "bench_index")
DSN = "postgres://postgres@127.0.0.1:5432"
PROJECTS, VERSIONS = 100_000, 5
SAMPLE = 2_000  # popular names rotated over for the cached case
PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)
LOAD_BEFORE = "?"
GOALS = {"nginx_ratio": 1 / 20, "pypiserver_ratio": 100, "p99_ms": 25, "root_ttfb_s": 1.0,
         "shipped_ratio": 0.8, "window_p99_ms": 50}

LUA = r"""
local paths, etags = {}, {}
for line in io.lines(os.getenv("BENCH_PATHS")) do
  local p, e = line:match("^(%S+)%s*(%S*)$")
  paths[#paths + 1] = p
  etags[#etags + 1] = e
end
local use_etag = os.getenv("BENCH_ETAG") == "1"
local accept = os.getenv("BENCH_ACCEPT")
local gzip = os.getenv("BENCH_GZIP") ~= "0"
local i = 0
function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
  i = math.random(#paths)
end
function request()
  i = i % #paths + 1
  local headers = {["Accept"] = accept}
  if gzip then headers["Accept-Encoding"] = "gzip" end
  if use_etag then headers["If-None-Match"] = etags[i] end
  return wrk.format("GET", paths[i], headers)
end
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connect(db):
    conn = psycopg2.connect(f"{DSN}/{db}")
    conn.autocommit = True
    return conn


def fill_defaults(cur, table, given):
    """SQL expressions for the NOT NULL columns of TABLE that GIVEN leaves out (the
    models may gain columns; Django sets no database defaults)."""
    cur.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name=%s"
        " AND is_nullable='NO' AND column_default IS NULL", [table])
    out = {}
    for column, kind in cur.fetchall():
        if column in given or column == "id":
            continue
        out[column] = (
            "''" if "char" in kind or kind == "text" else
            "false" if kind == "boolean" else
            "now()" if "timestamp" in kind else
            "'[]'" if "json" in kind else
            "current_date" if kind == "date" else "0"
        )
    return out


def insert_select(cur, table, given, source):
    columns = dict(given)
    columns.update(fill_defaults(cur, table, given))
    names = ", ".join(columns)
    exprs = ", ".join(columns.values())
    cur.execute(f"INSERT INTO {table} ({names}) SELECT {exprs} FROM {source}")


def seed(env, refill):
    conn = connect("postgres")
    cur = conn.cursor()
    cur.execute("SELECT 1 FROM pg_database WHERE datname=%s", [DB])
    exists = cur.fetchone()
    if exists and not refill:
        db = connect(DB).cursor()
        db.execute("SELECT count(*) FROM builds_file")
        if db.fetchone()[0] >= PROJECTS * VERSIONS * 2:
            print("reusing the filled database", DB, flush=True)
            # The models may have moved on since it was filled.
            subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT,
                           env=env, check=True)
            return
    cur.execute(f"DROP DATABASE IF EXISTS {DB}")
    cur.execute(f"CREATE DATABASE {DB}")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env,
                   check=True)
    started = time.monotonic()
    cur = connect(DB).cursor()
    cur.execute("DELETE FROM builds_abi")
    cur.execute("INSERT INTO builds_abi (tag, active, added) VALUES ('cp39', true, now()),"
                " ('cp311', true, now())")
    insert_select(cur, "packages_project", {
        "name": "'proj-' || i", "normalized_name": "'proj-' || i", "index_serial": "1",
        "added": "now()"}, f"generate_series(1, {PROJECTS}) i")
    insert_select(cur, "packages_version", {
        "project_id": "p.id", "version": "v || '.0'", "released": "now()",
        "has_sdist": "true"}, f"packages_project p, generate_series(1, {VERSIONS}) v")
    insert_select(cur, "builds_build", {
        "version_id": "v.id", "abi_id": "a.id", "state": "'succeeded'", "attempt": "1",
        "created": "now()", "started": "now()", "finished": "now()"},
        "packages_version v, builds_abi a")
    insert_select(cur, "builds_file", {
        "build_id": "b.id",
        "filename": "replace(p.normalized_name, '-', '_') || '-' || v.version || '-' || a.tag"
                    " || '-' || a.tag || '-linux_armv7l.whl'",
        "size": "100000 + b.id % 1000", "sha256": "md5(b.id::text) || md5(v.id::text)",
        "python_tag": "a.tag", "abi_tag": "a.tag", "platform_tag": "'linux_armv7l'",
        "requires_python": "'>=3.7'", "metadata_sha256": "md5(p.id::text) || md5(b.id::text)",
        "uploaded": "now()", "downloads": "0", "dependencies": "'[]'"},
        "builds_build b JOIN packages_version v ON v.id = b.version_id"
        " JOIN packages_project p ON p.id = v.project_id JOIN builds_abi a ON a.id = b.abi_id")
    cur.execute("INSERT INTO packages_serial (name, value, updated) VALUES ('index-root', 1, now())"
                " ON CONFLICT (name) DO UPDATE SET value = 1")
    cur.execute("VACUUM ANALYZE")
    cur.execute("SELECT count(*) FROM builds_file")
    print(f"filled {DB}: {PROJECTS:,} projects, {cur.fetchone()[0]:,} files in "
          f"{time.monotonic() - started:.0f} s", flush=True)


def wait_for(url, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


def wrk(base, paths, seconds, etag=False, accept=PIP_ACCEPT, gzip=True):
    path_file = WORK / "paths.txt"
    path_file.write_text("".join(f"{p} {e}\n" for p, e in paths))
    lua = WORK / "rotate.lua"
    lua.write_text(LUA)
    env = dict(os.environ, BENCH_PATHS=str(path_file), BENCH_ETAG="1" if etag else "0",
               BENCH_ACCEPT=accept, BENCH_GZIP="1" if gzip else "0")
    out = subprocess.run(
        ["wrk", "-t", "2", "-c", "16", "-d", f"{seconds}s", "--latency", "-s", str(lua), base],
        env=env, capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p99_ms = float(p99.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rate, p99_ms, int(bad.group(1)) if bad else 0


def ttfb(port, path="/simple/"):
    with socket.create_connection(("127.0.0.1", port)) as s:
        started = time.monotonic()
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: gzip\r\n"
                  "Connection: close\r\n\r\n".encode())
        first = s.recv(65536)
        first_at = time.monotonic() - started
        size = len(first)
        while chunk := s.recv(1 << 20):
            size += len(chunk)
        return first_at, time.monotonic() - started, size, first.split(b"\r\n")[0].decode()


def fetch_etags(base, names, gzip=False):
    def one(name):
        headers = {"Accept": PIP_ACCEPT}
        if gzip:
            headers["Accept-Encoding"] = "gzip"
        req = urllib.request.Request(f"{base}/simple/{name}/", headers=headers)
        with urllib.request.urlopen(req) as r:
            return f"/simple/{name}/", r.headers["ETag"], r.read()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, names))


def start(cmd, env=None, log=None):
    return subprocess.Popen(cmd, env=env, stdout=log or subprocess.DEVNULL,
                            stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc):
    if proc and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def start_nginx(directory, server):
    """nginx with SERVER (a server { } block and what goes beside it) in an http { } of the
    bench's; both cases below get the same one. Returns (process, base URL)."""
    port = free_port()
    (directory / "logs").mkdir(parents=True, exist_ok=True)
    temp = "\n".join(f"    {kind}_temp_path {directory}/tmp-{kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf = directory / "nginx.conf"
    conf.write_text(f"""
worker_processes 2;
pid {directory}/nginx.pid;
error_log {directory}/logs/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
{temp}
{server.replace("@LISTEN@", f"127.0.0.1:{port}")}
}}
""")
    proc = start(["nginx", "-e", "stderr", "-c", str(conf), "-p", str(directory),
                  "-g", "daemon off;"])
    return proc, f"http://127.0.0.1:{port}"


def run_nginx(pages, seconds):
    """A plain nginx serving the same bytes (each page as index.html) as static files."""
    static = WORK / "nginx"
    shutil.rmtree(static, ignore_errors=True)
    for path, _, body in pages:
        target = static / "html" / path.strip("/") / "index.html"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
    proc, base = start_nginx(static, f"""
    sendfile on;
    server {{
        listen @LISTEN@;
        root {static}/html;
        location /simple/ {{ index index.html; etag on; }}
    }}""")
    try:
        wait_for(f"{base}{pages[0][0]}")
        return wrk(base, [(p, "") for p, _, _ in pages], seconds)
    finally:
        stop(proc)


def run_shipped(pages, upstream_port, data, seconds):
    """deploy/nginx/piwheels.conf as an operator installs it, in front of the farm: the
    page files the farm wrote. Plain (the bytes plain nginx sends), gzip (what pip gets)
    and 304s (pip's revalidation with nginx's ETags)."""
    directory = WORK / "nginx-shipped"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    server = ((ROOT / "deploy" / "nginx" / "piwheels.conf").read_text()
              .replace("@UPSTREAM@", f"127.0.0.1:{upstream_port}")
              .replace("@DATA_DIR@", str(data.resolve())))
    proc, base = start_nginx(directory, server)
    try:
        wait_for(f"{base}{pages[0][0]}")
        names = [p.split("/")[2] for p, _, _ in pages]
        served = fetch_etags(base, names)
        for (path, _, body), (_, _, mine) in zip(served, pages, strict=True):
            assert body == mine, f"the shipped config serves other bytes for {path}"
        zipped = fetch_etags(base, names, gzip=True)
        return {
            "shipped": wrk(base, [(p, "") for p, _, _ in pages], seconds, gzip=False),
            "shipped_gz": wrk(base, [(p, "") for p, _, _ in pages], seconds),
            "shipped_304": wrk(base, [(p, e) for p, e, _ in zipped], seconds, etag=True),
        }
    finally:
        stop(proc)


def measure_window(env, names, rounds):
    """Commit a change to a project's page ROUNDS times (a version yanked or unyanked, as
    the sync does) and time from the commit to the new page file in place: the first
    on_commit callback notes the commit, the writer's runs after it, and the block
    returns once the files are renamed into place. Then the root page's rewrite."""
    os.environ.update(env, DJANGO_SETTINGS_MODULE="piwheels_site.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.db import transaction

    from index import pages
    from packages.models import Project, Version

    def one_pass(offset):
        windows = []
        for i in range(rounds):
            name = names[(offset + i) % len(names)]
            committed = []
            with transaction.atomic():
                transaction.on_commit(lambda c=committed: c.append(time.perf_counter()))
                version = Version.objects.filter(project__normalized_name=name).order_by("id")[0]
                Version.objects.filter(id=version.id).update(yanked=not version.yanked)
                Project.objects.filter(normalized_name=name).touch_index()
            windows.append(time.perf_counter() - committed[0])
            page = (pages.project_dir(name) / "index.json").read_bytes()
            assert (b'"yanked":true' in page) != version.yanked, "the page file is not current"
        return sorted(windows)

    windows = {}
    for fsync in (True, False):
        settings.PIWHEELS_INDEX_FSYNC = fsync
        windows[fsync] = one_pass(0 if fsync else rounds)
    settings.PIWHEELS_INDEX_FSYNC = True
    started = time.perf_counter()
    with transaction.atomic():
        from packages.models import touch_index_root

        touch_index_root()
    root = time.perf_counter() - started
    return windows, root


def run_pypiserver(names, seconds):
    venv = ROOT / "var" / "bench-pypiserver"
    if not (venv / "bin" / "pypi-server").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "pypiserver"], check=True)
    packages = WORK / "pypiserver-packages"
    if not packages.exists():
        packages.mkdir(parents=True)
        for name in names:
            dist = name.replace("-", "_")
            for v in range(1, VERSIONS + 1):
                for abi in ("cp39", "cp311"):
                    (packages / f"{dist}-{v}.0-{abi}-{abi}-linux_armv7l.whl").touch()
    port = free_port()
    log = open(WORK / "pypiserver.log", "w")
    proc = start([str(venv / "bin" / "pypi-server"), "run", "-p", str(port), "-i", "127.0.0.1",
                  str(packages)], log=log)
    try:
        wait_for(f"http://127.0.0.1:{port}/simple/{names[0]}/")
        return wrk(f"http://127.0.0.1:{port}", [(f"/simple/{n}/", "") for n in names], seconds)
    finally:
        stop(proc)
        log.close()


def main():
    global DB
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--refill", action="store_true")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    parser.add_argument("--db", default=DB, help="the database to fill and use")
    parser.add_argument("--window-rounds", type=int, default=500,
                        help="changes committed to measure the commit-to-file window")
    parser.add_argument("--quick", action="store_true",
                        help="only the cached 200s, 304s and 404s against nginx")
    args = parser.parse_args()
    DB = args.db
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install -y wrk")
    global LOAD_BEFORE
    LOAD_BEFORE = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    WORK.mkdir(parents=True, exist_ok=True)
    data = WORK / "data"
    shutil.rmtree(data / "index", ignore_errors=True)
    env = dict(os.environ, DATABASE_URL=f"{DSN}/{DB}", DEBUG="false", ALLOWED_HOSTS="*",
               SECRET_KEY="bench-only", PIWHEELS_DATA_DIR=str(data), LOG_LEVEL="WARNING")
    seed(env, args.refill)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(WORK / "gunicorn.log", "w")
    gunicorn = start([str(Path(sys.executable).with_name("gunicorn")), "piwheels_site.wsgi",
                      "-k", "gthread", "-w", str(args.workers), "--threads", str(args.threads),
                      "-b", f"127.0.0.1:{port}"],
                     env=env, log=log)
    results = {}
    try:
        wait_for(f"{base}/simple/proj-1/")
        rng = random.Random(1)
        ids = rng.sample(range(1, PROJECTS + 1), SAMPLE + 50_000)
        sample = [f"proj-{i}" for i in ids[:SAMPLE]]
        unseen = [f"proj-{i}" for i in ids[SAMPLE:]]  # never asked for before

        # Root page: fresh after a change (rendered by this request), then cached.
        if not args.quick:
            conn = connect(DB).cursor()
            conn.execute("UPDATE packages_serial SET value = value + 1 WHERE name = 'index-root'")
            results["root_cold"] = ttfb(port)
            results["root_warm"] = ttfb(port)
            # First hits on pages no worker has rendered yet (each costs a render).
            results["miss"] = wrk(base, [(f"/simple/{n}/", "") for n in unseen], args.seconds)
        pages = fetch_etags(base, sample)  # also warms one worker per name
        wrk(base, [(p, "") for p, _, _ in pages], 5)  # warm-up of every worker
        results["hit"] = wrk(base, [(p, "") for p, _, _ in pages], args.seconds)
        results["304"] = wrk(base, [(p, e) for p, e, _ in pages], args.seconds, etag=True)
        results["404"] = wrk(base, [(f"/simple/nope-{i}/", "") for i in range(SAMPLE)],
                             args.seconds)
        page_size = sum(len(b) for _, _, b in pages) / len(pages)
        # Side by side: plain nginx on the same bytes, then the shipped config in front of
        # the (now idle) farm.
        results["nginx"] = run_nginx(pages, args.seconds)
        results.update(run_shipped(pages, port, data, args.seconds))
        if not args.quick:
            results["window"] = measure_window(env, unseen[-1000:], args.window_rounds)
    finally:
        stop(gunicorn)
        log.close()
    if not args.quick:
        results["pypiserver"] = run_pypiserver(sample[: PROJECTS // 100], args.seconds)
    report(results, page_size, args)


def report(r, page_size, args):
    print()
    print(f"data: {PROJECTS:,} projects, {PROJECTS * VERSIONS * 2:,} files; project page "
          f"{page_size / 1024:.1f} KB JSON (20 links); wrk -t2 -c16; gunicorn gthread "
          f"{args.workers}x{args.threads}; load average before: {LOAD_BEFORE}")
    print(f"{'case':44} {'req/s':>9} {'p99 ms':>8} {'errors':>7}")
    rows = [
        ("/simple/<name>/ 200, cached (2,000 names)", "hit"),
        ("/simple/<name>/ 304 (If-None-Match)", "304"),
        ("/simple/<name>/ first hit (renders)", "miss"),
        ("/simple/<unknown>/ 404", "404"),
        ("nginx: the same pages as static files", "nginx"),
        ("shipped config: page files, same bytes", "shipped"),
        ("shipped config: page files, gzip (pip)", "shipped_gz"),
        ("shipped config: 304s (nginx's ETag)", "shipped_304"),
        ("pypiserver: 1% sample (1,000 proj, 10k files)", "pypiserver"),
    ]
    for label, key in rows:
        if key not in r:
            continue
        rate, p99, bad = r[key]
        print(f"{label:44} {rate:9.0f} {p99:8.2f} {bad:7d}")
    for label, key in (("root, fresh after a change", "root_cold"), ("root, cached", "root_warm")):
        if key not in r:
            continue
        first, total, size, status = r[key]
        print(f"{label:44} TTFB {first * 1000:7.0f} ms, all {total * 1000:6.0f} ms, "
              f"{size / 1e6:.2f} MB gzip ({status})")
    hit, p99 = r["hit"][0], r["hit"][1]
    print()
    checks = [
        (f"200s vs nginx static: {hit / r['nginx'][0]:.3f} (goal >= {GOALS['nginx_ratio']:.3f})",
         hit / r["nginx"][0] >= GOALS["nginx_ratio"]),
        (f"304s vs nginx static: {r['304'][0] / r['nginx'][0]:.3f}, 404s: "
         f"{r['404'][0] / r['nginx'][0]:.3f}", True),
        (f"p99 of 200s: {p99:.1f} ms, of 304s: {r['304'][1]:.1f} ms, of 404s: "
         f"{r['404'][1]:.1f} ms (goal < {GOALS['p99_ms']} ms)",
         max(p99, r["304"][1], r["404"][1]) < GOALS["p99_ms"]),
    ]
    if "pypiserver" in r:
        ratio = hit / r["pypiserver"][0]
        checks.insert(1, (f"200s vs pypiserver: {ratio:.0f}x (goal >= "
                          f"{GOALS['pypiserver_ratio']}x)", ratio >= GOALS["pypiserver_ratio"]))
    if "root_cold" in r:
        checks.append((f"root TTFB fresh: {r['root_cold'][0]:.2f} s, cached: "
                       f"{r['root_warm'][0]:.3f} s (goal < {GOALS['root_ttfb_s']} s)",
                       r["root_cold"][0] < GOALS["root_ttfb_s"]))
    ratio = r["shipped"][0] / r["nginx"][0]
    checks.append((f"shipped config vs plain nginx, same bytes: {ratio:.2f} (gzip: "
                   f"{r['shipped_gz'][0] / r['nginx'][0]:.2f}, 304s: "
                   f"{r['shipped_304'][0] / r['nginx'][0]:.2f}) (goal >= "
                   f"{GOALS['shipped_ratio']})", ratio >= GOALS["shipped_ratio"]))
    if "window" in r:
        by_fsync, root = r["window"]
        for fsync, windows in by_fsync.items():
            p50, p99 = (windows[int(len(windows) * q)] * 1000 for q in (0.5, 0.99))
            checks.append((
                f"commit to page file in place (PIWHEELS_INDEX_FSYNC={str(fsync).lower()}): "
                f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {windows[-1] * 1000:.1f} ms over "
                f"{len(windows)} changes (goal p99 < {GOALS['window_p99_ms']} ms)",
                p99 < GOALS["window_p99_ms"]))
        checks.append((f"root of {PROJECTS:,} projects rewritten at its commit in {root:.2f} s",
                       True))
    for text, ok in checks:
        print(("MET   " if ok else "MISSED") + " " + text)


if __name__ == "__main__":
    main()
