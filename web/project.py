"""The first screen of the project page: what a Pi user asks before anything else.

Which Pythons, OS releases and architectures the project has wheels for (a matrix),
its downloads, its links (PyPI, and the home page and source named by the metadata of
its newest wheel), and the state of its newest version (the README badge).
"""
import re
from datetime import timedelta
from email.parser import HeaderParser

from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from builds import storage
from builds.models import DailyDownloads

RECENT_DAYS = 30
# Architectures in the order of the matrix's columns (a Pi Zero, a 32-bit OS, 64-bit, a
# PC's: a farm may build for x86_64 too, docs/architectures.md). Short names: the matrix
# must fit a phone's width; the page's sentences use web/pages.py's longer ones.
ARCHES = ["armv6l", "armv7l", "aarch64", "x86_64", "any"]
ARCH_NAMES = {
    "armv6l": "ARMv6 (Pi Zero, Pi 1)",
    "armv7l": "32-bit (armhf)",
    "aarch64": "64-bit (arm64)",
    "x86_64": "x86_64 (PC)",
    "any": "any (pure Python)",
}
# Which Project-URL labels are shown, and as what (lower-cased, spaces and dashes away).
LINK_LABELS = {
    "homepage": "Home page", "home": "Home page", "source": "Source",
    "sourcecode": "Source", "repository": "Source", "code": "Source",
    "documentation": "Documentation", "docs": "Documentation",
    "changelog": "Changelog", "changes": "Changelog", "issues": "Issues",
    "bugtracker": "Issues", "tracker": "Issues", "bugs": "Issues",
}
METADATA_LIMIT = 1 << 20


def python_name(abi_tag):
    """cp311 -> Python 3.11 (other tags as they are)."""
    match = re.fullmatch(r"cp3(\d+)", abi_tag)
    return f"Python 3.{match.group(1)}" if match else abi_tag


def wheel_matrix(abis, versions):
    """Rows per ABI (Python), columns per architecture: in each cell the newest version
    with a wheel served there and the OS releases it was built on.

    ABIS: the page's ABI tags; VERSIONS: the page's version rows, newest first, whose
    files carry "abi" (the ABI of their build) and "arch".
    """
    cells = {}
    for row in versions:
        if row["yanked"]:
            continue
        for f in row["files"]:
            if f["superseded_by"] or f["shadowed_by"]:
                continue
            arches = [f["arch"] or "any"] + (["armv6l"] if f["armv6l_filename"] else [])
            for arch in arches:
                cell = cells.setdefault((f["abi"], arch), {
                    "version": row["version"], "os_releases": [], "filename": f["filename"],
                })
                if cell["version"] == row["version"] and f["os_release"] \
                        and f["os_release"] not in cell["os_releases"]:
                    cell["os_releases"].append(f["os_release"])
    arches = [a for a in ARCHES if any(arch == a for _, arch in cells)]
    rows = []
    for abi in abis:
        row_cells = [cells.get((abi, arch)) for arch in arches]
        if any(row_cells):
            rows.append({"abi": abi, "python": python_name(abi), "cells": row_cells})
    return {
        "arches": [{"arch": a, "name": ARCH_NAMES[a]} for a in arches],
        "rows": rows,
    }


def downloads(project, file_ids, now=None):
    """{"total", "recent"}: every download counted of the project's files, and those of
    the last RECENT_DAYS days (index.downloads folds both in, minutes after they happen)."""
    today = timezone.localdate(now or timezone.now())
    recent = 0
    if file_ids:
        recent = DailyDownloads.objects.filter(
            file_id__in=file_ids, day__gt=today - timedelta(days=RECENT_DAYS),
        ).aggregate(n=Sum("count"))["n"] or 0
    return {"total": project.downloads, "recent": recent, "days": RECENT_DAYS}


def _metadata_links(normalized_name, filename):
    """(label, url) pairs of a served wheel's core metadata: Home-page, Project-URL."""
    path = storage.metadata_path(normalized_name, filename)
    try:
        with open(path, "rb") as handle:
            text = handle.read(METADATA_LIMIT).decode("utf-8", "replace")
    except OSError:
        return []
    headers = HeaderParser().parsestr(text.split("\n\n", 1)[0] + "\n")
    links = []
    if headers.get("Home-page"):
        links.append(("Home page", headers["Home-page"].strip()))
    for value in headers.get_all("Project-URL") or []:
        label, _, url = value.partition(",")
        key = re.sub(r"[\s_.-]+", "", label.lower())
        if key in LINK_LABELS:
            links.append((LINK_LABELS[key], url.strip()))
    return links


def links(project, versions):
    """PyPI's page of the project, then the home page, source, documentation, changelog
    and issues its newest served wheel names (each once, http(s) only)."""
    base = settings.PIWHEELS_PYPI_URL
    result = [{"label": "PyPI", "url": f"{base}/project/{project.normalized_name}/"}]
    newest = next((f for row in versions for f in row["files"]
                   if not f["superseded_by"] and not f["shadowed_by"]), None)
    if newest is None:
        return result
    seen = {"PyPI"}
    for label, url in _metadata_links(project.normalized_name, newest["filename"]):
        if label in seen or not re.match(r"https?://[^\s\"<>]+$", url):
            continue
        seen.add(label)
        result.append({"label": label, "url": url})
    return result


def newest_state(versions):
    """The state of the newest version that is not yanked, for the badge:
    (version, "built" | "failed" | "skipped" | "queued" | "none")."""
    row = next((r for r in versions if not r["yanked"]), None)
    if row is None:
        return "", "none"
    states = {c["state"] for c in row["builds"]}
    if row["files"] or "built" in states:
        return row["version"], "built"
    if "failed" in states:
        return row["version"], "failed"
    if "pending" in states:
        return row["version"], "queued"
    if "skipped" in states or "yanked" in states:
        return row["version"], "skipped"
    return row["version"], "none"
