"""`labwarden try` tells its stages as they happen and compares in noise units (no training:
the run folder's files are written by the test, the ledger rows by the ledger's own API)."""

from __future__ import annotations

import io
import time
from pathlib import Path

from clikit import GOOD_TOML, workspace

from labwarden.try_progress import SandboxWatch, StageLine, compare


def _wait_for(stream: io.StringIO, text: str, deadline_s: float = 30.0) -> None:
    end = time.monotonic() + deadline_s
    while text not in stream.getvalue():
        assert time.monotonic() < end, stream.getvalue()
        time.sleep(0.01)


def test_stages_are_told_as_the_run_folder_shows_them(tmp_path: Path) -> None:
    out = io.StringIO()
    line = StageLine(out)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with SandboxWatch(line, run_dir, 20.0, period_s=0.01):
        _wait_for(out, "sandbox     starting")
        (run_dir / "train.log").write_text("")
        _wait_for(out, "training    started (budget 20 s)")
        (run_dir / "eval.log").write_text("")
        _wait_for(out, "evaluating  started")
    lines = out.getvalue().splitlines()
    stages = [ln.split()[0] for ln in lines]
    assert stages == ["sandbox", "sandbox", "training", "training", "evaluating"]
    assert "started in" in lines[1] and "done in" in lines[3]


def test_a_quiet_line_writes_nothing() -> None:
    out = io.StringIO()
    line = StageLine(out, enabled=False)
    line.show("guards", "x")
    line.done("guards", "passed")
    assert out.getvalue() == ""


def _ledger_with(ws: Path, rows: list[tuple[str, str, float, str | None]]) -> None:
    from agents.ledger import Ledger, ledger_path
    from labwarden.experiment import setup_key

    (ws / ".labwarden").mkdir(exist_ok=True)
    ledger = Ledger(ledger_path(ws / ".labwarden"))
    try:
        for exp_id, kind, value, status in rows:
            ledger.open_experiment(exp_id, run_id="r1", kind=kind, profile="tiny",
                                   agent="tuner", parent=None, setup=setup_key("local", None))
            ledger.store_result(exp_id, {"status": "ok", "val_bpb": value})
            ledger.finish(exp_id, status or "keep")
    finally:
        ledger.close()


def test_comparison_against_best_and_baseline_in_noise_units(tmp_path: Path) -> None:
    from labwarden.config import load_config

    ws = workspace(tmp_path / "ws", GOOD_TOML)
    _ledger_with(ws, [("b1", "baseline", 2.40, None), ("b2", "baseline", 2.42, None),
                      ("e1", "experiment", 2.35, None)])
    config = load_config(ws)
    found, note = compare(config, value=2.30, profile="tiny", backend="local",
                          time_budget_s=None, experiment_id="t1")
    by = {c.label: c for c in found}
    assert set(by) == {"best", "baseline"} and note == ""
    assert abs(by["best"].improvement - 0.05) < 1e-9 and by["best"].source == "experiment e1"
    noise = by["baseline"].noise  # the sample std of 2.40 and 2.42
    assert abs(noise - 0.0141421356) < 1e-6
    assert abs(by["baseline"].in_noise - 0.11 / noise) < 1e-6
    assert "better" in by["best"].render("val_bpb")
    # Another setup (budget 5 s) has nothing to compare with.
    none, note = compare(config, value=2.30, profile="tiny", backend="local",
                         time_budget_s=5.0, experiment_id="t1")
    assert none == [] and "labwarden baseline" in note
