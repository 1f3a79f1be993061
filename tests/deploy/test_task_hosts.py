"""Task hosts on Redis: with REDIS_URL set, django-q2's tasks go through Redis, and a due
schedule runs once however many task hosts run `qcluster`.

Two real qcluster processes on one database and one Redis. The test holds the due
schedule's row lock until both schedulers are waiting on it, then lets them race."""
from datetime import timedelta

import psycopg2
import pytest
import redis
from django.utils import timezone
from django_q.models import Schedule, Task

from tests.servers import QCluster, database_url, farm_env, wait_until

WAITING_ON_SCHEDULES = """
    SELECT count(*) FROM pg_stat_activity
    WHERE datname = current_database() AND wait_event_type = 'Lock'
      AND query LIKE '%django_q_schedule%'
"""


@pytest.fixture
def schedule_lock():
    """A connection of its own, to hold row locks across the test."""
    conn = psycopg2.connect(database_url())
    yield conn
    conn.close()


@pytest.fixture
def observer():
    """An autocommit connection watching pg_stat_activity (inside a transaction its
    view would stay as it was at the transaction's first look)."""
    conn = psycopg2.connect(database_url())
    conn.autocommit = True
    yield conn
    conn.close()


def test_a_due_schedule_runs_once_with_two_task_hosts(transactional_db, tmp_path, redis_url,
                                                      cluster_name, schedule_lock, observer):
    Schedule.objects.all().delete()  # the farm's own schedules are not this test's
    schedule = Schedule.objects.create(
        name=f"{cluster_name}-once", func="builds.tasks.requeue_expired",
        schedule_type=Schedule.MINUTES, minutes=60, repeats=-1,
        next_run=timezone.now() - timedelta(seconds=1),
    )
    with schedule_lock.cursor() as cursor:
        cursor.execute("SELECT id FROM django_q_schedule WHERE id = %s FOR UPDATE",
                       [schedule.id])
    # A guard cycle of 30 s makes each cluster's scheduler run as the cluster starts.
    env = farm_env(tmp_path, REDIS_URL=redis_url, Q_CLUSTER_NAME=cluster_name,
                   Q_WORKERS=1, Q_GUARD_CYCLE=30, LOG_LEVEL="INFO")
    hosts = [QCluster(env, tmp_path / f"tasks{n}.log").start() for n in (1, 2)]
    try:
        with observer.cursor() as cursor:
            def waiting():
                cursor.execute(WAITING_ON_SCHEDULES)
                return cursor.fetchone()[0]

            wait_until(lambda: waiting() == 2, timeout=45,
                       message="both schedulers to wait for the schedule's row lock")
            schedule_lock.commit()  # let them race
            wait_until(lambda: waiting() == 0, timeout=20,
                       message="both schedulers to be done with the schedule")
        broker = redis.Redis.from_url(redis_url)
        wait_until(lambda: Task.objects.filter(group=schedule.name).exists()
                   and broker.llen(f"django_q:{cluster_name}:q") == 0, timeout=30,
                   message="the scheduled task to run")
        logs = [host.log() for host in hosts]
    finally:
        for host in hosts:
            host.stop()
        redis.Redis.from_url(redis_url).delete(f"django_q:{cluster_name}:q")
    created = [line for log in logs for line in log.splitlines()
               if f"from schedule [{schedule.name}]" in line]
    assert len(created) == 1, "\n".join(logs)
    assert Task.objects.filter(group=schedule.name).count() == 1
    task = Task.objects.get(group=schedule.name)
    assert task.success and task.result == {"requeued": 0, "demoted": 0}
    schedule.refresh_from_db()
    assert schedule.next_run > timezone.now() + timedelta(minutes=55)
