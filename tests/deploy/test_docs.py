"""docs/deploy.md's picture is rendered from its Graphviz source, and `make run` gives
gunicorn a control socket of the checkout's own."""
import re
import shutil
import subprocess

import pytest

from tests.servers import ROOT

DOT = ROOT / "docs" / "deploy.dot"
SVG = ROOT / "docs" / "deploy.svg"


def _boxes(svg):
    """The node names in an SVG Graphviz made (each node's <title>)."""
    return set(re.findall(r'<g id="node\d+" class="node">\s*<title>([^<]+)</title>', svg))


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_the_deployment_picture_is_rendered_from_its_source():
    rendered = subprocess.run(["dot", "-Tsvg", str(DOT)], capture_output=True, text=True,
                              check=True, timeout=60).stdout
    committed = SVG.read_text()
    assert _boxes(rendered) and _boxes(committed) == _boxes(rendered)
    assert "deploy.svg" in (ROOT / "docs" / "deploy.md").read_text()


def test_make_run_gives_gunicorn_a_control_socket_of_the_checkouts_own():
    """Two farms run by one user would otherwise share ~/.gunicorn/gunicorn.ctl, and
    gunicornc would reach whichever started last."""
    plan = subprocess.run(["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True,
                          check=True, timeout=60).stdout
    plan = plan.replace("\\\n", " ")  # one line per shell command
    # scripts/run-web passes the arguments after its first three to gunicorn.
    command = next(line for line in plan.splitlines() if "scripts/run-web " in line)
    command = command[command.index("scripts/run-web "):].split("&")[0]
    socket = re.search(r"--control-socket (\S+)", command)
    assert socket and socket.group(1).startswith("var/"), command
