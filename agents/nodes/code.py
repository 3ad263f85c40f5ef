"""code: the coder turns the hypothesis (and any reviewer feedback) into a unified diff."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from agents.context import ResearchContext
from agents.llm.base import AgentError, AgentStop, CodeContext, Hypothesis
from agents.nodes.plan import read_program
from agents.state import ResearchState


def code(state: ResearchState, runtime: Runtime[ResearchContext]) -> dict[str, Any]:
    ctx = runtime.context
    exp_id = state["experiment_id"]
    assert exp_id is not None and state.get("hypothesis") is not None
    ctx.progress.step("code", exp_id, f"round {state.get('review_round', 0) + 1}")
    cctx = CodeContext(
        experiment_id=exp_id, hypothesis=Hypothesis(**state["hypothesis"]),
        files=ctx.tree.files(ctx.config.editable), base_dir=ctx.tree.path,
        editable=ctx.config.editable, feedback=state.get("feedback", ""),
        round=state.get("review_round", 0), program=read_program(ctx),
    )
    try:
        proposal = ctx.agent.code(cctx)
    except AgentStop as e:
        return {"outcome": {"status": "crash", "reason": f"coder failed: {e}"},
                "stop_reason": str(e)}
    except AgentError as e:
        return {"outcome": {"status": "crash", "reason": f"coder failed: {e}"}}
    # A new diff voids the previous round's guard verdict.
    ctx.ledger.update(exp_id, diff=proposal.diff, guard_verdict=None, guard_findings=None)
    return {"diff": proposal.diff, "guard": None, "review": None}
