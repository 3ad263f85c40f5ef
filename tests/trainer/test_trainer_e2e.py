"""End to end on `tiny`: prepare (shared fixture), train, export, evaluate; `labwarden baseline`.

One short training serves every test here: `labwarden baseline` runs the unmodified
trainer and then the evaluator in the sandbox (the local backend here), exactly the path
users take, and the tests read the run folder it leaves behind.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
from pathlib import Path

import pytest

from agents.cli import main as labwarden

REPO_ROOT = Path(__file__).resolve().parents[2]
BUDGET_S = "5"  # seconds of training: the trainer must learn something even in this little


@pytest.fixture(scope="module")
def baseline_run(tiny_workspace, tmp_path_factory) -> dict:
    """`labwarden baseline` on a private copy of the prepared workspace."""
    ws = tmp_path_factory.mktemp("trainer_e2e") / "ws"
    shutil.copytree(tiny_workspace, ws, ignore=shutil.ignore_patterns("runs", "__pycache__"))
    out_path = ws / "baseline.out"
    err_path = ws / "baseline.err"
    # capsys is function-scoped; a module fixture captures into files instead.
    with open(out_path, "w") as out, open(err_path, "w") as err:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = labwarden(["baseline", "--workspace", str(ws), "--profile", "tiny",
                            "--backend", "local", "--time-budget", BUDGET_S])
    runs = sorted((ws / ".labwarden" / "runs").glob("baseline-*"))
    return {"rc": rc, "ws": ws, "stdout": out_path.read_text(), "stderr": err_path.read_text(),
            "run_dir": runs[-1] if runs else None}


@pytest.mark.slow
def test_baseline_prints_a_val_bpb_and_exits_0(baseline_run):
    assert baseline_run["rc"] == 0, baseline_run["stderr"][-3000:]
    lines = dict(line.split(": ", 1) for line in baseline_run["stdout"].splitlines()
                 if ": " in line)
    assert math.isfinite(float(lines["val_bpb"]))
    assert int(lines["steps"]) >= 1
    from trainer import train

    _, _, batch_size = train.model_size("tiny")
    assert int(lines["tokens"]) == int(lines["steps"]) * batch_size * 128
    run_dir = baseline_run["run_dir"]
    assert run_dir.name.startswith("baseline-")
    assert {"train.log", "eval.log", "result.json"} <= {p.name for p in run_dir.iterdir()}
    assert (run_dir / "train" / "model.pt2").is_file()
    assert (run_dir / "eval" / "metrics.json").is_file()
    # The trainer's own budget: it stops once the budget is spent (one step may overrun).
    assert 5.0 <= float(lines["training_seconds"]) < 60.0


@pytest.mark.slow
def test_trained_model_beats_a_uniform_guess(baseline_run):
    metrics = json.loads((baseline_run["run_dir"] / "eval" / "metrics.json").read_text())
    assert metrics["status"] == "scored", metrics["reason"]
    assert all(p["passed"] for p in metrics["probes"])
    bpb = metrics["val_bpb"]
    uniform = math.log2(1024) * metrics["tokens_evaluated"] / metrics["bytes_evaluated"]
    assert math.isfinite(bpb)
    assert bpb < 0.9 * uniform, (bpb, uniform)


@pytest.mark.slow
def test_exported_program_scores_like_the_in_process_model(baseline_run):
    import torch

    from eval_frozen.evaluate import evaluate_module
    from trainer import train

    run_dir: Path = baseline_run["run_dir"]
    program = torch.export.load(str(run_dir / "train" / "model.pt2"))
    depth, width, _ = train.model_size("tiny")
    model = train.GPT(1024, 128, depth, width, train.N_HEAD, train.MLP_RATIO)
    model.load_state_dict(program.state_dict)  # the trained weights, back in the nn.Module
    data_dir = baseline_run["ws"] / ".labwarden" / "data" / "tiny"
    in_process = evaluate_module(model, data_dir, "tiny")
    exported = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert in_process.status == "scored"
    assert abs(in_process.val_bpb - exported["val_bpb"]) < 1e-4
    assert in_process.tokens_evaluated == exported["tokens_evaluated"]


@pytest.mark.slow
def test_baseline_json_output_is_one_object(baseline_run, capsys):
    # Reuses the trained run's workspace; --json keeps stdout to a single JSON document.
    rc = labwarden(["baseline", "--workspace", str(baseline_run["ws"]), "--time-budget", "1",
                    "--backend", "local", "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err[-2000:]
    data = json.loads(captured.out)
    assert data["profile"] == "tiny"
    assert data["val_bpb"] == data["metrics"]["val_bpb"]
    assert data["trainer"]["profile"] == "tiny"
    assert Path(data["run_dir"]).is_dir()
    assert data["backend"] == "local" and data["result"]["status"] == "ok"


@pytest.mark.slow
def test_baselines_are_manual_tries_in_the_ledger(baseline_run):
    """Recorded for `labwarden results` and the report, but never as research results."""
    from agents.ledger import Ledger

    ledger = Ledger(baseline_run["ws"] / ".labwarden" / "ledger.sqlite", readonly=True)
    try:
        rows = ledger.experiments(kind="try")
        assert rows and all(r["run_id"] == "manual" for r in rows)
        first = rows[0]
        assert first["id"] == baseline_run["run_dir"].name and first["status"] == "tried"
        assert first["val_bpb"] == first["result"]["val_bpb"]
        assert ledger.best("tiny") == (None, None)  # not a baseline of any research run
        assert ledger.counts() == {}
    finally:
        ledger.close()


def bare_workspace(tmp_path: Path) -> Path:
    """A workspace with the default config and nothing prepared."""
    ws = tmp_path / "ws"
    ws.mkdir()
    shutil.copy2(REPO_ROOT / "labwarden.toml", ws / "labwarden.toml")
    return ws


def test_baseline_without_prepared_data_is_exit_2(tmp_path, capsys):
    ws = bare_workspace(tmp_path)
    rc = labwarden(["baseline", "--workspace", str(ws), "--profile", "tiny"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1
    assert "labwarden prepare --profile tiny" in err
    assert not (ws / ".labwarden" / "runs").exists()


@pytest.mark.parametrize("argv, message", [
    (["--profile", "huge"], "'huge': unknown profile"),
    (["--time-budget", "0"], "--time-budget must be a positive number"),
    (["--time-budget", "nan"], "--time-budget must be a positive number"),
])
def test_baseline_bad_arguments_are_exit_2(tiny_workspace, capsys, argv, message):
    rc = labwarden(["baseline", "--workspace", str(tiny_workspace), *argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert message in err
    assert len(err.splitlines()) == 1
