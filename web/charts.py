"""Small bar charts drawn server-side as inline SVG: no script, no external assets.

The SVG scales to its container's width (viewBox + width 100%), so a chart of 30 days
stays readable on a phone.
"""
from django.utils.html import escape

WIDTH = 400  # small, so that the text stays legible when scaled to a phone
HEIGHT = 170
LEFT = 40  # room for the axis labels
BOTTOM = 26
TOP = 10


def _nice_max(value):
    """A round even number at least VALUE, for the top of the axis of counts: its half,
    the middle tick, is a whole number too (no "2.5 builds")."""
    if value <= 0:
        return 2
    magnitude = 1
    while magnitude * 10 <= value:
        magnitude *= 10
    for step in (1, 2, 4, 6, 8, 10):
        if step * magnitude < 2:
            continue
        if step * magnitude >= value:
            top = step * magnitude
            return int(top) if top == int(top) else top
    return 10 * magnitude


def _fmt(value):
    """An axis label: 1.2M, 40k, 950."""
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def bar_chart(labels, series, title, max_value=None, unit=""):
    """An SVG bar chart. LABELS: one per bar (shown every few bars); SERIES: a list of
    (name, css class, values) stacked bottom-up; values may be None (no bar)."""
    count = max(len(labels), 1)
    totals = [
        sum(values[i] or 0 for _, _, values in series) for i in range(len(labels))
    ]
    top = max_value if max_value is not None else _nice_max(max(totals, default=0))
    plot_w = WIDTH - LEFT - 4
    plot_h = HEIGHT - TOP - BOTTOM
    slot = plot_w / count
    bar_w = max(slot * 0.75, 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" '
        f'role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for fraction in (0, 0.5, 1):
        y = TOP + plot_h * (1 - fraction)
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - 4}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(_fmt(top * fraction))}{escape(unit)}</text>"
        )
    for i, label in enumerate(labels):
        x = LEFT + i * slot + (slot - bar_w) / 2
        base = TOP + plot_h
        tip = [escape(str(label))]
        for name, css, values in series:
            value = values[i]
            if value is None:
                continue
            shown = f"{value:,}" if isinstance(value, int) else f"{value:g}"
            tip.append(f"{escape(name)}: {escape(shown)}{escape(unit)}")
            h = plot_h * min(value / top, 1) if top else 0
            if h <= 0:
                continue
            base -= h
            parts.append(
                f'<rect class="{css}" x="{x:.1f}" y="{base:.1f}" width="{bar_w:.1f}" '
                f'height="{h:.1f}"><title>{" · ".join(tip)}</title></rect>'
            )
        if (count - 1 - i) % 7 == 0:  # the last day, and every week before it
            last = i == count - 1  # flush right, not cut off at the edge
            parts.append(
                f'<text class="axis" x="{x + (bar_w if last else bar_w / 2):.1f}" '
                f'y="{HEIGHT - 6}" text-anchor="{"end" if last else "middle"}">'
                f"{escape(str(label))}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)
