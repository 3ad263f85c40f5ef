"""API failures through the real loop (`labwarden run`, ledger, audit trail) against the
local fake Messages API: a failure no retry can fix ends the run with one line instead of
filling the ledger with failed attempts, and `--resume` then carries on."""

from __future__ import annotations

import json

from fake_messages_api import (
    FakeMessagesAPI,
    Reply,
    bad_request,
    message,
    overloaded,
    tool_use,
    unauthorized,
)
from loopkit import BUDGET, audit_rows, labwarden
from patchkit import cheat_script, replace_line

from agents.ledger import Ledger

RUN = ("run", "--agent", "anthropic", "--max-experiments", "5", "--backend", "local",
       "--time-budget", BUDGET)


def hyp(text: str) -> Reply:
    return Reply(message([tool_use("propose_hypothesis", {"hypothesis": text,
                                                          "rationale": "r"})]))


def patch(diff: str) -> Reply:
    return Reply(message([tool_use("submit_patch", {"diff": diff, "description": "d"})]))


def settings(ws, text: str = "") -> None:
    """More [agents] keys (the last table of the workspace's labwarden.toml). The backoff
    is short so a test that goes wrong fails fast instead of waiting minutes."""
    with (ws / "labwarden.toml").open("a") as f:
        f.write("failure_backoff_s = 0.05\n" + text)


def run(ws, api, *extra: str, key: str = "sk-test"):
    return labwarden(ws, *RUN, *extra, env_extra={"ANTHROPIC_API_KEY": key,
                                                  "ANTHROPIC_BASE_URL": api.url})


def stop_reason(ws, run_id: str) -> str:
    ledger = Ledger(ws / ".labwarden" / "ledger.sqlite", readonly=True)
    row = ledger._db.execute("SELECT stop_reason FROM runs WHERE run_id=?",
                             (run_id,)).fetchone()
    ledger.close()
    return row[0]


def test_a_rejected_key_stops_the_run_at_once_and_resume_carries_on(workspace, tmp_path):
    cheat_script(workspace, tmp_path / "s")
    cheat = (tmp_path / "s" / "02-budget.patch").read_text().split("\n\n", 1)[1]
    settings(workspace)
    with FakeMessagesAPI() as api:
        api.replies += [unauthorized()]
        proc = run(workspace, api, key="sk-wrong")
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert len(api.requests) == 1  # not one call per --max-experiments
        line = [x for x in proc.stdout.splitlines() if "stopped:" in x]
        assert len(line) == 1 and "401 authentication_error" in line[0]
        assert "ANTHROPIC_API_KEY" in line[0] and "--resume" in line[0]
        assert "401 authentication_error" in stop_reason(workspace, "r2")
        ledger = Ledger(workspace / ".labwarden" / "ledger.sqlite", readonly=True)
        assert ledger.experiments(run_id="r2", kind="experiment") == []
        ledger.close()

        # The key is fixed: the same run goes on from where it stopped.
        api.replies += [hyp("Train for longer"), patch(cheat)]
        proc = labwarden(workspace, "run", "--resume", "--max-experiments", "1",
                         env_extra={"ANTHROPIC_API_KEY": "sk-test",
                                    "ANTHROPIC_BASE_URL": api.url})
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert api.replies == []
    ledger = Ledger(workspace / ".labwarden" / "ledger.sqlite", readonly=True)
    (only,) = ledger.experiments(run_id="r2", kind="experiment")
    assert only["id"] == "r2-001" and only["status"] == "blocked"
    assert stop_reason(workspace, "r2") == "1 experiments done"


def test_a_reviewer_bad_request_stops_the_run_instead_of_rejecting_every_patch(workspace):
    fair = replace_line(workspace, "trainer/train.py", "WEIGHT_DECAY = 0.0",
                        "WEIGHT_DECAY = 0.01          # decoupled weight decay")
    settings(workspace)
    with FakeMessagesAPI() as api:
        api.replies += [hyp("Add weight decay"), patch(fair), bad_request(),
                        hyp("Add weight decay again"), patch(fair), bad_request()]
        proc = run(workspace, api)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert api.replies == []  # nothing planned after the second 400
    assert "400 invalid_request_error" in proc.stdout and "2 in a row" in proc.stdout
    ledger = Ledger(workspace / ".labwarden" / "ledger.sqlite", readonly=True)
    rows = ledger.experiments(run_id="r2", kind="experiment")
    assert [r["status"] for r in rows] == ["crash", "crash"]  # not judged: not "rejected"
    assert all(r["reason"].startswith("reviewer failed:") for r in rows)
    assert "2 in a row" in rows[1]["reason"]
    assert "2 in a row" in stop_reason(workspace, "r2")
    reviews = [a for a in audit_rows(workspace)
               if a["experiment_id"] in ("r2-001", "r2-002") and a["agent_role"] == "reviewer"]
    assert reviews == []  # a failed call is no rejection in the audit trail


def test_a_persistent_overload_backs_off_then_stops(workspace):
    settings(workspace, "max_retries = 1\nmax_consecutive_failures = 2\n")
    with FakeMessagesAPI() as api:
        api.replies += [overloaded() for _ in range(4)] + [hyp("never asked")]
        proc = run(workspace, api)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert len(api.requests) == 4  # 2 rounds of 1 + max_retries, then the stop
    assert "529 overloaded_error" in proc.stdout and "2 in a row" in proc.stdout
    reason = stop_reason(workspace, "r2")
    assert "try again later" in reason
    ledger = Ledger(workspace / ".labwarden" / "ledger.sqlite", readonly=True)
    assert ledger.experiments(run_id="r2", kind="experiment") == []
    calls = [c for c in ledger.llm_calls() if not c["ok"]]
    assert len(calls) == 2 and all("529" in c["note"] for c in calls)
    ledger.close()
    json.dumps(calls)  # the failed calls are plain rows
