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


def _audit_review(ctx: ResearchContext, exp_id: str, state: ResearchState, status: str,
                  reason: str) -> None:
    """A reviewer's rejection joins the audit trail. Guard checks and what the sandbox or
    the evaluator stopped were recorded when they happened, by the experiment service."""
    from guards import AttemptMeta

    review = state.get("review") or {}
    if not (status == "rejected" and review.get("decision") == "reject"):
        return
    hyp = (state.get("hypothesis") or {}).get("text", "")
    ctx.audit.record_violation(
        workspace=str(ctx.config.root), kind="review", message=reason,
        meta=AttemptMeta(experiment_id=exp_id, agent_role="reviewer",
                         agent_model=ctx.agent.models().get("reviewer", ""), hypothesis=hyp),
        patch_text=state.get("diff", ""), severity="review")


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
        _audit_review(ctx, exp_id, state, status, reason)
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
