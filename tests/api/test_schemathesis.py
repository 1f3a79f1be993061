"""Schemathesis against the live schema (/api/schema/) of the farm over real HTTP, with a
real builder token and a job it holds: no answer is a 5xx, every answer is one the
schema documents, and what the schema says is invalid is refused (bounded examples)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from builds.models import Build
from tests.factories import make_build, make_builder, make_project, make_version

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
HOOKS = "tests.api.schemathesis_hooks"
ROOT = Path(__file__).resolve().parents[2]
CHECKS = ",".join([
    "not_a_server_error", "status_code_conformance", "content_type_conformance",
    "response_schema_conformance", "negative_data_rejection",
])


def test_schemathesis_finds_no_server_error_and_no_schema_violation(live_server, data_dir,
                                                                    tmp_path, client):
    builder = make_builder("pi1")
    make_build(make_version(make_project("Foo_Bar"), "1.0"), state=Build.State.QUEUED)
    claim = client.post("/api/v1/claim/", {"abi": "cp311", "wait": 0},
                        content_type="application/json",
                        HTTP_AUTHORIZATION=f"Token {builder.token}")
    held = claim.json()["build_id"]
    config = tmp_path / "schemathesis.toml"
    config.write_text(f'[parameters]\n"path.build_id" = {held}\n')

    proc = subprocess.run(
        [str(SCHEMATHESIS), "--no-color", "--config-file", str(config), "run",
         f"{live_server.url}/api/schema/", "--checks", CHECKS,
         "--header", f"Authorization: Token {builder.token}",
         "--max-examples", "10", "--seed", "11", "--no-shrink", "--workers", "2",
         "--phases", "examples,coverage,fuzzing", "--request-timeout", "30",
         "--max-time", "40", "--warnings", "off"],
        capture_output=True, text=True, timeout=240, cwd=tmp_path,  # its cache goes there
        env=dict(os.environ, SCHEMATHESIS_HOOKS=HOOKS, PYTHONPATH=str(ROOT)),
    )
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-2000:]
    assert "No issues found" in proc.stdout, proc.stdout[-3000:]
