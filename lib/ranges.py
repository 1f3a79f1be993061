"""HTTP byte ranges (RFC 9110 section 14) for serving files: Django has no helper for them."""


class FileRange:
    """Bytes START..START+LENGTH of an open file, for FileResponse. It keeps fileno(),
    so gunicorn still uses sendfile from the file's current offset for the response's
    Content-Length; other servers read() it and stop at the end of the range."""

    def __init__(self, fileobj, start, length):
        self.fileobj = fileobj
        self.remaining = length
        fileobj.seek(start)

    def read(self, size=-1):
        if size is None or size < 0 or size > self.remaining:
            size = self.remaining
        data = self.fileobj.read(size)
        self.remaining -= len(data)
        return data

    def fileno(self):
        return self.fileobj.fileno()

    def close(self):
        self.fileobj.close()


def parse_range(header, size):
    """(start, end inclusive) of a single `bytes=` range of a SIZE-byte file; None to
    ignore the header (absent, malformed or several ranges); "unsatisfiable" for 416."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, sep, last = header[6:].strip().partition("-")
    if not sep:
        return None
    try:
        if first == "":
            suffix = int(last)
            if suffix <= 0:
                return "unsatisfiable"
            return max(size - suffix, 0), size - 1
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size:
        return "unsatisfiable"
    if end < start:
        return None
    return start, min(end, size - 1)
