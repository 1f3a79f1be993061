"""Every page for people in a real headless Chromium, at a phone's 375 px and a laptop's
1280 px: no console error, no failed resource, no sideways scroll (measured in the page:
the document no wider than the window, nothing sticking out of it), and none of the
axe-core accessibility checks failing.

Drives Debian's `chromium` over the DevTools protocol (websocket-client). Skipped, saying
why, when chromium is not installed (CI installs it). axe-core comes from the npm
registry: AXE_CORE_JS names its axe.min.js, else it is installed once into var/npm/
(`npm install --prefix var/npm axe-core@AXE_VERSION`; .ci/run does it too); the
accessibility checks are skipped, saying why, where npm cannot get it. Set
PAGES_SCREENSHOT_DIR to keep screenshots of every page at both widths.
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
WIDTHS = (375, 1280)
AXE_VERSION = "4.14.1"
AXE_JS = Path(__file__).resolve().parents[2] / "var" / "npm" / "node_modules" / "axe-core" / \
    "axe.min.js"

# Everything on the page that sticks out of the viewport, except inside the boxes
# meant to scroll sideways (.scroll), which must themselves fit.
LAYOUT_PROBLEMS = """(() => {
  const vw = window.innerWidth, bad = [];
  const root = document.documentElement;
  if (root.scrollWidth > vw) bad.push('page is ' + root.scrollWidth + 'px wide, window ' + vw);
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
        self.width = WIDTH
        self.resize(WIDTH)

    def resize(self, width):
        """A phone's viewport (375) or a laptop's window (1280)."""
        self.width = width
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=HEIGHT,
                  deviceScaleFactor=1, mobile=width < 800)

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

    def evaluate(self, expression, await_promise=False):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=await_promise)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def screenshot(self, path, full_page=False):
        import base64
        params = {"format": "png"}
        if full_page:  # the whole page, not only the window
            size = self.call("Page.getLayoutMetrics")["cssContentSize"]
            params.update(captureBeyondViewport=True, clip={
                "x": 0, "y": 0, "width": self.width,
                "height": min(size["height"], 6000), "scale": 1})
        data = self.call("Page.captureScreenshot", **params)["data"]
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
    # what made the old page 600 px wide on a phone, and cut off at the table's edge
    rebuilt = make_build(built, "cp311", output="rebuilt\n")
    new = make_file(rebuilt, "scikit_learn_extra_long_project_name-1.0.0.post1-1-cp311-cp311-"
                    "manylinux_2_36_armv7l.whl", content=b"rebuilt", os_release="bookworm")
    build.files.update(superseded_by=new.filename)
    make_build(built, "cp313", state=Build.State.SKIPPED,
               skip_reason="PyPI has a wheel for this: scikit_learn_extra_long_project_name-"
               "1.0.0.post1-cp313-cp313-manylinux_2_17_aarch64.manylinux2014_aarch64.whl")
    from django.utils import timezone
    make_builder("pi2", abi="cp311", last_seen=timezone.now())
    return project


def axe_source():
    """axe-core's axe.min.js, from AXE_CORE_JS or var/npm (installed there once)."""
    given = os.environ.get("AXE_CORE_JS")
    if given:
        return Path(given).read_text()
    if not AXE_JS.is_file():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed (apt-get install -y npm): no axe-core")
        done = subprocess.run(
            [npm, "install", "--silent", "--no-audit", "--no-fund", "--prefix",
             str(AXE_JS.parents[2]), f"axe-core@{AXE_VERSION}"],
            capture_output=True, text=True, timeout=300)
        if done.returncode != 0 or not AXE_JS.is_file():
            pytest.skip(f"npm could not install axe-core: {done.stderr.strip()[-300:]}")
    return AXE_JS.read_text()


@pytest.fixture(scope="session")
def axe():
    return axe_source()


AXE_RUN = """axe.run(document, {resultTypes: ['violations']}).then(r => r.violations.map(v =>
  v.id + ' (' + v.impact + '): ' + v.help + ' at ' +
  v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', ')))"""


def check(browser, url, axe=None):
    """Load URL; fail on a console error, a missing stylesheet, anything sticking out
    of the window, and (given axe-core's source) on any accessibility violation."""
    browser.errors.clear()
    browser.open(url)
    assert browser.evaluate("document.readyState") == "complete"
    assert browser.evaluate(
        "getComputedStyle(document.querySelector('header.top')).backgroundColor"
    ) == "rgb(163, 18, 58)", "the stylesheet did not load"
    width = browser.width
    inner = browser.evaluate("window.innerWidth")  # a phone widens it to fit the content
    assert inner == width, f"{url}: scrolls sideways at {width}px (laid out {inner}px wide)"
    overflow = browser.evaluate("document.documentElement.scrollWidth")
    assert overflow <= width, f"{url}: scrolls sideways at {width}px ({overflow}px wide)"
    problems = browser.evaluate(LAYOUT_PROBLEMS)
    assert problems == [], f"{url}: wider than {width}px: {problems}"
    # a 404 page's own status is the one error its console may show
    errors = [e for e in browser.errors if not (e.endswith(" " + url) and "404" in e)]
    assert errors == [], f"{url}: console errors: {errors}"
    if axe is not None:
        # evaluated by DevTools, not by a <script>: the pages' CSP allows none
        browser.evaluate(axe)
        violations = browser.evaluate(AXE_RUN, await_promise=True)
        assert violations == [], f"{url} at {width}px: accessibility: {violations}"


@pytest.fixture
def log_builds(long_named_project, data_dir):
    """A failed build whose log has an excerpt, and a succeeded one with its wheel and
    whole log kept."""
    from builds import logs

    failed = Build.objects.get(state=Build.State.FAILED)
    built = Build.objects.filter(state=Build.State.SUCCEEDED).order_by("id").first()
    logs.store_whole(built.id, "ok\n")
    return failed, built


def every_page(live_server, project, failed, built):
    """(name, URL) of every kind of page for people."""
    base = live_server.url
    return [
        ("home", f"{base}/"),
        ("project", f"{base}/project/{project.normalized_name}/"),
        ("project-all", f"{base}/project/{project.normalized_name}/?all=1"),
        ("project-404", f"{base}/project/scikit-learn-extra-long-project-nme/"),
        ("search", f"{base}/search/?q=scikit"),
        ("search-blank", f"{base}/search/"),
        ("search-none", f"{base}/search/?q=" + "x" * 60),
        ("log-failed", f"{base}/logs/{failed.id}/"),
        ("log", f"{base}/logs/{built.id}/"),
        ("stats", f"{base}/stats/"),
        ("failures", f"{base}/failures/"),
        ("404", f"{base}/no/such/page/"),
    ]


@pytest.mark.django_db(transaction=True)
def test_every_page_fits_both_widths_and_passes_axe(browser, live_server, long_named_project,
                                                     log_builds, axe, tmp_path, settings):
    settings.DEBUG = False  # the site's own 404 page
    shots = Path(os.environ.get("PAGES_SCREENSHOT_DIR", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    pages = every_page(live_server, long_named_project, *log_builds)
    failures = []
    for width in WIDTHS:
        browser.resize(width)
        for name, url in pages:
            try:
                check(browser, url, axe)
            except AssertionError as error:  # every page's problems at once
                failures.append(str(error).split("\n")[0])
            browser.screenshot(shots / f"{name}-{width}.png", full_page=True)
    assert not failures, "\n".join(failures)


@pytest.mark.django_db(transaction=True)
def test_project_and_stats_pages_render_cleanly_on_a_phone(browser, live_server,
                                                           long_named_project, tmp_path):
    url = f"{live_server.url}/project/{long_named_project.normalized_name}/"
    check(browser, url)
    # each version once, folded but the newest
    assert browser.evaluate("document.querySelectorAll('details.version').length") == 5
    assert browser.evaluate("document.querySelectorAll('details.version[open]').length") == 1
    width = browser.evaluate("document.querySelector('.scroll').getBoundingClientRect().width")
    assert width <= WIDTH
    # the first screen answers: install line with the index, wheels, downloads
    first = browser.evaluate("""(() => [...document.querySelectorAll('pre, table.matrix, dl.facts')]
        .filter(e => e.getBoundingClientRect().top < 2 * innerHeight).map(e => e.tagName))()""")
    assert {"PRE", "TABLE", "DL"} <= set(first)

    check(browser, f"{live_server.url}/stats/")
    assert browser.evaluate("document.querySelectorAll('svg.chart').length") == 3
    chart_width = browser.evaluate(
        "document.querySelector('svg.chart').getBoundingClientRect().width")
    assert 200 < chart_width <= WIDTH
