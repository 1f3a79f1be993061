"""Each Pi gets what runs on it: two builders on two OS releases (Bullseye, glibc 2.31;
Bookworm, 2.36) claim and deliver over the real HTTP API, with wheels holding real ARM
code from Debian's cross compiler; real pip then downloads for four kinds of Pi from the
live farm, naming the platforms exactly as pip on such a Pi does."""
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from pip._vendor.packaging import tags as pip_tags

from builds import queue, storage
from builds.models import Abi, Build, File
from tests.armelf import ARMV6, ARMV7_NEON, arm_wheel, compile_so, needs_cross_compiler
from tests.factories import make_abi, make_builder, make_project

pytestmark = [pytest.mark.slow]
UV = Path(sys.executable).with_name("uv")

# (OS release, glibc, Python) as Raspberry Pi OS ships them, and the ABI each builds.
BULLSEYE = ("bullseye", (2, 31), "3.9", "cp39")
BOOKWORM = ("bookworm", (2, 36), "3.11", "cp311")
LEGACY = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}


def pi_platforms(arch, glibc):
    """The platform tags pip accepts on a Pi, in its order (pip's packaging.tags:
    _linux_platforms): manylinux_2_Y down to 2_17 (2_5 on x86) with the legacy names at
    their versions, then linux_<arch>. On armv6l it offers no manylinux tag at all.
    With --platform, pip accepts exactly the tags it is given, so a test lists them all."""
    if arch == "armv6l":
        return ["linux_armv6l"]
    floor = 4 if arch in ("x86_64", "i686") else 16
    major, minor = glibc
    found = []
    for m in range(minor, floor, -1):
        found.append(f"manylinux_{major}_{m}_{arch}")
        if (major, m) in LEGACY:
            found.append(f"{LEGACY[(major, m)]}_{arch}")
    return found + [f"linux_{arch}"]


def test_the_mirror_of_pips_platform_tags_is_what_pip_says_here():
    lib, version = os.confstr("CS_GNU_LIBC_VERSION").split()
    if sys.platform != "linux" or lib != "glibc" or os.uname().machine != "x86_64":
        pytest.skip("compares with pip's own answer on x86-64 glibc Linux only")
    glibc = tuple(int(n) for n in version.split(".")[:2])
    # The same tags; pip 26 (packaging 26) lists linux_<arch> first, older pips last. The farm
    # uses them as a set; the manylinux tags keep their order in both.
    ours, pips = pi_platforms("x86_64", glibc), list(pip_tags.platform_tags())
    assert sorted(ours) == sorted(pips)
    assert [t for t in ours if t.startswith("manylinux")] == [
        t for t in pips if t.startswith("manylinux")]


class HttpBuilder:
    """One builder speaking the builder API over HTTP, as the agent does."""

    def __init__(self, url, builder, release, arch="armv7l"):
        self.url = url
        self.arch = arch
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {builder.token}"
        self.os_release, glibc, self.python, self.abi = release
        self.glibc = "{}.{}".format(*glibc)

    def claim(self):
        response = self.session.post(f"{self.url}/api/v1/claim/", json={
            "abi": self.abi, "platform": f"linux_{self.arch}", "python_version": self.python,
            "os": f"Raspbian GNU/Linux ({self.os_release})", "os_release": self.os_release,
            "glibc": self.glibc, "wait": 0,
        }, timeout=30)
        assert response.status_code in (200, 204), response.text
        return response.json() if response.status_code == 200 else None

    def deliver(self, job, *wheels):
        build_id = job["build_id"]
        for wheel in wheels:
            put = self.session.put(
                f"{self.url}/api/v1/builds/{build_id}/files/{wheel.filename}",
                data=wheel.content, timeout=30,
                headers={"X-Sha256": hashlib.sha256(wheel.content).hexdigest(),
                         "Content-Type": "application/octet-stream"})
            assert put.status_code == 201, put.text
        done = self.session.post(f"{self.url}/api/v1/builds/{build_id}/finish/", json={
            "success": True, "duration": 1, "output": "built",
            "files": [{"filename": w.filename, "size": len(w.content),
                       "sha256": hashlib.sha256(w.content).hexdigest()} for w in wheels],
        }, timeout=30)
        assert done.json() == {"build_id": build_id, "state": "succeeded"}, done.text

    def fail(self, job):
        done = self.session.post(f"{self.url}/api/v1/builds/{job['build_id']}/finish/", json={
            "success": False, "duration": 1, "output": "error: no compiler",
            "failure_reason": "error: no compiler"}, timeout=30)
        assert done.json()["state"] == "failed"


def pip_download(index, tmp_path, arch, release, project):
    """(returncode, the downloaded wheel or pip's stderr) of pip on that kind of Pi."""
    _, glibc, python, _ = release
    dest = tmp_path / f"{project}-{arch}-{python}"
    platforms = [arg for tag in pi_platforms(arch, glibc) for arg in ("--platform", tag)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_CACHE_DIR="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
         "--python-version", python, "--implementation", "cp", *platforms,
         "--index-url", index, "-d", str(dest), f"{project}==1.0"],
        capture_output=True, text=True, timeout=120, env=env)
    if result.returncode != 0:
        return result.returncode, result.stderr
    (got,) = dest.iterdir()
    return 0, got


def uv_install(index, tmp_path, target, release, project):
    """uv installing PROJECT into TARGET as on a 64-bit Pi of RELEASE."""
    if not UV.exists():
        pytest.skip("uv is not installed in this environment (requirements-dev pins it)")
    _, glibc, python, _ = release
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(UV_NO_CONFIG="1", UV_CACHE_DIR=str(tmp_path / "uv-cache"), UV_NO_PROGRESS="1")
    return subprocess.run(
        [str(UV), "pip", "install", "--no-deps", "--only-binary", ":all:", "--target",
         str(target), "--python-platform", "aarch64-manylinux_{}_{}".format(*glibc),
         "--python-version", python, "--index-url", index, f"{project}==1.0"],
        capture_output=True, text=True, timeout=120, env=env)


@needs_cross_compiler
@pytest.mark.django_db(transaction=True)
def test_each_pi_gets_the_build_of_its_release_and_armv6l_only_armv6_code(
        live_server, data_dir, tmp_path):
    for release in (BULLSEYE, BOOKWORM):
        make_abi(release[3], archs="armv7l,aarch64")
        Abi.objects.filter(tag=release[3]).update(os_release=release[0])
    v6, neon = compile_so(tmp_path, "v6", ARMV6), compile_so(tmp_path, "neon", ARMV7_NEON)
    code = {"zerodemo": v6, "neondemo": neon}
    for name in code:
        project = make_project(name, versions=["1.0"])
        queue.refresh_jobs([v.id for v in project.versions.all()])
    builders = [HttpBuilder(live_server.url, make_builder(f"pi-{r[0]}-{arch}", abi=r[3]), r,
                            arch)
                for r in (BULLSEYE, BOOKWORM) for arch in ("armv7l", "aarch64")]

    # Each builder takes the jobs of its own ABI and architecture; the Bullseye builds of
    # neondemo fail.
    for pi in builders:
        while job := pi.claim():
            assert (job["abi"], job["arch"]) == (pi.abi, pi.arch)
            if (job["project"], pi.os_release) == ("neondemo", "bullseye"):
                pi.fail(job)
                continue
            # abi3 wheels, as both releases build them: the same filenames from each.
            pi.deliver(job, arm_wheel(job["project"], "1.0", f"cp39-abi3-linux_{pi.arch}", {
                "_speed.abi3.so": code[job["project"]] if pi.arch == "armv7l" else b"",
                "built_on.txt": pi.os_release.encode()}))

    files = {f.filename: f for f in File.objects.filter(platform_tag__endswith="armv7l")}
    assert set(files) == {
        "zerodemo-1.0-cp39-abi3-manylinux_2_31_armv7l.whl",
        "zerodemo-1.0-cp39-abi3-manylinux_2_36_armv7l.whl",
        "neondemo-1.0-cp39-abi3-manylinux_2_36_armv7l.whl",
    }
    rows = {(f.filename.split("-")[0], f.os_release): f for f in files.values()}
    assert {key: (f.glibc, f.armv6_compatible, f.armv6l_filename) for key, f in rows.items()} == {
        ("zerodemo", "bullseye"): ("2.31", True, "zerodemo-1.0-cp39-abi3-linux_armv6l.whl"),
        ("zerodemo", "bookworm"): ("2.36", True, "zerodemo-1.0-cp311-abi3-linux_armv6l.whl"),
        ("neondemo", "bookworm"): ("2.36", False, ""),
    }
    assert set(Build.objects.values_list("os_release", "glibc")) == {
        ("bullseye", "2.31"), ("bookworm", "2.36")}

    def bytes_of(name, release):
        path = storage.file_path(name, rows[(name, release)].filename)
        return path.read_bytes()

    index = f"{live_server.url}/simple/"
    # armv7l: each release's Pi gets its own release's build, never a newer one.
    for release in (BULLSEYE, BOOKWORM):
        status, got = pip_download(index, tmp_path, "armv7l", release, "zerodemo")
        assert status == 0, got
        assert got.name == rows[("zerodemo", release[0])].filename
        assert got.read_bytes() == bytes_of("zerodemo", release[0])
    status, got = pip_download(index, tmp_path, "armv7l", BOOKWORM, "neondemo")
    assert (status, got.name) == (0, "neondemo-1.0-cp39-abi3-manylinux_2_36_armv7l.whl")
    status, error = pip_download(index, tmp_path, "armv7l", BULLSEYE, "neondemo")
    assert status != 0 and "No matching distribution found for neondemo==1.0" in error

    # armv6l (Pi Zero, Pi 1): the ARMv6 build of its own release; nothing with NEON.
    for release in (BULLSEYE, BOOKWORM):
        status, got = pip_download(index, tmp_path, "armv6l", release, "zerodemo")
        assert status == 0, got
        assert got.name == rows[("zerodemo", release[0])].armv6l_filename
        assert got.read_bytes() == bytes_of("zerodemo", release[0])
    for release in (BULLSEYE, BOOKWORM):
        status, error = pip_download(index, tmp_path, "armv6l", release, "neondemo")
        assert status != 0 and "No matching distribution found for neondemo==1.0" in error
    # uv on 64-bit Raspberry Pi OS: the same, for aarch64 (uv names the glibc itself).
    for release in (BULLSEYE, BOOKWORM):
        target = tmp_path / f"uv-{release[0]}"
        result = uv_install(index, tmp_path, target, release, "zerodemo")
        assert result.returncode == 0, result.stderr
        assert (target / "zerodemo" / "built_on.txt").read_text() == release[0]
        wheel_file = (target / "zerodemo-1.0.dist-info" / "WHEEL").read_text()
        assert f"Tag: cp39-abi3-manylinux_2_{release[1][1]}_aarch64" in wheel_file
    result = uv_install(index, tmp_path, tmp_path / "uv-neon", BULLSEYE, "neondemo")
    assert result.returncode != 0 and "neondemo" in result.stderr

    # The NEON build is not served under an armv6l name either.
    assert requests.get(f"{live_server.url}/files/neondemo/"
                        "neondemo-1.0-cp39-abi3-linux_armv6l.whl").status_code == 404
