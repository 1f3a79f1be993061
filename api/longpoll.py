"""Waiting for a job without tying up the web server.

A claim that finds nothing waits up to `wait` seconds in its gunicorn thread (gthread
workers, many threads: a sleeping thread costs memory, not CPU). Between polls it holds
no database connection (closed before sleeping), so 100 waiting builders do not hold 100
of PostgreSQL's connections, and it polls with backoff (0.2 s doubling to 1 s). Threads of
one process waiting for the same ABI share what they learn: when one of them found that
ABI's queue empty less than EMPTY_FOR seconds ago, the others skip the database. So the
polling load is a few queries per second per ABI and process, whatever the builders.
"""
import threading
import time

from django.db import connection

from builds import queue

FIRST_PAUSE = 0.2
MAX_PAUSE = 1.0
EMPTY_FOR = 0.2  # seconds a "queue empty" answer is trusted by the other waiting threads

_empty_at = {}  # abi id -> time.monotonic() when a claim in this process found nothing
_lock = threading.Lock()


def wait_for_job(builder, abi, wait, now):
    """queue.claim() until it hands out a job for ABI (an active Abi) or WAIT seconds
    have passed; the first try always asks the database. NOW() gives the time."""
    deadline = time.monotonic() + wait
    pause = FIRST_PAUSE
    first = True
    while True:
        started = time.monotonic()
        with _lock:
            fresh = started - _empty_at.get(abi.id, float("-inf")) < EMPTY_FOR
        if first or not fresh:
            build = queue.claim(builder, abi, now())
            if build is not None:
                return build
            with _lock:
                _empty_at[abi.id] = time.monotonic()
        first = False
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        if not connection.in_atomic_block:
            connection.close()
        time.sleep(min(pause, left))
        pause = min(pause * 2, MAX_PAUSE)
