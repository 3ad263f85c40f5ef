"""record: the experiment's final word, in the ledger, the audit trail and, if kept, git.

Idempotent: a replay finds the row already final and changes nothing; a kept patch is
committed once (the research tree recognises its own commit by the experiment id).
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from agents.context import ResearchContext
from agents.ledger import FINAL
from agents.state import ResearchState
from agents.summary import one_line


def _audit_runtime(ctx: ResearchContext, exp_id: str, state: ResearchState,
                   reason: str) -> None:
    """Runtime violations and evaluator refusals join the guards' blocks in the audit trail."""
    result = state.get("result") or {}
    if result.get("status") not in ("violation", "rejected"):
        return
    hyp = (state.get("hypothesis") or {}).get("text", "")
    ctx.audit.record_violation(
        experiment_id=exp_id, rule_id=f"runtime.{result['status']}", message=reason,
        patch=state.get("diff", ""), log_tail=result.get("log_tail", ""),
        agent_role="coder", agent_model=ctx.agent.models().get("coder", ""), hypothesis=hyp)


def record(state: ResearchState, runtime: Runtime[ResearchContext]) -> dict[str, Any]:
    ctx = runtime.context
    exp_id = state["experiment_id"]
    assert exp_id is not None
    outcome = state.get("outcome") or {"status": "crash", "reason": "no outcome"}
    status, reason = outcome["status"], outcome.get("reason", "")
    ctx.progress.step("record", exp_id, status)
    row = ctx.ledger.get(exp_id) or {}
    if row.get("status") not in FINAL:
        commit = None
        if status == "keep":
            hyp = (state.get("hypothesis") or {}).get("text", exp_id)
            commit = ctx.tree.commit(state["diff"], one_line(hyp, 72), exp_id)
        _audit_runtime(ctx, exp_id, state, reason)
        ctx.ledger.finish(exp_id, status, reason, commit_sha=commit,
                          best_before=outcome.get("best_before"), margin=outcome.get("margin"),
                          threshold=outcome.get("threshold"), noise=outcome.get("noise"))
    counts = ctx.ledger.counts(state["run_id"])
    best, _ = ctx.ledger.best(ctx.profile)
    ctx.progress.update(experiments=sum(counts.values()), kept=counts.get("keep", 0),
                        blocked=counts.get("blocked", 0) + counts.get("rejected", 0), best=best)
    out: dict[str, Any] = {"experiment_id": None}
    if status not in ("keep", "discard"):
        out["lessons"] = [f"{exp_id} {status}: {one_line(reason, 200)}"]
    return out
