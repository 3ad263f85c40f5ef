"""Fixtures of the agents tests. Helper modules beside this file are importable by name."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from loopkit import BUDGET, git, labwarden  # noqa: E402  (needs the path above)


@pytest.fixture(scope="session")
def baselined(tiny_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git workspace whose ledger already holds two baseline measurements."""
    ws = tmp_path_factory.mktemp("research") / "ws"
    shutil.copytree(tiny_workspace, ws)
    with (ws / "labwarden.toml").open("a") as f:
        f.write("\n[agents]\nbaseline_runs = 2\n")
    (ws / ".gitignore").write_text(".labwarden/\n__pycache__/\n")
    git(ws, "init", "-q", "-b", "main")
    git(ws, "add", "-A")
    git(ws, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "workspace")
    proc = labwarden(ws, "run", "--agent", "tuner", "--max-experiments", "0", "--backend",
                     "local", "--time-budget", BUDGET)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Copies must not share a worktree with this folder: drop it (the branch stays).
    git(ws, "worktree", "remove", "--force", str(ws / ".labwarden" / "worktree"))
    return ws


@pytest.fixture()
def workspace(baselined: Path, tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    shutil.copytree(baselined, ws, symlinks=True)
    return ws
