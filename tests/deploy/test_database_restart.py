"""A PostgreSQL restart costs no request: web threads keep their connections
(DATABASE_CONN_MAX_AGE) and check them before use (DATABASE_CONN_HEALTH_CHECKS), so the
first request after a restart reconnects instead of failing on a dead connection.

On a throwaway cluster the test starts (initdb, pg_ctl) and restarts under a real
gunicorn serving the farm."""
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.servers import PYTHON, ROOT, Gunicorn, PostgresCluster, farm_env, postgres_bindir

pytestmark = pytest.mark.skipif(postgres_bindir() is None,
                                reason="PostgreSQL's server programs are not installed")

SEED = """
from builds.models import Abi, Builder, hash_token
from tests.factories import make_project
abi = Abi.objects.create(tag="cp311", active=True)
Builder.objects.create(name="pi1", token_hash=hash_token("restart-token"), abi=abi)
make_project("foo", versions=["1.0"])
"""
TOKEN = "restart-token"


@pytest.fixture
def cluster():
    pg = PostgresCluster().init().start()
    yield pg
    pg.remove()


def burst(farm, rounds=4):
    """Each kind of request (the index fast path, Django's index view, pages, a
    claim's prepared statement) from 8 clients at once; the status codes."""
    claim = {"abi": "cp311", "wait": 0}
    auth = {"Authorization": f"Token {TOKEN}"}

    def one(i):
        kind = i % 5
        try:
            if kind == 0:
                return requests.get(f"{farm.url}/simple/foo/", timeout=10).status_code
            if kind == 1:
                return requests.get(f"{farm.url}/simple/", timeout=10, headers={
                    "Accept": "application/vnd.pypi.simple.v1+json"}).status_code
            if kind == 2:
                return requests.get(f"{farm.url}/project/foo/", timeout=10).status_code
            if kind == 3:
                return requests.get(f"{farm.url}/search/?q=fo", timeout=10).status_code
            return requests.post(f"{farm.url}/api/v1/claim/", json=claim, headers=auth,
                                 timeout=10).status_code
        except requests.RequestException as exc:  # a dropped connection counts too
            return repr(exc)

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(8 * 5 * rounds)))


def test_a_postgresql_restart_costs_no_request(cluster, tmp_path):
    env = farm_env(tmp_path, DATABASE_URL=cluster.url, DATABASE_CONN_MAX_AGE=600)
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT,
                   env=env, check=True, timeout=300)
    subprocess.run([PYTHON, "manage.py", "shell", "-c", SEED], cwd=ROOT, env=env,
                   check=True, timeout=60)
    farm = Gunicorn(env, tmp_path / "gunicorn.log", threads=8).start()
    try:
        before = burst(farm)
        # foo has no files: its index page is a 404, the claim finds nothing (204).
        assert set(before) <= {200, 204, 404}, before
        cluster.restart()  # every connection the threads hold is now dead
        after = burst(farm)
        failed = [s for s in after if not isinstance(s, int) or s >= 500]
        assert failed == [], f"{len(failed)} of {len(after)} failed after the restart"
        assert set(after) == set(before)
    finally:
        farm.stop()
    assert "Traceback" not in farm.log(), farm.log()[-3000:]
