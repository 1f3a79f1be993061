"""Running ``pip wheel`` for one job: the command, its environment, the time limit."""
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# Kept in full up to this many characters; past it the head and the tail are kept.
MAX_LOG = 4 * 1024 * 1024
# Seconds between SIGTERM and SIGKILL when a build is stopped.
KILL_GRACE = 5.0

# pip settings from the environment that change *what* is built or from where: the job
# alone decides that. Network settings (proxy, certificates, timeouts) are kept.
_PIP_KEEP = frozenset({
    "PIP_CERT", "PIP_CLIENT_CERT", "PIP_PROXY", "PIP_TRUSTED_HOST", "PIP_DEFAULT_TIMEOUT",
    "PIP_RETRIES",
})


class BuilderFault(Exception):
    """The builder's environment, not the package, keeps this build from being made
    (its pip does not run, crashed, or could not reach the indexes)."""


def build_command(job, wheel_dir, python=None):
    """``pip wheel`` of exactly the job's project and version, from its sdist, no deps.

    ``--use-pep517``: every build goes through PEP 517 with build isolation, whatever pip
    the Pi has. Without it, a pip older than 23.1 builds a project that has no
    pyproject.toml (MarkupSafe 2.1.5, a setup.py alone) with ``setup.py bdist_wheel`` in the
    agent's own environment whenever setuptools is importable there: in a venv Bookworm's
    python3 made (pip 23.0.1, setuptools 66.1.1, no ``wheel``) that fails with ``invalid
    command 'bdist_wheel'``, and the result would depend on what the Pi happens to have
    installed. With the flag, pip (19.0 and newer: Bullseye's 20.3.4, Bookworm's 23.0.1,
    Trixie's 25.1.1; a no-op in pip 25.3 and newer, where it is the only way) installs
    the build backend (``setuptools>=40.8.0`` and ``wheel`` for such a project) from the
    index into a fresh environment for each build. A flag rather than a newer pip of the
    agent's own: it holds for the pip of any ``--python`` too, and upgrades nothing on
    the Pi behind its owner's back.
    """
    name = job["normalized_name"]
    command = [
        python or sys.executable, "-m", "pip", "wheel", "--use-pep517",
        "--no-deps", "--no-binary", name, "--wheel-dir", str(wheel_dir),
        "--index-url", job["index_url"],
    ]
    for url in job.get("extra_index_urls") or ():
        command += ["--extra-index-url", url]
    command += ["--disable-pip-version-check", "--no-color", "--progress-bar", "off", "-v"]
    command.append(f"{name}=={job['version']}")
    return command


def pip_version(python, env, cwd, timeout=300):
    """What ``PYTHON -m pip --version`` says ("pip 23.0.1 from /venv/.../pip (python
    3.11)"): the pip that builds, for the log. Raises BuilderFault when it does not run."""
    command = [python or sys.executable, "-m", "pip", "--version"]
    try:
        proc = subprocess.run(
            command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
            text=True, errors="replace", timeout=timeout,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BuilderFault(f"{' '.join(command)} did not run: {exc}") from None
    answer = proc.stdout.strip()
    if proc.returncode != 0 or not answer.startswith("pip "):
        said = (proc.stderr.strip() or answer).splitlines()
        raise BuilderFault(
            f"{' '.join(command)} exited with status {proc.returncode}"
            + (f": {said[-1][:300]}" if said else "")
        )
    return answer.splitlines()[0]


def log_preamble(pip, command):
    """The first lines of every build log: which pip built it, and how it was called."""
    return (f"piwheels-builder: built by {pip}\n"
            f"piwheels-builder: {' '.join(command)}\n").encode()


# What a build inherits from the agent's environment: nothing else (an allow-list, so
# that no PIWHEELS_* setting, token or credential path of the agent reaches the build).
# Proxy settings are kept: pip needs them to reach the index where there is a proxy.
# QEMU_CPU too: an emulated builder's (docs/pi.md) choice of qemu-user's CPU, which makes
# Trixie's arm64 programs 2.6 times faster; only qemu-user reads it.
_ENV_KEEP = frozenset({
    "PATH", "LANG", "LANGUAGE", "TZ", "SOURCE_DATE_EPOCH", "QEMU_CPU",
    "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
})
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


def build_environment(base, cache_dir, tmp_dir, home=None):
    """The build's environment, built from nothing: PATH, the locale, proxies and the
    pip network settings of BASE (_ENV_KEEP, _PIP_KEEP), HOME in a directory of the
    build's own (HOME; TMP_DIR when not given), no pip configuration but ours, its own
    cache and temp. Nothing else of the agent's environment (its token above all)."""
    env = {k: v for k, v in base.items() if k in _ENV_KEEP or k in _PIP_KEEP}
    env.setdefault("PATH", DEFAULT_PATH)
    env.update({
        "HOME": str(home or tmp_dir),
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_CACHE_DIR": str(cache_dir),
        "PIP_NO_INPUT": "1",
        "TMPDIR": str(tmp_dir),
        "PYTHONDONTWRITEBYTECODE": "1",
        "LC_ALL": "C.UTF-8",
    })
    return env


# -- the sandbox ----------------------------------------------------------------------------
#
# Every build runs in a bubblewrap (bwrap) sandbox: new user, PID, IPC, UTS and cgroup
# namespaces; the whole file system read-only; a fresh /proc that shows the build's own
# processes only (never the agent's environ or its command line, which may hold --token);
# a private /tmp; the build directory the only writable place besides; the agent's work
# dir (spool, state, lock), its token file and credentials hidden. Why bwrap:
# - a separate unprivileged user needs root (or sudo) to switch to, still sees every
#   process's command line in /proc (hidepid is machine-wide), shares /tmp, and leaves
#   files that the agent cannot always clean up;
# - unshare(1) makes the namespaces but not the mounts: the bind mounts would be a shell
#   script run inside, as root of the user namespace;
# - bwrap (Debian's bubblewrap, what Flatpak uses) does all of it declaratively, as an
#   ordinary user where unprivileged user namespaces are allowed (Debian's default), and
#   is a small C program the Pis' Debian releases all ship (11: 0.4.1, 12: 0.8.0).
# The network namespace is shared: pip fetches the sdist and the build requirements from
# the index inside the sandbox, and Debian's tools give no simple per-host allow-list
# (that would take a proxy or slirp4netns/pasta). A build can therefore reach what the
# builder can reach, but without the token that is worth nothing to it.
# There is no --new-session: the build already runs in a session of its own with no
# controlling terminal (run: start_new_session, stdin /dev/null), so TIOCSTI cannot
# reach the agent's, and the build's process group stays the one kill_group signals.

BWRAP = "bwrap"


def sandbox_command(command, *, build_dir, hidden=(), bwrap=BWRAP):
    """COMMAND wrapped in a bwrap sandbox where BUILD_DIR (and a private /tmp) are the
    only writable places and each path of HIDDEN (files or directories: the agent's work
    dir, its token file) is masked by an empty one. Paths in BUILD_DIR keep their names."""
    args = [
        bwrap, "--unshare-all", "--share-net", "--die-with-parent", "--cap-drop", "ALL",
        "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
    ]
    # The private /tmp hides all that lives under the machine's /tmp, and with it the
    # interpreter the build runs when its venv is there (a checkout cloned under /tmp, as
    # a CI run's may be): that venv and the Python it is made from are shown again,
    # read-only.
    for path in _interpreter_roots(command[0]):
        args += ["--ro-bind", path, path]
    build_dir = os.path.abspath(build_dir)
    # Deepest last: a hidden work dir first, then the build dir inside it shown again.
    for path in sorted({os.path.abspath(p) for p in hidden if p}, key=len):
        if build_dir == path or build_dir.startswith(path.rstrip("/") + "/"):
            args += ["--tmpfs", path]  # the build dir is mounted back below
        elif os.path.isdir(path):
            args += ["--tmpfs", path]
        elif os.path.lexists(path):
            args += ["--dev-bind", "/dev/null", path]  # reads as empty
    args += ["--bind", build_dir, build_dir, "--chdir", build_dir, "--"]
    return args + list(command)


def _interpreter_roots(executable):
    """The install roots under /tmp of EXECUTABLE (`<root>/bin/python`), as named and
    with its links resolved: a venv's root and the Python it was made from."""
    if not os.path.isabs(executable):
        return []
    roots = []
    for path in (os.path.abspath(executable), os.path.realpath(executable)):
        root = os.path.dirname(os.path.dirname(path))
        if root.startswith("/tmp/") and root not in roots:
            roots.append(root)
    return roots


def sandbox_problem(bwrap=BWRAP, probe_dir=None):
    """Why builds cannot be sandboxed here (one line), or None when they can: bwrap is
    missing, or cannot make the namespaces (unprivileged user namespaces disabled, some
    containers). Tried for real, with the mounts a build gets."""
    found = shutil.which(bwrap)
    if found is None:
        return f"{bwrap} (Debian package bubblewrap) is not installed"
    with tempfile.TemporaryDirectory(dir=probe_dir) as scratch:
        try:
            proc = subprocess.run(
                sandbox_command(["true"], build_dir=scratch, bwrap=found),
                stdin=subprocess.DEVNULL, capture_output=True, timeout=30, env={},
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{found} does not run: {exc}"
    if proc.returncode != 0:
        why = proc.stderr.decode(errors="replace").strip().splitlines()
        return f"{found} cannot make a sandbox here: {why[-1] if why else proc.returncode}"
    return None


@dataclass
class Outcome:
    returncode: object  # int, or None when the process was stopped
    duration: float
    output: str
    timed_out: bool = False
    stopped: bool = False  # by a stop request (SIGTERM, job lost)
    pids: list = field(default_factory=list)


def run(command, *, cwd, env, log_path, timeout, stop=None, poll=0.2, group_file=None,
        preamble=b""):
    """Run ``command`` in its own session, output (stdout and stderr merged) to ``log_path``.

    Past ``timeout`` seconds, or when ``stop`` is set, the whole process group is killed
    (SIGTERM, then SIGKILL after ``KILL_GRACE``). Stragglers left in the group by a
    command that ended are killed too. While it runs, ``group_file`` (if given) says
    which processes are the build's, for ``kill_stale`` after the agent was killed.
    ``preamble`` (bytes) is written at the head of the log.
    """
    stop = stop or threading.Event()
    start = time.monotonic()
    timed_out = stopped = False
    # Every process of the build inherits this mark in its environment: what a killed
    # agent left running is found by it, and nothing else is.
    mark = uuid.uuid4().hex
    env = dict(env, **{MARK: mark})
    if group_file:
        _record_group(group_file, mark, None)  # before the start: no window unrecorded
    with open(log_path, "wb") as out:
        out.write(preamble)
        out.flush()
        proc = subprocess.Popen(
            command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        if group_file:
            _record_group(group_file, mark, proc.pid)
        try:
            while True:
                try:
                    proc.wait(timeout=poll)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if time.monotonic() - start > timeout:
                    timed_out = True
                    break
                if stop.is_set():
                    stopped = True
                    break
        finally:
            # Also reached on KeyboardInterrupt & co: never leave the tree running.
            kill_group(proc)
            if group_file:
                _forget_group(group_file)
    duration = time.monotonic() - start
    return Outcome(
        returncode=None if (timed_out or stopped) else proc.returncode,
        duration=duration, output=read_log(log_path), timed_out=timed_out, stopped=stopped,
    )


def kill_group(proc, grace=None):
    """SIGTERM the process group of ``proc`` (a session leader), SIGKILL what is left."""
    grace = KILL_GRACE if grace is None else grace
    pgid = proc.pid
    if proc.poll() is None:
        _signal_group(pgid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    # The leader may be gone while children it started in the group still run.
    _signal_group(pgid, signal.SIGKILL)
    proc.wait()
    # Signals land asynchronously: wait (briefly) until the group is really gone.
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and _group_running(pgid):
        time.sleep(0.02)


MARK = "PIWHEELS_BUILD_MARK"


def _record_group(path, mark, pgid):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump({"mark": mark, "pgid": pgid}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _forget_group(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def kill_stale(group_file):
    """Kill what the build recorded in ``group_file`` left running when its agent was
    killed outright (SIGKILL, power cut of the agent alone): every process carrying the
    build's mark, with its whole process group. Returns the pids found."""
    try:
        with open(group_file) as f:
            state = json.load(f)
    except FileNotFoundError:
        return []
    except (OSError, ValueError):
        state = {}
    mark, pgid = state.get("mark"), state.get("pgid")
    if os.path.isdir("/proc/self"):
        pids = [pid for pid in _processes() if mark and _has_mark(pid, mark)]
        groups = set()
        for pid in pids:
            try:
                groups.add(os.getpgid(pid))
            except ProcessLookupError:
                pass
    else:  # no /proc to check marks in: trust the recorded group
        pids, groups = [], {pgid} if pgid else set()
    for group in groups:
        _signal_group(group, signal.SIGKILL)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)  # one that left the group
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and any(_running(pid) for pid in pids):
        time.sleep(0.02)
    _forget_group(group_file)
    return pids


def _processes():
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            yield int(entry)


def _has_mark(pid, mark):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f"{MARK}={mark}".encode() in f.read().split(b"\0")
    except OSError:  # gone, or another user's
        return False


def _running(pid):
    """True while PID runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except (OSError, IndexError):
        return False


def _group_running(pgid):
    """True while a process of the group runs (zombies waiting to be reaped do not)."""
    if not os.path.isdir("/proc/self"):
        return _signal_group(pgid, 0)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


def _signal_group(pgid, sig):
    """Send ``sig`` to the group; False when no process is left in it."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def read_log(path, limit=MAX_LOG):
    """The build output as text: NULs dropped, the middle cut when it is too long."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(0)
        if size <= limit:
            data = f.read()
        else:
            head = f.read(limit // 4)
            f.seek(size - (limit - limit // 4))
            tail = f.read()
            data = head + b"\n[... %d bytes of output left out ...]\n" % (
                size - len(head) - len(tail)) + tail
    return data.decode("utf-8", errors="replace").replace("\x00", "")


# pip's own summary lines: they say *that* the build failed, not why.
_BOILERPLATE = (
    "failed building wheel", "failed to build", "failed-wheel-build",
    "subprocess-exited-with-error", "metadata-generation-failed", "could not build wheels",
)


_COMPILER_ERROR = re.compile(r":\d+(:\d+)?: (fatal )?error: ")


def failure_reason(outcome, timeout):
    """One line saying why a build failed: the compiler's first error, else the last
    ``error:`` line that is not pip's summary, else the exit status."""
    if outcome.timed_out:
        return f"build timed out after {timeout:g}s"
    lines = [line.strip() for line in outcome.output.splitlines()]
    for line in lines:
        if _COMPILER_ERROR.search(line):
            return line[:400]
    for line in reversed(lines):
        lower = line.lower()
        if lower.startswith("error:") and not any(b in lower for b in _BOILERPLATE):
            return line[:400]
    return f"pip wheel exited with status {outcome.returncode}"


# The builder's fault, not the package's, told from pip's own words in the log (checked
# before failure_reason). Only pip's messages count: a setup.py of the package's own
# that fails to download something fails the package.
# pip's own code raised (pip prints "ERROR: Exception:" and its traceback): in the build
# or in the pip that installs the build backend. E.g. pip 22.3-23.1 on a JSON page with
# `dist-info-metadata` (TypeError: unhashable type: 'dict').
_PIP_CRASH = re.compile(r"^(ERROR: )?Exception:$")
# pip could not reach an index: its retries and fetch errors, then no distribution found.
_PIP_NETWORK = re.compile(
    r"^(WARNING: )?(Retrying \(Retry\(.*after connection broken by|Could not fetch URL )")
_PIP_GAVE_UP = re.compile(
    r"(No matching distribution found for|Could not install packages due to an OSError)")
# An index without any setuptools or wheel at all ("from versions: none"), which the
# build backend needs: the indexes the farm gives always serve them, so the index failed.
# (Versions listed but none fitting: the package asked for one that does not exist.)
_NO_BACKEND = re.compile(
    r"Could not find a version that satisfies the requirement (setuptools|wheel)\b"
    r".*\(from versions: none\)")
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b.*")


def environment_fault(outcome):
    """Why the builder's environment made a build fail ("pip crashed: ..."), or None when
    it is the package's failure. A timeout and a stopped build are never one."""
    if outcome.timed_out or outcome.returncode in (0, None):
        return None
    lines = [line.rstrip() for line in outcome.output.splitlines()]
    for i, line in enumerate(lines):
        after = lines[i + 1:i + 400]
        if _PIP_CRASH.match(line.strip()) and any("pip/_internal" in a for a in after):
            # The exception's own line: the first unindented one naming an exception.
            end = next((a for a in after if _EXCEPTION_LINE.match(a)), "see the log")
            return f"pip crashed: {end}"[:400]
    network = next((line.strip() for line in lines if _PIP_NETWORK.search(line.strip())), None)
    gave_up = any(_PIP_GAVE_UP.search(line) for line in lines)
    if network and gave_up:
        return f"pip could not reach an index: {network}"[:400]
    for line in lines:
        found = _NO_BACKEND.search(line)
        if found:
            return (f"the indexes served no {found.group(1)} for the build backend: "
                    f"{line.strip()}")[:400]
    return None
