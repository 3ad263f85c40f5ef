"""Bad invocations of `labwarden run` / `results`: one line on stderr, exit 2, no run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def bare(tmp_path: Path) -> Path:
    """A workspace without prepared data."""
    for item in ("eval_frozen", "trainer", "program.md", "labwarden.toml"):
        src = REPO / item
        if src.is_dir():
            shutil.copytree(src, tmp_path / item, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, tmp_path / item)
    return tmp_path


def cli(ws: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    return subprocess.run([sys.executable, "-m", "agents.cli", *args, "--workspace", str(ws)],
                          cwd=ws, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, message", [
    (("run", "--agent", "scripted"), "needs --script DIR"),
    (("run", "--resume"), "nothing to resume"),
    (("run", "--agent", "tuner"), "labwarden prepare --profile tiny"),
    (("run", "--max-experiments", "-1"), "--max-experiments must be >= 0"),
    (("run", "--agent", "anthropic"), "ANTHROPIC_API_KEY"),
    (("run", "--agent", "gpt"), "invalid choice"),
    (("run", "--gpus", "first"), "--gpus must be 'all' or indices"),
    (("results", "--tsv"), "no ledger"),
])
def test_bad_input_exits_2_with_one_line(bare, args, message):
    if args[-1] == "anthropic":  # get past the data check to the agent's own
        (bare / ".labwarden" / "data" / "tiny").mkdir(parents=True)
    proc = cli(bare, *args)
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]  # argparse prints its usage above it
    assert message in last and last.startswith("labwarden ")
    if args[-1] != "gpt":
        assert len(proc.stderr.strip().splitlines()) == 1
    if (bare / ".labwarden" / "ledger.sqlite").exists():
        import sqlite3

        db = sqlite3.connect(bare / ".labwarden" / "ledger.sqlite")
        assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0


def test_bad_agents_table_is_a_config_error(bare):
    with (bare / "labwarden.toml").open("a") as f:
        f.write("\n[agents]\nkeep_k = -1\n")
    proc = cli(bare, "run", "--agent", "tuner")
    assert proc.returncode == 2 and "keep_k must be a non-negative number" in proc.stderr
