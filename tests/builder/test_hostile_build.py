"""A hostile sdist, built by the real agent for the real farm, tries to steal the builder's
token every way a build could (docs/untrusted-builds.md) and to write outside its build
directory. It reports what it tried and what it found in its build log and in the wheel it
builds; the test fails if it found anything, or wrote anything the agent's machine keeps."""
import json
import os
import secrets
import shutil
import textwrap
import uuid
import zipfile

import pytest

from builds import storage
from builds.models import Build
from tests.builder.conftest import ABI, ROOT, SANDBOX_PROBLEM, run_agent
from tests.factories import make_builder

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(SANDBOX_PROBLEM is not None,
                       reason=f"builds cannot be sandboxed here: {SANDBOX_PROBLEM}"),
]

# Runs at every step of the build (setup.py is executed by setuptools' backend): looks for
# the token (given to it reversed in needle.txt, so that its own source never holds it)
# and for the token's names, in everything it can read; tries to write where it must not.
HOSTILE_SETUP = textwrap.dedent("""\
    import glob, json, os, sys
    from setuptools import setup

    PLAN = json.load(open("plan.json"))
    # (Spelt in pieces: its own files, which it reads too, must not match.)
    NEEDLES = [open("needle.txt").read()[::-1].encode(), b"PIWHEELS" + b"_TOKEN",
               b"--" + b"token"]
    tried, found, wrote = [], [], []

    def look(where, data):
        tried.append(where)
        data = data.encode() if isinstance(data, str) else data
        for i, needle in enumerate(NEEDLES):
            if needle in data:
                found.append("%s (needle %d)" % (where, i))

    def read(path):
        try:
            with open(path, "rb") as f:
                look(path, f.read(4 << 20))
        except OSError as exc:
            tried.append("%s: %s" % (path, exc.strerror))

    # 1. Its own environment.
    look("environ", "\\0".join("%s=%s" % kv for kv in os.environ.items()))
    # 2. Its parent's and every visible process's environment and command line.
    read("/proc/%d/environ" % os.getppid())
    read("/proc/%d/cmdline" % os.getppid())
    for path in glob.glob("/proc/[0-9]*/environ") + glob.glob("/proc/[0-9]*/cmdline"):
        read(path)
    # 3. The token file, the credentials, the agent's config, work dir, spool, state.
    for top in PLAN["read"]:
        if os.path.isdir(top):
            for base, dirs, files in os.walk(top):
                tried.append(base)
                for name in files:
                    read(os.path.join(base, name))
        else:
            read(top)
    # 4. Writes outside its build directory.
    for path in PLAN["write"]:
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write("hostile")
            wrote.append(path)
        except OSError:
            pass

    report = {"tried": len(tried), "found": found, "wrote": wrote}
    sys.stderr.write("HOSTILE REPORT %s\\n" % json.dumps(report))
    with open(os.path.join("hostile_demo", "findings.py"), "w") as f:
        f.write("REPORT = %r\\n" % (report,))
    setup(packages=["hostile_demo"])
    """)


@pytest.fixture
def outside(tmp_path):
    """A directory outside /tmp (which the sandbox replaces anyway), so that hiding is
    tested for paths the build could otherwise reach."""
    path = ROOT / "var" / f"test-hostile-{uuid.uuid4().hex[:12]}"
    path.mkdir(parents=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_hostile_build_finds_no_token_and_writes_nothing_outside_its_build_dir(
        live_server, data_dir, publish_sdist, outside):
    token = secrets.token_urlsafe(32)
    builder = make_builder("pi-hostile", token=token, abi=ABI)
    work_dir = outside / "agent"
    token_file = outside / "secret" / "token"
    token_file.parent.mkdir()
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    credentials = outside / "credentials"
    credentials.mkdir()
    (credentials / "token").write_text(token)
    config = outside / "piwheels-builder.env"
    config.write_text(f"PIWHEELS_TOKEN={token}\n")
    # Something of the agent's in its work dir (beside the spool and the lock).
    work_dir.mkdir()
    (work_dir / "state.json").write_text(json.dumps({"token": token}))
    mark = uuid.uuid4().hex[:8]
    targets = [
        work_dir / "spool" / f"evil-{mark}", work_dir / f"evil-{mark}",
        token_file.parent / f"evil-{mark}", credentials / f"evil-{mark}",
        ROOT / "builder" / f"evil-{mark}", outside / f"evil-{mark}",
        f"/var/tmp/evil-{mark}", os.path.expanduser(f"~/evil-{mark}"),
    ]
    plan = {
        "read": [str(token_file), str(credentials), str(config), str(work_dir),
                 os.path.expanduser("~/.cache/piwheels-builder")],
        "write": [str(t) for t in targets],
    }
    publish_sdist("hostile-demo", "1.0", {
        "hostile_demo/__init__.py": "",
        "needle.txt": token[::-1],
        "plan.json": json.dumps(plan),
        "MANIFEST.in": "include needle.txt plan.json\n",
    }, HOSTILE_SETUP)

    try:
        code, output = run_agent(
            live_server.url, token, work_dir, "--once", "--hide", str(config),
            env={"PIWHEELS_TOKEN": token, "PIWHEELS_TOKEN_FILE": str(token_file),
                 "CREDENTIALS_DIRECTORY": str(credentials)},
        )
        escaped = [str(t) for t in targets if os.path.lexists(t)]
    finally:
        for target in targets:
            if os.path.isfile(target):
                os.unlink(target)

    assert code == 0, output
    build = Build.objects.select_related("log").get(
        version__project__normalized_name="hostile-demo")
    assert build.state == Build.State.SUCCEEDED, build.log.output
    assert build.builder_id == builder.id
    # What it reported in its log...
    reports = [json.loads(line.split("HOSTILE REPORT ", 1)[1])
               for line in build.log.output.splitlines() if "HOSTILE REPORT " in line]
    assert reports, build.log.output
    # ...and in the wheel the farm now serves.
    (wheel,) = build.files.all()
    with zipfile.ZipFile(storage.file_path("hostile-demo", wheel.filename)) as zf:
        findings = zf.read("hostile_demo/findings.py").decode()
    served = eval(findings.split("=", 1)[1])  # a dict literal written by the sdist
    for report in [*reports, served]:
        assert report["found"] == [], report
        assert report["tried"] > 10, report  # it really looked
    assert escaped == []
    assert token not in build.log.output and token not in output
    assert json.loads((work_dir / "state.json").read_text()) == {"token": token}  # unharmed
