"""Waiting for a job without tying up the web server.

A claim that finds nothing waits up to `wait` seconds in its gunicorn thread (gthread
workers with many threads: a sleeping thread costs memory, not CPU). While it waits it
holds no database connection of its own (closed before the first sleep), so 100 waiting
builders do not hold 100 of PostgreSQL's connections. Instead the waiting threads of one
process share one connection and one answer per ABI: "is anything queued for it?" is
asked at most every EMPTY_FOR seconds per ABI and process (an index-only probe), and only
when the answer is yes does a waiting thread reconnect and try queue.claim(). Each thread
looks again after a backoff of 0.2 s doubling to 1 s. The polling load is therefore a few
tiny queries per second per process, whatever the number of waiting builders.
"""
import threading
import time

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections

from builds import queue
from builds.models import Build

FIRST_PAUSE = 0.2
MAX_PAUSE = 1.0
EMPTY_FOR = 0.2  # seconds one probe's answer serves all the waiting threads of a process

_lock = threading.Lock()
_answers = {}  # (abi id, arch) -> (time.monotonic() of the probe, anything queued?)
_shared = None  # the probing connection of this process


def wait_for_job(builder, abi, arch, wait, now):
    """queue.claim() until it hands out a job for ABI (an active Abi) and ARCH or WAIT
    seconds have passed; the first try always claims. NOW() gives the time."""
    deadline = time.monotonic() + wait
    pause = FIRST_PAUSE
    first = True
    while True:
        if first or anything_queued(abi.id, arch):
            build = queue.claim(builder, abi, now(), arch)
            if build is not None:
                return build
        first = False
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        if not connection.in_atomic_block:
            connection.close()
        time.sleep(min(pause, left))
        pause = min(pause * 2, MAX_PAUSE)


def anything_queued(abi_id, arch):
    """Whether a job for this ABI and ARCH is queued, as seen at most EMPTY_FOR seconds
    ago."""
    global _shared
    with _lock:
        asked, answer = _answers.get((abi_id, arch), (float("-inf"), True))
        if time.monotonic() - asked < EMPTY_FOR:
            return answer
        try:
            if _shared is None:
                _shared = connections.create_connection(DEFAULT_DB_ALIAS)
                _shared.inc_thread_sharing()
            with _shared.cursor() as cursor:
                cursor.execute(
                    f"SELECT 1 FROM {Build._meta.db_table}"
                    " WHERE abi_id = %s AND arch = %s AND state = %s LIMIT 1",
                    [abi_id, arch, Build.State.QUEUED],
                )
                answer = cursor.fetchone() is not None
        except DatabaseError:
            _shared.close()  # reconnects next time; meanwhile let the claim decide
            answer = True
        _answers[abi_id, arch] = (time.monotonic(), answer)
        return answer


def close_shared():
    """Close the probing connection (tests call this before dropping the database)."""
    global _shared
    with _lock:
        if _shared is not None:
            _shared.close()
            _shared = None
        _answers.clear()
