"""A fake upstream PyPI served over real HTTP on 127.0.0.1, for tests.

    with FakePyPI() as pypi:
        pypi.add_release("numpy", "1.0")               # one sdist with dummy bytes
        pypi.add_release("foo", "2.0", [("foo-2.0-py3-none-any.whl", b"...")])
        requests.get(f"{pypi.url}/pypi/numpy/json")

It answers as PyPI does: the simple index (HTML and PEP 691 JSON, by Accept or ?format=),
the files, the per-project JSON API and XML-RPC `changelog_since_serial` /
`changelog_last_serial` at POST /pypi. Every change appends PyPI-style changelog rows
(name, version, timestamp, action, serial). `fail()` makes the next requests misbehave.
The root carries an ETag (If-None-Match answers 304). Switches, as upstreams differ:
`xmlrpc = False` answers XML-RPC with 405 (as the public PyPI does through some proxies),
`html_only = True` serves the root and project pages as PEP 503 HTML whatever is asked
for, `unlisted` (a set of names) leaves projects off the root, as a stale or partial root
would, and `set_status()` marks a project as PEP 792 says.
Projects are keyed by their exact name, so two spellings of one normalised name can
coexist (as they do in old changelog rows); lookups by another spelling find the newest.
"""
import hashlib
import html
import json
import socketserver
import threading
import time
from datetime import UTC, datetime
from urllib.parse import parse_qs, quote
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from xmlrpc.server import SimpleXMLRPCDispatcher

from packaging.utils import canonicalize_name

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def _iso(ts):
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _packagetype(filename):
    """PyPI's packagetype of a file, by its name."""
    for suffix, kind in ((".whl", "bdist_wheel"), (".egg", "bdist_egg"),
                         (".exe", "bdist_wininst"), (".msi", "bdist_msi"),
                         (".rpm", "bdist_rpm")):
        if filename.endswith(suffix):
            return kind
    return "sdist"


def _python_version(filename):
    """What PyPI writes in 'add <python_version> file <fn>': 'source' for sdists, the
    wheel's python tag for wheels."""
    if filename.endswith(".whl"):
        return filename[:-4].split("-")[-3]
    if filename.endswith(".egg"):
        return "2.7"
    return "source"


class _Rule:
    def __init__(self, prefix, status, times, after, retry_after):
        self.prefix, self.status, self.times = prefix, status, times
        self.after, self.retry_after = after, retry_after


class FakePyPI:
    def __init__(self, hang_seconds=10.0, changelog_limit=50000):
        self.hang_seconds = hang_seconds  # how long a 'timeout' rule holds its answer
        self.changelog_limit = changelog_limit  # as PyPI caps changelog_since_serial
        self.serial = 0
        self.changelog = []  # [(name, version, timestamp, action, serial)]
        self.projects = {}  # exact name -> {"summary", "last_serial", "releases"}
        self.files = {}  # filename -> bytes
        self.requests = []  # (method, path) of every request, in order
        self.xmlrpc = True
        self.html_only = False
        # the root without an ETag or X-PyPI-Last-Serial, as the proxy of issue 13 sends it
        self.bare_root = False
        self.unlisted = set()
        # keys added to every file of the PEP 691 JSON project pages (e.g. the
        # `dist-info-metadata` that pip 22.3-23.1 crash on)
        self.json_file_extra = {}
        self._rules = []
        self._lock = threading.RLock()
        self._release_hung = threading.Event()
        self._server = None
        self._thread = None
        self.url = None
        self._xmlrpc = SimpleXMLRPCDispatcher(allow_none=True)
        self._xmlrpc.register_function(self._changelog_since_serial, "changelog_since_serial")
        self._xmlrpc.register_function(lambda: self.serial, "changelog_last_serial")

    # -- life cycle
    def start(self):
        self._server = make_server(
            "127.0.0.1", 0, self._app, server_class=_Server, handler_class=_QuietHandler
        )
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._release_hung.set()
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- changing the catalogue
    def _log(self, name, version, action, when=None):
        self.serial += 1
        self.changelog.append((name, version, int(when or time.time()), action, self.serial))
        if name in self.projects:
            self.projects[name]["last_serial"] = self.serial

    def _project(self, name, summary=""):
        if name not in self.projects:
            self.projects[name] = {"summary": summary, "last_serial": 0, "releases": {}}
            self._log(name, None, "create")
        elif summary:
            self.projects[name]["summary"] = summary
        return self.projects[name]

    def _find(self, name):
        """The project under this exact name, else the newest with the same normalised
        name (PyPI redirects other spellings); None when there is none."""
        if name in self.projects:
            return name
        key = canonicalize_name(name)
        same = [n for n in self.projects if canonicalize_name(n) == key]
        return max(same, key=lambda n: self.projects[n]["last_serial"]) if same else None

    def add_release(self, name, version, files=None, *, requires_python=None, yanked=False,
                    summary="", upload_time=None):
        """A new release with its files: (filename, bytes) pairs; by default one sdist."""
        if files is None:
            files = [(f"{name}-{version}.tar.gz", f"sdist of {name} {version}".encode())]
        with self._lock:
            project = self._project(name, summary)
            project["releases"].setdefault(version, {"files": [], "yanked": False,
                                                     "yanked_reason": ""})
            self._log(name, version, "new release", upload_time)
            for filename, content in files:
                self._add_file(name, version, filename, content, requires_python, upload_time)
            if yanked:
                self.yank(name, version)

    def add_file(self, name, version, filename, content, requires_python=None):
        with self._lock:
            if version not in self.projects.get(name, {}).get("releases", {}):
                raise KeyError(f"{name} {version}")
            self._add_file(name, version, filename, content, requires_python, None)

    def _add_file(self, name, version, filename, content, requires_python, upload_time):
        release = self.projects[name]["releases"][version]
        release["files"].append({
            "filename": filename,
            "sha256": hashlib.sha256(content).hexdigest(),
            "size": len(content),
            "requires_python": requires_python,
            "upload_time": upload_time or time.time(),
        })
        self.files[filename] = content
        self._log(name, version, f"add {_python_version(filename)} file {filename}", upload_time)

    def yank(self, name, version, reason=""):
        with self._lock:
            release = self.projects[name]["releases"][version]
            release["yanked"], release["yanked_reason"] = True, reason
            self._log(name, version, "yank release")

    def unyank(self, name, version):
        with self._lock:
            release = self.projects[name]["releases"][version]
            release["yanked"], release["yanked_reason"] = False, ""
            self._log(name, version, "unyank release")

    def remove_file(self, name, version, filename):
        with self._lock:
            release = self.projects[name]["releases"][version]
            release["files"] = [f for f in release["files"] if f["filename"] != filename]
            self.files.pop(filename, None)
            self._log(name, version, f"remove file {filename}")

    def remove_release(self, name, version):
        with self._lock:
            release = self.projects[name]["releases"].pop(version)
            for f in release["files"]:
                self.files.pop(f["filename"], None)
            self._log(name, version, "remove release")

    def remove_project(self, name):
        with self._lock:
            self._log(name, None, "remove project")
            project = self.projects.pop(name)
            for release in project["releases"].values():
                for f in release["files"]:
                    self.files.pop(f["filename"], None)

    def set_status(self, name, status, reason=""):
        """PEP 792: mark the project archived, quarantined, deprecated or active again. A
        quarantined project's simple page lists no files and its JSON API answers 404."""
        with self._lock:
            self.projects[name]["status"] = (status, reason)
            self._log(name, None, f"set project status {status}")

    def fail(self, path_prefix, status=503, times=1, *, after=0, retry_after=None):
        """The next TIMES requests whose path starts with PATH_PREFIX (after letting AFTER
        of them through) answer STATUS: an HTTP status, 'timeout' (hold the answer for
        hang_seconds or until stop()), 'garbage' (200 with malformed JSON) or 'cut' (the
real answer, cut off halfway through, its Content-Length still whole). A 429 carries
        Retry-After: RETRY_AFTER (default 0)."""
        with self._lock:
            self._rules.append(_Rule(path_prefix, status, times, after, retry_after))

    def clear_faults(self):
        """Forget the fail() rules not yet used up and let held answers go."""
        with self._lock:
            self._rules = []
        self._release_hung.set()
        self._release_hung = threading.Event()

    def count(self, path_prefix, method="GET"):
        """How many requests so far had a path starting with PATH_PREFIX."""
        with self._lock:
            return sum(1 for m, p in self.requests if m == method and p.startswith(path_prefix))

    # -- answering
    def _rule_for(self, path):
        with self._lock:
            for rule in self._rules:
                if rule.times > 0 and path.startswith(rule.prefix):
                    if rule.after > 0:
                        rule.after -= 1
                        return None
                    rule.times -= 1
                    return rule
        return None

    def _app(self, environ, start_response):
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "/")
        with self._lock:
            self.requests.append((method, path))
        rule = self._rule_for(path)
        if rule is not None:
            if rule.status == "timeout":
                self._release_hung.wait(self.hang_seconds)
                return self._respond(start_response, 504, b"gateway timeout", "text/plain")
            if rule.status == "cut":
                return self._cut(environ, start_response, path)
            if rule.status == "garbage":
                return self._respond(start_response, 200, b'{"info": {"name": ',
                                     "application/json")
            headers = []
            if rule.status == 429:
                headers.append(("Retry-After", str(rule.retry_after or 0)))
            return self._respond(start_response, rule.status, b"fault", "text/plain", headers)
        try:
            if method == "POST" and path == "/pypi" and self.xmlrpc:
                length = int(environ.get("CONTENT_LENGTH") or 0)
                body = self._xmlrpc._marshaled_dispatch(environ["wsgi.input"].read(length))
                return self._respond(start_response, 200, body, "text/xml")
            if method != "GET":
                return self._respond(start_response, 405, b"method not allowed", "text/plain")
            with self._lock:
                return self._get(environ, start_response, path)
        except KeyError:
            return self._respond(start_response, 404, b"not found", "text/plain")

    def _cut(self, environ, start_response, path):
        """The answer to PATH with only the first half of its body sent."""
        sent = {}

        def capture(status, headers):
            sent["status"], sent["headers"] = status, headers

        with self._lock:
            body = b"".join(self._get(environ, capture, path))
        start_response(sent["status"], sent["headers"])
        return [body[: len(body) // 2]]

    def _get(self, environ, start_response, path):
        parts = [p for p in path.split("/") if p]
        if parts == ["simple"]:
            return self._simple_root(environ, start_response)
        if len(parts) == 2 and parts[0] == "simple":
            return self._simple_project(environ, start_response, parts[1])
        if len(parts) == 3 and parts[0] == "pypi" and parts[2] == "json":
            return self._json(start_response, parts[1])
        if len(parts) >= 2 and parts[0] == "files":
            content = self.files[parts[-1]]
            return self._respond(start_response, 200, content, "application/octet-stream")
        raise KeyError(path)

    def _wants_json(self, environ):
        fmt = parse_qs(environ.get("QUERY_STRING", "")).get("format", [""])[0]
        fmt = fmt.replace(" ", "+")  # an unencoded '+' arrives as a space
        accept = fmt or environ.get("HTTP_ACCEPT", "")
        if JSON_TYPE not in accept:
            return False
        # crude q-value handling: JSON unless HTML is listed first
        html_at = min((accept.find(t) for t in (HTML_TYPE, "text/html") if t in accept),
                      default=len(accept))
        return accept.find(JSON_TYPE) < html_at

    def _simple_root(self, environ, start_response):
        wants_json = self._wants_json(environ) and not self.html_only
        etag = f'"root-{self.serial}-{sorted(self.unlisted)}-{"json" if wants_json else "html"}"'
        headers = [("X-PyPI-Last-Serial", str(self.serial)), ("ETag", etag)]
        if self.bare_root:
            headers = []
        elif environ.get("HTTP_IF_NONE_MATCH") == etag:
            start_response("304 Not Modified", headers)
            return [b""]
        listed = [(n, p) for n, p in self.projects.items() if n not in self.unlisted]
        if wants_json:
            body = json.dumps({
                "meta": {"api-version": "1.1", "_last-serial": self.serial},
                "projects": [{"name": n, "_last-serial": p["last_serial"]} for n, p in listed],
            }).encode()
            return self._respond(start_response, 200, body, JSON_TYPE, headers)
        links = "".join(
            f'<a href="/simple/{canonicalize_name(n)}/">{html.escape(n)}</a>\n'
            for n, _ in listed
        )
        body = ('<!DOCTYPE html><html><head><meta name="pypi:repository-version" '
                f'content="1.1"></head><body>\n{links}</body></html>').encode()
        kind = "text/html; charset=utf-8" if self.html_only else HTML_TYPE  # as proxies say
        return self._respond(start_response, 200, body, kind, headers)

    def _files_of(self, name):
        for version, release in self.projects[name]["releases"].items():
            for f in release["files"]:
                yield version, release, f

    def _simple_project(self, environ, start_response, name):
        name = self._find(name)
        if name is None:
            raise KeyError(name)
        project = self.projects[name]
        headers = [("X-PyPI-Last-Serial", str(project["last_serial"]))]
        status, reason = project.get("status", ("active", ""))
        files = [] if status == "quarantined" else list(self._files_of(name))
        if self._wants_json(environ) and not self.html_only:
            marker = {"project-status": {"status": status, **({"reason": reason} if reason
                                                              else {})}}
            body = json.dumps({
                "meta": {"api-version": "1.4", "_last-serial": project["last_serial"]},
                **(marker if status != "active" else {}),
                "name": canonicalize_name(name),
                "versions": list(project["releases"]),
                "files": [{
                    "filename": f["filename"],
                    "url": f"{self.url}/files/{quote(f['filename'])}",
                    "hashes": {"sha256": f["sha256"]},
                    "requires-python": f["requires_python"],
                    "yanked": (release["yanked_reason"] or True) if release["yanked"] else False,
                    "size": f["size"],
                    "upload-time": _iso(f["upload_time"]),
                    **self.json_file_extra,
                } for _, release, f in files],
            }).encode()
            return self._respond(start_response, 200, body, JSON_TYPE, headers)
        links = []
        for _, release, f in files:
            attrs = ""
            if f["requires_python"]:
                attrs += f' data-requires-python="{html.escape(f["requires_python"])}"'
            if release["yanked"]:
                attrs += f' data-yanked="{html.escape(release["yanked_reason"])}"'
            links.append(f'<a href="{self.url}/files/{quote(f["filename"])}'
                         f'#sha256={f["sha256"]}"{attrs}>{html.escape(f["filename"])}</a><br>')
        meta = ""
        if status != "active":
            meta = f'<meta name="pypi:project-status" content="{status}">'
            if reason:
                meta += f'<meta name="pypi:project-status-reason" content="{html.escape(reason)}">'
        body = ('<!DOCTYPE html><html><head><meta name="pypi:repository-version" '
                f'content="1.4">{meta}<title>Links for {html.escape(name)}</title></head><body>'
                f'<h1>Links for {html.escape(name)}</h1>\n' + "\n".join(links)
                + "\n</body></html>").encode()
        return self._respond(start_response, 200, body, HTML_TYPE, headers)

    def _json(self, start_response, name):
        name = self._find(name)
        if (name is None or not self.projects[name]["releases"]
                or self.projects[name].get("status", ("active",))[0] == "quarantined"):
            raise KeyError(name)  # PyPI answers 404 for projects without releases
        project = self.projects[name]
        releases = {}
        for version, release in project["releases"].items():
            releases[version] = [{
                "filename": f["filename"],
                "packagetype": _packagetype(f["filename"]),
                "python_version": _python_version(f["filename"]),
                "upload_time": _iso(f["upload_time"])[:19],
                "upload_time_iso_8601": _iso(f["upload_time"]),
                "yanked": release["yanked"],
                "yanked_reason": release["yanked_reason"] or None,
                "requires_python": f["requires_python"],
                "digests": {"sha256": f["sha256"]},
                "size": f["size"],
                "url": f"{self.url}/files/{quote(f['filename'])}",
            } for f in release["files"]]
        latest = list(project["releases"])[-1]
        latest_files = project["releases"][latest]["files"]
        body = json.dumps({
            "info": {
                "name": name,
                "summary": project["summary"],
                "version": latest,
                "requires_python": (latest_files[0]["requires_python"] if latest_files
                                    else None) or "",
                "yanked": project["releases"][latest]["yanked"],
            },
            "last_serial": project["last_serial"],
            "releases": releases,
            "urls": releases[latest],
        }).encode()
        return self._respond(start_response, 200, body, "application/json",
                             [("X-PyPI-Last-Serial", str(project["last_serial"]))])

    def _changelog_since_serial(self, serial):
        with self._lock:
            rows = [list(row) for row in self.changelog if row[4] > serial]
        return rows[: self.changelog_limit]

    @staticmethod
    def _respond(start_response, status, body, content_type, headers=()):
        reason = {200: "OK", 304: "Not Modified", 404: "Not Found", 405: "Method Not Allowed",
                  429: "Too Many Requests",
                  500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
                  504: "Gateway Timeout"}.get(status, "Status")
        start_response(f"{status} {reason}", [("Content-Type", content_type),
                                              ("Content-Length", str(len(body))),
                                              ("Vary", "Accept"), *headers])
        return [body]
