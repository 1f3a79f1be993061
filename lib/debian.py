"""Debian package names, as the farm takes them from builders (a package report, a
wheel's system dependencies) and shows them to people (the project page's
`sudo apt install ...` line, which is pasted into a shell).

Debian Policy 5.6.1: lower-case ASCII letters, digits, `+`, `-` and `.`, at least two
characters, starting with a letter or digit; dpkg-query may add `:<arch>`. The match is
whole (`\\A...\\Z`, ASCII only): a trailing newline, a space, `&&` or `|` never passes,
so a name that passed is safe to print in a command line without quoting.
"""
import re

PACKAGE_NAME = re.compile(r"\A[a-z0-9][a-z0-9+.-]+(?::[a-z0-9-]+)?\Z", re.ASCII)
# Longest name taken (Debian's longest are well under 100 characters).
MAX_NAME = 200


def is_package_name(name):
    """Whether NAME is a Debian package name (optionally with :arch)."""
    return isinstance(name, str) and len(name) <= MAX_NAME and bool(PACKAGE_NAME.match(name))


def install_line(names):
    """`sudo apt install ...` for the valid NAMES, sorted and once each; "" when none is
    valid. Whatever else the list holds (a row stored before names were checked) is left
    out, never quoted into the line."""
    valid = sorted({n for n in names if is_package_name(n)})
    return f"sudo apt install {' '.join(valid)}" if valid else ""
