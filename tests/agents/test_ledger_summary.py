"""The ledger: upserts keyed by experiment id, WAL readers, summary and results.tsv."""

from __future__ import annotations

import sqlite3

import pytest

from agents.ledger import Ledger
from agents.summary import planner_summary, to_tsv, tsv_rows


def fill(ledger: Ledger) -> None:
    ledger.start_run("r1", "t1", {"agent": "tuner"})
    for i, val in enumerate((1.50, 1.52, 1.51), start=1):
        ledger.open_experiment(f"r1-b{i}", run_id="r1", kind="baseline", profile="tiny",
                               agent="tuner", parent="abc")
        ledger.store_result(f"r1-b{i}", {"status": "ok", "val_bpb": val,
                                         "peak_memory_mb": 2048.0})
        ledger.finish(f"r1-b{i}", "keep", "baseline measurement")
    rows = [("r1-001", "keep", 1.40, "LR 0.02 -> 0.03", "", "deadbeefcafe"),
            ("r1-002", "discard", 1.45, "DEPTH\t2 -> 3\nmore", "", None),
            ("r1-003", "blocked", None, "extend the time budget", "time.budget: edits it", None),
            ("r1-004", "crash", None, "WIDTH 97", "sandbox crash: shape mismatch", None)]
    for exp_id, status, val, hyp, reason, commit in rows:
        ledger.open_experiment(exp_id, run_id="r1", kind="experiment", profile="tiny",
                               agent="tuner", parent="abc")
        ledger.update(exp_id, hypothesis=hyp)
        if status == "blocked":
            ledger.update(exp_id, guard_verdict="blocked", guard_findings=[
                {"rule_id": "time.budget", "severity": "block", "message": "edits it"}])
        if val is not None:
            ledger.store_result(exp_id, {"status": "ok", "val_bpb": val,
                                         "peak_memory_mb": 3072.0})
        ledger.finish(exp_id, status, reason, commit_sha=commit,
                      margin=(1.51 - val) if val else None)


def test_rows_are_upserted_not_duplicated(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    for _ in range(2):  # a replayed step opens the same experiment again
        ledger.open_experiment("r1-001", run_id="r1", kind="experiment", profile="tiny",
                               agent="tuner", parent=None)
    ledger.update("r1-001", hypothesis="h")
    assert [r["id"] for r in ledger.experiments()] == ["r1-001"]
    assert ledger.mark_run_started("r1-001") == 1
    assert ledger.mark_run_started("r1-001") == 2
    ledger.store_result("r1-001", {"status": "ok", "val_bpb": 1.0})
    ledger.store_result("r1-001", {"status": "crash", "val_bpb": None})  # second write ignored
    row = ledger.get("r1-001")
    assert row["result"]["val_bpb"] == 1.0 and row["val_bpb"] == 1.0 and row["run_attempts"] == 2
    with pytest.raises(ValueError, match="status must be one of"):
        ledger.finish("r1-001", "planned")
    with pytest.raises(KeyError):
        ledger.update("nope", hypothesis="x")


def test_noise_best_and_llm_totals(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    fill(ledger)
    floor = ledger.noise_floor("tiny")
    assert floor.n == 3 and floor.mean == pytest.approx(1.51)
    assert floor.std == pytest.approx(0.01)
    assert ledger.best("tiny") == (1.40, "r1-001")
    assert ledger.best("small") == (None, None)
    ledger.record_llm_call("r1-002", role="coder", model="m", input_tokens=100, output_tokens=10,
                           cache_read=5, cache_write=2, cost_usd=0.5, ok=True)
    ledger.record_llm_call("r1-002", role="reviewer", model="m", input_tokens=50,
                           output_tokens=1, cache_read=0, cache_write=0, cost_usd=None, ok=True)
    row = ledger.get("r1-002")
    assert (row["tokens_in"], row["tokens_out"], row["cache_read"], row["cache_write"]) == (
        150, 11, 5, 2)
    assert row["cost_usd"] == pytest.approx(0.5)
    assert ledger.counts("r1") == {"keep": 1, "discard": 1, "blocked": 1, "crash": 1}


def test_a_reader_sees_the_ledger_while_a_writer_holds_it(tmp_path):
    path = tmp_path / "ledger.sqlite"
    writer = Ledger(path)
    fill(writer)
    assert writer._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    writer._db.execute("BEGIN IMMEDIATE")  # a run mid-write
    writer._db.execute("UPDATE experiments SET hypothesis='changing' WHERE id='r1-001'")
    reader = Ledger(path, readonly=True)
    assert reader.get("r1-001")["hypothesis"] == "LR 0.02 -> 0.03"
    with pytest.raises(sqlite3.OperationalError):
        reader._db.execute("UPDATE experiments SET status='keep'")
    writer._db.execute("COMMIT")


def test_planner_summary_groups_history(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    fill(ledger)
    text = planner_summary(ledger, "tiny")
    assert "Experiments so far on profile tiny: 4" in text
    assert "Best so far 1.4000 (r1-001)" in text
    assert "noise std 0.0100 over 3 runs" in text
    kept = text.index("Kept")
    assert kept < text.index("r1-001 1.4000") < text.index("Did not help")
    assert "blocked by time.budget x1" in text
    assert "shape mismatch" in text
    assert "\t" not in text


def test_results_tsv_has_autoresearch_columns(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    fill(ledger)
    lines = to_tsv(tsv_rows(ledger)).splitlines()
    assert lines[0] == "commit\tval_bpb\tmemory_gb\tstatus\tdescription"
    assert lines[1] == "r1-b1\t1.500000\t2.0\tkeep\tbaseline"
    assert lines[4] == "deadbee\t1.400000\t3.0\tkeep\tLR 0.02 -> 0.03"
    assert lines[5] == "r1-002\t1.450000\t3.0\tdiscard\tDEPTH 2 -> 3 more"
    assert lines[6] == "r1-003\t0.000000\t0.0\tblocked\textend the time budget"
    assert lines[7].split("\t")[3] == "crash"
    assert all(len(line.split("\t")) == 5 for line in lines)


def test_metrics_of_another_setup_are_not_compared(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    for i, (setup, val) in enumerate([("budget=2", 3.7), ("budget=2", 3.8),
                                      ("budget=300", 1.1)]):
        ledger.open_experiment(f"b{i}", run_id="r1", kind="baseline", profile="tiny",
                               agent="tuner", parent=None, setup=setup)
        ledger.store_result(f"b{i}", {"status": "ok", "val_bpb": val})
        ledger.finish(f"b{i}", "keep")
    assert ledger.noise_floor("tiny", "budget=2").n == 2
    assert ledger.best("tiny", "budget=2")[0] == pytest.approx(3.75)
    assert ledger.best("tiny", "budget=300") == (1.1, "baseline")
    assert ledger.noise_floor("tiny", "budget=20").n == 0  # a new setup is measured afresh
