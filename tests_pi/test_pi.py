"""The farm from real Pi userlands: the agent builds on each builder userland, and every
client a Pi OS ships (its own pip, the newest pip, uv) installs what was built on a fresh
(clean) userland of the same release and arch, with --index-url and as Raspberry Pi OS
configures pip (/etc/pip.conf: the farm as an extra index beside PyPI)."""
import re
import shlex

import pytest

from builds import queue
from builds.models import Build, File
from tests.factories import make_abi, make_builder, make_project
from tests.sdists import ALL, LEGACY_CEXT
from tests_pi.conftest import (
    AGENT,
    AGENT_INSTALL,
    ARCHES,
    RELEASES,
    USERLANDS,
    pi_run,
    pi_userland,
)

AGENT_SCRIPT = f"""\
set -e
{AGENT_INSTALL}
for job in {{jobs}}; do
  {AGENT} --server "$FARM" --token "$TOKEN" --once --wait 0 \\
    --work-dir /tmp/work --max-retry-delay 1
done
"""

# One case per client and configuration, each in a fresh venv; every case runs whatever
# the others did, and says its result between markers.
CLIENT_SCRIPT = """\
if ls /usr/lib/*/libyaml-0.so.2; then echo "### libyaml is installed"; fi
run_case() {{ name=$1; shift; rm -f /etc/pip.conf /etc/uv/uv.toml; echo "### begin $name"
  ( set -e; "$@" ) 2>&1; echo "### end $name $?"; }}
check() {{ {checks}; }}
own_index() {{ python3 -m venv /tmp/a; /tmp/a/bin/pip --version
  /tmp/a/bin/pip install --index-url "$FARM/simple/" {projects}; PY=/tmp/a/bin/python check; }}
own_conf() {{ python3 -m venv /tmp/b; cp /mnt/pip.conf /etc/pip.conf
  /tmp/b/bin/pip install {projects}; rm /etc/pip.conf; PY=/tmp/b/bin/python check; }}
newest_index() {{ python3 -m venv /tmp/c
  /tmp/c/bin/pip install -q --no-index --find-links /mnt/clients -U pip; /tmp/c/bin/pip --version
  /tmp/c/bin/pip install --index-url "$FARM/simple/" {projects}; PY=/tmp/c/bin/python check; }}
newest_conf() {{ python3 -m venv /tmp/d; cp /mnt/pip.conf /etc/pip.conf
  /tmp/d/bin/pip install -q --no-index --find-links /mnt/clients -U pip; /tmp/d/bin/pip --version
  /tmp/d/bin/pip install {projects}; rm /etc/pip.conf; PY=/tmp/d/bin/python check; }}
uv_tool() {{ python3 -m venv /tmp/uvtool
  /tmp/uvtool/bin/pip install -q --no-index --find-links /mnt/clients uv; }}
uv_index() {{ /tmp/uvtool/bin/uv --version; /tmp/uvtool/bin/uv venv -q -p /usr/bin/python3 /tmp/e
  /tmp/uvtool/bin/uv pip install -p /tmp/e/bin/python --index-url "$FARM/simple/" {projects}
  PY=/tmp/e/bin/python check; }}
uv_conf() {{ /tmp/uvtool/bin/uv venv -q -p /usr/bin/python3 /tmp/f
  mkdir -p /etc/uv; cp /mnt/uv.toml /etc/uv/uv.toml
  /tmp/uvtool/bin/uv pip install -p /tmp/f/bin/python {projects}; rm /etc/uv/uv.toml
  PY=/tmp/f/bin/python check; }}
run_case own-pip--index-url own_index
run_case own-pip--pip.conf own_conf
run_case newest-pip--index-url newest_index
run_case newest-pip--pip.conf newest_conf
uv_tool
run_case uv--index-url uv_index
run_case uv--uv.toml uv_conf
"""


def _cases(output):
    """{case: (returncode, its output)} from CLIENT_SCRIPT's markers."""
    found = {}
    for match in re.finditer(r"^### begin (\S+)\n(.*?)^### end \1 (\d+)$", output, re.M | re.S):
        found[match.group(1)] = (int(match.group(3)), match.group(2))
    return found


@pytest.mark.parametrize(("release", "arch"), USERLANDS)
def test_a_pi_builds_the_sdists_and_a_fresh_pi_installs_them_with_every_client(
        release, arch, live_server, data_dir, upstream, agent_wheels, client_wheels, tmp_path):
    abi, own_pip, glibc = RELEASES[release]
    machine = ARCHES[arch]
    builder_land = pi_userland(release, arch, "builder")
    make_abi(abi, archs=machine)  # jobs per architecture (docs/architectures.md)
    builder = make_builder(f"pi-{release}-{arch}", abi=abi)
    for sdist in ALL:
        upstream.add_release(sdist.name, sdist.version, [sdist.tarball()])
        project = make_project(sdist.name, versions=[sdist.version])
        queue.refresh_jobs([v.id for v in project.versions.all()])

    # -- the agent, in a venv of the release's own python3 -m venv and pip, builds all three
    code, output = pi_run(
        builder_land, AGENT_SCRIPT.format(jobs=" ".join(str(i) for i in range(len(ALL)))),
        binds=[(agent_wheels, "/mnt/agent-wheels")],
        env={"FARM": live_server.url, "TOKEN": builder.token},
    )
    assert code == 0, output
    platform = f"manylinux_{glibc.replace('.', '_')}_{machine}"
    for sdist in ALL:
        build = Build.objects.select_related("log").get(version__project__name=sdist.name)
        log = build.log.output if hasattr(build, "log") else ""
        assert build.state == Build.State.SUCCEEDED, f"{sdist.name}: {build.failure_reason}\n{log}"
        assert log.startswith(f"piwheels-builder: built by pip {own_pip} from /tmp/agent/")
        assert " -m pip wheel --use-pep517 " in log.splitlines()[1]
        (wheel,) = build.files.all()
        # Served under the Pi's platform, as the farm names it from the builder's glibc.
        assert wheel.filename == (
            f"{sdist.module}-{sdist.version}-{abi}-{abi}-{platform}.whl"), wheel.filename
        assert (wheel.os_release, wheel.glibc) == (release, glibc)
        # Debian's armhf is ARMv7 code: never offered to ARMv6 Pis under linux_armv6l.
        assert wheel.armv6l_filename == ""
        # Repaired by the agent (auditwheel): libyaml is inside the wheel, and no wheel
        # needs a Debian package on the Pi.
        assert wheel.dependencies == [], wheel.dependencies
    assert not File.objects.filter(filename__contains="armv6l").exists()
    assert "armv6l" not in live_server_page(live_server, LEGACY_CEXT.name)
    assert f"building with pip {own_pip} from /tmp/agent/" in output

    # -- a fresh Pi installs them with every client, and the compiled modules run: the
    # libyaml one too, on a Pi without libyaml (its repaired wheel brings its own).
    clean_land = pi_userland(release, arch, "clean")
    projects = " ".join(shlex.quote(f"{s.name}=={s.version}") for s in ALL)
    checks = "; ".join(f"$PY -c {shlex.quote(s.check)}" for s in ALL)
    (tmp_path / "pip.conf").write_text(f"[global]\nextra-index-url={live_server.url}/simple/\n")
    (tmp_path / "uv.toml").write_text(f'[pip]\nextra-index-url = ["{live_server.url}/simple/"]\n')
    code, output = pi_run(
        clean_land, CLIENT_SCRIPT.format(projects=projects, checks=checks),
        binds=[(client_wheels[arch], "/mnt/clients")],
        files=[(tmp_path / "pip.conf", "/mnt/pip.conf"), (tmp_path / "uv.toml", "/mnt/uv.toml")],
        env={"FARM": live_server.url},
    )
    assert "### libyaml is installed" not in output  # the clean Pi has no libyaml
    cases = _cases(output)
    assert len(cases) == 6, output
    expected = "\n".join(s.expected for s in ALL)
    failed = {name: out for name, (rc, out) in cases.items()
              if rc != 0 or not out.rstrip().endswith(expected)}
    assert not failed, "\n\n".join(f"== {name} ==\n{out[-3000:]}" for name, out in failed.items())


def live_server_page(live_server, name):
    import requests

    return requests.get(f"{live_server.url}/simple/{name}/", timeout=30).text
