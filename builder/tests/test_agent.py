"""The whole agent against the stand-in farm, with a stand-in pip (see conftest.FAKE_PYTHON)."""
import ast
import http.server
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from conftest import pass_fake_settings
from farm_standin import pid_alive

from piwheels_builder import identity, repair
from piwheels_builder.farm import Farm
from piwheels_builder.identity import Identity
from piwheels_builder.main import Agent, parse_args

ME = Identity(abi="cp311", platform="linux_armv7l", python_version="3.11.2", os="Test OS")


def make_agent(farm, work_dir, fake_python, ident=ME, **kwargs):
    api = Farm(farm.url, farm.token, retry_base=0.05, retry_cap=0.3, refused_pace=0.3)
    kwargs.setdefault("wait", 0)
    kwargs.setdefault("sandbox", False)  # the stand-in pip lives in /tmp, which builds do not see
    pass_fake_settings(fake_python)
    return Agent(api, ident, work_dir=work_dir, python=fake_python, **kwargs)


def leftovers(work_dir):
    return sorted(os.listdir(work_dir / "builds")) + sorted(os.listdir(work_dir / "spool"))


def test_a_job_is_built_uploaded_and_finished(farm, work_dir, fake_python, tmp_path,
                                               monkeypatch, caplog):
    monkeypatch.setenv("PIP_FIND_LINKS", "/opt/wheels")  # the machine's pip config
    monkeypatch.setenv("FAKE_BUILD_ARGS", str(tmp_path / "args"))
    build_id = farm.add_job("Foo_Bar", "1.0")

    with caplog.at_level(logging.INFO):
        make_agent(farm, work_dir, fake_python).run(once=True)

    build = farm.builds[build_id]
    result = build["result"]
    assert build["state"] == "succeeded" and build["finishes"] == 1
    (record,) = result["files"]
    assert record["filename"] == "foo_bar-1.0-py3-none-any.whl"
    assert record["requires_python"] == ">=3.9" and record["dependencies"] == []
    assert build["files"][record["filename"]].__len__() == record["size"]
    assert result["success"] is True and result["failure_reason"] == ""
    assert result["duration"] > 0
    assert result["output"] == ""  # the log went on its own, whole
    lines = build["log"].splitlines()
    # The log says first which pip built it, and how it was called (PEP 517, always).
    assert lines[0] == ("piwheels-builder: built by pip 99.0 from /fake/site-packages/pip "
                        "(python 3.11)")
    assert lines[1].startswith(f"piwheels-builder: {fake_python} -m pip wheel --use-pep517 ")
    assert lines[2:5] == ["Collecting foo-bar", "warning: this goes to stderr",
                          "Building wheel for foo-bar"]
    seen = ast.literal_eval((tmp_path / "args").read_text())
    assert seen["args"][-1] == "foo-bar==1.0"
    assert "PIP_FIND_LINKS" not in seen["pip_env"]
    assert seen["env"]["PIP_CONFIG_FILE"] == os.devnull
    assert seen["cwd"].startswith(str(work_dir / "builds"))
    assert leftovers(work_dir) == []
    assert "building Foo_Bar 1.0 for cp311 (build 1)" in caplog.text
    assert "built Foo_Bar 1.0 in " in caplog.text and ": 1 wheel" in caplog.text
    assert "uploaded foo_bar-1.0-py3-none-any.whl (" in caplog.text


def test_keep_built_keeps_each_wheel_as_pip_built_it_beside_the_repaired_upload(
        farm, work_dir, fake_python, yaml_wheel, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_WHEEL", str(yaml_wheel))  # what "pip wheel" makes: a real one
    build_id = farm.add_job("yamlv", "1.0", strip=True)
    me = identity.detect()
    kept = tmp_path / "built"

    make_agent(farm, work_dir, fake_python, ident=me, keep_built=kept).run(once=True)

    build = farm.builds[build_id]
    plat = repair.policy_name("x86_64", me.glibc)
    (record,) = build["result"]["files"]
    assert record["filename"] == yaml_wheel.name.replace("linux_x86_64", plat)
    assert f"{yaml_wheel.name}: repaired as {plat} (copied in libyaml-0-" in build["log"]
    assert os.listdir(kept) == [yaml_wheel.name]
    assert (kept / yaml_wheel.name).read_bytes() == yaml_wheel.read_bytes()
    assert build["files"][record["filename"]] != yaml_wheel.read_bytes()


def test_a_failed_compile_is_reported_with_its_reason(farm, work_dir, fake_python):
    build_id = farm.add_job("broken-ext")
    make_agent(farm, work_dir, fake_python).run(once=True)
    build = farm.builds[build_id]
    assert build["state"] == "failed" and build["files"] == {}
    assert build["result"]["failure_reason"] == (
        "error: command '/usr/bin/gcc' failed with exit code 1")
    assert "gcc -c src/mod.c" in build["log"]
    assert leftovers(work_dir) == []


def test_a_builder_whose_pip_does_not_run_gives_the_job_back(farm, work_dir, fake_python,
                                                             monkeypatch, caplog):
    monkeypatch.setenv("FAKE_PIP_BROKEN", "1")
    build_id = farm.add_job("foo-bar")
    make_agent(farm, work_dir, fake_python).run(once=True)
    build = farm.builds[build_id]
    # The builder's fault, not the package's: back in the queue, nothing finished.
    assert build["state"] == "queued" and build["releases"] == 1
    assert build["finishes"] == 0 and farm.requests_to("/finish/") == []
    assert "this builder cannot build" in caplog.text and "No module named pip" in caplog.text
    assert leftovers(work_dir) == []


def test_a_hanging_build_is_killed_at_the_timeout(farm, work_dir, fake_python, tmp_path,
                                                   monkeypatch):
    monkeypatch.setenv("FAKE_BUILD_PIDS", str(tmp_path / "pids"))
    build_id = farm.add_job("hang-forever")
    make_agent(farm, work_dir, fake_python, build_timeout=1.5).run(once=True)
    result = farm.builds[build_id]["result"]
    assert result["success"] is False
    assert result["failure_reason"] == "build timed out after 1.5s"
    assert "Building wheel for hang-forever" in farm.builds[build_id]["log"]
    pip, sleeper = map(int, (tmp_path / "pids").read_text().split())
    assert not pid_alive(pip) and not pid_alive(sleeper)
    assert leftovers(work_dir) == []


def test_heartbeats_keep_the_lease_and_a_lost_job_stops_the_build(farm, work_dir, fake_python,
                                                                   tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_BUILD_PIDS", str(tmp_path / "pids"))
    farm.lease_seconds = 3  # a heartbeat every second
    build_id = farm.add_job("hang-forever")

    def take_it_away():
        farm.wait_for(lambda: farm.builds[build_id]["heartbeats"] >= 2)
        farm.take_away(build_id)

    threading.Thread(target=take_it_away, daemon=True).start()
    start = time.monotonic()
    make_agent(farm, work_dir, fake_python).run(once=True)

    assert time.monotonic() - start < 10
    assert farm.builds[build_id]["heartbeats"] >= 2
    assert farm.builds[build_id]["finishes"] == 0 and farm.requests_to("/finish/") == []
    pip, sleeper = map(int, (tmp_path / "pids").read_text().split())
    assert not pid_alive(pip) and not pid_alive(sleeper)
    assert leftovers(work_dir) == []


def wait_for_file(path, timeout=20):
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return path.exists()


def test_a_finished_build_waits_on_disk_while_the_farm_is_away(farm, work_dir, fake_python,
                                                               monkeypatch, tmp_path):
    monkeypatch.setenv("FAKE_BUILD_SECONDS", "1")
    monkeypatch.setenv("FAKE_BUILD_ARGS", str(tmp_path / "started"))
    build_id = farm.add_job("slow-one")
    spooled = work_dir / "spool" / str(build_id) / "result.json"
    seen_spooled = []

    def outage():
        wait_for_file(tmp_path / "started")  # the build runs: the agent has its job
        farm.stop()
        seen_spooled.append(wait_for_file(spooled))  # it met the outage and kept its result
        farm.start()

    threading.Thread(target=outage, daemon=True).start()
    make_agent(farm, work_dir, fake_python).run(once=True)

    assert seen_spooled == [True]
    assert farm.builds[build_id]["state"] == "succeeded"
    assert leftovers(work_dir) == []


def test_an_upload_cut_midway_is_retried_and_counted_once(farm, work_dir, fake_python):
    build_id = farm.add_job("foo")
    farm.cut_uploads = 1
    make_agent(farm, work_dir, fake_python).run(once=True)
    assert [r[2] for r in farm.requests_to("/files/")] == ["cut", 201]
    assert farm.builds[build_id]["state"] == "succeeded"


def test_a_wheel_the_farm_refuses_turns_into_a_failed_build(farm, work_dir, fake_python):
    build_id = farm.add_job("foo")
    farm.fail("PUT", "/files/", 400)
    make_agent(farm, work_dir, fake_python).run(once=True)
    result = farm.builds[build_id]["result"]
    assert result["success"] is False and result["files"] == []
    assert result["failure_reason"] == "the farm refused the wheel: Injected 400."
    assert leftovers(work_dir) == []


# -- the command, as a process --------------------------------------------------------------

def agent_process(farm, work_dir, fake_python, *args, token=None, env=None):
    command = [
        sys.executable, "-m", "piwheels_builder.main", "--server", farm.url,
        "--token", token or farm.token, "--work-dir", str(work_dir), "--python", fake_python,
        "--abi", "cp311", "--platform", "linux_armv7l", "--max-retry-delay", "0.3",
        "--wait", "0", "--unsandboxed", *args,
    ]
    env = dict(os.environ, **(env or {}))
    pass_fake_settings(fake_python, env)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # this agent's code
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=dict(env, PYTHONPATH=here))


def output_until(proc, text, timeout=20):
    """What the agent has printed up to the first line holding text (or EOF, or timeout)."""
    lines = []

    def read():
        for line in proc.stdout:
            lines.append(line)
            if text in line:
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    return "".join(lines)


def test_sigterm_stops_the_build_releases_the_job_and_cleans_up(farm, work_dir, fake_python,
                                                                tmp_path):
    pids = tmp_path / "pids"
    build_id = farm.add_job("hang-forever")
    proc = agent_process(farm, work_dir, fake_python, env={"FAKE_BUILD_PIDS": str(pids)})
    deadline = time.monotonic() + 20
    while not (pids.exists() and len(pids.read_text().split()) == 2):  # pip and its child
        assert time.monotonic() < deadline, "the build never started"
        time.sleep(0.05)

    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=20)

    assert proc.returncode == 0, output
    assert farm.builds[build_id]["releases"] == 1
    assert farm.builds[build_id]["state"] == "queued"  # back in the queue for someone else
    assert farm.requests_to("/finish/") == []
    pip, sleeper = map(int, pids.read_text().split())
    assert not pid_alive(pip) and not pid_alive(sleeper)
    assert leftovers(work_dir) == []
    assert "SIGTERM: stopping" in output and "released build 1 of hang-forever 1.0" in output


def test_idle_agent_asks_at_a_calm_pace_and_stops_at_once_on_sigterm(farm, work_dir,
                                                                      fake_python):
    proc = agent_process(farm, work_dir, fake_python)  # --wait 0: every claim answers 204
    farm.wait_for(lambda: len(farm.claims) >= 3)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, output
    assert time.monotonic() - sent < 2
    # Not a busy loop against the farm: the agent starts its claims 1 s apart. The stand-in
    # sees them arrive, and on a loaded machine the first (a new connection) can arrive up to
    # a second late (CI saw 0.47 s between two arrivals); three arrivals span 2 s less that.
    first, _, third = farm.claim_times[:3]
    assert third - first >= 1.0


def test_a_spooled_build_survives_an_agent_restart(farm, work_dir, fake_python, tmp_path):
    build_id = farm.add_job("slow-one")
    spooled = work_dir / "spool" / str(build_id) / "result.json"
    proc = agent_process(farm, work_dir, fake_python, env={
        "FAKE_BUILD_SECONDS": "1", "FAKE_BUILD_ARGS": str(tmp_path / "started")})
    assert wait_for_file(tmp_path / "started")
    farm.stop()  # the farm goes away while the agent builds
    said = output_until(proc, "retrying in")
    assert "farm unreachable (connection refused), retrying in" in said, said
    assert spooled.exists()  # it met the outage and kept its result
    proc.send_signal(signal.SIGTERM)  # and the agent is stopped while it retries
    output, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, said + output
    assert spooled.exists()

    farm.start()
    proc = agent_process(farm, work_dir, fake_python, "--once")
    output, _ = proc.communicate(timeout=30)

    assert proc.returncode == 0, output
    assert "resending 1 finished build(s) kept from before" in output
    assert farm.builds[build_id]["state"] == "succeeded"
    assert list(farm.builds[build_id]["files"]) == ["slow_one-1.0-py3-none-any.whl"]
    assert leftovers(work_dir) == []
    assert "nothing to build" in output  # then it claimed once more, got 204, and exited 0


def test_a_refused_token_with_once_exits_non_zero_in_one_line(farm, work_dir, fake_python):
    proc = agent_process(farm, work_dir, fake_python, "--once", token="wrong")
    output, _ = proc.communicate(timeout=20)
    assert proc.returncode == 3
    assert output.strip().splitlines()[-1].endswith(
        "ERROR the farm refused the token: Invalid token.")
    assert "Traceback" not in output


@pytest.mark.parametrize("args, message", [
    ([], "give --server or set PIWHEELS_SERVER"),
    (["--server", "http://x"], "give --token-file (or --token), or set PIWHEELS_TOKEN_FILE"),
    (["--server", "http://x", "--token-file", "/no/such/token"],
     "cannot read the token file /no/such/token: No such file or directory"),
    (["--server", "http://x", "--token", "t", "--wait", "99"], "--wait must be between 0 and 60"),
])
def test_bad_command_lines_are_refused(args, message, monkeypatch, capsys):
    monkeypatch.delenv("PIWHEELS_SERVER", raising=False)
    monkeypatch.delenv("PIWHEELS_TOKEN", raising=False)
    monkeypatch.delenv("PIWHEELS_TOKEN_FILE", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(SystemExit) as exit:
        parse_args(args)
    assert exit.value.code == 2 and message in capsys.readouterr().err


def test_server_and_token_may_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("PIWHEELS_SERVER", "http://farm:8000")
    monkeypatch.setenv("PIWHEELS_TOKEN", "s3cret")
    args = parse_args(["--once"])
    assert (args.server, args.token, args.once) == ("http://farm:8000", "s3cret", True)
    assert args.build_timeout == 3 * 60 * 60 and args.wait == 30


def test_the_token_comes_from_a_file_and_leaves_the_environment(monkeypatch, tmp_path):
    token = tmp_path / "token"
    token.write_text("from-the-file\n")
    token.chmod(0o600)
    monkeypatch.setenv("PIWHEELS_TOKEN", "from-the-env")
    args = parse_args(["--server", "http://f", "--token-file", str(token)])
    assert (args.token, args.token_file) == ("from-the-file", str(token))
    assert "PIWHEELS_TOKEN" not in os.environ  # no child of the agent inherits it

    monkeypatch.setenv("PIWHEELS_TOKEN", "from-the-env")
    args = parse_args(["--server", "http://f"])
    assert (args.token, args.token_file) == ("from-the-env", None)
    assert "PIWHEELS_TOKEN" not in os.environ


def test_under_systemd_the_token_is_the_credential(monkeypatch, tmp_path):
    monkeypatch.delenv("PIWHEELS_TOKEN", raising=False)
    monkeypatch.delenv("PIWHEELS_TOKEN_FILE", raising=False)
    (tmp_path / "token").write_text("credential")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    args = parse_args(["--server", "http://f"])
    assert (args.token, args.token_file) == ("credential", str(tmp_path / "token"))


def test_the_unit_loads_the_token_as_a_credential_not_into_the_environment():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "deploy", "piwheels-builder.service")) as f:
        lines = [line.strip() for line in f if not line.startswith("#")]
    assert "LoadCredential=token:/etc/piwheels-builder/token" in lines
    assert not any("PIWHEELS_TOKEN" in line for line in lines)


def test_one_work_dir_serves_one_agent_and_a_killed_agents_builds_are_cleared(
        farm, work_dir, fake_python):
    stale = work_dir / "builds" / "build-9-abc"
    stale.mkdir(parents=True)
    (stale / "half.whl").write_bytes(b"x")
    proc = agent_process(farm, work_dir, fake_python)
    farm.wait_for(lambda: len(farm.claims) >= 1)
    assert not stale.exists()

    second = agent_process(farm, work_dir, fake_python, "--once")
    output, _ = second.communicate(timeout=20)
    assert second.returncode == 2
    assert f"another piwheels-builder is using {work_dir}" in output
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0


def test_a_claim_for_an_abi_the_farm_does_not_build_is_reported_in_one_line(
        farm, work_dir, fake_python):
    farm.fail("POST", "/claim/", 400)
    proc = agent_process(farm, work_dir, fake_python, "--once")
    output, _ = proc.communicate(timeout=20)
    assert proc.returncode == 4
    assert output.strip().splitlines()[-1].endswith(
        "ERROR the farm refused the claim: Injected 400.")


def test_a_build_left_running_by_an_agent_killed_outright_is_killed_at_the_next_start(
        farm, work_dir, fake_python, tmp_path):
    pids = tmp_path / "pids"
    build_id = farm.add_job("hang-forever")
    proc = agent_process(farm, work_dir, fake_python, env={"FAKE_BUILD_PIDS": str(pids)})
    assert wait_for_file(pids)
    group_file = work_dir / "build-group.json"
    pip, sleeper = map(int, pids.read_text().split())
    assert json.loads(group_file.read_text())["pgid"] == pip  # its own process group

    proc.kill()  # SIGKILL: no chance to stop its build
    proc.communicate(timeout=10)
    assert pid_alive(pip) and pid_alive(sleeper)  # pip wheel and its child run on
    bystander = subprocess.Popen(["sleep", "300"], start_new_session=True)  # not the build's

    try:
        second = agent_process(farm, work_dir, fake_python, "--once")
        output, _ = second.communicate(timeout=30)
        assert second.returncode == 0, output
        assert not pid_alive(pip) and not pid_alive(sleeper)
        assert "killed 2 process(es) of a build left running by a killed agent" in output
        assert not group_file.exists()
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
        for pid in (pip, sleeper):
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert farm.builds[build_id]["state"] == "building"  # the farm's lease decides on it


def test_without_a_sandbox_the_agent_refuses_to_build_in_one_line(farm, work_dir, tmp_path):
    build_id = farm.add_job("foo")
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run(
        [sys.executable, "-m", "piwheels_builder.main", "--server", farm.url, "--token",
         farm.token, "--work-dir", str(work_dir), "--abi", "cp311", "--platform",
         "linux_armv7l", "--once"],
        capture_output=True, text=True, timeout=30,
        env={"PATH": str(tmp_path), "PYTHONPATH": here},  # no bwrap on this PATH
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].endswith(
        "ERROR refusing to build: bwrap (Debian package bubblewrap) is not installed; "
        "builds run unsandboxed only with --unsandboxed")
    assert farm.claims == [] and farm.builds[build_id]["state"] == "queued"


@pytest.mark.parametrize("server, fix", [
    ("http://127.0.0.1:9/simple/", "give --server http://127.0.0.1:9"),
    ("https://farm.example/simple", "give --server https://farm.example"),
    ("https://farm.example/api/v1/", "give --server https://farm.example"),
    ("farm.example", "is not a URL"),
])
def test_a_server_that_is_not_the_farms_base_url_is_refused_at_once(server, fix, tmp_path):
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run(
        [sys.executable, "-m", "piwheels_builder.main", "--server", server, "--token", "t",
         "--work-dir", str(tmp_path), "--once"],
        capture_output=True, text=True, timeout=30, env=dict(os.environ, PYTHONPATH=here))
    assert proc.returncode == 2 and proc.stdout == ""
    assert fix in proc.stderr.splitlines()[-1]
    assert os.listdir(tmp_path) == []  # nothing asked, nothing made


class _PagesOnly(http.server.BaseHTTPRequestHandler):
    """A web server that is not the farm's API: an HTML 404 page for anything, as the farm
    itself answers under /simple/api/v1/claim/."""

    def do_POST(self):
        body = b"<!DOCTYPE html>\n<html><title>Not Found</title></html>\n"
        self.send_response(404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_server_answering_pages_not_the_api_is_reported_with_its_status(
        work_dir, fake_python):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _PagesOnly)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    class NotAFarm:
        url = f"http://127.0.0.1:{server.server_address[1]}/pypi"
        token = "t"
    try:
        proc = agent_process(NotAFarm, work_dir, fake_python, "--once")
        output, _ = proc.communicate(timeout=30)
    finally:
        server.shutdown()
        server.server_close()
    assert proc.returncode == 4
    assert output.strip().splitlines()[-1].endswith(
        "ERROR the farm refused the claim: HTTP 404 Not Found (text/html, not the farm's API) "
        f"from {NotAFarm.url}/api/v1/claim/: --server must be the farm's base URL, the one its "
        "pages are under (e.g. https://farm.example), where /api/v1/ answers")
    assert "<!DOCTYPE" not in output
