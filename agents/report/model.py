"""What a report shows, as plain data: no SQLite, no HTML.

The loader fills these from the ledger and the audit trail; the SVG plot, the HTML page and
the PNG writer read only these. Keeping the schemas of other packages out of the renderers
means a ledger column rename breaks one function (`load.py`), not the page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Direction = Literal["minimize", "maximize"]

# Statuses the ledger uses for one experiment; "baseline" marks the noise measurements.
SCORED = ("keep", "discard", "baseline")
UNSCORED = ("crash", "blocked", "rejected")


@dataclass(frozen=True)
class Experiment:
    """One row of the ledger, in the order it was recorded."""

    id: str
    status: str
    """keep / discard / crash / blocked / rejected / tried (the ledger's word), or baseline."""
    hypothesis: str = ""
    value: float | None = None
    """The metric from the evaluator (val_bpb); None when nothing was scored."""
    margin: float | None = None
    """How much better than the best before it (positive = better), as the ledger recorded."""
    seconds: float | None = None
    """Wall time of the experiment (training + evaluation), when known."""
    trained_s: float | None = None
    """The training window the sandbox measured from outside (first read of training data
    to the step's exit): what the budget is judged on."""
    export_s: float | None = None
    """From model.pt2's creation to the step's exit: the export, as seen from outside."""
    tokens: int | None = None
    """LLM tokens spent on it (input + output); None when no LLM was used."""
    cost_usd: float | None = None
    agent: str = ""
    """Who proposed it: 'tuner', 'scripted', 'anthropic'."""
    model: str = ""
    """The model(s) behind it, as the ledger recorded them (e.g. 'planner=..., coder=...')."""
    reason: str = ""
    """One line: why it crashed, was blocked or rejected."""
    created_at: str = ""
    kind: str = "experiment"
    """experiment / baseline / try: a `try` is a person's manual experiment (`labwarden try`,
    `labwarden baseline`), listed but never part of the research progress."""


@dataclass(frozen=True)
class Finding:
    """One guard finding, as the audit trail stored it."""

    rule: str
    severity: str
    file: str | None
    line: int | None
    evidence: str
    message: str


@dataclass(frozen=True)
class Attempt:
    """One blocked or rejected attempt: a guard block, a reviewer rejection, a sandbox violation."""

    id: str
    """The audit record id (or the ledger id when only the ledger knows it)."""
    verdict: str
    experiment_id: str | None
    created_at: str
    role: str
    model: str
    hypothesis: str
    patch: str
    findings: tuple[Finding, ...]
    patch_bytes: int | None = None
    """Size of the whole patch when the audit trail kept only an excerpt of it."""


@dataclass(frozen=True)
class Rule:
    """An active guard rule (what `labwarden guards list` shows) and the cheat it stops."""

    id: str
    severity: str = ""
    source: str = ""
    description: str = ""


@dataclass
class ReportData:
    """Everything one report needs."""

    workspace: str
    metric: str = "val_bpb"
    direction: Direction = "minimize"
    experiments: list[Experiment] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    other_stops: list[Rule] = field(default_factory=list)
    """Stops that are not guard rules (reviewer, evaluator probe, sandbox), explained."""
    rules_source: str = ""
    """Where `rules` came from: the guards registry today, or the audit trail."""
    baseline: float | None = None
    noise: float | None = None
    """Half-width of the band a change must leave to be kept (the keep threshold)."""
    seal_hash: str | None = None
    """The seal of the prepared data as `seal.json` says today."""
    seal_verified: tuple[str, str] | None = None
    """(seal hash, experiment id): what the evaluator verified in the latest scored experiment."""
    generated_at: str = ""
    notes: list[str] = field(default_factory=list)
    """One-line warnings shown on the page (a missing audit trail, an unreadable table)."""

    def better(self, a: float, b: float) -> bool:
        """True when metric value `a` beats `b` in this report's direction."""
        return a < b if self.direction == "minimize" else a > b
