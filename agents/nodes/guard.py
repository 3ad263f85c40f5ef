"""guard: the deterministic diff guards judge the patch; a block ends the attempt.

Every check goes through the experiment service, which records it in the audit trail under
the workspace's own path (the guards compare against the research tree, the current best
files). On a replayed step the verdict
already in the ledger for this very diff is reused, so the audit trail gets one entry.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from agents.context import ResearchContext
from agents.state import ResearchState


def guard(state: ResearchState, runtime: Runtime[ResearchContext]) -> dict[str, Any]:
    ctx = runtime.context
    exp_id = state["experiment_id"]
    assert exp_id is not None
    ctx.progress.step("guard", exp_id)
    row = ctx.ledger.get(exp_id) or {}
    if row.get("guard_verdict") and row.get("diff") == state["diff"]:
        verdict, findings = row["guard_verdict"], row["guard_findings"] or []
    else:
        from guards import AttemptMeta

        hyp = state.get("hypothesis") or {}
        role = getattr(ctx.agent, "audit_role", "coder")  # "command" for a user's own agent
        meta = AttemptMeta(experiment_id=exp_id, agent_role=role,
                           agent_model=ctx.agent.models().get("coder", ""),
                           hypothesis=hyp.get("text", ""))
        report = ctx.service.check(state["diff"], meta, against=ctx.guard_config())
        verdict, findings = report.verdict, [f.to_dict() for f in report.findings]
        ctx.ledger.update(exp_id, guard_verdict=verdict, guard_findings=findings)
    out: dict[str, Any] = {"guard": {"verdict": verdict, "findings": findings}}
    if verdict == "blocked":
        blocks = [f for f in findings if f.get("severity") == "block"]
        # Rule ids first: they survive when a lesson or summary cuts the messages short.
        rules = ", ".join(sorted({str(f.get("rule_id")) for f in blocks}))
        details = "; ".join(f"{f.get('rule_id')}: {f.get('message')}" for f in blocks)
        out["outcome"] = {"status": "blocked", "reason": f"[{rules}] {details}"}
    return out
