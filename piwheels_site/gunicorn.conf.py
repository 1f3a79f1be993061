"""gunicorn settings the farm relies on, whatever the command line adds (`-c` this file).

A web worker holds download counts in memory for a few seconds; it writes them out as it
exits (a restart, a max-requests recycle, a stop), so no count is lost and nothing is
written at interpreter exit into whatever directory the process happens to be in.

gunicorn's own refusals, of requests it cannot parse before Django sees them (431 for a
header over limit_request_field_size, 400 for a bad Content-Length or request line, 414
for a request line over limit_request_line), are written as the API's JSON,
{"detail": "<reason>: <what>"}, not gunicorn's HTML page (docs/reliability-limits.md)."""
import json


def worker_exit(server, worker):
    from index import downloads

    downloads.flush()


def json_error(sock, status_int, reason, mesg):
    """gunicorn.util.write_error's answer, as JSON."""
    from gunicorn import util

    detail = f"{reason}: {mesg}" if mesg else reason
    body = (json.dumps({"detail": detail}) + "\n").encode("utf-8")
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin-1") + body)


def post_worker_init(worker):
    # gunicorn.workers.base.Worker.handle_error calls util.write_error by name.
    from gunicorn import util

    util.write_error = json_error
    # How many claims may wait at once in this worker (api/longpoll.py) follows its threads.
    from api import longpoll

    longpoll.set_threads(worker.cfg.threads)
