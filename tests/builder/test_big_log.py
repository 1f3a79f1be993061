"""A build with more than 10 MB of output, from a real sdist through the real agent and the
farm as gunicorn serves it: published, its log kept whole (compressed), and the row
keeping head and tail with one note (issue 11: such builds could never be published)."""
import gzip
import textwrap

import pytest

from builds import logs, storage
from builds.models import Build
from tests.builder.conftest import run_agent
from tests.builder.test_agent_e2e import build_of

pytestmark = [pytest.mark.slow]

LOUD_SETUP = textwrap.dedent("""\
    import sys
    from setuptools import setup
    if "bdist_wheel" in sys.argv:  # once, while the wheel is built
        # 1,200 numbered lines of 10 kB: 12 MB of output (in lines few enough for pip).
        for i in range(1200):
            sys.stdout.write("loud-demo output line %06d " % i + "x" * 9972 + "\\n")
        sys.stdout.flush()
    setup(packages=["loud_demo"])
    """)


def test_a_build_with_over_10_mb_of_output_is_published_with_its_whole_log(
        publish_sdist, farm_builder, farm_process, work_dir, settings):
    publish_sdist("loud-demo", "1.0", {"loud_demo/__init__.py": "X = 1\n"}, LOUD_SETUP)
    farm_process.start()

    code, output = run_agent(farm_process.url, farm_builder.token, work_dir, "--once",
                             timeout=300)

    assert code == 0, output
    build = build_of("loud-demo")
    assert build.state == Build.State.SUCCEEDED, output
    (wheel,) = build.files.all()
    assert storage.file_path("loud-demo", wheel.filename).is_file()
    with gzip.open(logs.whole_log_path(build.id), "rt") as f:
        whole = f.read()
    assert len(whole) > 10_000_000
    assert "loud-demo output line 000000 " in whole and "loud-demo output line 001199 " in whole
    row = build.log
    assert row.truncated and settings.PIWHEELS_MAX_LOG - 20 < len(row.output) \
        <= settings.PIWHEELS_MAX_LOG
    assert row.output.count("characters of this log left out here") == 1
    assert whole.startswith(row.output.split("\n[farm: ", 1)[0])
    assert whole.endswith(row.output.split(" left out here; it is kept whole]\n", 1)[1])
    assert "Successfully built loud-demo" in row.output or "Saved " in row.output
