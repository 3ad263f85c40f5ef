"""The Anthropic agent driving the real loop (CLI, guards, ledger, audit) against the
local fake Messages API. No experiment here reaches the sandbox: one is blocked by the
guards before any reviewer sees it, the other is sent back once and then rejected."""

from __future__ import annotations

import json

import pytest
from fake_messages_api import FakeMessagesAPI, Reply, message, prompt_text, tool_use
from loopkit import BUDGET, audit_rows, labwarden
from patchkit import cheat_script, replace_line

from agents.ledger import Ledger


def test_llm_loop_blocks_cheats_without_asking_the_reviewer(workspace, tmp_path):
    cheat_script(workspace, tmp_path / "s")
    budget_cheat = (tmp_path / "s" / "02-budget.patch").read_text().split("\n\n", 1)[1]
    fair = replace_line(workspace, "trainer/train.py", "WEIGHT_DECAY = 0.0",
                        "WEIGHT_DECAY = 0.01          # decoupled weight decay")
    usage = {"input_tokens": 1000, "output_tokens": 100, "cache_read_input_tokens": 400,
             "cache_creation_input_tokens": 0}

    def hyp(text):
        return Reply(message([tool_use("propose_hypothesis",
                                       {"hypothesis": text, "rationale": "r"})], usage=usage))

    def patch(diff):
        return Reply(message([tool_use("submit_patch", {"diff": diff, "description": "d"})],
                             usage=usage))

    def verdict(decision, reasons):
        return Reply(message([{"type": "text", "text": json.dumps(
            {"decision": decision, "reasons": reasons})}], usage=usage))

    with FakeMessagesAPI() as api:
        api.replies += [
            hyp("Train for longer"), patch(budget_cheat),             # r2-001: blocked
            hyp("Add weight decay"), patch(fair),                      # r2-002
            verdict("revise", "also explain why"), patch(fair),        # sent back once
            verdict("reject", "weight decay on this budget is noise"),
        ]
        # Same backend and budget as the baselines, so they are reused (no training here).
        proc = labwarden(workspace, "run", "--agent", "anthropic", "--max-experiments", "2",
                         "--backend", "local", "--time-budget", BUDGET,
                         env_extra={"ANTHROPIC_API_KEY": "sk-test",
                                    "ANTHROPIC_BASE_URL": api.url})
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert api.replies == []
        models = [r["body"]["model"] for r in api.requests]
    assert models == ["claude-opus-5-5", "claude-sonnet-5-5", "claude-opus-5-5",
                      "claude-sonnet-5-5", "claude-sonnet-5-5", "claude-sonnet-5-5",
                      "claude-sonnet-5-5"]
    ledger = Ledger(workspace / ".labwarden" / "ledger.sqlite", readonly=True)
    first, second = ledger.experiments(run_id="r2", kind="experiment")
    assert first["status"] == "blocked" and "time.budget" in first["reason"]
    assert first["review_decision"] is None  # the reviewer never saw the blocked patch
    assert second["status"] == "rejected" and second["review_rounds"] == 2
    assert second["review_decision"] == "reject" and second["run_attempts"] == 0
    # Planner prompts carry the first attempt's block as a lesson for the second.
    second_plan = prompt_text(api.requests[2]["body"])
    lessons = second_plan[second_plan.index("<<<UNTRUSTED LESSONS"):]
    assert "r2-001 blocked:" in lessons and "time.budget" in lessons
    # Tokens and cost per experiment (opus plan + sonnet code on the first).
    assert (first["tokens_in"], first["tokens_out"], first["cache_read"]) == (2000, 200, 800)
    assert first["cost_usd"] == pytest.approx((1000 * 4 + 100 * 20 + 400 * 0.2
                                               + 1000 * 2 + 100 * 10 + 400 * 0.1) / 1e6)
    calls = ledger.llm_calls("r2-002")
    assert [c["role"] for c in calls] == ["planner", "coder", "reviewer", "coder", "reviewer"]
    assert first["agent_model"] == ("planner=claude-opus-5-5, coder=claude-sonnet-5-5, "
                                    "reviewer=claude-sonnet-5-5")
    audit = [a for a in audit_rows(workspace) if a["experiment_id"] in ("r2-001", "r2-002")]
    blocked = [a for a in audit if a["verdict"] == "blocked"]
    assert {(a["experiment_id"], a["agent_role"]) for a in blocked} == {
        ("r2-001", "coder"), ("r2-002", "reviewer")}
    assert all(a["agent_model"].startswith("claude-") for a in blocked)
