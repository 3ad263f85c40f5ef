"""`--agent command` through the real CLI, guards, local sandbox and evaluator, on `tiny`.

One run drives seven shell-script agents in turn (experiment N runs the Nth script of
`fixtures/command/sequence.sh`'s arguments): each failure is one clean row and the run
goes on. A second run is killed with -9 while its agent works, then resumed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from loopkit import BUDGET, audit_rows, labwarden

from agents.command.runner import fresh_root_available
from agents.ledger import FINAL, Ledger

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not fresh_root_available()[0],
                                 reason="the command agent's fresh root cannot be built here")]

FIXTURES = Path(__file__).parent / "fixtures" / "command"
SEQUENCE = ("exit1.sh", "sleep.sh", "flood.sh", "evaluator.sh", "program.sh", "search.sh",
            "lr.sh")
LIMIT_S = 10


def configure(ws: Path, **extra: str) -> None:
    lines = [f"time_limit_s = {LIMIT_S}", "max_output_mb = 1", 'env = ["LW_WORKSPACE"]',
             f'mounts = ["{FIXTURES}"]', *(f"{k} = {v}" for k, v in extra.items())]
    with (ws / "labwarden.toml").open("a") as f:
        f.write("\n[agents.command]\n" + "\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def sequence_run(baselined: Path, tmp_path_factory: pytest.TempPathFactory):
    ws = tmp_path_factory.mktemp("command") / "ws"
    shutil.copytree(baselined, ws, symlinks=True)
    configure(ws)
    cmd = " ".join(["sh", str(FIXTURES / "sequence.sh"), *SEQUENCE])
    proc = labwarden(ws, "run", "--agent", "command", "--agent-cmd", cmd, "--max-experiments",
                     str(len(SEQUENCE)), "--backend", "local", "--time-budget", BUDGET,
                     env_extra={"LW_WORKSPACE": str(ws), "SECRET_NOT_PASSED": "leaked"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    ledger = Ledger(ws / ".labwarden" / "ledger.sqlite", readonly=True)
    rows = {name: row for name, row in zip(SEQUENCE, ledger.experiments(run_id="r2"),
                                           strict=True)}
    return ws, proc, rows


def log(ws: Path, row: dict) -> str:
    return (ws / ".labwarden" / "agent" / f"{row['id']}.log").read_text()


def test_every_agent_is_one_final_row_and_the_run_goes_on(sequence_run):
    ws, proc, rows = sequence_run
    assert f"{len(SEQUENCE)} experiments done" in proc.stdout
    assert all(r["status"] in FINAL and r["agent"] == "command" for r in rows.values())
    assert [r["id"] for r in rows.values()] == [f"r2-{i:03d}" for i in range(1, 8)]


def test_an_honest_agent_is_guarded_run_scored_and_recorded_with_its_description(sequence_run):
    ws, _, rows = sequence_run
    row = rows["lr.sh"]
    assert row["hypothesis"] == ("Raise the Muon learning rate from 0.02 to 0.025: the tiny "
                                 "model is undertrained")
    assert "+LR = 0.025" in row["diff"] and row["guard_verdict"] == "passed"
    assert row["review_decision"] == "approve"
    assert row["result"]["status"] == "ok" and row["status"] in ("keep", "discard"), row
    assert row["val_bpb"] == row["result"]["metrics"]["val_bpb"]
    assert row["agent_meta"]["isolation"] == "fresh-root"
    assert row["agent_model"].startswith("planner=command:sh")
    (audit,) = [a for a in audit_rows(ws) if a["experiment_id"] == row["id"]]
    assert audit["verdict"] == "passed" and audit["agent_model"] == "command:sh"


@pytest.mark.parametrize(("script", "rule"), [("evaluator.sh", "paths.protected"),
                                              ("program.sh", "paths.protected")])
def test_an_agent_that_edits_frozen_files_is_blocked_and_audited(sequence_run, script, rule):
    ws, _, rows = sequence_run
    row = rows[script]
    assert row["status"] == "blocked" and rule in row["reason"], row
    assert row["result"] is None and row["run_attempts"] == 0
    (audit,) = [a for a in audit_rows(ws) if a["experiment_id"] == row["id"]]
    assert audit["verdict"] == "blocked" and rule in audit["rules"]
    assert audit["agent_model"] == "command:sh"
    # The block is a lesson in the next agent's brief (search.sh prints its brief).
    assert f"{row['id']} blocked: [" in log(ws, rows["search.sh"])


def test_the_audit_trail_names_the_role_command(sequence_run):
    ws, _, rows = sequence_run
    audit = {a["experiment_id"]: a for a in audit_rows(ws)}
    assert audit[rows["evaluator.sh"]["id"]]["agent_role"] == "command"


def test_an_agent_that_searches_for_the_validation_split_finds_nothing(sequence_run):
    ws, _, rows = sequence_run
    out = log(ws, rows["search.sh"])
    assert "SEARCH DONE in /sandbox/work" in out  # it ran to the end, in its copy
    assert "FOUND" not in out, out
    assert rows["search.sh"]["status"] == "crash"
    assert "no proposal: the agent command exited 1 (SEARCH DONE" in rows["search.sh"]["reason"]


def test_a_hanging_agent_is_killed_at_its_limit(sequence_run):
    ws, _, rows = sequence_run
    row = rows["sleep.sh"]
    assert row["status"] == "crash" and row["result"] is None
    assert f"ran past its {LIMIT_S} s limit and was killed" in row["reason"]
    assert "killed: time limit" in log(ws, row)


def test_an_agent_that_prints_gigabytes_is_cut(sequence_run):
    ws, _, rows = sequence_run
    row = rows["flood.sh"]
    assert row["status"] == "crash" and "printed more than 1 MB" in row["reason"]
    path = ws / ".labwarden" / "agent" / f"{row['id']}.log"
    assert path.stat().st_size < 200_000 and "bytes not kept" in path.read_text()


def test_an_agent_that_exits_1_without_a_change_is_no_proposal(sequence_run):
    _, _, rows = sequence_run
    row = rows["exit1.sh"]
    assert row["status"] == "crash" and row["diff"] is None
    assert row["reason"].startswith("planner failed: no proposal: the agent command exited 1 "
                                    "(I have no idea, giving up)")


def agent_processes(scratch: Path) -> list[int]:
    """Pids whose command line names a path under `scratch` (the agent's unshare does)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(scratch).encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_resume_after_kill_9_while_the_agent_runs(workspace: Path, tmp_path: Path):
    configure(workspace, argv=f'["sh", "{FIXTURES / "slow_lr.sh"}"]')
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    proc = subprocess.Popen([sys.executable, "-m", "agents.cli", "run", "--agent", "command",
                             "--max-experiments", "1", "--backend", "local", "--time-budget",
                             BUDGET, "--workspace", str(workspace)], cwd=workspace,
                            env={**env, "TMPDIR": str(scratch)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.time() + 300
        while not list(scratch.glob("labwarden-agent-r2-001-*/ws/.labwarden-agent/brief.md")):
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.time() < deadline, "the agent command never started"
            time.sleep(0.1)
        time.sleep(1.0)  # the agent is sleeping in its fresh root
        assert agent_processes(scratch), "the agent's process was not found"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    # The agent died with labwarden: no process left that names its scratch folder.
    deadline = time.time() + 30
    while agent_processes(scratch) and time.time() < deadline:
        time.sleep(0.2)
    assert agent_processes(scratch) == []
    path = workspace / ".labwarden" / "ledger.sqlite"
    ledger = Ledger(path, readonly=True)
    (row,) = ledger.experiments(run_id="r2")
    assert row["status"] == "planned" and row["hypothesis"] is None
    ledger.close()

    again = labwarden(workspace, "run", "--resume")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "1 experiments done" in again.stdout
    rows = Ledger(path, readonly=True).experiments(run_id="r2")
    assert [r["id"] for r in rows] == ["r2-001"]
    assert rows[0]["status"] in FINAL and rows[0]["run_attempts"] == 1
    assert rows[0]["hypothesis"].startswith("Raise the Muon learning rate")
