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

Waiting threads are bounded: at most PIWHEELS_LONGPOLL_PER_BUILDER of one builder's
claims, and PIWHEELS_LONGPOLL_MAX in all, wait at once in one process (unset: under
gunicorn, its threads per worker less a quarter, at least 2, kept for everything else;
0: no bound). A claim past either is tried once; when that finds nothing it is answered
429 with Retry-After (the claim's wait), which the agent honours: 70 claims with one
stolen token, or more builders than threads, cannot take every thread from pip and the
pages, nor turn into a flood of immediate re-claims.
"""
import math
import threading
import time

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections

from builds import queue
from builds.models import Build

FIRST_PAUSE = 0.2
MAX_PAUSE = 1.0
EMPTY_FOR = 0.2  # seconds one probe's answer serves all the waiting threads of a process

_lock = threading.Lock()
_answers = {}  # (abi id, arch) -> (time.monotonic() of the probe, anything queued?)
_shared = None  # the probing connection of this process
_waiting = {}  # builder id -> its claims waiting in this process
_waiting_total = 0
_threads = None  # threads per worker, told by gunicorn (piwheels_site/gunicorn.conf.py)


class TooManyWaiting(Exception):
    """A claim that may not wait (api/exceptions.py: 429, Retry-After RETRY_AFTER)."""

    def __init__(self, message, retry_after):
        super().__init__(message)
        self.retry_after = retry_after


def set_threads(threads):
    global _threads
    _threads = threads


def overall_bound():
    """Claims that may wait at once in this process (0: no bound)."""
    if settings.PIWHEELS_LONGPOLL_MAX is not None:
        return settings.PIWHEELS_LONGPOLL_MAX
    if _threads:
        return max(1, _threads - max(2, _threads // 4))
    return 0


def _start_waiting(builder_id):
    """Count one more waiting claim of BUILDER_ID, unless a bound is reached: "" when
    it may wait, else why not."""
    global _waiting_total
    per_builder = settings.PIWHEELS_LONGPOLL_PER_BUILDER
    overall = overall_bound()
    with _lock:
        mine = _waiting.get(builder_id, 0)
        if per_builder and mine >= per_builder:
            return f"{mine} claims of this builder already wait for a job"
        if overall and _waiting_total >= overall:
            return f"{_waiting_total} claims already wait for a job here"
        _waiting[builder_id] = mine + 1
        _waiting_total += 1
        return ""


def _stop_waiting(builder_id):
    global _waiting_total
    with _lock:
        left = _waiting.get(builder_id, 1) - 1
        if left > 0:
            _waiting[builder_id] = left
        else:
            _waiting.pop(builder_id, None)
        _waiting_total -= 1


def wait_for_job(builder, abi, arch, wait, now):
    """queue.claim() until it hands out a job for ABI (an active Abi) and ARCH or WAIT
    seconds have passed; the first try always claims. NOW() gives the time. Past the
    bounds on waiting claims (above), the first try is the only one: TooManyWaiting when
    it found nothing."""
    build = queue.claim(builder, abi, now(), arch)
    if build is not None or wait <= 0:
        return build
    refused = _start_waiting(builder.id)
    if refused:
        seconds = max(1, math.ceil(wait))
        raise TooManyWaiting(f"{refused}: ask again in {seconds} s", seconds)
    try:
        return _wait(builder, abi, arch, wait, now)
    finally:
        _stop_waiting(builder.id)


def _wait(builder, abi, arch, wait, now):
    """After a first claim that found nothing: look again until WAIT seconds passed."""
    deadline = time.monotonic() + wait
    pause = FIRST_PAUSE
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        if not connection.in_atomic_block:
            connection.close()
        time.sleep(min(pause, left))
        pause = min(pause * 2, MAX_PAUSE)
        if anything_queued(abi.id, arch):
            build = queue.claim(builder, abi, now(), arch)
            if build is not None:
                return build


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
