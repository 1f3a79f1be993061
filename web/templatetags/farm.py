"""Template filters and tags of the pages: one-line wrappers over plain functions."""
from django import template
from django.utils.safestring import mark_safe

from web import charts

register = template.Library()


@register.simple_tag
def builds_chart(builds_per_day):
    """Builds finished per day, succeeded and failed stacked."""
    return mark_safe(charts.bar_chart(
        [row["day"].strftime("%d %b") for row in builds_per_day],
        [
            ("succeeded", "ok", [row["succeeded"] for row in builds_per_day]),
            ("failed", "bad", [row["failed"] for row in builds_per_day]),
        ],
        "Builds finished per day",
    ))


@register.simple_tag
def success_chart(builds_per_day):
    """Share of the day's finished builds that succeeded, in percent."""
    return mark_safe(charts.bar_chart(
        [row["day"].strftime("%d %b") for row in builds_per_day],
        [("success rate", "ok", [row["success_rate"] for row in builds_per_day])],
        "Success rate per day",
        max_value=100,
        unit="%",
    ))


@register.simple_tag
def downloads_chart(downloads_per_day):
    return mark_safe(charts.bar_chart(
        [row["day"].strftime("%d %b") for row in downloads_per_day],
        [("downloads", "dl", [row["downloads"] for row in downloads_per_day])],
        "Downloads per day",
    ))


@register.filter
def duration(seconds):
    """65 -> '1m 5s'."""
    if seconds is None:
        return ""
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {seconds}s"
    return f"{seconds}s"


@register.filter
def thousands(number):
    """927088 -> '927,088' (None and text as they are)."""
    if isinstance(number, int | float) and not isinstance(number, bool):
        return f"{number:,}"
    return number


@register.filter
def state_class(state):
    """The badge's word for the newest version -> the CSS class of its colour."""
    return {"queued": "pending"}.get(state, state)


@register.filter
def chip(label):
    """A cell's label, short enough for the chips of a version's one-line summary."""
    if label.startswith("PyPI has"):
        return "on PyPI"
    if label.startswith("skipped"):
        return "skipped"
    if label.startswith("waiting for"):
        return "waiting"
    if label.startswith("built"):
        return "built"
    return label
