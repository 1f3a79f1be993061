"""Benchmark of the catalogue sync against a generated upstream on 127.0.0.1.

    .venv/bin/python bench/sync.py [--projects 100000] [--versions 5] [--events 10000]

Creates the PostgreSQL database bench_sync (dropped at the end; server from
BENCH_PG, default postgres://postgres@127.0.0.1:5432), serves a fake upstream of
PROJECTS projects x VERSIONS versions from a subprocess (responses generated on the fly),
then times:
  1. the first pass (goal: limited by the upstream's answers; peak RSS < 500 MB),
  2. upstream answering alone: the listing and every project's JSON fetched and parsed by
     the same client and thread pool, nothing written,
  3. a later pass over EVENTS changelog events (goal: < 30 s).
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
import time  # noqa: E402
import xmlrpc.client  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
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
        projects = ",".join(
            f'{{"name": "{self.name(i)}", "_last-serial": {self.last.get(i, i + 1)}}}'
            for i in range(self.projects) if i not in self.removed
        )
        return (f'{{"meta": {{"api-version": "1.1", "_last-serial": {self.serial}}}, '
                f'"projects": [{projects}]}}').encode()

    def project(self, i):
        if i in self.removed or not 0 <= i < self.projects:
            return None
        name, files = self.name(i), []
        versions = [f"{v}.0" for v in range(1, self.versions + 1)] + self.extra.get(i, [])
        gone = self.removed_versions.get(i, set())
        yanked = self.yanked.get(i, set())
        for v in versions:
            if v in gone:
                continue
            y = "true" if v in yanked else "false"
            files.append(
                f'"{v}": [{{"filename": "{name}-{v}.tar.gz", "packagetype": "sdist", '
                f'"python_version": "source", "upload_time_iso_8601": '
                f'"2020-01-01T00:00:00.000000Z", "yanked": {y}, "yanked_reason": null, '
                f'"requires_python": ">=3.7", "digests": {{"sha256": "{"0" * 64}"}}, '
                f'"size": 1000, "url": "http://x/{name}-{v}.tar.gz"}}]'
            )
        return (f'{{"info": {{"name": "{name}", "summary": "Project {i}", "version": '
                f'"{versions[-1]}", "requires_python": ">=3.7"}}, "last_serial": '
                f'{self.last.get(i, i + 1)}, "releases": {{{", ".join(files)}}}}}').encode()

    def log(self, i, version, action):
        self.serial += 1
        self.last[i] = self.serial
        self.changelog.append((self.name(i), version, 1700000000, action, self.serial))

    def change(self, events):
        """EVENTS changelog rows, realistic mix: new releases with a file, yanks, removed
        releases, removed projects, owner changes."""
        i = 0
        while len(self.changelog) < events:
            i = (i + 7919) % self.projects  # spread over the catalogue
            if i in self.removed:
                continue
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
                if len(self.removed) < events // 100:
                    self.removed.add(i)
                    self.log(i, None, "remove project")
        return self.serial


def serve(projects, versions):
    catalogue = Catalogue(projects, versions)
    listing = [catalogue.listing()]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else keep-alive answers wait on delayed ACKs

        def log_message(self, *args):
            pass

        def answer(self, status, body, ctype="application/json"):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            parts = [p for p in self.path.split("/") if p]
            if parts == ["simple"]:
                return self.answer(200, listing[0], "application/vnd.pypi.simple.v1+json")
            if len(parts) == 3 and parts[0] == "pypi" and parts[1].startswith("proj-"):
                body = catalogue.project(int(parts[1][5:]))
                if body is not None:
                    return self.answer(200, body)
            self.answer(404, b"not found", "text/plain")

        def do_POST(self):
            data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path.startswith("/_bench/changes"):
                serial = catalogue.change(int(self.path.rsplit("=", 1)[1]))
                listing[0] = catalogue.listing()
                return self.answer(200, str(serial).encode(), "text/plain")
            (since,), method = xmlrpc.client.loads(data)
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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--projects", type=int, default=100_000)
    parser.add_argument("--versions", type=int, default=5)
    parser.add_argument("--events", type=int, default=10_000)
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

        logging.disable(logging.INFO)
        from django.conf import settings
        from django.core.management import call_command

        from packages.models import Project, Version
        from packages.sync import run_pass
        from packages.upstream import Upstream

        call_command("migrate", verbosity=0)
        workers = settings.PIWHEELS_SYNC_WORKERS
        print(f"upstream: {args.projects:,} projects x {args.versions} versions at {url}; "
              f"{workers} fetch threads")
        rss_before = peak_rss_mb()

        started = time.monotonic()
        result = run_pass()
        first = time.monotonic() - started
        rss = peak_rss_mb()
        assert result.status == "ok", result.summary()
        print(f"first pass: {first:.1f} s for {Project.objects.count():,} projects, "
              f"{Version.objects.count():,} versions "
              f"({args.projects / first:,.0f} projects/s); {len(result.errors)} errors; "
              f"of which in database transactions: {result.write_seconds:.1f} s")
        print(f"  peak RSS {rss:.0f} MB (process before the pass: {rss_before:.0f} MB); "
              f"goal < 500 MB: {'met' if rss < 500 else 'NOT met'}")

        upstream = Upstream()
        started = time.monotonic()
        _, names = upstream.listing()
        with ThreadPoolExecutor(workers) as pool:
            for start in range(0, len(names), 1000):  # bounded: results are dropped
                list(pool.map(lambda n: upstream.project(n[0]), names[start:start + 1000]))
        alone = time.monotonic() - started
        print(f"upstream alone (listing + every project's JSON fetched and parsed, nothing "
              f"written): {alone:.1f} s")
        print(f"  first pass / upstream alone = {first / alone:.2f} (goal: close to 1, "
              f"i.e. limited by upstream answers, not by our writes)")

        import requests

        requests.post(f"{url}/_bench/changes?n={args.events}", timeout=300)
        started = time.monotonic()
        result = run_pass()
        later = time.monotonic() - started
        assert result.status == "ok", result.summary()
        print(f"later pass: {later:.1f} s for {result.events:,} events "
              f"({result.projects_fetched:,} projects refetched, "
              f"{result.versions_created:,} new versions, {result.versions_updated:,} "
              f"changed, {len(result.removed_project_names)} projects removed); "
              f"goal < 30 s: {'met' if later < 30 else 'NOT met'}")
        print(f"peak RSS at the end: {peak_rss_mb():.0f} MB")
    finally:
        server.terminate()
        server.wait()
        from django.db import connections

        connections.close_all()
        psql(f"DROP DATABASE IF EXISTS {DB}")


if __name__ == "__main__":
    main()
