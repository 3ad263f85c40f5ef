"""plan: stop if a limit is reached, else open the next experiment and ask for a hypothesis."""

from __future__ import annotations

import dataclasses
from typing import Any

from langgraph.runtime import Runtime

from agents.context import ResearchContext
from agents.llm.base import AgentError, AgentStop, PlanContext
from agents.state import ResearchState
from agents.summary import planner_summary

FRESH: dict[str, Any] = {"diff": "", "review_round": 0, "feedback": "", "guard": None,
                         "review": None, "result": None, "outcome": None}
"""Per-experiment fields, reset at the start of each experiment."""


def read_program(ctx: ResearchContext) -> str:
    """program.md, the human's brief, as every role is shown it."""
    program = ctx.config.root / "program.md"
    return program.read_text(encoding="utf-8") if program.is_file() else ""


def _stop_reason(state: ResearchState, ctx: ResearchContext) -> str | None:
    if state.get("stop_reason"):  # a coder or reviewer whose API cannot go on
        return state["stop_reason"]
    if ctx.stop.is_set():
        return "interrupted"
    if ctx.out_of_time():
        return "time limit reached"
    if ctx.max_experiments is not None and state.get("attempt_index", 0) >= ctx.max_experiments:
        return f"{ctx.max_experiments} experiments done"
    return None


def plan(state: ResearchState, runtime: Runtime[ResearchContext]) -> dict[str, Any]:
    ctx = runtime.context
    reason = _stop_reason(state, ctx)
    if reason:
        return {"stop_reason": reason, "experiment_id": None}
    index = state.get("attempt_index", 0)
    exp_id = f"{state['run_id']}-{index + 1:03d}"
    ctx.progress.step("plan", exp_id)
    ctx.ledger.open_experiment(exp_id, run_id=state["run_id"], kind="experiment",
                               profile=ctx.profile, agent=ctx.agent.name,
                               parent=ctx.tree.head(), setup=ctx.setup)
    ctx.ledger.update(exp_id, agent_model=", ".join(
        f"{role}={model}" for role, model in ctx.agent.models().items()))
    pctx = PlanContext(
        experiment_id=exp_id, attempt_index=index, program=read_program(ctx),
        files=ctx.tree.files(ctx.config.editable),
        history=planner_summary(ctx.ledger, ctx.profile, ctx.setup),
        lessons=list(state.get("lessons") or []),
    )
    base = {**FRESH, "experiment_id": exp_id, "attempt_index": index + 1}
    try:
        hyp = ctx.agent.plan(pctx)
    except AgentStop as e:
        # Nothing was planned: the row goes unless paid calls were made for it (then it is
        # closed as a crash), and `--resume` plans this index again.
        ctx.ledger.drop_unstarted(exp_id)
        done = index
        if ctx.ledger.get(exp_id) is not None:
            ctx.ledger.update(exp_id, hypothesis="(no hypothesis)")
            ctx.ledger.finish(exp_id, "crash", f"planner failed: {e}")
            done = index + 1
        return {**base, "experiment_id": None, "attempt_index": done, "hypothesis": None,
                "stop_reason": str(e)}
    except AgentError as e:
        ctx.ledger.update(exp_id, hypothesis="(no hypothesis)")
        return {**base, "hypothesis": None,
                "outcome": {"status": "crash", "reason": f"planner failed: {e}"}}
    if hyp is None:
        ctx.ledger.drop_unstarted(exp_id)
        return {**base, "experiment_id": None, "attempt_index": index,
                "stop_reason": "the agent has nothing more to try"}
    ctx.ledger.update(exp_id, hypothesis=hyp.text,
                      agent_meta={**hyp.meta, "rationale": hyp.rationale})
    return {**base, "hypothesis": dataclasses.asdict(hyp)}
