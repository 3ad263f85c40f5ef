"""benchmarks/gpu_check: one clear line and exit 0 without a GPU; its steps run end to
end on CPU (`--dry-run-cpu`: the same containers and scripts, no GPU request)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_check"


def _run(*args: str, path_prefix: Path | None = None, timeout: float = 120):
    env = dict(os.environ)
    if path_prefix is not None:
        env["PATH"] = f"{path_prefix}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=REPO)


def test_the_script_is_executable():
    assert os.access(SCRIPT, os.X_OK)


def test_without_nvidia_smi_one_line_and_exit_0():
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has nvidia-smi: see the driver-failure case")
    done = _run()
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "gpu_check: no NVIDIA GPU on this machine (nvidia-smi lists none); nothing to check."]
    assert done.stderr == ""


def test_nvidia_smi_without_a_driver_is_no_gpu(tmp_path):
    # What nvidia-smi says where the tool is installed but no GPU or driver answers.
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed because it couldn't communicate "
                    "with the NVIDIA driver.'\nexit 9\n")
    fake.chmod(0o755)
    done = _run(path_prefix=tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 1 and "no NVIDIA GPU" in done.stdout


def test_summary_reads_the_trainer_lines():
    import sys

    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    got = gpu_check.summary("step   50 | loss 3.1 | lr x1.00 |   10.0s | epoch 1\n---\n"
                            "steps:            120\nmfu_percent:      41.2\n"
                            "mfu_formula:      6N+12LCT\nfirst_step_seconds: 31.5\n")
    assert got["steps"] == "120" and got["mfu_percent"] == "41.2"
    assert got["mfu_formula"] == "6N+12LCT" and got["first_step_seconds"] == "31.5"
    assert "step   50 | loss 3.1 | lr x1.00 |   10.0s | epoch 1" not in got


@pytest.mark.slow
@pytest.mark.docker
def test_dry_run_on_cpu_passes(docker_engine):  # noqa: ANN001
    done = _run("--dry-run-cpu", timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "gpu_check: CPU dry run" and lines[-1] == "gpu_check: all checks passed"
    for what in ("compile a tiny bf16 forward/backward in the sandbox", "tiny profile trainer",
                 "score the export on cpu", "labwarden try --backend docker",
                 "labwarden try --backend local"):
        assert any(line.strip().startswith(f"ok    {what}") for line in lines), what
