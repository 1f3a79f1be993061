import gzip
import hashlib

import pytest

from builds import logs, publish, queue, storage
from builds.models import Build, BuildLog, File
from packages.models import Project, Serial
from tests.builds.queue_helpers import T0, build_and_publish, upload
from tests.factories import make_build, make_project, make_version, make_wheel

pytestmark = pytest.mark.django_db


@pytest.fixture
def held(builder, data_dir):
    make_build(make_version(make_project("Foo_Bar"), "1.0"), state=Build.State.QUEUED)
    return queue.claim(builder, "cp311", T0)


def test_uploads_are_not_served_until_the_build_finishes(held, builder, tmp_path,
                                                        django_capture_on_commit_callbacks):
    wheel = make_wheel(tmp_path, "Foo_Bar", "1.0", requires_python=">=3.9")
    decl = upload(held, builder, wheel)
    served = storage.file_path("foo-bar", wheel.name)
    assert not served.exists() and not File.objects.exists()
    assert (storage.incoming_dir(held.id) / wheel.name).read_bytes() == wheel.read_bytes()
    before = Project.objects.get().index_serial

    with django_capture_on_commit_callbacks(execute=True):
        publish.finish(held.id, builder, True, 12.5, "built\n", files=[decl], now=T0)

    row = File.objects.get()
    assert (row.build_id, row.filename, row.size, row.sha256) == (
        held.id, wheel.name, decl["size"], decl["sha256"])
    assert (row.python_tag, row.abi_tag, row.platform_tag) == ("cp311", "cp311", "linux_armv7l")
    assert row.requires_python == ">=3.9"
    metadata = storage.metadata_path("foo-bar", wheel.name).read_bytes()
    assert metadata.startswith(b"Metadata-Version") and b"Name: Foo_Bar" in metadata
    assert row.metadata_sha256 == hashlib.sha256(metadata).hexdigest()
    assert served.read_bytes() == wheel.read_bytes()
    assert not storage.incoming_dir(held.id).exists()
    assert Project.objects.get().index_serial > before
    assert Serial.objects.get(name="index-root").value == 1
    held.refresh_from_db()
    assert (held.state, held.duration.total_seconds(), held.lease_until) == (
        "succeeded", 12.5, None)
    assert held.log.output == "built\n"


def test_success_naming_a_file_not_uploaded_changes_nothing(held, builder, tmp_path):
    wheel = make_wheel(tmp_path, "Foo_Bar", "1.0")
    decl = upload(held, builder, wheel)
    missing = dict(decl, filename="foo_bar-1.0-cp311-cp311-linux_armv6l.whl")
    with pytest.raises(publish.FinishRefused, match="linux_armv6l.whl was not uploaded"):
        publish.finish(held.id, builder, True, 1, "", files=[decl, missing], now=T0)
    with pytest.raises(publish.FinishRefused, match="another size or sha256"):
        publish.finish(held.id, builder, True, 1, "", files=[dict(decl, size=1)], now=T0)
    with pytest.raises(publish.FinishRefused, match="must list the files"):
        publish.finish(held.id, builder, True, 1, "", files=[], now=T0)
    held.refresh_from_db()
    assert held.state == "building"
    assert not File.objects.exists() and not BuildLog.objects.exists()
    assert not storage.file_path("foo-bar", wheel.name).exists()


def test_the_same_result_posted_twice_answers_the_same(held, builder, tmp_path):
    first = build_and_publish(held, builder, tmp_path)
    again = publish.finish(held.id, builder, True, 99, "other", files=[], now=T0)
    assert (again.id, again.state) == (first.id, "succeeded")
    assert File.objects.count() == 1
    assert BuildLog.objects.get().output == "ok"


def test_failure_keeps_the_log_and_reason_and_publishes_nothing(
        held, builder, tmp_path, django_capture_on_commit_callbacks):
    upload(held, builder, make_wheel(tmp_path, "Foo_Bar", "1.0"))
    with django_capture_on_commit_callbacks(execute=True):
        publish.finish(held.id, builder, False, 3, "gcc: error\x00\n", "compile error", now=T0)
    held.refresh_from_db()
    assert (held.state, held.failure_reason) == ("failed", "compile error")
    assert held.log.output == "gcc: error\n"
    assert not File.objects.exists()
    assert not storage.incoming_dir(held.id).exists()


def test_long_output_keeps_the_head_one_note_and_the_tail(held, builder, settings):
    settings.PIWHEELS_MAX_LOG = 1000
    output = "".join(f"line {i}\n" for i in range(1000))
    publish.finish(held.id, builder, False, 1, output, "boom", now=T0)
    log = BuildLog.objects.get()
    assert log.truncated and len(log.output) == 1000
    head, note, tail = log.output.partition("\n[farm: ")
    assert head == output[:250]
    assert output.endswith(tail.split("]\n", 1)[1])
    assert tail.endswith("line 998\nline 999\n")
    left_out = len(output) - len(head) - len(tail.split("]\n", 1)[1])
    assert tail.startswith(f"{left_out} characters of this log left out here;")
    assert log.output.count("[farm:") == 1
    with gzip.open(logs.whole_log_path(held.id), "rt") as f:
        assert f.read() == output  # kept whole, compressed


def test_a_pure_wheel_covers_the_other_abis_queued_jobs(builder, data_dir, tmp_path):
    version = make_version(make_project("foo"), "1.0")
    make_build(version, "cp311", state=Build.State.QUEUED)
    other = make_build(version, "cp39", state=Build.State.QUEUED)
    held = queue.claim(builder, "cp311", T0)
    build_and_publish(held, builder, tmp_path, tags="py3-none-any")
    other.refresh_from_db()
    assert other.state == "succeeded"
    assert other.log.output == f"covered by the pure-Python wheel of build {held.id}\n"
    assert list(File.objects.values_list("build_id", "abi_tag")) == [(held.id, "none")]
