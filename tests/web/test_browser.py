"""The project and stats pages in a real headless Chromium at phone width: no console
error, no failed resource, nothing wider than the 375-px viewport.

Drives Debian's `chromium` over the DevTools protocol (websocket-client). Skipped, saying
why, when chromium is not installed (CI installs it). Set PAGES_SCREENSHOT_DIR to keep
the phone-width screenshots.
"""
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from builds.models import Build
from tests.factories import (
    make_abi,
    make_build,
    make_builder,
    make_file,
    make_project,
    make_version,
)

websocket = pytest.importorskip("websocket")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)"
)
WIDTH, HEIGHT = 375, 800

# Everything on the page that sticks out of the viewport, except inside the boxes
# meant to scroll sideways (.scroll), which must themselves fit.
LAYOUT_PROBLEMS = """(() => {
  const vw = window.innerWidth, bad = [];
  const root = document.documentElement;
  if (root.scrollWidth > vw) bad.push('page is ' + root.scrollWidth + 'px wide');
  for (const el of document.querySelectorAll('body *')) {
    if (el.parentElement.closest('.scroll, svg')) continue;
    const r = el.getBoundingClientRect();
    if (r.width > 0 && (r.left < -0.5 || r.right > vw + 0.5))
      bad.push(el.tagName.toLowerCase() + '.' + el.className + ' spans ' +
               Math.round(r.left) + '..' + Math.round(r.right));
  }
  return bad.slice(0, 10);
})()"""


class Browser:
    """One Chromium page over the DevTools protocol, collecting console errors."""

    def __init__(self, profile):
        self.process = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
             "--remote-debugging-port=0", f"--window-size={WIDTH},{HEIGHT}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        port_file = Path(profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("chromium did not start its DevTools server")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        targets = requests.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30,
                                              suppress_origin=True)
        self.next_id = 0
        self.errors = []
        for method in ("Runtime.enable", "Log.enable", "Page.enable"):
            self.call(method)
        self.call("Emulation.setDeviceMetricsOverride",
                  width=WIDTH, height=HEIGHT, deviceScaleFactor=1, mobile=True)

    def _note(self, message):
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            self.errors.append(" ".join(str(a.get("value", a.get("description")))
                                        for a in params["args"]))
        elif method == "Runtime.exceptionThrown":
            self.errors.append(params["exceptionDetails"].get("text", "exception"))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.errors.append(f'{params["entry"]["text"]} {params["entry"].get("url", "")}')

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self._note(message)

    def open(self, url):
        self.call("Page.navigate", url=url)
        while True:  # until the load event (bounded by the socket's timeout)
            message = json.loads(self.ws.recv())
            if message.get("method") == "Page.loadEventFired":
                return
            self._note(message)

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def screenshot(self, path):
        import base64
        data = self.call("Page.captureScreenshot", format="png")["data"]
        Path(path).write_bytes(base64.b64decode(data))

    def close(self):
        try:
            self.ws.close()
        finally:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def browser(tmp_path):
    b = Browser(tmp_path / "profile")
    yield b
    b.close()


@pytest.fixture
def long_named_project():
    """A project with long names and hashes, every state, and some history for the charts."""
    make_abi("cp39")
    make_abi("cp311")
    make_abi("cp313")
    project = make_project("scikit-learn-extra-long-project-name",
                           summary="A summary that is long enough to wrap on a phone screen.")
    built = make_version(project, "1.0.0.post1")
    build = make_build(built, "cp311", output="ok\n")
    make_file(build, dependencies=["libopenblas0-pthread", "libgfortran5"], downloads=1234)
    make_build(make_version(project, "1.1.0"), "cp311", state=Build.State.FAILED,
               failure_reason="compiler error: a very long reason that goes on and on",
               output="error\n")
    make_build(make_version(project, "2.0.0rc1"), "cp39", state=Build.State.BUILDING,
               builder=make_builder("pi-in-the-rack-number-7", abi="cp39"))
    make_version(project, "0.9", yanked=True, yanked_reason="broken wheel metadata")
    make_version(project, "0.8", skip_reason="needs CUDA")
    from django.utils import timezone
    make_builder("pi2", abi="cp311", last_seen=timezone.now())
    return project


def check(browser, url, errors_ok=()):
    browser.open(url)
    assert browser.evaluate("document.readyState") == "complete"
    assert browser.evaluate(
        "getComputedStyle(document.querySelector('header.top')).backgroundColor"
    ) == "rgb(163, 18, 58)", "the stylesheet did not load"
    problems = browser.evaluate(LAYOUT_PROBLEMS)
    assert problems == [], f"{url}: wider than {WIDTH}px: {problems}"
    assert browser.errors == [], f"{url}: console errors: {browser.errors}"


@pytest.mark.django_db(transaction=True)
def test_project_and_stats_pages_render_cleanly_on_a_phone(browser, live_server,
                                                           long_named_project, tmp_path):
    url = f"{live_server.url}/project/{long_named_project.normalized_name}/"
    check(browser, url)
    assert browser.evaluate("document.querySelectorAll('table.builds tbody tr').length") == 5
    width = browser.evaluate("document.querySelector('.scroll').getBoundingClientRect().width")
    assert width <= WIDTH
    shots = Path(os.environ.get("PAGES_SCREENSHOT_DIR", tmp_path))
    browser.screenshot(shots / "project-375.png")

    check(browser, f"{live_server.url}/stats/")
    assert browser.evaluate("document.querySelectorAll('svg.chart').length") == 3
    chart_width = browser.evaluate(
        "document.querySelector('svg.chart').getBoundingClientRect().width")
    assert 200 < chart_width <= WIDTH
    browser.screenshot(shots / "stats-375.png")

    check(browser, f"{live_server.url}/")
    check(browser, f"{live_server.url}/search/?q=scikit")
