"""The whole loop on `tiny`, through the real CLI, guards, local sandbox and evaluator.

Baselines are measured once per session (the ledger keeps them, and later runs on the
same workspace reuse them, as real runs do); each test works on its own copy.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from loopkit import BUDGET, audit_rows, git, labwarden
from patchkit import cheat_script

from agents.ledger import FINAL, Ledger

pytestmark = pytest.mark.slow

def test_baselines_measure_the_noise_floor(baselined: Path):
    ledger = Ledger(baselined / ".labwarden" / "ledger.sqlite", readonly=True)
    floor = ledger.noise_floor("tiny")
    assert floor.n == 2 and floor.mean is not None and 0.5 < floor.mean < 10
    assert [r["status"] for r in ledger.experiments(kind="baseline")] == ["keep", "keep"]
    assert ledger.experiments(kind="experiment") == []


def start_run(ws: Path, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    return subprocess.Popen([sys.executable, "-m", "agents.cli", "run", *args, "--workspace",
                             str(ws)], cwd=ws, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_until_running(ws: Path, proc: subprocess.Popen, run_id: str = "r2") -> dict:
    """Poll the ledger (read-only, beside the writer) until an experiment is in the sandbox."""
    path = ws / ".labwarden" / "ledger.sqlite"
    deadline = time.time() + 600
    while time.time() < deadline:
        if path.exists():
            ledger = Ledger(path, readonly=True)
            running = [r for r in ledger.experiments(run_id=run_id) if r["status"] == "running"]
            ledger.close()
            if running:
                time.sleep(1.0)  # mid-training
                return running[0]
        assert proc.poll() is None, "the run ended before it reached the sandbox"
        time.sleep(0.2)
    pytest.fail("no experiment started within 600 s")


def test_tuner_loop_runs_real_experiments_and_ctrl_c_stops_after_recording(workspace: Path):
    head = git(workspace, "rev-parse", "HEAD")
    proc = start_run(workspace, "--agent", "tuner", "--max-experiments", "3", "--backend",
                     "local", "--time-budget", BUDGET)
    try:
        wait_until_running(workspace, proc)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends
        stdout, stderr = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr[-3000:]
    assert "stopping after the current experiment is recorded" in stderr
    assert "stopped: interrupted" in stdout
    for step in ("plan", "code", "guard", "review", "run", "evaluate", "record"):
        assert f"] {step:<8} r2-001" in stderr  # the progress trace, step by step
    ledger = Ledger(workspace / ".labwarden" / "ledger.sqlite", readonly=True)
    assert ledger.experiments(kind="baseline", run_id="r2") == []  # reused, not re-measured
    (row,) = ledger.experiments(run_id="r2")  # the interrupted one finished; no second one
    assert row["id"] == "r2-001" and row["agent"] == "tuner"
    assert row["hypothesis"].startswith("tuner trial ") and row["diff"].startswith("--- a/")
    assert row["guard_verdict"] == "passed" and row["review_decision"] == "approve"
    assert row["run_attempts"] == 1 and row["result"]["status"] == "ok", row["result"]
    assert row["status"] in ("keep", "discard")
    assert row["val_bpb"] == row["result"]["metrics"]["val_bpb"]
    assert row["threshold"] > 0 and row["margin"] is not None
    assert ledger.last_run()["stop_reason"] == "interrupted"
    audit = [a for a in audit_rows(workspace) if a["experiment_id"] == "r2-001"]
    assert [a["verdict"] for a in audit] == ["passed"]
    assert audit[0]["workspace"] == str(workspace)
    # The user's branch and working tree are never touched; a keep lands on the research branch.
    assert git(workspace, "rev-parse", "HEAD") == head
    assert git(workspace, "status", "--porcelain") == ""
    log = git(workspace, "log", "--format=%B", "labwarden/research")
    assert ("Labwarden-Experiment: r2-001" in log) == (row["status"] == "keep")
    tsv = labwarden(workspace, "results", "--tsv").stdout.splitlines()
    assert tsv[0] == "commit\tval_bpb\tmemory_gb\tstatus\tdescription"
    assert len(tsv) == 4 and tsv[3].split("\t")[3] == row["status"]


def test_scripted_cheats_are_blocked_audited_and_the_loop_goes_on(workspace: Path, tmp_path):
    expected = cheat_script(workspace, tmp_path / "script")
    proc = labwarden(workspace, "run", "--agent", "scripted", "--script",
                     str(tmp_path / "script"), "--backend", "local", "--time-budget", BUDGET)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "nothing more to try" in proc.stdout
    ledger = Ledger(workspace / ".labwarden" / "ledger.sqlite", readonly=True)
    rows = ledger.experiments(run_id="r2")
    assert [r["agent_meta"]["script"] for r in rows] == sorted(expected)
    for row in rows:
        want = expected[row["agent_meta"]["script"]]
        if want == "ran":
            assert row["status"] in ("keep", "discard", "crash") and row["result"] is not None
        else:
            assert row["status"] == want, row
            assert row["result"] is None and row["run_attempts"] == 0  # never reached the sandbox
    by_id = {r["agent_meta"]["script"]: r for r in rows}
    assert "time.budget" in by_id["02-budget.patch"]["reason"]
    assert "paths.protected" in by_id["03-evaluator.patch"]["reason"]
    assert "metric.spoof" in by_id["04-spoof.patch"]["reason"]
    assert "seed.fishing" in by_id["05-seed.patch"]["review_reasons"]
    assert "patch.malformed" in by_id["06-garbage.patch"]["reason"]
    audit = {a["experiment_id"]: a for a in audit_rows(workspace)
             if a["experiment_id"] and a["verdict"] == "blocked"}
    for name in ("02-budget.patch", "03-evaluator.patch", "04-spoof.patch", "06-garbage.patch"):
        assert by_id[name]["id"] in audit
    review = audit[by_id["05-seed.patch"]["id"]]
    assert review["agent_role"] == "reviewer" and "runtime.review" in review["rules"]
    # What was blocked is what the next planner is told.
    from agents.summary import planner_summary

    summary = planner_summary(ledger, "tiny")
    blocked = summary[summary.index("Blocked by the guards"):]
    for rule in ("time.budget", "paths.protected", "metric.spoof", "patch.malformed"):
        assert rule in blocked


def test_resume_after_kill_9_records_every_experiment_once(workspace: Path):
    proc = start_run(workspace, "--agent", "tuner", "--max-experiments", "2", "--backend",
                     "local", "--time-budget", BUDGET)
    try:
        killed = wait_until_running(workspace, proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    path = workspace / ".labwarden" / "ledger.sqlite"
    ledger = Ledger(path, readonly=True)
    assert [r["id"] for r in ledger.experiments(run_id="r2")] == [killed["id"]] == ["r2-001"]
    assert ledger.get("r2-001")["result"] is None
    ledger.close()

    again = labwarden(workspace, "run", "--resume")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "2 experiments done" in again.stdout
    ledger = Ledger(path, readonly=True)
    rows = ledger.experiments(run_id="r2")
    assert [r["id"] for r in rows] == ["r2-001", "r2-002"]
    assert all(r["status"] in FINAL for r in rows)
    assert rows[0]["hypothesis"] == killed["hypothesis"]  # the same experiment, continued
    assert rows[0]["run_attempts"] == 2 and rows[1]["run_attempts"] == 1
    runs = sorted(p.name for p in (workspace / ".labwarden" / "runs").iterdir()
                  if p.name.startswith("r2-"))
    assert runs == ["r2-001", "r2-001-retry1", "r2-002"]
    assert ledger.last_run()["stop_reason"] == "2 experiments done"
    # Resuming a finished run with nothing left to do changes nothing.
    third = labwarden(workspace, "run", "--resume")
    assert third.returncode == 0 and len(Ledger(path, readonly=True).experiments(
        run_id="r2")) == 2


def test_run_audits_a_kill_at_the_time_limit_and_goes_on(workspace: Path, tmp_path):
    """An honest but far too slow change is killed from outside: the ledger says crash, the
    audit trail says why (runtime.budget), and the run goes on to its next experiment."""
    from patchkit import replace_line

    with (workspace / "labwarden.toml").open("a") as f:
        f.write("\n[sandbox]\nstartup_allowance_s = 6\nexport_allowance_s = 1\n")
    script = tmp_path / "script"
    script.mkdir()
    slow = replace_line(workspace, "trainer/train.py", "NS_STEPS = 5",
                        "NS_STEPS = 2000000           # Newton-Schulz iterations per Muon update")
    (script / "01-slow.patch").write_text(f"Subject: Orthogonalise far more exactly\n\n{slow}")
    proc = labwarden(workspace, "run", "--agent", "scripted", "--script", str(script),
                     "--backend", "local", "--time-budget", BUDGET)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ledger = Ledger(workspace / ".labwarden" / "ledger.sqlite", readonly=True)
    (row,) = ledger.experiments(run_id="r2")
    assert row["guard_verdict"] == "passed", row["guard_findings"]
    assert row["result"]["status"] == "timeout" and row["status"] == "crash", row["result"]
    assert row["result"]["timing"]["killed"] is True
    audit = [a for a in audit_rows(workspace) if a["experiment_id"] == row["id"]]
    assert [a["verdict"] for a in audit] == ["passed", "blocked"]
    assert audit[1]["kind"] == "runtime" and audit[1]["rules"] == "runtime.budget"
    import json

    details = json.loads(audit[1]["details"])
    assert details["sandbox_status"] == "timeout" and details["backend"] == "local"
