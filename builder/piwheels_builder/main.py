"""piwheels-builder: claim a job from the farm, build it, send back wheels and log; repeat."""
import argparse
import contextlib
import fcntl
import itertools
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.parse
import zipfile
from pathlib import Path

from . import build, debian, identity, logs, repair, wheels
from .farm import (
    Farm,
    GaveUp,
    LeaseLost,
    Rejected,
    Stopped,
    TokenRefused,
    backoff_delays,
    human_size,
)
from .spool import Spool

log = logging.getLogger("piwheels_builder")

DEFAULT_TIMEOUT = 3 * 60 * 60
# In the work dir, while a build runs: which processes are the build's (build.run).
GROUP_FILE = "build-group.json"
# The shortest log the agent sends when the farm keeps refusing logs as too large.
MIN_LOG = 64 * 1024
# Characters of the log sent inside finish to a farm that takes no log on its own.
OLD_FARM_LOG = 1024 * 1024
# How a failure_reason that is the builder's fault, not the package's, starts: the farm
# then queues the job again (builds/failures.py FARM_FAULT, docs/builder-api.md).
BUILDER_FAULT = "the builder failed:"
# Least time between two claims that found nothing.
IDLE_PAUSE = 1.0
# Seconds between two listings of the installed Debian packages (dpkg-query -W).
PACKAGES_EVERY = 60.0


class Agent:
    """One builder: the farm session, the spool, and the job in hand."""

    def __init__(self, farm, ident, *, work_dir, build_timeout=DEFAULT_TIMEOUT, wait=30,
                 python=None, stop=None, sandbox=True, hidden=(), repair_wheels=True,
                 strip=None, keep_built=None):
        self.farm = farm
        self.identity = ident
        self.work_dir = Path(work_dir)
        self.build_timeout = build_timeout
        self.wait = wait
        self.python = python
        # auditwheel repair after each build; strip: None follows the farm's setting.
        self.repair_wheels = repair_wheels
        self.strip = strip
        # A directory for a copy of each wheel as pip built it, before repair (to compare
        # with what the farm serves: bench/real_sample.py); None keeps none.
        self.keep_built = Path(keep_built) if keep_built else None
        self.stop = stop or farm.stop
        # Builds run in a bwrap sandbox (build.sandbox_command) unless SANDBOX is False
        # (--unsandboxed); HIDDEN: paths builds must not see besides the work dir.
        self.sandbox = sandbox
        self.hidden = [str(self.work_dir), *hidden]
        self._lock = _lock_work_dir(self.work_dir)
        self.spool = Spool(self.work_dir / "spool")
        # A build left running by an agent that was killed outright (its processes are
        # in a session of their own, so they outlive it): killed before anything else.
        stale = build.kill_stale(self.work_dir / GROUP_FILE)
        if stale:
            log.warning("killed %d process(es) of a build left running by a killed agent: %s",
                        len(stale), " ".join(map(str, stale)))
        # Builds left by an agent that was killed outright: nothing in them can be used.
        builds = self.work_dir / "builds"
        shutil.rmtree(builds, ignore_errors=True)
        builds.mkdir()
        # True while the main thread only waits on the farm, where SIGTERM may cut in.
        self.interruptible = False
        # The installed Debian packages, when they were listed, the digest last sent.
        self._packages, self._packages_at, self._packages_sent = None, 0.0, None

    def close(self):
        """Let another agent use the work dir."""
        self._lock.close()

    # -- the loop -----------------------------------------------------------------------

    def run(self, once=False):
        """Resend what is spooled, then claim and build until stopped (or one job)."""
        log.info(
            "builder for %s on %s (Python %s, %s, release %s, glibc %s), farm %s",
            self.identity.abi, self.identity.platform, self.identity.python_version,
            self.identity.os, self.identity.os_release or "unknown",
            self.identity.glibc or "none", self.farm.server,
        )
        try:
            while not self.stop.is_set():
                try:
                    self.resend_spooled()
                    asked = time.monotonic()
                    job = self.claim()
                    if job is None:
                        if once:
                            log.info("nothing to build")
                            return
                        # A farm that answers "nothing" at once is not asked again at once.
                        pause = IDLE_PAUSE - (time.monotonic() - asked)
                        if pause > 0 and self.stop.wait(pause):
                            break
                        continue
                    self.handle(job)
                    if once:
                        return
                except (Stopped, TokenRefused):
                    raise
                except Rejected as exc:  # e.g. the farm does not build for this ABI
                    if once:
                        raise
                    log.error("the farm refused the claim: %s; asking again in %.0fs",
                              exc, self.farm.refused_pace)
                    if self.stop.wait(self.farm.refused_pace):
                        break
                except Exception:
                    if once:
                        raise
                    log.exception("unexpected error; carrying on in %.0fs", self.farm.retry_cap)
                    if self.stop.wait(self.farm.retry_cap):
                        break
        except Stopped:
            pass
        log.info("stopped")

    def claim(self):
        digest = self.check_packages()
        self.interruptible = True
        try:
            return self.farm.claim(self.identity, wait=self.wait, packages_digest=digest)
        finally:
            self.interruptible = False

    def check_packages(self):
        """The digest of the installed Debian packages (listed at most every
        PACKAGES_EVERY seconds), after sending the list when it changed or the farm asked
        for it; None where there is no dpkg or no release name."""
        now = time.monotonic()
        if self._packages is None or now - self._packages_at >= PACKAGES_EVERY:
            self._packages, self._packages_at = debian.installed(), now
        release = debian.codename()
        if not self._packages or not release:
            return None
        digest = debian.digest(self._packages)
        if digest != self._packages_sent or self.farm.packages_wanted:
            self._packages_sent = digest  # a farm that cannot take it is not asked again
            self.farm.packages_wanted = False
            try:
                answer = self.farm.report_packages(release, self.identity.abi, self._packages)
            except (Rejected, LeaseLost, GaveUp) as exc:  # 404: a farm without dep-wait
                log.warning("the farm did not take the package list: %s", exc)
            else:
                log.info("sent %d Debian packages; %d failed builds queued again",
                         len(self._packages), answer.get("requeued", 0))
        return digest

    def handle(self, job):
        """Build one claimed job and deliver the result; never lets a job go silently."""
        build_id = job["build_id"]
        try:
            entry = self.build(job)
        except LeaseLost as exc:
            log.warning("build %s: job lost (%s), dropped", build_id, exc)
            return
        except Stopped:
            self._release(job)
            raise
        except build.BuilderFault as exc:
            log.error("build %s: this builder cannot build (%s); giving the job back",
                      build_id, exc)
            self._release(job)
            if self.stop.wait(self.farm.retry_cap):
                raise Stopped() from None
            return
        except Exception:
            log.exception("build %s: the builder failed; giving the job back", build_id)
            self._release(job)
            if self.stop.wait(self.farm.retry_cap):
                raise Stopped() from None
            return
        self.deliver(entry)

    def resend_spooled(self):
        entries = [e for e in self.spool.pending() if e.due()]
        if entries:
            log.info("resending %d finished build(s) kept from before", len(entries))
        for entry in entries:
            self.deliver(entry)

    # -- one build ----------------------------------------------------------------------

    def build(self, job):
        """Build the job into a spool entry; raises Stopped or LeaseLost when it was cut short."""
        label = f"{job['project']} {job['version']}"
        build_id = job["build_id"]
        log.info("building %s for %s (build %s)", label, job["abi"], build_id)
        tmp = Path(tempfile.mkdtemp(prefix=f"build-{build_id}-", dir=self.work_dir / "builds"))
        try:
            wheel_dir, cache_dir, tmp_dir = tmp / "wheels", tmp / "cache", tmp / "tmp"
            home = tmp / "home"
            for d in (wheel_dir, cache_dir, tmp_dir, home):
                d.mkdir()
            command = build.build_command(job, wheel_dir, self.python)
            env = build.build_environment(os.environ, cache_dir, tmp_dir, home=home)
            # Which pip builds, for the log; a pip that does not run is this builder's
            # fault (BuilderFault: the job is given back), never the package's.
            pip = build.pip_version(self.python, env, cwd=tmp)
            log.info("building with %s", pip)
            # The log (shown to everyone) names the pip command, not the sandbox's mounts.
            preamble = build.log_preamble(pip, command)
            command = self.sandboxed(command, tmp)
            with self._heartbeats(job) as lost:
                outcome = build.run(
                    command, cwd=tmp, env=env, log_path=tmp / "build.log",
                    timeout=self.build_timeout, stop=_AnyEvent(self.stop, lost),
                    group_file=self.work_dir / GROUP_FILE,
                    preamble=preamble,
                )
                built = [wheels.with_canonical_name(p)
                         for p in sorted(wheel_dir.glob("*.whl"))]
                if outcome.returncode == 0 and self.repair_wheels and not lost.is_set():
                    # Still under the lease's heartbeats: numpy's repair takes a while.
                    built = self._repair(job, built, tmp / "build.log")
            if lost.is_set():
                raise LeaseLost(f"the farm gave build {build_id} to another builder")
            if outcome.stopped:
                log.info("build %s: stopped", build_id)
                raise Stopped()
            result = self._result(job, outcome, built)
            files = [w["filename"] for w in result["files"]]
            # The whole log goes with the result, compressed; "output" is only what an
            # older farm is sent instead (deliver).
            result["output"] = ""
            return self.spool.put(job, result, [wheel_dir / f for f in files],
                                  log_path=tmp / "build.log")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def sandboxed(self, command, build_dir):
        """COMMAND as it runs for a build in BUILD_DIR: in the sandbox, unless allowed
        not to be."""
        if not self.sandbox:
            return command
        return build.sandbox_command(command, build_dir=build_dir, hidden=self.hidden)

    def _repair(self, job, paths, log_path):
        """The built wheels made portable (repair.py), each outcome added to the log."""
        strip = bool(job.get("strip", False)) if self.strip is None else self.strip
        done = []
        with open(log_path, "a", encoding="utf-8") as out:
            for path in paths:
                if self.keep_built and repair.platform_wheel_tag(path.name):
                    self.keep_built.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, self.keep_built / path.name)
                result = repair.repair(path, self.identity.glibc, strip=strip)
                if result.note:
                    line = f"{path.name}: {result.note}"
                    log.info("build %s: %s", job["build_id"], line)
                    out.write(f"\n[piwheels-builder] {line}\n")
                done.append(result.path)
        return done

    def _result(self, job, outcome, wheel_paths):
        label = f"{job['project']} {job['version']}"
        result = {
            "success": False, "duration": round(outcome.duration, 3),
            "output": outcome.output, "failure_reason": "", "files": [],
        }
        if outcome.returncode == 0 and not wheel_paths:
            result["failure_reason"] = "pip wheel succeeded but produced no wheel"
        elif outcome.returncode == 0:
            try:
                result["files"] = [wheels.inspect(p) for p in wheel_paths]
                result["success"] = True
            except (OSError, ValueError, zipfile.BadZipFile) as exc:
                result["failure_reason"] = f"unreadable wheel: {exc}"[:400]
        else:
            fault = build.environment_fault(outcome)
            # The farm queues a result whose reason starts "the builder failed" again
            # (the attempt counted), for this or another builder, never as the package's.
            result["failure_reason"] = (
                f"{BUILDER_FAULT} {fault}"[:400] if fault
                else build.failure_reason(outcome, self.build_timeout))
        if result["success"]:
            log.info(
                "built %s in %.1fs: %d wheel%s", label, outcome.duration, len(wheel_paths),
                "" if len(wheel_paths) == 1 else "s",
            )
        else:
            log.info("build of %s failed after %.1fs: %s", label, outcome.duration,
                     result["failure_reason"])
        return result

    @contextlib.contextmanager
    def _heartbeats(self, job):
        """Keep the job's lease alive meanwhile; yields an event set when the job is lost."""
        done, lost = threading.Event(), threading.Event()
        heart = threading.Thread(
            target=self._heartbeat,
            args=(job["build_id"], job.get("lease_seconds") or 300, done, lost),
            name=f"heartbeat-{job['build_id']}", daemon=True,
        )
        heart.start()
        try:
            yield lost
        finally:
            done.set()
            heart.join(timeout=5)  # a heartbeat stuck on the network finishes on its own

    def _heartbeat(self, build_id, lease_seconds, done, lost):
        interval = max(1.0, lease_seconds / 3)
        while not done.wait(interval):
            try:
                self.farm.heartbeat(build_id, budget=interval)
            except LeaseLost as exc:
                log.warning("build %s: the farm says the job is not ours any more (%s); "
                            "stopping it", build_id, exc)
                lost.set()
                return
            except (GaveUp, Stopped):
                continue
            except Exception:
                log.warning("build %s: heartbeat failed", build_id, exc_info=True)

    # -- delivery -----------------------------------------------------------------------

    def deliver(self, entry):
        """Upload the wheels and the log, and finish the build. The spool entry goes
        once the farm has confirmed it, or has definitively said the job is not ours;
        any other answer leaves it spooled, tried again later (docs/builder-api.md)."""
        job, result = entry.job, dict(entry.result)
        build_id = entry.build_id
        self.interruptible = True
        try:
            with self._heartbeats(job):
                try:
                    for record in result["files"]:
                        self.farm.upload(
                            build_id, entry.wheel_path(record["filename"]),
                            record["filename"], record["size"], record["sha256"],
                        )
                        log.info("uploaded %s (%s)", record["filename"],
                                 human_size(record["size"]))
                except Rejected as exc:
                    if not exc.definitive:
                        raise
                    # The farm's own refusal of the wheel itself: the build failed.
                    log.error("build %s: the farm refused a wheel: %s", build_id, exc)
                    result.update(success=False, files=[],
                                  failure_reason=f"the farm refused the wheel: {exc}"[:400])
                if entry.log_path is not None and not self._send_log(entry):
                    # A farm without the log upload: the log goes inside finish.
                    result["output"] = logs.excerpt(entry.log_path, OLD_FARM_LOG)
            answer = self._finish(build_id, result)
            log.info("finished build %s of %s %s: %s", build_id, job["project"],
                     job["version"], answer.get("state", "done"))
        except LeaseLost as exc:
            log.warning("build %s: the farm no longer takes this result (%s); dropping it",
                        build_id, exc)
        except Rejected as exc:
            tries, delay = self._defer(entry)
            log.error("build %s: the farm did not take the result (%s); kept in the spool, "
                      "try %d in %.0fs", build_id, exc, tries + 1, delay)
            return
        finally:
            self.interruptible = False
        entry.remove()

    def _send_log(self, entry):
        """Send the entry's whole log, shorter each time the farm says it is too large.
        False when the farm has no log upload (an older farm: 404 or 405)."""
        path, shorter = entry.log_path, entry.path / "build.short.log.gz"
        limit = None
        try:
            while True:
                try:
                    self.farm.upload_log(entry.build_id, path)
                    return True
                except Rejected as exc:
                    if exc.status in (404, 405):
                        return False
                    if not (exc.definitive and exc.status == 413):
                        raise
                    if limit is not None and limit <= MIN_LOG:
                        return False  # the log inside finish, as short as it gets
                    limit = max(MIN_LOG, (limit or logs.inflated_size(entry.log_path)) // 4)
                    log.warning("build %s: the farm refused the log as too large (%s); "
                                "sending %d characters of it", entry.build_id, exc, limit)
                    logs.shortened(entry.log_path, limit, shorter)
                    path = shorter
        finally:
            shorter.unlink(missing_ok=True)

    def _finish(self, build_id, result):
        """POST the result; a 413 (the log inside it too long) sends it shorter."""
        while True:
            try:
                return self.farm.finish(build_id, result)
            except Rejected as exc:
                output = result.get("output") or ""
                if not (exc.definitive and exc.status == 413 and output):
                    raise
                keep = len(output) // 4 if len(output) > 1024 else 0
                log.warning("build %s: the farm refused the result as too large (%s); "
                            "sending %d characters of the log", build_id, exc, keep)
                note = f"[piwheels-builder: {len(output) - keep} characters left out]\n"
                result = dict(result, output=note + output[len(output) - keep:])

    def _defer(self, entry):
        """Keep the entry for a later try, after the farm's backoff for its tries so far:
        (tries, the delay)."""
        tries = entry.retry_state()[0]
        delays = backoff_delays(self.farm.retry_base, self.farm.retry_cap)
        delay = next(itertools.islice(delays, min(tries, 32), None))
        return entry.defer(delay), delay

    def _release(self, job):
        try:
            self.farm.release(job["build_id"])
            log.info("released build %s of %s %s", job["build_id"], job["project"],
                     job["version"])
        except (LeaseLost, Rejected, GaveUp, TokenRefused) as exc:
            log.warning("could not release build %s: %s", job["build_id"], exc)


def _lock_work_dir(work_dir):
    """Hold an exclusive lock on the work dir for the agent's life: one agent per spool."""
    work_dir.mkdir(parents=True, exist_ok=True)
    handle = open(work_dir / "lock", "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise WorkDirBusy(f"another piwheels-builder is using {work_dir}") from None
    return handle


# The agent's configuration as the shipped unit keeps it (EnvironmentFile=).
CONFIG_FILES = ("/etc/piwheels-builder.env",)


def hidden_paths(*paths, environ=os.environ):
    """What a build must not see besides the work dir: PATHS (token files, --hide),
    systemd's credentials directory, the agent's configuration; those that exist."""
    paths = [*paths, environ.get("CREDENTIALS_DIRECTORY"), *CONFIG_FILES]
    found = [os.path.abspath(p) for p in paths if p and os.path.lexists(p)]
    return list(dict.fromkeys(found))


class WorkDirBusy(Exception):
    pass


class _AnyEvent:
    """Set when any of some events is set (enough for ``build.run``'s polling)."""

    def __init__(self, *events):
        self.events = events

    def is_set(self):
        return any(e.is_set() for e in self.events)


# -- command line -------------------------------------------------------------------------

def server_problem(server):
    """Why SERVER is not a farm's base URL (e.g. ``https://farm.example``), or None."""
    parts = urllib.parse.urlsplit(server)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return (f"--server {server!r} is not a URL: give the farm's base URL, "
                "e.g. https://farm.example")
    path = parts.path.rstrip("/")
    for tail in ("/simple", "/api/v1", "/api"):
        if path.endswith(tail):
            base = urllib.parse.urlunsplit((parts.scheme, parts.netloc, path[:-len(tail)],
                                            "", "")) or server
            return (f"--server is the farm's base URL, not its {tail}/ path: "
                    f"give --server {base}")
    return None


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="piwheels-builder",
        description="Claim build jobs from the wheel farm, build them, upload the wheels.",
    )
    parser.add_argument("--server", default=os.environ.get("PIWHEELS_SERVER"),
                        help="the farm's base URL (env PIWHEELS_SERVER)")
    parser.add_argument("--token", default=None,
                        help="this builder's API token (env PIWHEELS_TOKEN); visible to "
                             "other users in the process list: prefer --token-file")
    parser.add_argument("--token-file", default=None, metavar="PATH",
                        help="a file only this user can read holding the token (env "
                             "PIWHEELS_TOKEN_FILE; default $CREDENTIALS_DIRECTORY/token "
                             "under systemd's LoadCredential=)")
    parser.add_argument("--hide", action="append", default=[], metavar="PATH",
                        help="a file or directory builds must not see (repeatable; the work "
                             "dir, the token file, $CREDENTIALS_DIRECTORY and "
                             "/etc/piwheels-builder.env always are)")
    parser.add_argument("--unsandboxed", action="store_true",
                        help="run builds without the bwrap sandbox, for machines where it "
                             "cannot be made (a build can then read this agent's token)")
    parser.add_argument("--once", action="store_true",
                        help="claim and finish at most one job, then exit")
    parser.add_argument("--build-timeout", type=float, default=DEFAULT_TIMEOUT,
                        metavar="SECONDS", help="kill a build running longer (default 3 hours)")
    parser.add_argument("--work-dir", default=None, metavar="DIR",
                        help="builds and the spool of unsent results "
                             "(default ~/.cache/piwheels-builder)")
    parser.add_argument("--wait", type=int, default=30, metavar="SECONDS",
                        help="how long each claim waits for a job (0-60, default 30)")
    parser.add_argument("--python", default=None,
                        help="the Python that builds (default: the one running this)")
    parser.add_argument("--abi", default=None, help="override the detected ABI tag")
    parser.add_argument("--platform", default=None, help="override the detected platform tag")
    parser.add_argument("--os-release", default=None, metavar="CODENAME",
                        help="override the detected OS release (VERSION_CODENAME), for testing")
    parser.add_argument("--glibc", default=None, metavar="X.Y",
                        help="override the detected glibc version, for testing")
    parser.add_argument("--no-repair", dest="repair", action="store_false",
                        help="upload wheels as pip built them, without auditwheel repair")
    parser.add_argument("--strip", dest="strip", action="store_true", default=None,
                        help="strip debug symbols from repaired wheels (default: as the "
                             "farm says)")
    parser.add_argument("--no-strip", dest="strip", action="store_false",
                        help="keep debug symbols in repaired wheels")
    parser.add_argument("--keep-built", default=None, metavar="DIR",
                        help="keep a copy of each platform wheel as pip built it, before "
                             "repair, in DIR (to compare with the repaired one)")
    parser.add_argument("--max-retry-delay", type=float, default=60.0, metavar="SECONDS",
                        help="longest wait between retries when the farm is unreachable, "
                             "and the pace of retries when it refuses the token (default 60)")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    args = parser.parse_args(argv)
    if not args.server:
        parser.error("give --server or set PIWHEELS_SERVER")
    problem = server_problem(args.server)
    if problem:
        parser.error(problem)
    # Every token file named is hidden from builds, even one a --token overrides.
    named = [args.token_file, os.environ.get("PIWHEELS_TOKEN_FILE")]
    try:
        args.token, args.token_file = read_token(args.token, args.token_file)
    except TokenFileError as exc:
        parser.error(str(exc))
    if not args.token:
        parser.error("give --token-file (or --token), or set PIWHEELS_TOKEN_FILE "
                     "(or PIWHEELS_TOKEN)")
    args.hide = hidden_paths(args.token_file, *named, *args.hide)
    if not 0 <= args.wait <= 60:
        parser.error("--wait must be between 0 and 60")
    if args.work_dir is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
        args.work_dir = os.path.join(base, "piwheels-builder")
    return args


class TokenFileError(Exception):
    pass


def read_token(token=None, token_file=None, environ=os.environ):
    """(token, the file it came from or None): --token, else --token-file, else
    PIWHEELS_TOKEN, else PIWHEELS_TOKEN_FILE, else $CREDENTIALS_DIRECTORY/token (systemd's
    LoadCredential=). PIWHEELS_TOKEN leaves ENVIRON once read, so that no process the
    agent starts inherits it (builds get an environment of their own anyway)."""
    from_env = environ.pop("PIWHEELS_TOKEN", None)
    if token:
        return token.strip(), None
    if not token_file and from_env:
        return from_env.strip(), None
    token_file = token_file or environ.get("PIWHEELS_TOKEN_FILE")
    if not token_file and environ.get("CREDENTIALS_DIRECTORY"):
        candidate = os.path.join(environ["CREDENTIALS_DIRECTORY"], "token")
        if os.path.exists(candidate):
            token_file = candidate
    if not token_file:
        return None, None
    try:
        with open(token_file) as f:
            token = f.read().strip()
        mode = os.stat(token_file).st_mode
    except OSError as exc:
        raise TokenFileError(f"cannot read the token file {token_file}: "
                             f"{exc.strerror or exc}") from None
    if not token:
        raise TokenFileError(f"the token file {token_file} is empty")
    if mode & 0o077:
        log.warning("the token file %s can be read by others (mode %o): chmod 600 it",
                    token_file, mode & 0o777)
    return token, os.path.abspath(token_file)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    stop = threading.Event()
    farm = Farm(
        args.server, args.token, stop=stop, retry_cap=args.max_retry_delay,
        refused_pace=args.max_retry_delay, exit_on_refusal=args.once,
    )
    try:
        ident = identity.detect(args.abi, args.platform, args.python, args.os_release,
                                args.glibc)
    except Exception as exc:
        log.error("cannot tell what this machine builds for: %s", exc)
        return 2
    problem = None if args.unsandboxed else build.sandbox_problem()
    if problem:
        log.error("refusing to build: %s; builds run unsandboxed only with --unsandboxed",
                  problem)
        return 2
    if args.unsandboxed:
        log.warning("builds run UNSANDBOXED (--unsandboxed): a build can read the token")
    try:
        agent = Agent(
            farm, ident, work_dir=args.work_dir, build_timeout=args.build_timeout,
            wait=args.wait, python=args.python, stop=stop, sandbox=not args.unsandboxed,
            hidden=args.hide, repair_wheels=args.repair, strip=args.strip,
            keep_built=args.keep_built,
        )
    except WorkDirBusy as exc:
        log.error("%s", exc)
        return 2

    def on_signal(signum, frame):
        if not stop.is_set():
            log.info("%s: stopping", signal.Signals(signum).name)
        stop.set()
        if agent.interruptible:
            agent.interruptible = False
            raise Stopped()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        agent.run(once=args.once)
    except TokenRefused as exc:
        log.error("%s", exc)
        return 3
    except Rejected as exc:
        log.error("the farm refused the claim: %s", exc)
        return 4
    except Stopped:
        log.info("stopped")
    finally:
        agent.close()
        farm.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
