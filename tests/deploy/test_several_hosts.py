"""Several hosts: two web servers (two gunicorns on two ports) and two task workers
(two qclusters) on one PostgreSQL, one Redis and one data directory, with builders
claiming through both web servers over real HTTP.

No job is handed out twice, neither web server serves a stale /simple/<name>/ page after
a change published through the other, and downloads through both are counted once,
folded by both task hosts at once."""
import hashlib
import subprocess
import threading

import pytest
import redis
import requests
from django_q.models import Schedule, Task

from builds.models import Build, DailyDownloads, File
from tests.factories import make_build, make_builder, make_project, make_version, wheel_archive
from tests.servers import PYTHON, ROOT, Gunicorn, QCluster, farm_env, wait_until

JOBS = 24
JSON = "application/vnd.pypi.simple.v1+json"

# Both task hosts are handed a fold at once, as two schedulers or an operator's manual
# run beside the schedule could. NOW is two minutes on, so that the logs of this minute
# (written as the web servers stopped) are due.
ENQUEUE_FOLDS = """
from datetime import timedelta
from django.utils import timezone
from django_q.tasks import async_task
later = timezone.now() + timedelta(minutes=2)
for _ in range(2):
    async_task("index.downloads.fold", now=later, group="test-fold")
"""


@pytest.fixture
def hosts(transactional_db, tmp_path, redis_url, cluster_name):
    """(web A, web B) with two task hosts behind them, all sharing one data directory."""
    Schedule.objects.all().delete()  # the farm's schedules (a sync of PyPI!) are not ours
    env = farm_env(tmp_path, REDIS_URL=redis_url, Q_CLUSTER_NAME=cluster_name, Q_WORKERS=1,
                   PIWHEELS_INDEX_MAX_AGE=0)
    webs = [Gunicorn(env, tmp_path / f"web{n}.log", threads=8) for n in "ab"]
    tasks = [QCluster(env, tmp_path / f"tasks{n}.log") for n in "ab"]
    for web in webs:
        web.start(wait=False)
    for task_host in tasks:
        task_host.start()
    for web in webs:
        web.wait_ready()
    yield webs, tasks, env
    for process in [*webs, *tasks]:
        process.stop()
    redis.Redis.from_url(redis_url).delete(f"django_q:{cluster_name}:q")
    for process in webs:
        assert "Traceback" not in process.log(), process.log()[-3000:]


def claim_all(web, token, claimed, errors):
    """Claim through WEB until nothing is left; each job claimed goes into CLAIMED."""
    session = requests.Session()
    headers = {"Authorization": f"Token {token}"}
    while True:
        response = session.post(f"{web.url}/api/v1/claim/", json={"abi": "cp311", "wait": 0},
                                headers=headers, timeout=30)
        if response.status_code == 204:
            return
        if response.status_code != 200:
            errors.append((web.url, response.status_code, response.text[:200]))
            return
        claimed.append((token, response.json()["build_id"]))


def test_two_web_and_two_task_hosts_share_one_farm(hosts, tmp_path):
    (web_a, web_b), tasks, env = hosts
    project = make_project("multi")
    versions = [make_version(project, f"1.{n}") for n in range(JOBS)]
    for version in versions:
        make_build(version, state=Build.State.QUEUED)
    builders = [make_builder(f"pi{n}") for n in range(4)]

    # Builders on both web servers race for the queue: each job once, none left.
    claimed, errors = [], []
    threads = [threading.Thread(target=claim_all,
                                args=(web_a if n % 2 else web_b, b.token, claimed, errors))
               for n, b in enumerate(builders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    ids = [build_id for _, build_id in claimed]
    assert len(ids) == JOBS and len(set(ids)) == JOBS
    held = dict(Build.objects.filter(state=Build.State.BUILDING).values_list("id", "builder__name"))
    assert set(held) == set(ids)
    tokens = {b.token: b.name for b in builders}
    assert {build_id: tokens[token] for token, build_id in claimed} == held

    # Both servers have the (empty) page of multi cached; a build finishes through A.
    for web in (web_a, web_b):
        assert web.get("/simple/multi/", headers={"Accept": JSON}).status_code == 404
    token, build_id = claimed[0]
    build = Build.objects.select_related("version").get(id=build_id)
    wheel = wheel_archive("multi", build.version.version, "cp311-cp311-linux_armv7l")
    auth = {"Authorization": f"Token {token}"}
    sha256 = hashlib.sha256(wheel.content).hexdigest()
    upload = requests.put(f"{web_a.url}/api/v1/builds/{build_id}/files/{wheel.filename}",
                          data=wheel.content, timeout=30,
                          headers={**auth, "X-Sha256": sha256,
                                   "Content-Type": "application/octet-stream"})
    assert upload.status_code == 201, upload.text
    finish = requests.post(f"{web_a.url}/api/v1/builds/{build_id}/finish/", headers=auth,
                           timeout=30, json={
                               "success": True, "duration": 3, "output": "built\n",
                               "files": [{"filename": wheel.filename, "sha256": sha256,
                                          "size": len(wheel.content)}]})
    assert finish.status_code == 200, finish.text
    # The very next request to B (and to A) lists the new file: no stale page.
    for web in (web_b, web_a):
        for accept in (JSON, "text/html"):
            page = web.get("/simple/multi/", headers={"Accept": accept})
            assert page.status_code == 200, (web.url, page.text)
            assert wheel.filename in page.text and sha256 in page.text

    # Downloads through both servers, counted once whichever host folds them.
    url = f"/files/multi/{wheel.filename}"
    for web, times in ((web_a, 3), (web_b, 4)):
        for _ in range(times):
            download = web.get(url)
            assert download.status_code == 200 and download.content == wheel.content
    for web in (web_a, web_b):
        web.stop()  # a stopping worker writes out the counts it holds
    subprocess.run([PYTHON, "manage.py", "shell", "-c", ENQUEUE_FOLDS], cwd=ROOT, env=env,
                   check=True, timeout=60, capture_output=True)
    wait_until(lambda: Task.objects.filter(group="test-fold").count() == 2, timeout=30,
               message="both folds to run")
    results = sorted(Task.objects.filter(group="test-fold").values_list("result", flat=True))
    assert results == [0, 7]  # one took every log; the other found the fold taken
    assert File.objects.get(filename=wheel.filename).downloads == 7
    assert DailyDownloads.objects.get(file__filename=wheel.filename).count == 7
    assert list((tmp_path / "data" / "downloads").iterdir()) == []  # all folded, once
