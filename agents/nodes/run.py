"""run: train the patched trainer and score it, in the sandbox (once per experiment)."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from agents.context import ResearchContext
from agents.nodes.sandbox_call import sandbox_run
from agents.state import ResearchState


def run(state: ResearchState, runtime: Runtime[ResearchContext]) -> dict[str, Any]:
    ctx = runtime.context
    exp_id = state["experiment_id"]
    assert exp_id is not None
    ctx.progress.step("run", exp_id, "training and evaluating in the sandbox")
    return {"result": sandbox_run(ctx, exp_id, state["diff"])}
