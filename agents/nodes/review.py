"""review: the reviewer approves, sends the diff back to the coder, or rejects it.

It only ever sees patches the guards passed: a deterministic block is final. A reviewer
that fails never approves: no usable verdict is a rejection; a failed API call is a crash
(no judgement was made, so nothing goes into the audit trail as a rejection), and one
whose API cannot go on (`AgentStop`) also ends the run.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from agents.context import ResearchContext
from agents.llm.base import (
    AgentError,
    AgentOutputError,
    AgentStop,
    Hypothesis,
    ReviewContext,
    Verdict,
)
from agents.nodes.plan import read_program
from agents.state import ResearchState


def review(state: ResearchState, runtime: Runtime[ResearchContext]) -> dict[str, Any]:
    ctx = runtime.context
    exp_id = state["experiment_id"]
    assert exp_id is not None and state.get("guard") is not None
    rounds = state.get("review_round", 0)
    final = rounds >= ctx.settings.max_review_rounds
    ctx.progress.step("review", exp_id, f"round {rounds + 1}")
    findings = [f for f in state["guard"]["findings"] if f.get("severity") != "block"]
    rctx = ReviewContext(experiment_id=exp_id, hypothesis=Hypothesis(**state["hypothesis"]),
                         diff=state["diff"], findings=findings,
                         files=ctx.tree.files(ctx.config.editable), round=rounds,
                         final_round=final, program=read_program(ctx))
    try:
        verdict = ctx.agent.review(rctx)
    except AgentStop as e:
        return {"outcome": {"status": "crash", "reason": f"reviewer failed: {e}"},
                "stop_reason": str(e)}
    except AgentOutputError as e:
        verdict = Verdict("reject", f"reviewer failed: {e}")
    except AgentError as e:
        return {"outcome": {"status": "crash", "reason": f"reviewer failed: {e}"}}
    decision = verdict.decision
    if decision == "revise" and final:
        decision = "reject"
    ctx.ledger.update(exp_id, review_decision=decision, review_reasons=verdict.reasons,
                      review_rounds=rounds + 1)
    out: dict[str, Any] = {"review": {"decision": decision, "reasons": verdict.reasons},
                           "review_round": rounds + 1,
                           "feedback": verdict.reasons if decision == "revise" else ""}
    if decision == "reject":
        out["outcome"] = {"status": "rejected", "reason": f"reviewer: {verdict.reasons}"}
    return out
