"""evaluate: read what the sandbox and the frozen evaluator said; only their metric counts.

A scored result goes on to `decide`. Anything else is final here, by the experiment
service's one mapping (`labwarden.experiment.final_status`): a runtime violation is a
block, an evaluator probe's refusal a rejection, every other failure a crash.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from agents.context import ResearchContext
from agents.nodes.sandbox_call import scored
from agents.state import ResearchState
from labwarden.experiment import final_status


def evaluate(state: ResearchState, runtime: Runtime[ResearchContext]) -> dict[str, Any]:
    ctx = runtime.context
    result = state["result"] or {}
    ctx.progress.step("evaluate", state["experiment_id"], f"sandbox: {result.get('status')}")
    if scored(result):
        return {}
    status = final_status(result.get("status")) or "crash"
    reason = f"sandbox {result.get('status')}: {result.get('reason') or '(no reason given)'}"
    violations = result.get("violations") or []
    if violations:
        reason += " | violations: " + "; ".join(map(str, violations))
    return {"outcome": {"status": status, "reason": reason}}
