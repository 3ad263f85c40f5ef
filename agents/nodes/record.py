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


def _audit(ctx: ResearchContext, exp_id: str, state: ResearchState, status: str,
           reason: str) -> None:
    """What the guards did not already record: runtime violations, evaluator refusals and
    reviewer rejections join the audit trail (guard checks are recorded by `guard`)."""
    from guards import AttemptMeta

    result = state.get("result") or {}
    review = state.get("review") or {}
    hyp = (state.get("hypothesis") or {}).get("text", "")
    models = ctx.agent.models()
    if result.get("status") in ("violation", "rejected"):
        kind, role = ("evaluator" if result["status"] == "rejected" else "sandbox"), "coder"
    elif status == "rejected" and review.get("decision") == "reject":
        kind, role = "review", "reviewer"
    else:
        return
    ctx.audit.record_violation(
        workspace=str(ctx.config.root), kind=kind, message=reason,
        meta=AttemptMeta(experiment_id=exp_id, agent_role=role,
                         agent_model=models.get(role, ""), hypothesis=hyp),
        log_tail=str(result.get("log_tail") or ""), patch_text=state.get("diff", ""),
        details={"violations": result.get("violations") or [],
                 "sandbox_status": result.get("status")} if result else None)


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
        _audit(ctx, exp_id, state, status, reason)
        ctx.ledger.finish(exp_id, status, reason, commit_sha=commit,
                          best_before=outcome.get("best_before"), margin=outcome.get("margin"),
                          threshold=outcome.get("threshold"), noise=outcome.get("noise"))
    counts = ctx.ledger.counts(state["run_id"])
    best, _ = ctx.ledger.best(ctx.profile, ctx.setup)
    ctx.progress.update(experiments=sum(counts.values()), kept=counts.get("keep", 0),
                        blocked=counts.get("blocked", 0) + counts.get("rejected", 0), best=best)
    out: dict[str, Any] = {"experiment_id": None}
    if status not in ("keep", "discard"):
        out["lessons"] = [f"{exp_id} {status}: {one_line(reason, 200)}"]
    return out
