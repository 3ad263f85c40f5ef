"""One sandbox run per experiment id, however often the step is replayed.

LangGraph replays a step that had not been checkpointed when the process died. The
ledger says whether this experiment's result is already in: then it is returned and
nothing runs. Otherwise the attempt is counted and run in a fresh run folder (the
sandbox never reuses one) through the experiment service, which records in the audit
trail whatever the sandbox or the evaluator stopped (violations, a kill at the time limit,
an out-of-memory kill, a probe refusal), and its result is stored once.
"""

from __future__ import annotations

from typing import Any

from agents.context import ResearchContext


def sandbox_run(ctx: ResearchContext, exp_id: str, patch: str | None) -> dict[str, Any]:
    row = ctx.ledger.get(exp_id)
    if row is not None and row["result"] is not None:
        return row["result"]
    from guards import AttemptMeta
    from sandbox import ExperimentSpec

    attempt = ctx.ledger.mark_run_started(exp_id)
    folder = exp_id if attempt == 1 else f"{exp_id}-retry{attempt - 1}"
    spec = ExperimentSpec(config=ctx.config, patch=patch, profile=ctx.profile,
                          experiment_id=folder, time_budget_s=ctx.time_budget_s,
                          base_dir=ctx.tree.path, gpus=ctx.gpus)
    row = row or {}
    role = getattr(ctx.agent, "audit_role", "coder") if patch else "baseline"
    meta = AttemptMeta(experiment_id=exp_id, agent_role=role,
                       agent_model=ctx.agent.models().get("coder", "") if patch else "",
                       hypothesis=str(row.get("hypothesis") or ""))
    result = ctx.service.run(spec, meta).to_dict()
    ctx.ledger.store_result(exp_id, result)
    stored = ctx.ledger.get(exp_id)
    assert stored is not None and stored["result"] is not None
    return stored["result"]


def scored(result: dict[str, Any]) -> bool:
    val = result.get("val_bpb")
    return result.get("status") == "ok" and isinstance(val, int | float) and val == val
