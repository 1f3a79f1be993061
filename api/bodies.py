"""Reading an upload's body from the WSGI stream in 64 KiB chunks, never whole, and
never waiting for it without end.

A client that stops sending short of its Content-Length, the connection held open,
would hold a web thread (gthread) or a whole worker (sync, until gunicorn's --timeout
kills it) for as long as it likes. Under gunicorn, which lends the request's socket in
the WSGI environ, each read waits at most PIWHEELS_UPLOAD_IDLE_TIMEOUT seconds, and the
whole body must arrive by IDLE_TIMEOUT + size / PIWHEELS_UPLOAD_MIN_RATE seconds;
otherwise UploadTimedOut (408). Other servers read as they read; nginx in front should
buffer or time out bodies itself (docs/reliability.md, docs/operating.md).
"""
import time

from django.conf import settings

from builds.publish import UploadRefused, UploadTimedOut

CHUNK = 64 * 1024


def body_chunks(request, size, clock=time.monotonic):
    """Yield the body of REQUEST (a Django HttpRequest) of SIZE declared bytes."""
    sock = request.META.get("gunicorn.socket")
    idle = settings.PIWHEELS_UPLOAD_IDLE_TIMEOUT
    deadline = clock() + idle + (size or 0) / max(settings.PIWHEELS_UPLOAD_MIN_RATE, 1)
    prior = sock.gettimeout() if sock is not None else None
    try:
        while True:
            if sock is not None:
                left = deadline - clock()
                if left <= 0:
                    raise UploadTimedOut(
                        f"the body came slower than {settings.PIWHEELS_UPLOAD_MIN_RATE} "
                        "bytes/s (PIWHEELS_UPLOAD_MIN_RATE)")
                sock.settimeout(min(idle, left))
            try:
                chunk = request.read(CHUNK)
            except OSError as exc:  # Django's UnreadablePostError, from the socket's error
                if isinstance(exc, TimeoutError) or isinstance(exc.__cause__, TimeoutError):
                    raise UploadTimedOut(f"no byte of the body came for {idle:g} s "
                                         "(PIWHEELS_UPLOAD_IDLE_TIMEOUT)") from None
                raise UploadRefused(f"the body could not be read: {exc}") from None
            if not chunk:
                return
            yield chunk
    finally:
        if sock is not None:
            try:
                sock.settimeout(prior)
            except OSError:
                pass  # closed meanwhile
