"""The whole agent against the stand-in farm, with a stand-in pip (see conftest.FAKE_PYTHON)."""
import ast
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from farm_standin import pid_alive

from piwheels_builder.farm import Farm
from piwheels_builder.identity import Identity
from piwheels_builder.main import Agent, parse_args

ME = Identity(abi="cp311", platform="linux_armv7l", python_version="3.11.2", os="Test OS")


def make_agent(farm, work_dir, fake_python, **kwargs):
    api = Farm(farm.url, farm.token, retry_base=0.05, retry_cap=0.3, refused_pace=0.3)
    kwargs.setdefault("wait", 0)
    return Agent(api, ME, work_dir=work_dir, python=fake_python, **kwargs)


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
        "--wait", "0", *args,
    ]
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # this agent's code
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=dict(os.environ, PYTHONPATH=here, **(env or {})))


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
    farm.wait_for(lambda: len(farm.claims) >= 2)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, output
    assert time.monotonic() - sent < 2
    first, second = farm.claim_times[:2]
    assert second - first >= 0.9  # not a busy loop against the farm


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
    (["--server", "http://x"], "give --token or set PIWHEELS_TOKEN"),
    (["--server", "http://x", "--token", "t", "--wait", "99"], "--wait must be between 0 and 60"),
])
def test_bad_command_lines_are_refused(args, message, monkeypatch, capsys):
    monkeypatch.delenv("PIWHEELS_SERVER", raising=False)
    monkeypatch.delenv("PIWHEELS_TOKEN", raising=False)
    with pytest.raises(SystemExit) as exit:
        parse_args(args)
    assert exit.value.code == 2 and message in capsys.readouterr().err


def test_server_and_token_may_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("PIWHEELS_SERVER", "http://farm:8000")
    monkeypatch.setenv("PIWHEELS_TOKEN", "s3cret")
    args = parse_args(["--once"])
    assert (args.server, args.token, args.once) == ("http://farm:8000", "s3cret", True)
    assert args.build_timeout == 3 * 60 * 60 and args.wait == 30


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
