"""The progress plot as inline SVG: no scripts, no fonts, nothing fetched.

Every string taken from the ledger goes through `html.escape` before it lands in markup.
"""

from __future__ import annotations

from html import escape

from agents.report.model import ReportData
from agents.report.series import build_series, nice_ticks

W, H = 960, 420
LEFT, RIGHT, TOP, BOTTOM = 72, 24, 28, 92
LANE = 26
"""Height of the bottom lane where unscored attempts (crash, blocked, rejected) sit."""

LABEL_CHARS = 38


def render_svg(data: ReportData) -> str:
    """One `<svg id="progress-plot">` element; an empty ledger gives a plot that says so."""
    s = build_series(data)
    plot_h = H - TOP - BOTTOM - LANE
    plot_bottom = TOP + plot_h
    lane_y = plot_bottom + LANE * 0.75

    def px(x: float) -> float:
        return LEFT + (x - 0.5) / s.x_max * (W - LEFT - RIGHT)

    def py(y: float) -> float:
        y = min(max(y, s.y_lo), s.y_hi)
        return TOP + (s.y_hi - y) / (s.y_hi - s.y_lo) * plot_h

    out: list[str] = [
        f'<svg id="progress-plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" '
        f'role="img" aria-label="{escape(data.metric)} of every experiment, in order">',
        f'<rect class="frame" x="{LEFT}" y="{TOP}" width="{W - LEFT - RIGHT}" height="{plot_h}"/>',
    ]
    if not s.points:
        out.append(
            f'<text class="empty" x="{W / 2}" y="{TOP + plot_h / 2}" text-anchor="middle">'
            "No experiments recorded yet</text></svg>"
        )
        return "".join(out)

    for t in nice_ticks(s.y_lo, s.y_hi, 6):
        y = py(t)
        out.append(f'<line class="grid" x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(
            f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{t:g}</text>'
        )
    for t in nice_ticks(1, s.x_max, 10):
        if t != int(t) or t < 1:
            continue
        x = px(t)
        out.append(
            f'<text class="tick" x="{x:.1f}" y="{H - BOTTOM + 16}" '
            f'text-anchor="middle">{int(t)}</text>'
        )
    out.append(
        f'<text class="axis" x="{(LEFT + W - RIGHT) / 2}" y="{H - BOTTOM + 36}" '
        'text-anchor="middle">experiment</text>'
    )
    better = "lower" if data.direction == "minimize" else "higher"
    out.append(
        f'<text class="axis" transform="translate(18 {TOP + plot_h / 2}) rotate(-90)" '
        f'text-anchor="middle">{escape(data.metric)} ({better} is better)</text>'
    )
    out.append(
        f'<line class="lane" x1="{LEFT}" x2="{W - RIGHT}" y1="{lane_y:.1f}" y2="{lane_y:.1f}"/>'
        f'<text class="tick" x="{LEFT - 6}" y="{lane_y + 4:.1f}" text-anchor="end">no score</text>'
    )

    if s.band is not None:
        y1, y2 = py(s.band[1]), py(s.band[0])
        out.append(
            f'<rect class="band" x="{LEFT}" y="{y1:.1f}" width="{W - LEFT - RIGHT}" '
            f'height="{max(y2 - y1, 0.5):.1f}"><title>noise band: a change inside it is not kept '
            f"({s.band[0]:.4f} to {s.band[1]:.4f})</title></rect>"
        )
    if s.baseline is not None:
        y = py(s.baseline)
        out.append(
            f'<line class="baseline" x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}">'
            f"<title>baseline {s.baseline:.4f}</title></line>"
        )

    if len(s.best_steps) >= 2:
        coords: list[str] = []
        for (x0, y0), (x1, _y1) in zip(s.best_steps, s.best_steps[1:], strict=False):
            coords.append(f"{px(max(x0, 0.5)):.1f},{py(y0):.1f}")
            coords.append(f"{px(x1):.1f},{py(y0):.1f}")
        last_x, last_y = s.best_steps[-1]
        coords.append(f"{px(last_x):.1f},{py(last_y):.1f}")
        out.append(f'<polyline class="best" points="{" ".join(coords)}"/>')

    # Faint points first so kept ones are drawn on top.
    order = {"discard": 0, "baseline": 1, "crash": 2, "blocked": 2, "rejected": 2, "keep": 3}
    for p in sorted(s.points, key=lambda p: order.get(p.status, 1)):
        title = f"<title>{escape(p.label)}</title>"
        cls = f"pt pt-{escape(p.status)}"
        x = px(p.x)
        attrs = f'class="{cls}" data-x="{p.x}" data-status="{escape(p.status)}"'
        if p.y is None:
            out.append(_lane_marker(p.status, x, lane_y, attrs, title))
        elif p.clipped:
            y = py(p.y)
            up = p.y > s.y_hi
            tip, base = (y - 5, y + 4) if up else (y + 5, y - 4)
            out.append(
                f'<path {attrs} d="M{x:.1f},{tip:.1f} L{x - 5:.1f},{base:.1f} '
                f'L{x + 5:.1f},{base:.1f} Z">{title}</path>'
            )
        else:
            r = 5.5 if p.status == "keep" else 4
            out.append(f'<circle {attrs} cx="{x:.1f}" cy="{py(p.y):.1f}" r="{r}">{title}</circle>')

    for p in s.labelled():
        text = p.label.split(": ", 1)[1] if ": " in p.label else p.label
        if len(text) > LABEL_CHARS:
            text = text[: LABEL_CHARS - 1] + "\u2026"
        # Labels near the right edge go to the left of their point, so none is cut off.
        left = px(p.x) > LEFT + 0.7 * (W - LEFT - RIGHT)
        x, y = px(p.x) + (-7 if left else 7), py(p.y) - 7
        anchor = "end" if left else "start"
        angle = 20 if left else -20
        out.append(
            f'<text class="keep-label" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" '
            f'transform="rotate({angle} {x:.1f} {y:.1f})">{escape(text)}</text>'
        )

    out.append(_legend(W - RIGHT - 8, H - 22))
    out.append("</svg>")
    return "".join(out)


def _lane_marker(status: str, x: float, y: float, attrs: str, title: str) -> str:
    if status == "crash":
        d = (f"M{x - 4:.1f},{y - 4:.1f} L{x + 4:.1f},{y + 4:.1f} "
             f"M{x - 4:.1f},{y + 4:.1f} L{x + 4:.1f},{y - 4:.1f}")
        return f'<path {attrs} d="{d}">{title}</path>'
    if status == "rejected":
        d = f"M{x:.1f},{y - 5:.1f} L{x + 5:.1f},{y:.1f} L{x:.1f},{y + 5:.1f} L{x - 5:.1f},{y:.1f} Z"
        return f'<path {attrs} d="{d}">{title}</path>'
    if status == "blocked":
        return f'<rect {attrs} x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8">{title}</rect>'
    # Still under way (planned, running) in a run that is writing the ledger right now.
    return f'<circle {attrs} cx="{x:.1f}" cy="{y:.1f}" r="4">{title}</circle>'


def _legend(right: float, y: float) -> str:
    items = [
        ("keep", "kept"), ("discard", "discarded"), ("baseline", "baseline run"),
        ("crash", "crash"), ("blocked", "blocked"), ("rejected", "rejected"),
    ]
    parts = ['<g class="legend">']
    # System fonts differ in width; ~6.5 px per character at 11 px keeps entries apart.
    widths = [22 + 6.5 * len(text) for _, text in items]
    x = right - sum(widths) - 70 - 190
    for (status, text), width in zip(items, widths, strict=True):
        parts.append(_lane_marker(status, x, y, f'class="pt pt-{status}"', "")
                     if status in ("crash", "blocked", "rejected")
                     else f'<circle class="pt pt-{status}" cx="{x}" cy="{y}" r="4.5"/>')
        parts.append(f'<text class="tick" x="{x + 9}" y="{y + 4}">{text}</text>')
        x += width
    parts.append(f'<line class="best" x1="{x}" x2="{x + 22}" y1="{y}" y2="{y}"/>'
                 f'<text class="tick" x="{x + 27}" y="{y + 4}">best</text>')
    x += 70
    parts.append(f'<line class="baseline" x1="{x}" x2="{x + 22}" y1="{y}" y2="{y}"/>'
                 f'<text class="tick" x="{x + 27}" y="{y + 4}">baseline</text>')
    x += 85
    parts.append(f'<rect class="band" x="{x}" y="{y - 5}" width="22" height="10"/>'
                 f'<text class="tick" x="{x + 27}" y="{y + 4}">noise band</text>')
    parts.append("</g>")
    return "".join(parts)
