"""The graph's state: what one research run carries from step to step.

Checkpointed after every step (SQLite, synchronous), so it holds only plain data. Live
objects (the agent, the ledger, the sandbox backend) are in `ResearchContext`.
Per-experiment fields are reset by `plan` at the start of each experiment.
"""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

LESSONS_KEPT = 8


def recent_lessons(old: list[str] | None, new: list[str] | None) -> list[str]:
    """Append, keeping only the last few: the ledger summary holds the full story."""
    return ((old or []) + (new or []))[-LESSONS_KEPT:]


class ResearchState(TypedDict, total=False):
    run_id: str
    """The ledger's id of this run; experiment ids start with it."""
    attempt_index: int
    """Experiments this run has planned so far (the next one's index)."""
    baseline_index: int
    """Baseline measurements this run has started so far."""
    experiment_id: str | None
    """The experiment under way, None between experiments."""
    hypothesis: dict[str, Any] | None
    """The planner's Hypothesis (text, rationale, meta)."""
    diff: str
    """The coder's latest unified diff."""
    review_round: int
    """Reviews done for this experiment (the coder may be sent back while below the bound)."""
    feedback: str
    """The reviewer's request to the coder, empty in the first round."""
    guard: dict[str, Any] | None
    """The guards' report on `diff`: verdict and findings."""
    review: dict[str, Any] | None
    """The reviewer's verdict on `diff`: decision and reasons."""
    result: dict[str, Any] | None
    """The sandbox's ExperimentResult, as a dict."""
    outcome: dict[str, Any] | None
    """The final word before `record`: status, reason, and the keep rule's numbers."""
    lessons: Annotated[list[str], recent_lessons]
    """Why recent attempts failed, for the next plan."""
    stop_reason: str | None
    """Set by `plan` (or a failed baseline, or a coder or reviewer whose agent raised
    `AgentStop`) to end the run; `plan` ends it at its next turn."""
