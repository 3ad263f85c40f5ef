"""The keep rule: a change is kept only when it beats the best by more than the noise.

Wall-clock-budgeted training is noisy (steps done depend on machine load), so the
baseline is measured several times first; its sample standard deviation is the noise.
A change is kept when `improvement > keep_k x max(noise, min_noise)`. A change whose only
effect is a seed, or none at all, is never kept whatever it scored: its "improvement" is
noise by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agents.ledger import NoiseFloor
from agents.patch_effect import Effect


@dataclass(frozen=True)
class Decision:
    status: Literal["keep", "discard"]
    reason: str
    best_before: float | None
    margin: float | None
    """Improvement over `best_before`, positive = better (whatever the metric's direction)."""
    threshold: float
    noise: float


def decide(value: float, *, best: float | None, noise: NoiseFloor, keep_k: float,
           min_noise: float, direction: str = "minimize", effect: Effect = "code") -> Decision:
    """Keep or discard one scored experiment."""
    sigma = max(noise.std if noise.n >= 2 else 0.0, min_noise)
    threshold = keep_k * sigma
    if best is None:
        return Decision("discard", "no baseline measured: nothing to compare with",
                        None, None, threshold, sigma)
    margin = (best - value) if direction == "minimize" else (value - best)
    if effect == "seed_only":
        return Decision("discard", "only the random seed changed: never kept as an improvement",
                        best, margin, threshold, sigma)
    if effect == "none":
        return Decision("discard", "the patch changes no code (comments or whitespace only)",
                        best, margin, threshold, sigma)
    if margin > threshold:
        return Decision("keep", f"better than the best by {margin:.4f} > {threshold:.4f} "
                        f"({keep_k:g} x noise {sigma:.4f})", best, margin, threshold, sigma)
    return Decision("discard", f"margin {margin:+.4f} is within {threshold:.4f} "
                    f"({keep_k:g} x noise {sigma:.4f})", best, margin, threshold, sigma)
