"""The farm behind PgBouncer in transaction mode (DATABASE_TRANSACTION_POOLING=true):
claims and failure reports, the two statements that are otherwise named prepared
statements, work when consecutive transactions land on different server connections.

A real PgBouncer (Debian's `pgbouncer`; skipped where it is not installed) with a pool of
two server connections in front of the test database, and gunicorn with eight threads."""
import os
import shutil
import tempfile
import threading
from pathlib import Path

import pytest
import requests
from django.db import connection

from builds.models import Build
from tests.factories import make_build, make_builder, make_project, make_version
from tests.servers import Gunicorn, Process, farm_env, free_port, wait_until

PGBOUNCER = shutil.which("pgbouncer") or (
    "/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None)
pytestmark = pytest.mark.skipif(PGBOUNCER is None, reason="pgbouncer is not installed")
JOBS = 16


@pytest.fixture
def pgbouncer():
    """PgBouncer in transaction mode on a free port, two server connections in its pool;
    its URL for the test database."""
    directory = Path(tempfile.mkdtemp(prefix="piwheels-pgbouncer-"))
    port = free_port()
    s = connection.settings_dict
    (directory / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"farm = host={s['HOST'] or '127.0.0.1'} port={s['PORT'] or 5432} "
        f"dbname={s['NAME']} user={s['USER']}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        "auth_type = any\npool_mode = transaction\ndefault_pool_size = 2\n"
        "max_client_conn = 200\n"
        f"logfile = {directory}/pgbouncer.log\npidfile = {directory}/pgbouncer.pid\n"
    )
    command = [PGBOUNCER, str(directory / "pgbouncer.ini")]
    if os.getuid() == 0:  # PgBouncer refuses to run as root
        shutil.chown(directory, "postgres")
        command = ["runuser", "-u", "postgres", "--", *command]
    bouncer = Process(command, dict(os.environ), directory / "out.log").start()

    def answers():
        try:
            import psycopg2

            psycopg2.connect(host="127.0.0.1", port=port, dbname="farm", user=s["USER"],
                             connect_timeout=2).close()
            return True
        except psycopg2.OperationalError:
            return False

    wait_until(answers, timeout=20, message="pgbouncer")
    yield f"postgres://{s['USER']}@127.0.0.1:{port}/farm"
    bouncer.stop()
    shutil.rmtree(directory, ignore_errors=True)


def work(farm, token, outcomes):
    """Claim until nothing is left; report every job as a failed build."""
    session = requests.Session()
    headers = {"Authorization": f"Token {token}"}
    while True:
        claim = session.post(f"{farm.url}/api/v1/claim/", json={"abi": "cp311", "wait": 0},
                             headers=headers, timeout=30)
        outcomes.append(claim.status_code)
        if claim.status_code != 200:
            return
        build_id = claim.json()["build_id"]
        finish = session.post(f"{farm.url}/api/v1/builds/{build_id}/finish/", headers=headers,
                              json={"success": False, "duration": 1, "output": "error: x\n"},
                              timeout=30)
        outcomes.append(finish.status_code)


def test_claims_and_reports_through_pgbouncer_in_transaction_mode(transactional_db, tmp_path,
                                                                 pgbouncer):
    project = make_project("pooled")
    for n in range(JOBS):
        make_build(make_version(project, f"1.{n}"), state=Build.State.QUEUED)
    builders = [make_builder(f"pi{n}") for n in range(6)]
    farm = Gunicorn(farm_env(tmp_path, DATABASE_URL=pgbouncer, DATABASE_TRANSACTION_POOLING=1,
                             DATABASE_CONN_MAX_AGE=60), tmp_path / "gunicorn.log").start()
    try:
        outcomes = []
        threads = [threading.Thread(target=work, args=(farm, b.token, outcomes))
                   for b in builders]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        pages = [farm.get(path).status_code for path in ("/", "/project/pooled/", "/stats/")]
    finally:
        farm.stop()
    assert sorted(set(outcomes)) == [200, 204], outcomes
    assert outcomes.count(200) == 2 * JOBS  # each job claimed once and reported once
    assert pages == [200, 200, 200]
    assert Build.objects.filter(version__project=project, state=Build.State.FAILED).count() == JOBS
    assert "Traceback" not in farm.log(), farm.log()[-3000:]
