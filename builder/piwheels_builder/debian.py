"""The Debian packages installed on this builder, for the farm's dep-wait: a failed build
that only needed a package is queued again when a builder reports having it."""
import hashlib
import logging
import subprocess

log = logging.getLogger(__name__)

# dpkg-query -W lists every package dpkg knows, removed ones too: keep the installed ("ii").
_QUERY = ["dpkg-query", "-W", "-f", "${db:Status-Abbrev} ${Package}\n"]


def installed(query=_QUERY):
    """Sorted names of the installed packages, or None where there is no dpkg."""
    try:
        out = subprocess.run(query, capture_output=True, text=True, timeout=120,
                             check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("no Debian package list: %s", exc)
        return None
    return sorted({parts[1] for parts in (line.split() for line in out.splitlines())
                   if len(parts) == 2 and parts[0].startswith("ii")})


def digest(names):
    """What the farm compares: sha256 of the sorted names, one a line."""
    return hashlib.sha256("\n".join(sorted(set(names))).encode()).hexdigest()


def codename(os_release="/etc/os-release"):
    """VERSION_CODENAME of the OS (bookworm), or "" when it does not say."""
    try:
        with open(os_release, encoding="utf-8") as f:
            for line in f:
                key, sep, value = line.strip().partition("=")
                if sep and key == "VERSION_CODENAME":
                    return value.strip().strip("\"'")
    except OSError:
        pass
    return ""
