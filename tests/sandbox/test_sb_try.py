"""`labwarden try` end to end, and the Docker-only behaviours: GPU refusal, image reuse."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from agents.cli import main


@pytest.fixture(scope="module")
def try_workspace(tiny_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = tmp_path_factory.mktemp("try") / "ws"
    shutil.copytree(tiny_workspace, ws, ignore=shutil.ignore_patterns("runs", "*.sqlite*"))
    return ws


def _try(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    code = main(["try", *args, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_blocked_patch_exits_1_without_running(
    try_workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    patch = tmp_path / "p.diff"
    patch.write_text(
        "--- a/eval_frozen/evaluate.py\n+++ b/eval_frozen/evaluate.py\n@@ -1 +1 @@\n-x\n+y\n"
    )
    runs = try_workspace / ".labwarden" / "runs"
    before = set(runs.iterdir()) if runs.exists() else set()
    code, out = _try(capsys, str(patch), "--backend", "local", "--workspace", str(try_workspace))
    assert code == 1 and out["result"] is None
    assert out["guards"]["verdict"] == "blocked"
    assert (set(runs.iterdir()) if runs.exists() else set()) == before
    # A manual try: in the ledger (results, report) and the audit trail, never research.
    from agents.ledger import Ledger
    from guards.audit import AuditStore, default_path

    ledger = Ledger(try_workspace / ".labwarden" / "ledger.sqlite", readonly=True)
    try:
        row = ledger.experiments(kind="try")[-1]
        assert row["run_id"] == "manual" and row["status"] == "blocked"
        assert "paths.protected" in row["reason"] and row["diff"] == patch.read_text()
        assert ledger.counts() == {} and ledger.best("tiny") == (None, None)
    finally:
        ledger.close()
    with AuditStore(default_path(try_workspace / ".labwarden")) as store:
        entry = store.list(experiment_id=row["id"])[0]
    assert entry.verdict == "blocked" and entry.meta.agent_role == "human"


def test_missing_patch_file_is_exit_2(
    try_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["try", "/nonexistent.diff", "--workspace", str(try_workspace)]) == 2
    assert "/nonexistent.diff not found" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.docker
def test_baseline_same_on_both_backends(
    try_workspace: Path,
    docker_engine,  # noqa: ANN001
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The same unmodified trainer trains and is scored inside a container and out, and
    each score lands in the ledger under its own setup."""
    scores = {}
    for backend in ("local", "docker"):
        code, out = _try(
            capsys, "--backend", backend, "--time-budget", "2", "--workspace", str(try_workspace)
        )
        result = out["result"]
        assert code == 0, f"{backend}: {result['status']} {result['reason']}\n{result['log_tail']}"
        assert result["metrics"]["status"] == "scored"
        scores[backend] = result["val_bpb"]
    from agents.ledger import Ledger

    ledger = Ledger(try_workspace / ".labwarden" / "ledger.sqlite", readonly=True)
    try:
        tried = {r["setup"]: r["val_bpb"] for r in ledger.experiments(kind="try")
                 if r["status"] == "tried"}
    finally:
        ledger.close()
    assert tried == {"backend=local,budget=2.0": scores["local"],
                     "backend=docker,budget=2.0": scores["docker"]}
    # Training stops on wall time, and a 2 s budget on a busy 2-core machine trains anywhere
    # from a handful to dozens of steps, so the two scores are not compared with each other
    # (that needs a budget that does not measure the machine's load). Both must show real
    # training: better than the untrained model (about 3.89 here), and not absurd.
    for backend, score in scores.items():
        assert 1.0 < score < 3.8, (backend, scores)


@pytest.mark.docker
def test_gpu_request_without_nvidia_runtime_names_the_toolkit(
    docker_engine, tmp_path: Path
) -> None:  # noqa: ANN001
    from sandbox.backend import Mount, StepSpec
    from sandbox.docker import DockerBackend, prereqs
    from sandbox.errors import SandboxUnavailable

    if prereqs.has_nvidia_runtime(docker_engine):
        pytest.skip("this engine has an NVIDIA runtime: the refusal cannot happen here")
    backend = DockerBackend(client=docker_engine)
    backend.setup()
    step = StepSpec(
        name="gpu",
        argv=("true",),
        env={},
        mounts=(Mount(tmp_path, "ws"),),
        workdir="ws",
        time_limit_s=10,
        log_path=tmp_path / "log",
        gpus="all",
    )
    with pytest.raises(SandboxUnavailable) as info:
        backend.run_step(step)
    assert "NVIDIA Container Toolkit" in str(info.value) and "\n" not in str(info.value)
    assert not docker_engine.containers.list(all=True, filters={"label": "labwarden.step=gpu"})


@pytest.mark.docker
def test_image_is_reused_when_inputs_match(docker_engine) -> None:  # noqa: ANN001
    from sandbox.docker.images import INPUTS_LABEL, OFFLINE_TAG, build_offline, offline_inputs_hash

    logs: list[str] = []
    assert build_offline(docker_engine, log=logs.append) == OFFLINE_TAG
    assert logs == [f"{OFFLINE_TAG} is up to date ({INPUTS_LABEL}={offline_inputs_hash()})"]


def test_budget_overrun_is_recorded_in_the_audit_trail(
    try_workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from guards.audit import AuditStore, default_path

    ws = tmp_path / "ws"
    shutil.copytree(try_workspace, ws, ignore=shutil.ignore_patterns("runs", "*.sqlite*"))
    with (ws / "labwarden.toml").open("a") as f:
        f.write("\n[sandbox]\nstartup_allowance_s = 1\nexport_allowance_s = 1\n")
    train = (ws / "trainer" / "train.py").read_text().splitlines(True)
    # Spin before anything else: the sandbox, not the trainer, must end it.
    cut = next(i for i, line in enumerate(train) if line.startswith("import torch\n"))
    new = [*train[:cut], "while True:\n", "    pass\n", *train[cut:]]
    import difflib

    patch = tmp_path / "spin.diff"
    patch.write_text(
        "".join(difflib.unified_diff(train, new, "a/trainer/train.py", "b/trainer/train.py"))
    )
    code, out = _try(
        capsys, str(patch), "--backend", "local", "--time-budget", "1", "--workspace", str(ws)
    )
    result = out["result"]
    if out["guards"]["verdict"] == "blocked":
        pytest.fail(f"guards blocked the spin patch, so the runtime path was not reached: {out}")
    assert code == 1 and result["status"] == "timeout"
    assert 3.0 <= result["train_seconds"] < 8.0
    with AuditStore(default_path(ws / ".labwarden")) as store:
        entries = store.list(rule="runtime.*")
    assert entries, "no runtime violation in the audit trail"
    assert "budget" in entries[0].findings[0].rule_id
    assert entries[0].log_tail == result["log_tail"]
