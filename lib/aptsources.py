"""The Debian archive this machine's apt reads from, as a default for the farm's own reads
of Debian's Contents index (an operator sets PIWHEELS_DEBIAN_MIRROR to choose another)."""
import re
from pathlib import Path

SOURCES = (
    "/etc/apt/sources.list.d/*.sources", "/etc/apt/sources.list", "/etc/apt/sources.list.d/*.list"
)


def first_debian_uri(roots=SOURCES):
    """The first http(s) archive URI in apt's sources (deb822 `URIs:` or one-line `deb`
    entries) whose path ends in /debian; "" when there is none."""
    for pattern in roots:
        for path in sorted(Path("/").glob(pattern.lstrip("/"))):
            try:
                text = path.read_text()
            except OSError:
                continue
            for uri in re.findall(r"^(?:URIs:\s*|deb\s+(?:\[[^\]]*\]\s+)?)(\S+)", text, re.M):
                if uri.startswith(("http://", "https://")) and uri.rstrip("/").endswith("/debian"):
                    return uri.rstrip("/")
    return ""
