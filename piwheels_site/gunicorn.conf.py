"""gunicorn settings the farm relies on, whatever the command line adds (`-c` this file).

A web worker holds download counts in memory for a few seconds; it writes them out as it
exits (a restart, a max-requests recycle, a stop), so no count is lost and nothing is
written at interpreter exit into whatever directory the process happens to be in."""


def worker_exit(server, worker):
    from index import downloads

    downloads.flush()
