"""decide: the keep rule on a scored experiment (pure: a replay decides the same)."""

from __future__ import annotations

import dataclasses
from typing import Any

from langgraph.runtime import Runtime

from agents.context import ResearchContext
from agents.keep import decide as keep_rule
from agents.patch_effect import classify_effect
from agents.state import ResearchState


def decide(state: ResearchState, runtime: Runtime[ResearchContext]) -> dict[str, Any]:
    ctx = runtime.context
    ctx.progress.step("decide", state["experiment_id"])
    value = float((state["result"] or {})["val_bpb"])
    best, _ = ctx.ledger.best(ctx.profile, ctx.setup)
    decision = keep_rule(value, best=best, noise=ctx.ledger.noise_floor(ctx.profile, ctx.setup),
                         keep_k=ctx.settings.keep_k, min_noise=ctx.settings.min_noise,
                         direction=ctx.config.direction,
                         effect=classify_effect(state["diff"], ctx.tree.path))
    return {"outcome": dataclasses.asdict(decision)}
