"""Benchmark of the catalogue sync against a generated upstream on 127.0.0.1.

    .venv/bin/python bench/sync.py [--projects 1000000] [--versions 3] [--changed 10000]
                                   [--details 20000] [--lag 100]

Creates the PostgreSQL database bench_sync (dropped at the end; server from
BENCH_PG, default postgres://postgres@127.0.0.1:5432), serves a fake upstream of
PROJECTS projects x VERSIONS versions from a subprocess (the JSON root streamed in chunks
with an ETag, project documents generated on the fly, XML-RPC switchable), then times:
  1. the first pass: every name from the one root request (goal < 60 s, peak RSS < 150 MB),
  2. DETAILS projects' details fetched unpaced (the rest are taken as fetched, by SQL,
     so that step 3 starts from a complete catalogue),
  3. a pass over the root that finds CHANGED projects moved, with XML-RPC refused (goal
     < 30 s), and the same changes read by the XML-RPC fast path,
  4. an idle pass: one conditional request,
  5. with LAG > 0: LAG releases published over a few minutes while passes run on the
     default schedule (PIWHEELS_SYNC_INTERVAL); lag from publication to claimable jobs,
     p50 and p95 (goal p95 < 90 s).
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0]).resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)  # bench/ has scripts named like stdlib modules (queue.py)

import argparse  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import xmlrpc.client  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402

PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432").rstrip("/")
DB = "bench_sync"


# -- the generated upstream (runs in a subprocess) ---------------------------------------

class Catalogue:
    """Project i is proj-<i> with versions 1.0 .. N.0, each with one sdist; later changes
    are kept as overrides. Serials: project i last changed at serial i + 1."""

    def __init__(self, projects, versions):
        self.projects, self.versions = projects, versions
        self.serial = projects
        self.extra = {}  # i -> [new version strings]
        self.yanked = {}  # i -> set of versions
        self.removed_versions = {}  # i -> set of versions
        self.removed = set()
        self.last = {}  # i -> serial of its latest change
        self.changelog = []

    def name(self, i):
        return f"proj-{i:06d}"

    def listing(self):
        """The JSON root in chunks of 10,000 projects, generated as it is sent."""
        yield (f'{{"meta": {{"api-version": "1.1", "_last-serial": {self.serial}}}, '
               '"projects": [').encode()
        for start in range(0, self.projects, 10_000):
            chunk = ",".join(
                f'{{"name": "{self.name(i)}", "_last-serial": {self.last.get(i, i + 1)}}}'
                for i in range(start, min(start + 10_000, self.projects))
                if i not in self.removed
            )
            yield ((", " if start else "") + chunk).encode()
        yield b"]}"

    def _files(self, i):
        """(version, sdist filename, yanked) of project I's files, and its versions."""
        versions = [f"{v}.0" for v in range(1, self.versions + 1)] + self.extra.get(i, [])
        versions = [v for v in versions if v not in self.removed_versions.get(i, set())]
        yanked = self.yanked.get(i, set())
        return [(v, f"{self.name(i)}-{v}.tar.gz", v in yanked) for v in versions], versions

    def project(self, i):
        """PyPI's JSON API document of project I."""
        if i in self.removed or not 0 <= i < self.projects:
            return None
        name, (files, versions) = self.name(i), self._files(i)
        releases = ", ".join(
            f'"{v}": [{{"filename": "{filename}", "packagetype": "sdist", '
            f'"python_version": "source", "upload_time_iso_8601": '
            f'"2020-01-01T00:00:00.000000Z", "yanked": {"true" if y else "false"}, '
            f'"yanked_reason": null, "requires_python": ">=3.7", "digests": {{"sha256": '
            f'"{"0" * 64}"}}, "size": 1000, "url": "http://x/{filename}"}}]'
            for v, filename, y in files)
        return (f'{{"info": {{"name": "{name}", "summary": "Project {i}", "version": '
                f'"{versions[-1]}", "requires_python": ">=3.7"}}, "last_serial": '
                f'{self.last.get(i, i + 1)}, "releases": {{{releases}}}}}').encode()

    def simple_page(self, i):
        """The project's PEP 691 page with PEP 700's versions and upload times, as PyPI's."""
        if i in self.removed or not 0 <= i < self.projects:
            return None
        name, (files, versions) = self.name(i), self._files(i)
        listed = ", ".join(
            f'{{"filename": "{filename}", "url": "http://x/{filename}", "hashes": '
            f'{{"sha256": "{"0" * 64}"}}, "requires-python": ">=3.7", "yanked": '
            f'{"true" if y else "false"}, "size": 1000, "upload-time": '
            f'"2020-01-01T00:00:00.000000Z"}}' for _, filename, y in files)
        quoted = ", ".join(f'"{v}"' for v in versions)
        return (f'{{"meta": {{"api-version": "1.4", "_last-serial": '
                f'{self.last.get(i, i + 1)}}}, "name": "{name}", "versions": [{quoted}], '
                f'"files": [{listed}]}}').encode()

    def log(self, i, version, action):
        self.serial += 1
        self.last[i] = self.serial
        self.changelog.append((self.name(i), version, 1700000000, action, self.serial))

    def release(self, i):
        """A new release of project I now; returns its version."""
        v = f"{self.versions + 1 + len(self.extra.get(i, []))}.0"
        self.extra.setdefault(i, []).append(v)
        self.log(i, v, "new release")
        return v

    def change(self, projects):
        """Changelog rows that move PROJECTS projects, realistic mix: new releases with a
        file, yanks, removed releases, removed projects, owner changes."""
        i, moved = 0, set()
        while len(moved) < projects:
            i = (i + 7919) % self.projects  # spread over the catalogue
            if i in self.removed:
                continue
            moved.add(i)
            kind = len(self.changelog) % 10
            if kind < 6:
                v = f"{self.versions + 1 + len(self.extra.get(i, []))}.0"
                self.extra.setdefault(i, []).append(v)
                self.log(i, v, "new release")
                self.log(i, v, f"add source file {self.name(i)}-{v}.tar.gz")
            elif kind < 8:
                self.yanked.setdefault(i, set()).add("1.0")
                self.log(i, "1.0", "yank release")
            elif kind == 8:
                self.removed_versions.setdefault(i, set()).add("2.0")
                self.log(i, "2.0", "remove release")
            else:
                self.log(i, None, "add Owner someone")
                if len(self.removed) < projects // 100:
                    self.removed.add(i)
                    self.log(i, None, "remove project")
        return self.serial


def serve(projects, versions):
    catalogue = Catalogue(projects, versions)
    state = {"xmlrpc": True, "requests": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else keep-alive answers wait on delayed ACKs

        def log_message(self, *args):
            pass

        def answer(self, status, body, ctype="application/json", headers=()):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for header in headers:
                self.send_header(*header)
            self.end_headers()
            self.wfile.write(body)

        def root(self):
            etag = f'"{catalogue.serial}"'
            headers = [("ETag", etag), ("X-PyPI-Last-Serial", str(catalogue.serial))]
            if self.headers.get("If-None-Match") == etag:
                return self.answer(304, b"", "text/plain", headers)
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
            self.send_header("Transfer-Encoding", "chunked")
            for header in headers:
                self.send_header(*header)
            self.end_headers()
            with lock:
                chunks = list(catalogue.listing())  # a consistent snapshot
            for chunk in chunks:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")

        def do_GET(self):
            state["requests"] += 1
            parts = [p for p in self.path.split("/") if p]
            if parts == ["simple"]:
                return self.root()
            if parts == ["_bench", "requests"]:
                return self.answer(200, str(state["requests"]).encode(), "text/plain")
            if len(parts) == 2 and parts[0] == "simple" and parts[1].startswith("proj-"):
                with lock:
                    body = catalogue.simple_page(int(parts[1][5:]))
                if body is not None:
                    return self.answer(200, body, "application/vnd.pypi.simple.v1+json")
            if len(parts) == 3 and parts[0] == "pypi" and parts[1].startswith("proj-"):
                with lock:
                    body = catalogue.project(int(parts[1][5:]))
                if body is not None:
                    return self.answer(200, body)
            self.answer(404, b"not found", "text/plain")

        def do_POST(self):
            data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path.startswith("/_bench/"):
                command, _, value = self.path[len("/_bench/"):].partition("=")
                with lock:
                    if command == "changes":
                        body = str(catalogue.change(int(value))).encode()
                    elif command == "release":
                        body = catalogue.release(int(value)).encode()
                    else:
                        state["xmlrpc"] = value == "on"
                        body = b"ok"
                return self.answer(200, body, "text/plain")
            state["requests"] += 1
            if not state["xmlrpc"]:
                return self.answer(405, b"XML-RPC is not allowed here", "text/plain")
            try:
                (since,), method = xmlrpc.client.loads(data)
            except Exception as exc:  # say so rather than drop the connection
                return self.answer(400, f"{self.path}: {exc!r}".encode(), "text/plain")
            with lock:
                rows = [list(r) for r in catalogue.changelog if r[4] > since][:50000]
            body = xmlrpc.client.dumps((rows,), methodresponse=True, allow_none=True).encode()
            self.answer(200, body, "text/xml")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_port, flush=True)
    server.serve_forever()


# -- the benchmark ---------------------------------------------------------------------

def psql(sql):
    import psycopg2

    conn = psycopg2.connect(f"{PG}/postgres")
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute(sql)
    conn.close()


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def control(url, what, timeout=10):
    """Tell the generated upstream to change (or what to answer); one retry."""
    import requests

    for attempt in (1, 2):
        try:
            return requests.post(f"{url}/_bench/{what}", timeout=timeout).text
        except requests.ConnectionError:
            if attempt == 2:
                raise


def percentile(values, share):
    values = sorted(values)
    return values[min(len(values) - 1, int(share * len(values)))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--projects", type=int, default=1_000_000)
    parser.add_argument("--versions", type=int, default=3)
    parser.add_argument("--changed", type=int, default=10_000)
    parser.add_argument("--details", type=int, default=20_000)
    parser.add_argument("--lag", type=int, default=0, help="releases for the lag figures")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.projects, args.versions)

    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--projects", str(args.projects),
         "--versions", str(args.versions)], stdout=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{server.stdout.readline().strip()}"
    psql(f"DROP DATABASE IF EXISTS {DB}")
    psql(f"CREATE DATABASE {DB}")
    try:
        os.environ.update(DATABASE_URL=f"{PG}/{DB}", PIWHEELS_PYPI_URL=url,
                          DJANGO_SETTINGS_MODULE="piwheels_site.settings")
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        import logging

        logging.getLogger().setLevel(logging.ERROR)
        diffs = []  # the sync's "root read in ..., diffed in ..." lines

        class Keep(logging.Handler):
            def emit(self, record):
                diffs.append(record.getMessage().removeprefix("sync: "))

        logging.getLogger("packages.changes").addHandler(Keep())
        logging.getLogger("packages.changes").setLevel(logging.INFO)
        logging.getLogger("packages.changes").propagate = False
        from django.conf import settings
        from django.core.management import call_command
        from django.db import connection
        from django.db.models import F

        from packages.models import Project, Version
        from packages.sync import run_pass

        def timed_pass():
            """(the result of one pass, which must be "ok", and its seconds)."""
            started = time.monotonic()
            result = run_pass()
            took = time.monotonic() - started
            assert result.status == "ok", result.summary()
            return result, took

        call_command("migrate", verbosity=0)
        settings.PIWHEELS_SYNC_RATE = 0  # unpaced: the figures are ours, not the pacing's
        workers = settings.PIWHEELS_SYNC_WORKERS
        print(f"upstream: {args.projects:,} projects x {args.versions} versions at {url}; "
              f"{workers} fetch threads")
        rss_before = peak_rss_mb()

        settings.PIWHEELS_SYNC_PASS_SECONDS = 0  # names only: how soon the farm knows them
        result, first = timed_pass()
        rss = peak_rss_mb()
        known = Project.objects.count()
        print(f"1. first pass, names: {first:.1f} s for {known:,} projects from one root "
              f"request; goal < 60 s: {'met' if first < 60 else 'NOT met'}")
        print(f"   {diffs[-1]}")
        print(f"   peak RSS {rss:.0f} MB (process before the pass: {rss_before:.0f} MB); "
              f"goal < 150 MB: {'met' if rss < 150 else 'NOT met'}")

        settings.PIWHEELS_SYNC_PASS_SECONDS = 3600
        settings.PIWHEELS_SYNC_BATCH = 500
        sample = list(Project.objects.order_by("id").values_list("id", flat=True)
                      [args.details:args.details + 1])
        if sample:  # the rest taken as fetched at their serial, to keep the bench short
            Project.objects.filter(id__gte=sample[0]).update(serial=F("upstream_serial"))
            with connection.cursor() as cursor:  # with the versions a fetch would give
                cursor.execute(
                    "INSERT INTO packages_version (project_id, version, released, yanked, "
                    "yanked_reason, requires_python, has_sdist, upstream_wheels, skip_reason, "
                    "removed) SELECT p.id, v || '.0', '2020-01-01T00:00:00Z', false, '', "
                    "'>=3.7', true, '[]', '', false FROM packages_project p, "
                    "generate_series(1, %s) v WHERE p.id >= %s", [args.versions, sample[0]])
                cursor.execute("VACUUM ANALYZE packages_version")
        result, took = timed_pass()
        print(f"2. details of {result.projects_fetched:,} projects, unpaced: {took:.1f} s "
              f"({result.projects_fetched / took:,.0f} projects/s, "
              f"{Version.objects.count():,} versions); {len(result.errors)} errors; "
              f"database transactions: {result.write_seconds:.1f} s")

        control(url, "xmlrpc=off", 10)
        control(url, f"changes={args.changed}", 600)
        result, later = timed_pass()
        print(f"3. a pass over the root (XML-RPC refused) that finds {result.projects_moved:,} "
              f"projects moved: {later:.1f} s ({result.projects_fetched:,} fetched, "
              f"{result.versions_created:,} new versions, {result.versions_updated:,} changed, "
              f"{len(result.removed_project_names)} removed); goal < 30 s: "
              f"{'met' if later < 30 else 'NOT met'}")
        print(f"   {diffs[-1]}")
        alone = upstream_alone(Project.objects.filter(serial__gt=args.projects + 1),
                               result.summaries_read, workers)
        print(f"   upstream alone (the same root and {alone[2]:,} projects' {alone[3]:,} "
              f"requests, parsed, nothing written): {alone[0]:.1f} s + {alone[1]:.1f} s = "
              f"{sum(alone[:2]):.1f} s; the pass took {later / sum(alone[:2]):.2f}x that")
        control(url, "xmlrpc=on", 10)
        settings.PIWHEELS_SYNC_METHOD = "xmlrpc"  # auto would leave it alone for an hour
        control(url, f"changes={args.changed}", 600)
        result, fast = timed_pass()
        print(f"   the same through the XML-RPC fast path: {fast:.1f} s for {result.events:,} "
              f"events ({result.projects_fetched:,} fetched)")
        settings.PIWHEELS_SYNC_METHOD = "auto"

        control(url, "xmlrpc=off", 10)
        run_pass()  # takes the root's ETag
        before = upstream_requests(url)
        result, idle = timed_pass()
        asked = upstream_requests(url) - before - 1  # less the count request itself
        print(f"4. idle pass: {asked} upstream request(s), root not modified: "
              f"{result.root_not_modified}, {idle * 1000:.0f} ms; goal one conditional "
              f"request: {'met' if asked == 1 and result.root_not_modified else 'NOT met'}")
        if args.lag:
            lag(args, url, connection)
    finally:
        server.terminate()
        server.wait()
        from django.db import connections

        connections.close_all()
        psql(f"DROP DATABASE IF EXISTS {DB}")


def upstream_alone(projects, summaries, workers):
    """(seconds to stream the root, seconds to fetch and parse PROJECTS' details and
    SUMMARIES of their summaries, how many projects, upstream requests): what the
    upstream and the HTTP client cost without the farm's own work, the pass's requests."""
    from concurrent.futures import ThreadPoolExecutor

    from packages.upstream import Upstream

    names = list(projects.values_list("name", flat=True))
    upstream = Upstream()
    started = time.monotonic()
    listed = sum(1 for _ in upstream.root().entries())
    root = time.monotonic() - started
    assert listed, "the root listed nothing"
    before = upstream_requests(upstream.base)
    started = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        fetched = sum(1 for _ in pool.map(upstream.project, names))
        sum(1 for _ in pool.map(upstream.summary, names[:summaries]))
    took = time.monotonic() - started
    return root, took, fetched, upstream_requests(upstream.base) - before - 1


def upstream_requests(url):
    import requests

    return int(requests.get(f"{url}/_bench/requests", timeout=10).text)


def lag(args, url, connection):
    """Releases published at random moments over a few intervals, while passes run on the
    default schedule (one every PIWHEELS_SYNC_INTERVAL seconds, as django-q starts them);
    the lag of each is the time until its job is claimable (a queued Build)."""
    import random

    from django.conf import settings

    from builds.models import Abi, Build
    from packages.tasks import run_sync

    Abi.objects.get_or_create(tag="cp311")
    control(url, "xmlrpc=off", 10)  # the root's _last-serial only
    settings.PIWHEELS_SYNC_RATE = 10  # the default pace, as make run has it
    settings.PIWHEELS_SYNC_PASS_SECONDS = 45
    interval = settings.PIWHEELS_SYNC_INTERVAL
    span = 3 * interval
    rng = random.Random(13)
    moments = sorted(rng.uniform(0, span) for _ in range(args.lag))
    published = {}  # (project, version) -> monotonic time
    stop = threading.Event()

    def publish():
        start = time.monotonic()
        for k, at in enumerate(moments):
            if stop.wait(max(0, start + at - time.monotonic())):
                return
            i = (k * 104729) % args.projects
            version = control(url, f"release={i}", 10)
            published[(f"proj-{i:06d}", version)] = time.monotonic()

    def schedule():
        from django.db import connections

        while not stop.is_set():
            started = time.monotonic()
            run_sync()
            stop.wait(max(0, started + interval - time.monotonic()))
        connections.close_all()

    threads = [threading.Thread(target=publish), threading.Thread(target=schedule)]
    for thread in threads:
        thread.start()
    seen, lags = set(), []
    deadline = time.monotonic() + span + 3 * interval
    while len(lags) < args.lag and time.monotonic() < deadline:
        queued = Build.objects.filter(state="queued").values_list(
            "version__project__name", "version__version")
        for key in queued:
            if key in published and key not in seen:
                seen.add(key)
                lags.append(time.monotonic() - published[key])
        time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join()
    if not lags:
        print("5. lag: no release became claimable")
        return
    p50, p95 = percentile(lags, 0.5), percentile(lags, 0.95)
    print(f"5. lag from release to claimable job, {len(lags)} of {args.lag} releases, passes "
          f"every {interval} s: p50 {p50:.0f} s, p95 {p95:.0f} s; goal p95 < 90 s: "
          f"{'met' if p95 < 90 and len(lags) == args.lag else 'NOT met'}")


if __name__ == "__main__":
    main()
