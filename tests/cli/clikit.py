"""Helpers of the CLI tests: a scratch workspace and `python -m labwarden` as a process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / ".labwarden" / "data"
TIMEOUT_S = 180
GOOD_TOML = f"""# a workspace for the CLI tests
[workspace]
editable = ["trainer/**"]
frozen = ["labwarden.toml"]
data_dir = "{DATA}"
"""
BAD_PATCH = (b"--- a/trainer/train.py\n+++ b/trainer/train.py\n@@ -1,1 +1,2 @@\n"
             b" x\n+# caf\xe9, not UTF-8\n")
GOOD_PATCH = "--- a/trainer/train.py\n+++ b/trainer/train.py\n@@ -1,1 +1,2 @@\n x\n+y = 1\n"


def lw(args: list[str], cwd: Path, *, close_stdout: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "LABWARDEN_DEBUG": ""}
    env.pop("ANTHROPIC_API_KEY", None)
    argv = [sys.executable, "-m", "labwarden", *args]
    if not close_stdout:
        return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)
    # The reader goes away before the command writes a byte, like `| head -0`: any write
    # fails with EPIPE, deterministically, however little the command prints.
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    try:
        err = proc.stderr.read().decode("utf-8", "replace")
        code = proc.wait(timeout=TIMEOUT_S)
    finally:
        proc.kill()
    return subprocess.CompletedProcess(argv, code, "", err)


def workspace(root: Path, toml: bytes | str = GOOD_TOML) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "trainer").mkdir(exist_ok=True)
    (root / "trainer" / "train.py").write_text("x\n")
    data = toml.encode() if isinstance(toml, str) else toml
    (root / "labwarden.toml").write_bytes(data)
    return root


def assert_one_line(proc: subprocess.CompletedProcess, codes: tuple[int, ...] = (2,)) -> None:
    err = proc.stderr
    assert "Traceback" not in err, err
    assert "Exception ignored" not in err, err
    assert proc.returncode in codes, (proc.args, proc.returncode, err)
    if proc.returncode == 2:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1, err
        assert "error" in lines[0] and "usage:" not in err, err
