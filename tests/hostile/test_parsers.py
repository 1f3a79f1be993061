"""No parser can hang the farm: the 220-byte ARM object on which pyelftools loops for
ever (an `.ARM.attributes` subsection of length 0, tests/armelf.spinning_object) in an
armv7l wheel is read in a bounded process before the publishing transaction, so the
finish answers within the bound, the build's row is never locked while it is read, the
wheel is published as "not ARMv6-safe", and the build keeps its uploaded log."""
import gzip
import hashlib
import io
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connections, transaction

from builds import logs
from builds.models import Build, File
from tests.api.conftest import BuilderClient
from tests.armelf import arm_wheel, spinning_object
from tests.factories import make_abi, make_project, make_version
from tests.live import ROOT

pytestmark = pytest.mark.django_db(transaction=True)
TAG = "cp311-cp311-linux_armv7l"
BOUND = 3  # seconds (PIWHEELS_INSPECT_TIMEOUT for these tests)


def spinning_wheel():
    return arm_wheel("foo_bar", "1.0", TAG, {"_spin.so": spinning_object()})


def elfarm_children():
    """Pids of this process's children reading a wheel (python -m lib.elfarm)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == os.getpid() and b"lib.elfarm" in cmdline:
            found.append(int(proc.name))
    return found


def test_the_object_spins_pyelftools(tmp_path):
    """The reproduction: pyelftools read in a process of its own (killed after 3 s: a
    spinning thread could not be stopped) is still reading when it is killed."""
    path = tmp_path / "spin.o"
    path.write_bytes(spinning_object())
    code = ("import sys; from lib import elfarm; "
            "elfarm.arm_attributes(open(sys.argv[1], 'rb')); print('done')")
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT, timeout=3,
                       capture_output=True)
    assert len(spinning_object()) == 220


def test_a_finish_with_it_answers_within_the_bound_without_holding_the_build(
        api, held, builder, settings):
    settings.PIWHEELS_INSPECT_TIMEOUT = BOUND
    wheel = spinning_wheel()
    assert api.upload(held.id, wheel.filename, wheel.content).status_code == 201
    uploaded_log = gzip.compress(b"the whole log\n" * 100)
    log_answer = api.client.put(f"/api/v1/builds/{held.id}/log/", uploaded_log,
                                content_type="application/gzip", **api.auth)
    assert log_answer.status_code == 201

    answers = []
    finisher = BuilderClient(builder.token)

    def finish():
        try:
            answers.append(finisher.finish(held.id, success=True, duration=1, output="", files=[{
                "filename": wheel.filename, "size": len(wheel.content),
                "sha256": hashlib.sha256(wheel.content).hexdigest()}]))
        finally:
            connections.close_all()

    began = time.monotonic()
    thread = threading.Thread(target=finish)
    thread.start()
    deadline = time.monotonic() + 30
    while not elfarm_children() and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert elfarm_children(), "the wheel was not read in a process of its own"
    # While it is read, nothing holds the build's row: a heartbeat answers, a lock is free.
    assert BuilderClient(builder.token).heartbeat(held.id).status_code == 204
    with transaction.atomic():
        Build.objects.select_for_update(nowait=True).get(id=held.id)
    thread.join(60)
    assert not thread.is_alive(), "the finish hangs"
    assert time.monotonic() - began < BOUND + 20
    assert answers[0].status_code == 200, answers[0].content
    assert answers[0].json() == {"build_id": held.id, "state": "succeeded"}
    published = File.objects.get()
    assert (published.filename, published.armv6_compatible, published.armv6l_filename) == (
        wheel.filename, False, "")
    assert gzip.decompress(logs.whole_log_path(held.id).read_bytes()) == (
        b"the whole log\n" * 100)
    assert not elfarm_children()


def test_import_wheels_reads_it_within_the_bound(data_dir, tmp_path, settings):
    settings.PIWHEELS_INSPECT_TIMEOUT = BOUND
    make_abi("cp311")
    make_version(make_project("foo_bar"), "1.0")
    wheel = spinning_wheel()
    path = tmp_path / wheel.filename
    path.write_bytes(wheel.content)
    began = time.monotonic()
    call_command("import_wheels", str(path), "--glibc", "2.36", "--os-release", "bookworm",
                 stdout=io.StringIO())
    assert time.monotonic() - began < BOUND + 20
    published = File.objects.get()
    assert published.filename == "foo_bar-1.0-cp311-cp311-manylinux_2_36_armv7l.whl"
    assert (published.armv6_compatible, published.armv6l_filename) == (False, "")


def test_a_finish_that_did_not_commit_leaves_the_uploaded_log_for_the_retry(api, held):
    """A finish stores the whole log, then its transaction fails (a hang the client gave
    up on, a database error): the retry keeps the uploaded log, not an empty one."""
    uploaded_log = gzip.compress(b"compiler output\n" * 50)
    assert api.client.put(f"/api/v1/builds/{held.id}/log/", uploaded_log,
                          content_type="application/gzip", **api.auth).status_code == 201
    logs.store_whole(held.id, "")  # what the first finish did before it failed
    response = api.finish(held.id, success=False, duration=1, output="",
                          failure_reason="compile error")
    assert response.status_code == 200
    assert gzip.decompress(logs.whole_log_path(held.id).read_bytes()) == (
        b"compiler output\n" * 50)
    held.refresh_from_db()
    assert held.log.output == "compiler output\n" * 50
