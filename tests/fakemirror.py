"""A fake Debian archive over real HTTP on 127.0.0.1: dists/<release>/<component>/Contents-*.gz
made from the text files given, for refresh_apt_contents.

    with FakeMirror() as mirror:
        mirror.add("bookworm", "main", "armhf", text)   # serves .../Contents-armhf.gz
        mirror.url
"""
import gzip
import tempfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class FakeMirror:
    def __enter__(self):
        self._dir = tempfile.TemporaryDirectory()
        self.root = Path(self._dir.name)
        handler = partial(_QuietHandler, directory=str(self.root))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/debian"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def add(self, release, component, arch, text):
        path = self.root / "debian" / "dists" / release / component / f"Contents-{arch}.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(text.encode()))
        return path

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
        self._dir.cleanup()
