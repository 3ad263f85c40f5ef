"""The graph's shape and its routing: a block or rejection never reaches the sandbox, and
the sandbox runs once per experiment id however often its step is replayed."""

from __future__ import annotations

from types import SimpleNamespace

from agents.graph import build_graph, route_code, route_evaluate, route_guard, route_review
from agents.ledger import Ledger
from agents.nodes.sandbox_call import sandbox_run


def test_graph_has_the_research_cycle():
    graph = build_graph().get_graph()
    edges = {(e.source, e.target) for e in graph.edges}
    for edge in [("run", "evaluate"), ("decide", "record"), ("record", "plan"),
                 ("guard", "review"), ("guard", "record"), ("review", "code"),
                 ("review", "run"), ("review", "record"), ("plan", "__end__")]:
        assert edge in edges, edge
    assert ("guard", "run") not in edges  # a patch reaches the sandbox only through review


def test_routes():
    blocked = {"outcome": {"status": "blocked"}}
    assert route_guard(blocked) == "record" and route_guard({"outcome": None}) == "review"
    assert route_review({"review": {"decision": "revise"}}) == "code"
    assert route_review({"review": {"decision": "approve"}}) == "run"
    assert route_review({"review": {"decision": "reject"},
                         "outcome": {"status": "rejected"}}) == "record"
    assert route_code({"outcome": {"status": "crash"}}) == "record"
    assert route_evaluate({}) == "decide"


def test_a_stored_result_is_never_run_again(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.open_experiment("r1-001", run_id="r1", kind="experiment", profile="tiny",
                           agent="tuner", parent=None)
    ledger.mark_run_started("r1-001")
    ledger.store_result("r1-001", {"status": "ok", "val_bpb": 1.25})
    # No backend at all: any attempt to run would raise.
    ctx = SimpleNamespace(ledger=ledger, backend=None)
    assert sandbox_run(ctx, "r1-001", "diff")["val_bpb"] == 1.25  # type: ignore[arg-type]
    assert ledger.get("r1-001")["run_attempts"] == 1
