"""The research graph, built and compiled once:

    START -> baseline* -> plan -> code -> guard -> review -> run -> evaluate -> decide -> record
                           ^        ^                |  (revise, bounded)                   |
                           |        +----------------+                                      |
                           +----------------------------------------------------------------+

Blocks (guard), rejections (review, evaluator probes) and crashes skip straight to
`record` and come back to `plan` as lessons. `plan` ends the run when a limit is reached,
Ctrl-C was pressed, or the agent has nothing more to try.
"""

from __future__ import annotations

from typing import Any, Literal

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from agents import nodes
from agents.context import ResearchContext
from agents.state import ResearchState


def route_start(state: ResearchState, runtime: Runtime[ResearchContext]) -> Literal[
        "baseline", "plan", "__end__"]:
    """Measure the baseline until the ledger holds enough measurements for the noise floor."""
    ctx = runtime.context
    if state.get("stop_reason"):
        return END
    have = ctx.ledger.noise_floor(ctx.profile, ctx.setup).n
    if have < ctx.settings.baseline_runs and not ctx.stop.is_set():
        return "baseline"
    return "plan"


def route_plan(state: ResearchState) -> Literal["code", "record", "__end__"]:
    if state.get("stop_reason"):
        return END
    return "record" if state.get("outcome") else "code"


def route_code(state: ResearchState) -> Literal["guard", "record"]:
    return "record" if state.get("outcome") else "guard"


def route_guard(state: ResearchState) -> Literal["review", "record"]:
    return "record" if state.get("outcome") else "review"


def route_review(state: ResearchState) -> Literal["run", "code", "record"]:
    if state.get("outcome"):
        return "record"
    return "code" if (state.get("review") or {}).get("decision") == "revise" else "run"


def route_evaluate(state: ResearchState) -> Literal["decide", "record"]:
    return "record" if state.get("outcome") else "decide"


def build_graph(checkpointer: Any = None) -> Any:
    g = StateGraph(ResearchState, context_schema=ResearchContext)
    for name in ("baseline", "plan", "code", "guard", "review", "run", "evaluate", "decide",
                 "record"):
        g.add_node(name, getattr(nodes, name))
    g.add_conditional_edges(START, route_start)
    g.add_conditional_edges("baseline", route_start)
    g.add_conditional_edges("plan", route_plan)
    g.add_conditional_edges("code", route_code)
    g.add_conditional_edges("guard", route_guard)
    g.add_conditional_edges("review", route_review)
    g.add_edge("run", "evaluate")
    g.add_conditional_edges("evaluate", route_evaluate)
    g.add_edge("decide", "record")
    g.add_edge("record", "plan")
    return g.compile(checkpointer=checkpointer)
