"""WSGI wrappers that run before Django (and before index.views.SimpleIndexApp)."""
import re

# A NUL in the path (already percent-decoded by the server) or in the query string
# (still encoded). PostgreSQL refuses NUL in text, so a NUL that reaches a query raises
# ValueError deep in a view; file paths with one raise too. No URL of the farm has one.
_ENCODED_NUL = re.compile(r"%00|\x00")

BAD_REQUEST = "400 Bad Request"


class RefuseNul:
    """Answers 400 to any request whose URL contains a NUL, before anything else sees
    it: one check here covers every view and the index's WSGI fast path. Under /api/ the
    answer is the API's JSON shape."""

    def __init__(self, application, api_prefix="/api/"):
        self.application = application
        self.api_prefix = api_prefix

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if "\x00" in path or _ENCODED_NUL.search(environ.get("QUERY_STRING", "")):
            if path.startswith(self.api_prefix):
                body = b'{"detail": "The URL contains a NUL character."}\n'
                content_type = "application/json"
            else:
                body = b"Bad Request: the URL contains a NUL character.\n"
                content_type = "text/plain; charset=utf-8"
            start_response(BAD_REQUEST, [("Content-Type", content_type),
                                         ("Content-Length", str(len(body)))])
            return [body]
        return self.application(environ, start_response)
