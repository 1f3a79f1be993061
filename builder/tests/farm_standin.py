"""A small stand-in for the farm's builder API (docs/builder-api.md), over real HTTP.

Django-free, in memory, in a thread: enough of the protocol to test the agent against, plus
ways to misbehave (answer 5xx, refuse the token, cut an upload short, go away and come back).
"""
import gzip
import hashlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StandinFarm:
    def __init__(self, token="secret-token", lease_seconds=300):
        self.token = token
        self.refuse_status = 401  # 403 to say "disabled builder"
        self.lease_seconds = lease_seconds
        self.lock = threading.Condition()
        self.queue = []  # build ids, in claim order
        self.builds = {}  # build id -> dict(job=..., state=..., files=..., result=...)
        self.log = []  # (method, path, status) of every request answered
        self.claims = []  # bodies of claim calls
        self.claim_times = []  # time.monotonic() of each
        self.faults = []  # [method, path fragment, status, times left]
        self.cut_uploads = 0  # uploads to cut short after half their body
        self.max_log = None  # bytes: a log inflating to more is refused with 413
        self.max_body = None  # bytes: a finish body over this is refused with 413
        self.log_endpoint = True  # False: an older farm, whose answer is an HTML 404
        self.next_id = 1
        self.server = None
        self.port = 0
        self.connections = set()  # open client sockets, cut when the farm stops

    # -- set-up -------------------------------------------------------------------------

    def add_job(self, project, version="1.0", abi="cp311", **extra):
        with self.lock:
            build_id = self.next_id
            self.next_id += 1
            job = {
                "build_id": build_id, "project": project,
                "normalized_name": project.lower().replace("_", "-"), "version": version,
                "abi": abi, "index_url": "http://127.0.0.1:9/simple/",
                "extra_index_urls": [f"{self.url}/simple/"],
                "lease_seconds": self.lease_seconds, "attempt": 1,
            }
            job.update(extra)
            self.builds[build_id] = {
                "job": job, "state": "queued", "files": {}, "result": None, "log": None,
                "heartbeats": 0, "releases": 0, "finishes": 0,
            }
            self.queue.append(build_id)
            self.lock.notify_all()
            return build_id

    def fail(self, method, fragment, status, times=1, html=False):
        """Answer the next ``times`` requests matching with ``status``, in JSON as the
        farm does, or (``html``) with a page as a proxy would."""
        with self.lock:
            self.faults.append([method, fragment, status, times, html])

    def take_away(self, build_id):
        """Give the job to someone else: the builder's heartbeats and uploads get 409."""
        with self.lock:
            self.builds[build_id]["state"] = "stolen"

    def requests_to(self, fragment, method=None):
        return [r for r in self.log if fragment in r[1] and (method is None or r[0] == method)]

    def wait_for(self, predicate, timeout=20.0):
        deadline = time.monotonic() + timeout
        with self.lock:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("the stand-in farm waited in vain")
                self.lock.wait(min(left, 0.1))

    # -- serving ------------------------------------------------------------------------

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        """Listen (again) on the same port as before, or a free one the first time."""
        farm = self

        class Handler(_Handler):
            pass

        Handler.farm = farm
        self.server = _QuietServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self):
        """Go away: stop listening and hang up on every open (keep-alive) connection."""
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        with self.lock:
            connections, self.connections = self.connections, set()
        for sock in connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # -- the protocol -------------------------------------------------------------------

    def _fault(self, method, path):
        with self.lock:
            for fault in self.faults:
                if fault[0] == method and fault[1] in path and fault[3] > 0:
                    fault[3] -= 1
                    return fault[2], fault[4]
        return None, False

    def claim(self, body):
        wait = min(float(body.get("wait", 30)), 60)
        deadline = time.monotonic() + wait
        with self.lock:
            self.claims.append(body)
            self.claim_times.append(time.monotonic())
            while True:
                for build_id in self.queue:
                    build = self.builds[build_id]
                    if build["job"]["abi"] == body.get("abi"):
                        self.queue.remove(build_id)
                        build["state"] = "building"
                        self.lock.notify_all()
                        return 200, build["job"]
                left = deadline - time.monotonic()
                if left <= 0:
                    return 204, None
                self.lock.wait(min(left, 0.1))

    def _ours(self, build_id):
        build = self.builds.get(build_id)
        if build is None:
            return None, (404, {"detail": "No such build."})
        if build["state"] in ("stolen", "queued"):
            return None, (409, {"detail": "This build is not yours any more."})
        return build, None

    def _building(self, build_id):
        """_ours(), and a build still building (a finished one refuses heartbeats, logs)."""
        build, refusal = self._ours(build_id)
        if refusal is None and build["state"] != "building":
            return None, (409, {"detail": "This build is finished."})
        return build, refusal

    def heartbeat(self, build_id):
        with self.lock:
            build, refusal = self._building(build_id)
            if refusal:
                return refusal
            build["heartbeats"] += 1
            self.lock.notify_all()
            return 204, None

    def upload(self, build_id, filename, data, sha256):
        with self.lock:
            build, refusal = self._ours(build_id)
            if refusal:
                return refusal
            if hashlib.sha256(data).hexdigest() != sha256:
                return 400, {"detail": "The body does not match X-Sha256."}
            if not filename.endswith(".whl"):
                return 400, {"detail": "Not a wheel filename."}
            again = build["files"].get(filename) == data
            build["files"][filename] = data
            self.lock.notify_all()
            return (200 if again else 201), {
                "filename": filename, "size": len(data), "sha256": sha256}

    def upload_log(self, build_id, data):
        with self.lock:
            build, refusal = self._building(build_id)
            if refusal:
                return refusal
            try:
                text = gzip.decompress(data)
            except (OSError, EOFError):
                return 400, {"detail": "The body is not gzip."}
            if self.max_log is not None and len(text) > self.max_log:
                return 413, {"detail": f"The log is over {self.max_log} bytes."}
            build["log"] = text.decode("utf-8")
            self.lock.notify_all()
            return 201, {"size": len(data), "inflated": len(text)}

    def finish(self, build_id, result):
        with self.lock:
            build, refusal = self._ours(build_id)
            if refusal:
                return refusal
            if build["state"] != "building":
                if build["result"] == result:
                    return 200, {"build_id": build_id, "state": build["state"]}
                return 409, {"detail": "This build is finished."}
            for record in result.get("files", []) if result.get("success") else []:
                data = build["files"].get(record["filename"])
                if data is None or hashlib.sha256(data).hexdigest() != record["sha256"] \
                        or len(data) != record["size"]:
                    return 400, {"detail": f"{record['filename']} was not uploaded."}
            build["result"] = result
            build["finishes"] += 1
            build["state"] = "succeeded" if result.get("success") else "failed"
            self.lock.notify_all()
            return 200, {"build_id": build_id, "state": build["state"]}

    def release(self, build_id):
        with self.lock:
            build, refusal = self._ours(build_id)
            if refusal:
                return refusal
            build["releases"] += 1
            if build["state"] == "building":
                build["state"] = "queued"
                self.queue.append(build_id)
            self.lock.notify_all()
            return 204, None


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a client hanging up (the agent stopped, a cut upload) is not news


class _Handler(BaseHTTPRequestHandler):
    farm = None
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        with self.farm.lock:
            self.farm.connections.add(self.connection)

    def finish(self):
        with self.farm.lock:
            self.farm.connections.discard(self.connection)
        super().finish()

    def _page(self, status):
        with self.farm.lock:
            self.farm.log.append((self.command, self.path, status))
            self.farm.lock.notify_all()
        data = b"<!DOCTYPE html>\n<html><body><h1>Bad Request</h1></body></html>\n"
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _answer(self, status, body=None):
        with self.farm.lock:  # logged first: the client may look as soon as it has the answer
            self.farm.log.append((self.command, self.path, status))
            self.farm.lock.notify_all()
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self):
        farm = self.farm
        length = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Authorization") != f"Token {farm.token}":
            self.rfile.read(length)
            status = farm.refuse_status
            detail = "Invalid token." if status == 401 else "This builder is disabled."
            return self._answer(status, {"detail": detail})
        fault, html = farm._fault(self.command, self.path)
        if fault:
            self.rfile.read(length)
            if html:
                return self._page(fault)
            return self._answer(fault, {"detail": f"Injected {fault}."})
        parts = self.path.strip("/").split("/")  # api v1 builds <id> <action> [filename]
        if self.command == "PUT" and len(parts) == 6 and parts[4] == "files":
            with farm.lock:
                cut = farm.cut_uploads > 0
                if cut:
                    farm.cut_uploads -= 1
            if cut:  # read half the body, then hang up without an answer
                self.rfile.read(length // 2)
                with farm.lock:
                    farm.log.append((self.command, self.path, "cut"))
                    farm.lock.notify_all()
                self.close_connection = True
                self.connection.shutdown(2)
                return None
            data = self.rfile.read(length)
            return self._answer(*farm.upload(
                int(parts[3]), parts[5], data, self.headers.get("X-Sha256", "")))
        if self.command == "PUT" and len(parts) == 5 and parts[4] == "log":
            data = self.rfile.read(length)
            if not farm.log_endpoint:
                return self._page(404)
            return self._answer(*farm.upload_log(int(parts[3]), data))
        if farm.max_body is not None and length > farm.max_body:
            self.rfile.read(length)
            return self._answer(413, {"detail": f"The body is over {farm.max_body} bytes."})
        body = json.loads(self.rfile.read(length) or b"{}")
        if parts == ["api", "v1", "claim"]:
            return self._answer(*farm.claim(body))
        if len(parts) == 5 and parts[2] == "builds":
            build_id, action = int(parts[3]), parts[4]
            if action == "heartbeat":
                return self._answer(*farm.heartbeat(build_id))
            if action == "finish":
                return self._answer(*farm.finish(build_id, body))
            if action == "release":
                return self._answer(*farm.release(build_id))
        return self._answer(404, {"detail": "Not found."})

    do_POST = do_PUT = _handle


def pid_alive(pid):
    """True while ``pid`` runs (a zombie is dead)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
