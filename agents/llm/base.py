"""The one interface every research agent meets, and the data that crosses it.

An agent plays three roles for one experiment: planner (a hypothesis from the brief, the
current trainer and the ledger), coder (a unified diff for it) and reviewer (approve,
send back, or reject a diff in the light of the guard findings). The graph calls them in
that order: `plan` once, then `code` and `review` for up to 1 + max_review_rounds rounds.

Contract:
- `plan` returns None when the agent has nothing more to try (a script ran out); the
  loop then stops.
- `code` returns a `PatchProposal` or raises `AgentOutputError` when the agent could not
  produce a usable diff within its bounded retries; the attempt counts as a crash.
- `review` returns a `Verdict`. It never sees a patch the guards blocked: an LLM can add
  a rejection but can never overrule a deterministic block.
- Any method may raise `AgentStop` when going on is pointless (the API refuses the key or
  the model, or keeps failing): the loop then ends the run with its message.
- Token use is reported through the `on_usage` callback given to the constructor, one
  `Usage` per API call, before the method returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from labwarden.errors import LabwardenError

Role = Literal["planner", "coder", "reviewer"]
Decision = Literal["approve", "revise", "reject"]


class AgentError(LabwardenError):
    """An agent failed in a way the loop reports and moves on from."""


class AgentOutputError(AgentError):
    """The model's answer stayed malformed after the bounded number of re-asks."""


class AgentRefusal(AgentOutputError):
    """The model declined to answer (the API's `stop_reason: refusal`)."""


class AgentStop(AgentError):
    """The agent cannot go on (a rejected key, an unknown model id, the API failing N
    times in a row): the loop ends the run with this one-line message as its stop reason,
    and `labwarden run --resume` continues once the cause is fixed."""


@dataclass(frozen=True)
class Usage:
    """One API call's tokens and cost (None where the model's price is unknown)."""

    role: Role
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read: int = 0
    cache_write: int = 0
    cost_usd: float | None = None
    ok: bool = True
    note: str = ""


UsageSink = Callable[[str | None, Usage], None]
"""Called as `on_usage(experiment_id, usage)` after every API call."""


@dataclass(frozen=True)
class Hypothesis:
    text: str
    rationale: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    """Agent-specific facts to keep in the ledger (the tuner's parameters, a script file)."""


@dataclass(frozen=True)
class PatchProposal:
    diff: str
    description: str = ""


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    reasons: str


@dataclass(frozen=True)
class PlanContext:
    experiment_id: str
    attempt_index: int
    """How many experiments this run planned before this one (0 for the first)."""
    program: str
    """program.md, the human's brief."""
    files: dict[str, str]
    """The editable files of the current best tree, path -> text."""
    history: str
    """The ledger's planner summary."""
    lessons: list[str] = field(default_factory=list)
    """Why recent attempts of this run were blocked, rejected or crashed."""


@dataclass(frozen=True)
class CodeContext:
    experiment_id: str
    hypothesis: Hypothesis
    files: dict[str, str]
    base_dir: Path
    """The current best tree; the diff must apply to it with `git apply`."""
    editable: tuple[str, ...]
    """Globs of the files a patch may touch."""
    feedback: str = ""
    """The reviewer's request from the previous round, empty in the first."""
    round: int = 0
    program: str = ""
    """program.md, the human's brief."""


@dataclass(frozen=True)
class ReviewContext:
    experiment_id: str
    hypothesis: Hypothesis
    diff: str
    findings: list[dict[str, Any]]
    """Guard findings of severity review or note (a block never reaches the reviewer)."""
    files: dict[str, str]
    round: int = 0
    final_round: bool = False
    """No more revisions allowed: the reviewer must approve or reject."""
    program: str = ""
    """program.md, the human's brief."""


class ResearchAgent(Protocol):
    """Planner, coder and reviewer behind one object. See the module docstring."""

    name: str

    def models(self) -> dict[str, str]:
        """Model id per role, for the ledger and the audit trail."""
        ...

    def plan(self, ctx: PlanContext) -> Hypothesis | None: ...

    def code(self, ctx: CodeContext) -> PatchProposal: ...

    def review(self, ctx: ReviewContext) -> Verdict: ...


def rule_review(ctx: ReviewContext) -> Verdict:
    """The deterministic reviewer of the offline agents: any `review` finding rejects.

    Guards mark as `review` what is suspicious but not certainly a cheat (a seed-only
    change, for one). With no model to weigh them, the safe answer is no.
    """
    flagged = [f for f in ctx.findings if f.get("severity") == "review"]
    if flagged:
        rules = ", ".join(sorted({str(f.get("rule_id")) for f in flagged}))
        return Verdict("reject", f"guard findings need a reviewer and none is configured: {rules}")
    return Verdict("approve", "no guard finding needs review")
