"""Publication under served names: glibc-versioned for the builder's glibc, checked for
ARMv6 code once, armv6l names never given twice."""
import hashlib
import zipfile

import pytest

from builds import publish, queue, storage, wheels
from builds.models import Abi, Build, File
from tests.builds.queue_helpers import T0, upload
from tests.factories import (
    make_abi,
    make_build,
    make_builder,
    make_project,
    make_version,
    make_wheel,
)

pytestmark = pytest.mark.django_db


def claimed(builder, version, abi="cp311", os_release="bookworm", glibc="2.36"):
    """A job of VERSION for ABI held by BUILDER, which said it runs OS_RELEASE / GLIBC."""
    make_build(version, abi, state=Build.State.QUEUED)
    queue.check_in(builder, T0, Abi.objects.get(tag=abi), os_release=os_release, glibc=glibc)
    return queue.claim(builder, abi, T0)


def test_an_upload_is_stored_under_its_served_name_and_published_so(builder, data_dir,
                                                                    tmp_path):
    build = claimed(builder, make_version(make_project("foo"), "1.0"))
    assert (build.os_release, build.glibc) == ("bookworm", "2.36")
    wheel = make_wheel(tmp_path, "foo", "1.0", tags="cp311-cp311-linux_armv7l")
    decl = upload(build, builder, wheel)
    served = "foo-1.0-cp311-cp311-manylinux_2_36_armv7l.whl"
    incoming = storage.incoming_dir(build.id)
    assert (incoming / wheel.name).read_bytes() == wheel.read_bytes()
    assert wheels.inspect(incoming / served).platform_tag == "manylinux_2_36_armv7l"
    # A retry of the same bytes is recognised as one, served copy and all.
    data = wheel.read_bytes()
    assert publish.receive_file(build.id, builder, wheel.name, [data], len(data),
                                hashlib.sha256(data).hexdigest(), T0) is False

    publish.finish(build.id, builder, True, 1.0, "ok", files=[decl], now=T0)

    row = File.objects.get()
    path = storage.file_path("foo", served)
    assert (row.filename, row.os_release, row.glibc) == (served, "bookworm", "2.36")
    assert (row.size, row.sha256) == (path.stat().st_size,
                                      hashlib.sha256(path.read_bytes()).hexdigest())
    assert row.sha256 != decl["sha256"]  # other bytes: WHEEL and RECORD say the new tags
    with zipfile.ZipFile(path) as zf:
        assert "Tag: cp311-cp311-manylinux_2_36_armv7l" in zf.read(
            "foo-1.0.dist-info/WHEEL").decode()
    # No ELF objects in it: nothing an ARMv6 core cannot run.
    assert (row.armv6_compatible, row.armv6l_filename) == (
        True, "foo-1.0-cp311-cp311-linux_armv6l.whl")
    assert not storage.file_path("foo", wheel.name).exists()


def test_a_builder_that_did_not_say_its_glibc_publishes_under_the_uploaded_name(
        builder, data_dir, tmp_path):
    build = claimed(builder, make_version(make_project("foo"), "1.0"), os_release="",
                    glibc="")
    wheel = make_wheel(tmp_path, "foo", "1.0", tags="cp311-cp311-linux_armv7l")
    publish.finish(build.id, builder, True, 1.0, "ok", files=[upload(build, builder, wheel)],
                   now=T0)
    row = File.objects.get()
    assert (row.filename, row.sha256, row.glibc) == (
        wheel.name, hashlib.sha256(wheel.read_bytes()).hexdigest(), "")


def test_an_armv6l_name_another_file_has_is_not_given_twice(builder, data_dir, tmp_path):
    build = claimed(builder, make_version(make_project("foo"), "1.0"))
    seven = make_wheel(tmp_path, "foo", "1.0", tags="cp311-cp311-linux_armv7l")
    six = make_wheel(tmp_path, "foo", "1.0", tags="cp311-cp311-linux_armv6l")
    publish.finish(build.id, builder, True, 1.0, "ok",
                   files=[upload(build, builder, seven), upload(build, builder, six)], now=T0)
    rows = dict(File.objects.values_list("filename", "armv6l_filename"))
    # The real armv6l build keeps its name (pip on armv6l accepts no manylinux tag).
    assert rows == {"foo-1.0-cp311-cp311-manylinux_2_36_armv7l.whl": "",
                    "foo-1.0-cp311-cp311-linux_armv6l.whl": ""}


def test_a_rebuild_on_another_release_keeps_the_old_armv6l_name_and_takes_a_build_tag(
        builder, data_dir, tmp_path):
    version = make_version(make_project("foo"), "1.0")
    first = claimed(builder, version, os_release="bullseye", glibc="2.31")
    wheel = make_wheel(tmp_path, "foo", "1.0", tags="cp311-cp311-linux_armv7l")
    publish.finish(first.id, builder, True, 1.0, "ok", files=[upload(first, builder, wheel)],
                   now=T0)
    second = claimed(builder, version)
    publish.finish(second.id, builder, True, 1.0, "ok",
                   files=[upload(second, builder, wheel)], now=T0)
    # The armv6l name served the Bullseye build's bytes: it names them for good, and the
    # Bookworm build is served under the next build tag, armv6l name and all.
    assert set(File.objects.values_list("filename", "armv6l_filename", "build_id",
                                        "superseded_by")) == {
        ("foo-1.0-cp311-cp311-manylinux_2_31_armv7l.whl",
         "foo-1.0-cp311-cp311-linux_armv6l.whl", first.id,
         "foo-1.0-1-cp311-cp311-manylinux_2_36_armv7l.whl"),
        ("foo-1.0-1-cp311-cp311-manylinux_2_36_armv7l.whl",
         "foo-1.0-1-cp311-cp311-linux_armv6l.whl", second.id, ""),
    }


def test_a_platform_wheel_of_abi_none_covers_only_the_abis_of_its_release(data_dir, tmp_path):
    for tag, release in (("cp39", "bullseye"), ("cp311", "bookworm"), ("cp312", "bookworm")):
        make_abi(tag)
        Abi.objects.filter(tag=tag).update(os_release=release)
    version = make_version(make_project("tool"), "1.0")
    for tag in ("cp39", "cp312"):
        make_build(version, tag, state=Build.State.QUEUED)
    builder = make_builder("pi-bookworm", abi="cp311")
    build = claimed(builder, version)
    wheel = make_wheel(tmp_path, "tool", "1.0", tags="py3-none-linux_armv7l")
    publish.finish(build.id, builder, True, 1.0, "ok", files=[upload(build, builder, wheel)],
                   now=T0)
    states = dict(Build.objects.values_list("abi__tag", "state"))
    assert states == {"cp311": "succeeded", "cp312": "succeeded", "cp39": "queued"}
    assert File.objects.get().filename == "tool-1.0-py3-none-manylinux_2_36_armv7l.whl"
