import os
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from farm_standin import pid_alive

from piwheels_builder import build

JOB = {
    "build_id": 17, "project": "Foo_Bar", "normalized_name": "foo-bar", "version": "1.0",
    "abi": "cp311", "index_url": "http://upstream/simple/",
    "extra_index_urls": ["http://farm/simple/", "http://mirror/simple/"],
}


def test_build_command_builds_exactly_the_job_from_its_sdist():
    command = build.build_command(JOB, "/tmp/w", python="/usr/bin/python3.9")
    assert command[:4] == ["/usr/bin/python3.9", "-m", "pip", "wheel"]
    assert command[-1] == "foo-bar==1.0"
    pairs = list(zip(command, command[1:]))
    assert "--no-deps" in command
    assert ("--no-binary", "foo-bar") in pairs
    assert ("--wheel-dir", "/tmp/w") in pairs
    assert ("--index-url", "http://upstream/simple/") in pairs
    assert ("--extra-index-url", "http://farm/simple/") in pairs
    assert ("--extra-index-url", "http://mirror/simple/") in pairs
    assert build.build_command(JOB, "/tmp/w")[0] == sys.executable


def test_build_environment_ignores_the_machines_pip_configuration():
    base = {
        "PATH": "/usr/bin", "HOME": "/home/pi", "PIP_FIND_LINKS": "/opt/wheels",
        "PIP_INDEX_URL": "http://elsewhere/", "PIP_CONSTRAINT": "/etc/c.txt",
        "PIP_CONFIG_FILE": "/etc/pip.conf", "PIP_PROXY": "http://proxy:3128",
        "PYTHONPATH": "/somewhere", "PIWHEELS_TOKEN": "secret", "PIWHEELS_SERVER": "http://f/",
        "CREDENTIALS_DIRECTORY": "/run/credentials/x", "LANG": "C.UTF-8", "EDITOR": "vi",
        "QEMU_CPU": "max,pauth-impdef=on",
    }
    env = build.build_environment(base, "/b/cache", "/b/tmp", home="/b/home")
    assert env["PIP_CONFIG_FILE"] == os.devnull
    assert env["PIP_CACHE_DIR"] == "/b/cache"
    assert env["TMPDIR"] == "/b/tmp"
    assert env["PIP_PROXY"] == "http://proxy:3128"  # network settings stay
    assert env["QEMU_CPU"] == "max,pauth-impdef=on"  # an emulated builder's qemu-user CPU
    for gone in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_CONSTRAINT", "PYTHONPATH",
                 "PIWHEELS_TOKEN", "PIWHEELS_SERVER", "CREDENTIALS_DIRECTORY", "EDITOR"):
        assert gone not in env
    assert (env["PATH"], env["HOME"], env["LANG"]) == ("/usr/bin", "/b/home", "C.UTF-8")
    assert build.build_environment({}, "/c", "/t")["PATH"] == build.DEFAULT_PATH


needs_bwrap = pytest.mark.skipif(
    build.sandbox_problem() is not None,
    reason=f"no sandbox here: {build.sandbox_problem()}",
)


@needs_bwrap
def test_a_sandboxed_command_writes_only_its_build_dir_and_sees_nothing_hidden(tmp_path):
    work = tmp_path / "work"
    build_dir = work / "builds" / "b1"
    build_dir.mkdir(parents=True)
    (work / "spool").mkdir()
    (work / "spool" / "result.json").write_text("{}")
    secret = tmp_path / "token"
    secret.write_text("s3cret")
    script = (
        "import os, sys\n"
        "print([p for p in os.listdir('/proc') if p.isdigit()])\n"
        f"print(os.path.exists({str(work / 'spool')!r}), open({str(secret)!r}).read() or 'empty')\n"
        "open('inside.txt', 'w').write('ok')\n"
        "open('/tmp/private', 'w').write('ok')\n"
        f"for p in ({str(tmp_path / 'outside.txt')!r}, '/var/tmp/x', os.path.expanduser('~/x')):\n"
        "    try:\n"
        "        open(p, 'w').write('escaped')\n"
        "        print('wrote', p)\n"
        "    except OSError as e:\n"
        "        print('refused', e.errno)\n"
    )
    command = build.sandbox_command([sys.executable, "-c", script], build_dir=build_dir,
                                    hidden=[str(work), str(secret)])
    proc = subprocess.run(command, capture_output=True, text=True, env={"HOME": "/root"},
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    pids = eval(lines[0])
    assert len(pids) <= 3, pids  # bwrap's init, python (and nothing of the agent's)
    assert lines[1] == "False empty"
    # Outside the build dir: the private /tmp takes it (and forgets it); the rest is read-only.
    assert lines[3:] == ["refused 30", "refused 30"]
    assert (build_dir / "inside.txt").read_text() == "ok"
    assert not (tmp_path / "outside.txt").exists()
    assert not os.path.exists("/tmp/private")
    assert (work / "spool" / "result.json").exists()  # hidden, not harmed


def test_sandbox_problem_names_a_missing_bwrap():
    assert "not installed" in build.sandbox_problem("no-such-bwrap-here")


def test_run_merges_stdout_and_stderr_in_order(tmp_path):
    script = "; ".join(
        f"print('out {i}', flush=True); sys.stderr.write('err {i}\\n'); sys.stderr.flush()"
        for i in range(3)
    )
    outcome = build.run(
        [sys.executable, "-c", "import sys; " + script + "; sys.exit(3)"],
        cwd=tmp_path, env=dict(os.environ), log_path=tmp_path / "log", timeout=30,
    )
    assert outcome.returncode == 3
    assert not outcome.timed_out
    assert outcome.output.splitlines() == ["out 0", "err 0", "out 1", "err 1", "out 2", "err 2"]


def test_timeout_kills_the_whole_process_tree(tmp_path):
    pids = tmp_path / "pids"
    script = (
        f"sleep 300 & echo $$ $! > {pids}; echo started; "
        "trap '' TERM; wait"  # the shell even ignores SIGTERM: SIGKILL must follow
    )
    start = time.monotonic()
    outcome = build.run(["sh", "-c", script], cwd=tmp_path, env=dict(os.environ),
                        log_path=tmp_path / "log", timeout=1)
    elapsed = time.monotonic() - start
    shell, sleeper = map(int, pids.read_text().split())
    assert outcome.timed_out and outcome.returncode is None
    assert outcome.output == "started\n"
    assert not pid_alive(shell) and not pid_alive(sleeper)
    assert 1 <= elapsed < 1 + build.KILL_GRACE + 3
    reason = build.failure_reason(outcome, 1)
    assert reason == "build timed out after 1s"


def test_stop_event_kills_the_build_and_a_finished_builds_stragglers(tmp_path):
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    outcome = build.run(["sh", "-c", "sleep 300"], cwd=tmp_path, env=dict(os.environ),
                        log_path=tmp_path / "log", timeout=60, stop=stop)
    assert outcome.stopped and outcome.duration < 10

    # The command exits at once but leaves a daemon behind in its group.
    pids = tmp_path / "pids"
    outcome = build.run(["sh", "-c", f"(sleep 300 & echo $! > {pids}) ; exit 0"], cwd=tmp_path,
                        env=dict(os.environ), log_path=tmp_path / "log", timeout=60)
    assert outcome.returncode == 0
    assert not pid_alive(int(pids.read_text()))


def test_failure_reason_picks_the_compilers_first_error():
    outcome = build.Outcome(returncode=1, duration=1.0, output=(
        "  src/mod.c:1:10: fatal error: missing.h: No such file or directory\n"
        "  src/mod.c:7:3: error: unknown type name 'foo_t'\n"
        "  error: command '/usr/bin/gcc' failed with exit code 1\n"
        "  error: subprocess-exited-with-error\n"
        "  ERROR: Failed building wheel for foo\n"
        "Failed to build foo\n"
        "ERROR: Failed to build one or more wheels\n"
    ))
    assert build.failure_reason(outcome, 60) == (
        "src/mod.c:1:10: fatal error: missing.h: No such file or directory")


def test_failure_reason_else_picks_the_last_error_line_that_is_not_pips_summary():
    outcome = build.Outcome(returncode=1, duration=1.0, output=(
        "ERROR: Could not find a version that satisfies the requirement foo==1.0\n"
        "ERROR: No matching distribution found for foo==1.0\n"
    ))
    assert build.failure_reason(outcome, 60) == (
        "ERROR: No matching distribution found for foo==1.0")
    bare = build.Outcome(returncode=2, duration=1.0, output="nothing useful\n")
    assert build.failure_reason(bare, 60) == "pip wheel exited with status 2"


def test_long_output_keeps_head_and_tail(tmp_path):
    path = tmp_path / "log"
    path.write_bytes(b"HEAD\n" + b"x" * 5000 + b"\x00\nTAIL\n")
    text = build.read_log(path, limit=1000)
    assert text.startswith("HEAD\n") and text.endswith("\nTAIL\n")
    assert "bytes of output left out" in text
    assert len(text) < 1200 and "\x00" not in text


def _running_with(arg):
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if arg.encode() in f.read().split(b"\0"):
                    found.append(int(entry))
        except (OSError, ValueError):
            pass
    return [pid for pid in found if pid_alive(pid)]


@needs_bwrap
def test_a_sandboxed_build_past_its_timeout_is_killed_whole(tmp_path):
    arg = f"3{os.getpid()}.5"  # a sleep no other process runs
    command = build.sandbox_command(["sh", "-c", f"sleep {arg} & sleep {arg}; wait"],
                                    build_dir=tmp_path)
    outcome = build.run(command, cwd=tmp_path, env={"PATH": build.DEFAULT_PATH},
                        log_path=tmp_path / "log", timeout=1)
    assert outcome.timed_out and outcome.returncode is None
    assert _running_with(arg) == []


def test_build_command_always_builds_through_pep517():
    command = build.build_command(JOB, "/tmp/w", python="/usr/bin/python3")
    assert command[3:5] == ["wheel", "--use-pep517"]
    assert "--no-build-isolation" not in command


def test_pip_version_names_the_pip_that_builds_and_a_broken_one_is_a_builder_fault(tmp_path):
    env = build.build_environment(os.environ, tmp_path / "cache", tmp_path)
    said = build.pip_version(sys.executable, env, cwd=tmp_path)
    assert said.startswith("pip ") and f"{os.sep}pip " in said + " " and "(python 3." in said
    with pytest.raises(build.BuilderFault, match="No module named pip"):
        build.pip_version(_python_without_pip(tmp_path), env, cwd=tmp_path)
    with pytest.raises(build.BuilderFault, match="did not run"):
        build.pip_version(str(tmp_path / "no-such-python"), env, cwd=tmp_path)


def _python_without_pip(tmp_path):
    venv = tmp_path / "nopip"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    return str(venv / "bin" / "python")


def _real_pip_build(tmp_path, index_url, name="no-such-demo"):
    """Real pip, the agent's command, against INDEX_URL: its Outcome."""
    job = dict(JOB, normalized_name=name, version="1.0", index_url=index_url,
               extra_index_urls=[])
    env = build.build_environment(os.environ, tmp_path / "cache", tmp_path)
    # One retry: pip says "Retrying ... connection broken" only when it retries.
    env.update(PIP_RETRIES="1", PIP_DEFAULT_TIMEOUT="5")
    return build.run(build.build_command(job, tmp_path / "w"), cwd=tmp_path, env=env,
                     log_path=tmp_path / "log", timeout=120)


def test_an_index_that_does_not_answer_is_the_builders_fault(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: connections are refused
    outcome = _real_pip_build(tmp_path, f"http://127.0.0.1:{port}/simple/")
    assert outcome.returncode not in (0, None)
    fault = build.environment_fault(outcome)
    assert fault.startswith("pip could not reach an index: "), outcome.output
    assert "Connection refused" in fault or "NewConnectionError" in fault


def test_a_missing_project_on_a_working_index_is_not_the_builders_fault(tmp_path):
    index = tmp_path / "index"
    (index / "other").mkdir(parents=True)
    (index / "index.html").write_text('<a href="other/">other</a>')
    (index / "other" / "index.html").write_text("")
    outcome = _real_pip_build(tmp_path, index.as_uri() + "/")
    assert outcome.returncode not in (0, None)
    assert build.environment_fault(outcome) is None, outcome.output
    assert "No matching distribution found for no-such-demo" in build.failure_reason(
        outcome, 60)


def test_pips_own_crash_and_a_backend_the_index_lacks_are_the_builders_fault():
    crash = textwrap.dedent("""\
        Collecting markupsafe==2.1.5
        ERROR: Exception:
        Traceback (most recent call last):
          File "/v/pip/_internal/cli/base_command.py", line 160, in exc_logging_wrapper
            status = run_func(*args)
          File "/v/pip/_internal/models/link.py", line 1, in metadata_link
            return Link(metadata_url, hashes=self.dist_info_metadata)
        TypeError: unhashable type: 'dict'
        """)
    assert build.environment_fault(build.Outcome(2, 1.0, crash)) == (
        "pip crashed: TypeError: unhashable type: 'dict'")
    backend = ("ERROR: Could not find a version that satisfies the requirement "
               "setuptools>=40.8.0 (from versions: none)\n"
               "ERROR: No matching distribution found for setuptools>=40.8.0\n")
    assert build.environment_fault(build.Outcome(1, 1.0, backend)).startswith(
        "the indexes served no setuptools for the build backend: ")
    # Versions there, none fitting: what the package asked for does not exist.
    pinned = ("ERROR: Could not find a version that satisfies the requirement "
              "setuptools<1 (from versions: 66.1.1, 80.9.0)\n")
    assert build.environment_fault(build.Outcome(1, 1.0, pinned)) is None
    # A traceback of the package's own setup.py is the package's.
    own = "Traceback (most recent call last):\n  File \"setup.py\"\nValueError: bad\n"
    assert build.environment_fault(build.Outcome(1, 1.0, own)) is None
    assert build.environment_fault(build.Outcome(None, 1.0, crash, timed_out=True)) is None
