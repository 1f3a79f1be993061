"""The README badge: an SVG saying how the newest version of a project fares here."""
from django.utils.html import escape

from builds.models import Build, File
from packages.models import Project, version_sort_key

COLOURS = {"built": "#2f9e44", "failed": "#c92a2a", "skipped": "#6c757d",
           "queued": "#b7791f", "not built": "#6c757d", "unknown": "#6c757d"}
LABEL = "piwheels"


def newest_state(normalized_name):
    """(version, state) of the project's newest version that is not yanked or removed:
    built (a wheel is served), failed, queued (or building), skipped, or "not built";
    None for an unknown project. Four small queries at most, whatever the project's size."""
    project = next(iter(Project.objects.filter(normalized_name=normalized_name)
                        .only("id", "skip_reason")[:1]), None)
    if project is None:
        return None
    versions = list(project.versions.filter(removed=False, yanked=False)
                    .values_list("id", "version", "skip_reason", "has_sdist"))
    if not versions:
        return "", "unknown"
    version_id, version, skip_reason, has_sdist = max(
        versions, key=lambda row: version_sort_key(row[1]))
    if File.objects.filter(build__version_id=version_id, superseded_by="").exists():
        return version, "built"
    newest = {}  # per ABI, its newest build
    for abi_id, state in (Build.objects.filter(version_id=version_id)
                          .order_by("-id").values_list("abi_id", "state")):
        newest.setdefault(abi_id, state)
    states = set(newest.values())
    if Build.State.FAILED in states:
        return version, "failed"
    if states & {Build.State.QUEUED, Build.State.BUILDING}:
        return version, "queued"
    if Build.State.SKIPPED in states or skip_reason or project.skip_reason or not has_sdist:
        return version, "skipped"
    return version, "not built"


def _width(text):
    """About Verdana 11px: 7 px a character, 10 px of padding."""
    return 7 * len(text) + 10


def svg(version, state):
    """A flat badge: "piwheels | <version> <state>"."""
    message = f"{version} {state}".strip()
    left, right = _width(LABEL), _width(message)
    total = left + right
    colour = COLOURS.get(state, COLOURS["unknown"])
    title = escape(f"{LABEL}: {message}")
    message = escape(message)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" '
        f'aria-label="{title}"><title>{title}</title>'
        f'<rect width="{left}" height="20" fill="#a3123a"/>'
        f'<rect x="{left}" width="{right}" height="20" fill="{colour}"/>'
        f'<g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11" '
        f'text-anchor="middle">'
        f'<text x="{left / 2}" y="14">{LABEL}</text>'
        f'<text x="{left + right / 2}" y="14">{message}</text></g></svg>'
    )
