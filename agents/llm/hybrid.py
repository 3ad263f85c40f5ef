"""The hybrid agent: an LLM proposes structural changes, a classical optimizer tunes
the numbers of the current best in between, and the LLM sees the optimizer's state.

Ferreira et al. 2026 (arXiv 2603.24647) found CMA-ES and TPE beat pure LLM agents inside
a fixed search space and a hybrid that hands the LLM the optimizer's state beat both.
Here the structural planner is any ResearchAgent (the Anthropic agent with a key; the
scripted agent offline, which is how this is tested) and the optimizer is the tuner.

Which turn is whose is a function of the experiment's index alone (a share of the turns
spread evenly), so a resumed run hands out the same turns; a turn records its owner in
the hypothesis, so the coder and the reviewer of that turn are the planner's own.
Every proposal, from either side, goes through the same guards, sandbox and evaluator.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from agents.llm.base import (
    CodeContext,
    Hypothesis,
    PatchProposal,
    PlanContext,
    ResearchAgent,
    ReviewContext,
    Verdict,
)
from agents.llm.tuner import TunerAgent

STRUCTURAL, NUMERIC = "structural", "numeric"


def turn_of(index: int, share: float) -> tuple[str, int]:
    """(owner, the owner's own turn count before this one) of experiment `index` (0-based),
    with `share` of all turns structural, spread evenly."""
    before = math.floor(index * share)
    if math.floor((index + 1) * share) > before:
        return STRUCTURAL, before
    return NUMERIC, index - before


def optimizer_brief(state: dict[str, Any]) -> str:
    """The optimizer's state as the planner reads it (numbers the ledger already holds)."""
    return ("\n\nThe numeric optimizer tuning the current best between your structural "
            "changes (its trials are in the history above):\n" + json.dumps(state, indent=1))


class HybridAgent:
    name = "hybrid"

    def __init__(self, structural: ResearchAgent, tuner: TunerAgent, *,
                 share: float) -> None:
        self.structural = structural
        self.tuner = tuner
        self.share = share

    def models(self) -> dict[str, str]:
        s, t = self.structural.models(), self.tuner.models()
        return {role: f"{s[role]} + {t[role]}" for role in s}

    def _owner(self, hypothesis: Any) -> ResearchAgent:
        meta = hypothesis.meta if hasattr(hypothesis, "meta") else hypothesis.get("meta", {})
        return self.structural if meta.get("hybrid_turn") == STRUCTURAL else self.tuner

    def plan(self, ctx: PlanContext) -> Hypothesis | None:
        owner, own_index = turn_of(ctx.attempt_index, self.share)
        if owner == STRUCTURAL:
            # The tuner's view is taken first: a kept structural change re-centres it.
            sctx = dataclasses.replace(
                ctx, attempt_index=own_index,
                history=ctx.history + optimizer_brief(
                    self.tuner.state(ctx.files.get(self.tuner.path))))
            hyp = self.structural.plan(sctx)
            if hyp is not None:
                return dataclasses.replace(hyp, meta={**hyp.meta, "hybrid_turn": STRUCTURAL})
            # The structural side has run dry: the optimizer goes on alone.
        hyp = self.tuner.plan(ctx)
        return dataclasses.replace(hyp, meta={**hyp.meta, "hybrid_turn": NUMERIC})

    def code(self, ctx: CodeContext) -> PatchProposal:
        return self._owner(ctx.hypothesis).code(ctx)

    def review(self, ctx: ReviewContext) -> Verdict:
        return self._owner(ctx.hypothesis).review(ctx)
