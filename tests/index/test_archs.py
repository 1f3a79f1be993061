"""32-bit and 64-bit Raspberry Pi OS from one farm (docs/architectures.md): a job is one per
(version, ABI, architecture); builders report their platform and claim only their own
architecture's jobs over the real HTTP API, concurrently; "PyPI has a wheel" is decided per
architecture; a pure wheel completes the other architecture's job; real pip and uv get
the wheel of their own architecture, never the other's."""
import hashlib
import threading

import pytest
import requests
from django.core.cache import cache

from builds import queue
from builds.models import Abi, Build, Builder, File
from tests.armelf import ARMV6, arm_wheel, compile_so, needs_cross_compiler
from tests.factories import (
    make_abi,
    make_build,
    make_builder,
    make_project,
    make_version,
    make_wheel,
)
from tests.index.test_releases import BOOKWORM, HttpBuilder, pip_download, uv_install


def claim(url, token, platform=None, abi="cp311"):
    body = {"abi": abi, "wait": 0, "os_release": "bookworm", "glibc": "2.36"}
    if platform is not None:
        body["platform"] = platform
    return requests.post(f"{url}/api/v1/claim/", json=body, timeout=30,
                         headers={"Authorization": f"Token {token}"})


@pytest.mark.django_db(transaction=True)
def test_claimers_of_two_architectures_race_and_each_gets_only_its_own_jobs(live_server):
    """60 jobs (30 versions x armv7l, aarch64), 9 builders over HTTP at once: 4 report
    linux_armv7l, 4 linux_aarch64, and one old agent says no platform at all (armv7l).
    Every job is handed out exactly once, to a builder of its architecture."""
    make_abi("cp311", archs="armv7l,aarch64")
    project = make_project("race", versions=[f"1.{i}" for i in range(30)])
    queue.refresh_jobs(project.versions.values_list("id", flat=True))
    assert set(Build.objects.values_list("arch", "state").distinct()) == {
        ("armv7l", "queued"), ("aarch64", "queued")}
    platforms = ["linux_armv7l"] * 4 + ["linux_aarch64"] * 4 + [None]
    builders = [make_builder(f"pi{i}") for i in range(len(platforms))]
    got, errors = [], []
    start = threading.Barrier(len(builders))

    def claimer(builder, platform):
        try:
            start.wait()
            while (answer := claim(live_server.url, builder.token, platform)).status_code == 200:
                got.append((answer.json()["build_id"], answer.json()["arch"], platform,
                            builder.id))
            assert answer.status_code == 204, answer.text
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=claimer, args=pair)
               for pair in zip(builders, platforms)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    ids = [build_id for build_id, *_ in got]
    assert len(ids) == len(set(ids)) == 60  # every job exactly once
    assert all(arch == (platform or "linux_armv7l").removeprefix("linux_")
               for _, arch, platform, _ in got)
    held = {b: (arch, builder) for b, arch, builder in
            Build.objects.values_list("id", "arch", "builder_id")}
    assert held == {b: (arch, builder) for b, arch, _, builder in got}
    assert set(Build.objects.values_list("state", flat=True)) == {"building"}
    # each architecture's builders really shared its queue
    for platform in ("linux_armv7l", "linux_aarch64"):
        assert len({b for _, _, p, b in got if p == platform}) > 1


@pytest.mark.django_db
def test_an_architecture_the_abi_is_not_built_for_is_400_and_changes_nothing(client):
    make_abi("cp311")  # armv7l only, as every ABI of a farm from before
    job = Build.objects.create(version=make_version(make_project("foo")),
                               abi=Abi.objects.get(tag="cp311"))
    pi5 = make_builder("pi5")
    refused = client.post("/api/v1/claim/", {"abi": "cp311", "platform": "linux_aarch64",
                                             "wait": 0},
                          content_type="application/json",
                          HTTP_AUTHORIZATION=f"Token {pi5.token}")
    assert refused.status_code == 400
    assert refused.json() == {"detail": "the farm does not build cp311 for aarch64, only for "
                                        "armv7l (an operator enables one with: manage.py "
                                        "add_abi cp311 --arch ARCH)"}
    job.refresh_from_db()
    assert (job.state, job.builder_id, job.arch) == ("queued", None, "armv7l")
    assert Builder.objects.get(id=pi5.id).platform == "linux_aarch64"  # on record
    for platform in ("linux_riscv64", "macosx_11_0_arm64"):
        answer = client.post("/api/v1/claim/", {"abi": "cp311", "platform": platform},
                             content_type="application/json",
                             HTTP_AUTHORIZATION=f"Token {pi5.token}")
        assert answer.status_code == 400
    job.refresh_from_db()
    assert job.state == "queued"


@pytest.mark.django_db
def test_an_upstream_aarch64_wheel_skips_only_the_aarch64_job(client):
    make_abi("cp311", archs="armv7l,aarch64")
    upstream = "foo-1.0-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl"
    version = make_version(make_project("foo"), "1.0", upstream_wheels=[upstream])
    queue.refresh_jobs([version.id])
    assert dict(Build.objects.values_list("arch", "state")) == {
        "armv7l": "queued", "aarch64": "skipped"}
    assert Build.objects.get(arch="aarch64").skip_reason == f"PyPI has a wheel for this: {upstream}"
    data = client.get("/project/foo/json/").json()
    assert data["columns"] == [
        {"abi": "cp311", "arch": "armv7l", "label": "cp311 armv7l"},
        {"abi": "cp311", "arch": "aarch64", "label": "cp311 aarch64"}]
    assert data["abis"] == ["cp311", "cp311"]
    (row,) = data["versions"]
    assert [(c["arch"], c["state"]) for c in row["builds"]] == [
        ("armv7l", "pending"), ("aarch64", "skipped")]
    # rebuilding the version queues nothing for aarch64: upstream serves it
    assert queue.rebuild(version, arch="aarch64") == 0


@pytest.mark.django_db
def test_a_pure_wheel_built_on_one_architecture_completes_the_others_job(
        client, data_dir, tmp_path):
    make_abi("cp311", archs="armv7l,aarch64")
    version = make_version(make_project("purely"), "1.0")
    queue.refresh_jobs([version.id])
    pi5 = make_builder("pi5")
    auth = {"HTTP_AUTHORIZATION": f"Token {pi5.token}"}
    job = client.post("/api/v1/claim/", {"abi": "cp311", "platform": "linux_aarch64"},
                      content_type="application/json", **auth).json()
    assert job["arch"] == "aarch64"

    def upload(path):
        data = path.read_bytes()
        return client.put(f"/api/v1/builds/{job['build_id']}/files/{path.name}", data,
                          content_type="application/octet-stream",
                          HTTP_X_SHA256=hashlib.sha256(data).hexdigest(), **auth)

    # A wheel of the other architecture is not this job's.
    wrong = upload(make_wheel(tmp_path, "purely", "1.0", tags="cp311-cp311-linux_armv7l"))
    assert wrong.status_code == 400
    assert wrong.json() == {"detail": "purely-1.0-cp311-cp311-linux_armv7l.whl is a wheel for "
                                      f"armv7l, and build {job['build_id']} is for aarch64"}
    pure = make_wheel(tmp_path, "purely", "1.0", tags="py3-none-any")
    assert upload(pure).status_code == 201
    data = pure.read_bytes()
    done = client.post(f"/api/v1/builds/{job['build_id']}/finish/", {
        "success": True, "duration": 1, "output": "built", "files": [
            {"filename": pure.name, "size": len(data),
             "sha256": hashlib.sha256(data).hexdigest()}]},
        content_type="application/json", **auth)
    assert done.json() == {"build_id": job["build_id"], "state": "succeeded"}
    assert dict(Build.objects.values_list("arch", "state")) == {
        "aarch64": "succeeded", "armv7l": "succeeded"}
    assert File.objects.get().arch == ""
    pi3 = make_builder("pi3")
    nothing = client.post("/api/v1/claim/", {"abi": "cp311", "platform": "linux_armv7l"},
                          content_type="application/json",
                          HTTP_AUTHORIZATION=f"Token {pi3.token}")
    assert nothing.status_code == 204
    page = client.get("/project/purely/json/").json()
    assert page["archs"] == ["armv7l", "aarch64"]  # a pure wheel serves both
    assert page["versions"][0]["files"][0]["arch"] == ""


@needs_cross_compiler
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_both_architectures_build_and_each_pi_installs_its_own(live_server, data_dir,
                                                               tmp_path):
    """An armhf and an arm64 Bookworm builder build the same release (sdist only
    upstream) over HTTP; pip as on a 32-bit Pi, a Pi Zero and a 64-bit Pi, and uv as on
    a 64-bit Pi, each get the wheel of their own architecture from the one index."""
    make_abi("cp311", archs="armv7l,aarch64")
    Abi.objects.filter(tag="cp311").update(os_release="bookworm")
    project = make_project("twoarch", versions=["1.0"])
    queue.refresh_jobs(project.versions.values_list("id", flat=True))
    so = compile_so(tmp_path, "v6", ARMV6)
    for arch in ("armv7l", "aarch64"):
        pi = HttpBuilder(live_server.url, make_builder(f"pi-{arch}", abi="cp311"), BOOKWORM,
                         arch)
        job = pi.claim()
        assert (job["project"], job["arch"]) == ("twoarch", arch)
        pi.deliver(job, arm_wheel("twoarch", "1.0", f"cp311-cp311-linux_{arch}", {
            "_speed.so": so if arch == "armv7l" else b"", "arch.txt": arch.encode()}))
        assert pi.claim() is None  # one job per architecture
    names = {f.arch: f.filename for f in File.objects.all()}
    assert names == {"armv7l": "twoarch-1.0-cp311-cp311-manylinux_2_36_armv7l.whl",
                     "aarch64": "twoarch-1.0-cp311-cp311-manylinux_2_36_aarch64.whl"}
    armv6l = File.objects.get(platform_tag__endswith="armv7l").armv6l_filename
    assert armv6l == "twoarch-1.0-cp311-cp311-linux_armv6l.whl"
    assert not File.objects.get(platform_tag__endswith="aarch64").armv6l_filename

    index = f"{live_server.url}/simple/"
    for arch, expected in (("armv7l", names["armv7l"]), ("aarch64", names["aarch64"]),
                           ("armv6l", armv6l)):
        status, got = pip_download(index, tmp_path, arch, BOOKWORM, "twoarch")
        assert status == 0, got
        assert got.name == expected
    target = tmp_path / "uv-arm64"
    result = uv_install(index, tmp_path, target, BOOKWORM, "twoarch")
    assert result.returncode == 0, result.stderr
    assert (target / "twoarch" / "arch.txt").read_text() == "aarch64"

    page = requests.get(f"{live_server.url}/project/twoarch/json/", timeout=30).json()
    assert page["install"] == "pip3 install twoarch"
    assert page["archs"] == ["armv7l", "aarch64"]
    assert {f["filename"]: f["arch"] for f in page["versions"][0]["files"]} == {
        names["armv7l"]: "armv7l", names["aarch64"]: "aarch64"}
    cache.delete("pages:home-totals")  # totals cached by an earlier test of this process
    home = requests.get(f"{live_server.url}/", timeout=30).text
    assert ("The same lines serve 32-bit Raspberry Pi OS (armv7l) and 64-bit Raspberry Pi "
            "OS (aarch64)") in home


@pytest.mark.django_db
def test_failures_and_stats_name_the_architecture(client):
    make_abi("cp311", archs="armv7l,aarch64")
    project = make_project("ldapish", versions=["1.0", "2.0"])
    for version, arch in [("1.0", "armv7l"), ("1.0", "aarch64"), ("2.0", "aarch64")]:
        make_build(project.versions.get(version=version), arch=arch, state="failed",
                   cause="missing-header", cause_detail="lber.h", waiting_for="libldap-dev",
                   os_release="bookworm")
    page = client.get("/failures/").content.decode()
    assert "<td>3 <small>(aarch64 2, armv7l 1)</small></td>" in page
    assert "cp311 aarch64 on bookworm, cp311 armv7l on bookworm" in page
    stats = client.get("/stats/").context["stats"]
    assert [(q["abi"], q["arch"]) for q in stats["queue"]] == [
        ("cp311", "armv7l"), ("cp311", "aarch64")]
