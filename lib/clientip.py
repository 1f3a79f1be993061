"""The address a request came from, behind a known number of proxies."""


def client_ip(meta, proxies=0):
    """The client's address from a WSGI environ (or Django's request.META) META.

    With PROXIES reverse proxies in front, each appending the address it received the
    request from to X-Forwarded-For (nginx: `$proxy_add_x_forwarded_for`), the client is
    the PROXIES-th entry from the right: entries further left were sent by the client
    and prove nothing. A request with fewer entries did not come through the proxies, so
    its own peer (REMOTE_ADDR) is the client."""
    if proxies > 0:
        forwarded = [a.strip() for a in meta.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [a for a in forwarded if a]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return meta.get("REMOTE_ADDR", "")
