"""baseline: one measurement of the unmodified trainer (the noise floor needs several)."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from agents.context import ResearchContext
from agents.nodes.sandbox_call import sandbox_run, scored
from agents.state import ResearchState


def baseline(state: ResearchState, runtime: Runtime[ResearchContext]) -> dict[str, Any]:
    ctx = runtime.context
    index = state.get("baseline_index", 0) + 1
    exp_id = f"{state['run_id']}-b{index}"
    ctx.progress.step("baseline", exp_id, f"measuring the noise floor ({index})")
    ctx.ledger.open_experiment(exp_id, run_id=state["run_id"], kind="baseline",
                               profile=ctx.profile, agent=ctx.agent.name,
                               parent=ctx.tree.head(), setup=ctx.setup)
    ctx.ledger.update(exp_id, hypothesis="baseline: the current best trainer, unchanged")
    result = sandbox_run(ctx, exp_id, None)
    row = ctx.ledger.get(exp_id) or {}
    if row.get("status") not in ("keep", "crash"):
        if scored(result):
            ctx.ledger.finish(exp_id, "keep", "baseline measurement")
        else:
            ctx.ledger.finish(exp_id, "crash", f"{result.get('status')}: {result.get('reason')}")
    if not scored(result):
        return {"baseline_index": index, "stop_reason":
                f"baseline {exp_id} failed ({result.get('status')}: {result.get('reason')}); "
                f"fix the trainer or the sandbox first"}
    return {"baseline_index": index}
