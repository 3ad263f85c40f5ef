"""The progress plot alone as a PNG, like autoresearch's progress.png.

matplotlib is imported inside the function: `labwarden report` without `--png` never
pays for it, and the CLI dispatcher stays light.
"""

from __future__ import annotations

from pathlib import Path

from agents.report.model import ReportData
from agents.report.series import build_series

COLORS = {
    "keep": "#1a7f37", "discard": "#8c959f", "baseline": "#0969da",
    "crash": "#cf222e", "blocked": "#bc4c00", "rejected": "#8250df",
}
MARKERS = {"crash": "x", "blocked": "s", "rejected": "D"}


def write_png(data: ReportData, out: Path) -> None:
    """Draw the same series as the page's SVG into `out` (PNG, 1600x700 px)."""
    import matplotlib

    matplotlib.use("Agg")  # no display; never pick a GUI backend from the environment
    import matplotlib.pyplot as plt

    s = build_series(data)
    fig, ax = plt.subplots(figsize=(16, 7), dpi=100)
    try:
        ax.set_xlabel("experiment")
        better = "lower" if data.direction == "minimize" else "higher"
        ax.set_ylabel(f"{data.metric} ({better} is better)")
        ax.set_title(f"labwarden: {data.workspace}")
        if not s.points:
            ax.text(0.5, 0.5, "No experiments recorded yet", ha="center", va="center",
                    transform=ax.transAxes, fontsize=16, color="#59636e")
            ax.set_xticks([])
            ax.set_yticks([])
        else:
            _draw(ax, s, data)
        fig.tight_layout()
        fig.savefig(out, format="png")
    finally:
        plt.close(fig)


def _draw(ax, s, data: ReportData) -> None:  # noqa: ANN001 - matplotlib types are untyped
    span = s.y_hi - s.y_lo
    lane = s.y_lo - span * 0.06  # unscored attempts sit just below the plotted range
    if s.band is not None:
        ax.axhspan(s.band[0], s.band[1], color=COLORS["baseline"], alpha=0.09, lw=0,
                   label="noise band")
    if s.baseline is not None:
        ax.axhline(s.baseline, color=COLORS["baseline"], ls="--", lw=1.2, label="baseline")
    if len(s.best_steps) >= 2:
        xs = [max(x, 0.5) for x, _ in s.best_steps]
        ys = [y for _, y in s.best_steps]
        ax.step(xs, ys, where="post", color=COLORS["keep"], lw=2, label="running best")
    for status in ("discard", "baseline", "crash", "blocked", "rejected", "keep"):
        pts = [p for p in s.points if p.status == status and not p.clipped]
        if not pts:
            continue
        xs = [p.x for p in pts]
        ys = [min(max(p.y, s.y_lo), s.y_hi) if p.y is not None else lane for p in pts]
        ax.scatter(
            xs, ys, s=60 if status == "keep" else 30, marker=MARKERS.get(status, "o"),
            color=COLORS[status], alpha=0.45 if status == "discard" else 0.95,
            zorder=3 if status == "keep" else 2, label=status,
        )
    clipped = [p for p in s.points if p.clipped and p.y is not None]
    if clipped:  # values outside the range sit on its edge as triangles pointing out
        for up in (True, False):
            side = [p for p in clipped if (p.y > s.y_hi) == up]
            ax.scatter([p.x for p in side], [s.y_hi if up else s.y_lo for p in side],
                       marker="^" if up else "v", s=40, color=COLORS["discard"], clip_on=False,
                       zorder=2)
    for p in s.labelled():
        text = p.label.split(": ", 1)[1] if ": " in p.label else p.label
        left = p.x > 0.7 * s.x_max  # near the right edge: label to the left, not cut off
        ax.annotate(text[:40], (p.x, p.y), xytext=(-6 if left else 6, 6),
                    textcoords="offset points", ha="right" if left else "left",
                    fontsize=8, color=COLORS["keep"], rotation=-20 if left else 20,
                    rotation_mode="anchor")
    ax.set_ylim(lane - span * 0.04, s.y_hi)
    ticks = [t for t in ax.get_yticks() if s.y_lo <= t <= s.y_hi]
    ax.set_yticks([lane, *ticks], ["no score", *(f"{t:g}" for t in ticks)])
    ax.set_xlim(0.5, s.x_max + 0.5)
    ax.grid(alpha=0.25)
    ax.legend(loc="upper right", fontsize=9)
