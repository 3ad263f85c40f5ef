"""The progress plot as numbers: which points, where the running best steps, the y range.

Both the SVG (in the page) and the PNG (matplotlib) draw from this, so they agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from agents.report.model import ReportData


@dataclass(frozen=True)
class Point:
    x: int
    """1-based position in the ledger."""
    y: float | None
    """The metric; None for attempts that were never scored (drawn on the bottom lane)."""
    status: str
    label: str
    clipped: bool = False
    """True when y lies outside the plotted range (drawn at the edge, marked)."""


@dataclass(frozen=True)
class Series:
    points: list[Point]
    best_steps: list[tuple[int, float]]
    """(x, running best) at each point where the best changed, in order, plus the last x."""
    y_lo: float
    y_hi: float
    x_max: int
    baseline: float | None
    band: tuple[float, float] | None
    """The noise band around the baseline: a change inside it is not kept."""

    def labelled(self, limit: int = 30) -> list[Point]:
        """Kept points that moved the best, the latest `limit` of them: enough to read the
        story, few enough that a night of 1000 experiments stays legible (and fast)."""
        xs = {x for x, _ in self.best_steps[:-1]}
        pts = [p for p in self.points
               if p.x in xs and p.status == "keep" and p.y is not None and not p.clipped]
        return pts[-limit:]


def build_series(data: ReportData) -> Series:
    """Order, running best and a y range that a single wild value cannot flatten."""
    pts: list[Point] = []
    best: float | None = data.baseline
    steps: list[tuple[int, float]] = [(0, best)] if best is not None else []
    research = [e for e in data.experiments if e.kind != "try"]  # manual tries: table only
    for i, e in enumerate(research, start=1):
        y = e.value if e.value is not None and math.isfinite(e.value) else None
        if e.status in ("crash", "blocked", "rejected"):
            y = None  # whatever number came back is void
        pts.append(Point(i, y, e.status, _label(e.id, e.hypothesis, e.status, y, e.reason)))
        if y is not None and e.status == "keep" and (best is None or data.better(y, best)):
            best = y
            steps.append((i, y))
        elif y is not None and e.status == "baseline" and best is None:
            best = y
            steps.append((i, y))
    x_max = max(len(pts), 1)
    if steps:
        steps.append((x_max, steps[-1][1]))

    ys = [p.y for p in pts if p.y is not None]
    if data.baseline is not None:
        ys.append(data.baseline)
    band = None
    if data.baseline is not None and data.noise:
        band = (data.baseline - data.noise, data.baseline + data.noise)
        ys.extend(band)
    y_lo, y_hi = _range(ys, data.direction == "minimize")
    pts = [
        Point(p.x, p.y, p.status, p.label, clipped=p.y is not None and not y_lo <= p.y <= y_hi)
        for p in pts
    ]
    return Series(pts, steps, y_lo, y_hi, x_max, data.baseline, band)


def _label(eid: str, hypothesis: str, status: str, y: float | None, reason: str) -> str:
    text = f"#{eid} {status}"
    if y is not None:
        text += f" {y:.4f}"
    if hypothesis:
        text += f": {hypothesis}"
    if reason and status in ("crash", "blocked", "rejected"):
        text += f" ({reason})"
    return text


def _range(ys: list[float], minimize: bool) -> tuple[float, float]:
    """Cover the values that matter; a diverged run (bpb 9 among 2.1s) is clipped, not scaled to.

    For a minimized metric the interesting side is the low one: keep every value below the
    median, and above it at most three times the median-to-min spread or 3% of the median,
    whichever is larger (so a handful of near-identical baselines does not clip an ordinary
    discard); symmetrically when maximizing.
    """
    if not ys:
        return 0.0, 1.0
    s = sorted(ys)
    lo, hi = s[0], s[-1]
    med = s[len(s) // 2]
    floor = 0.03 * abs(med)
    if minimize:
        hi = min(hi, med + max(3 * (med - lo), floor))
    else:
        lo = max(lo, med - max(3 * (hi - med), floor))
    if hi - lo < 1e-9:
        pad = max(abs(hi) * 0.01, 1e-3)
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.06
    return lo - pad, hi + pad


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values (1, 2, 5 times a power of ten) covering [lo, hi]."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    ticks = []
    v = start
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 12))
        v += step
    return ticks
