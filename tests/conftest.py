"""Fixtures shared by every test area. Keep this small: only fixtures several areas use."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
# What a research workspace holds; copied, never symlinked, so tests may tamper with it.
WORKSPACE_ITEMS = ("eval_frozen", "trainer", "program.md", "labwarden.toml")


def copy_workspace(dest: Path) -> Path:
    """Copy the repo's workspace files (those that exist) into `dest`; returns `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    for item in WORKSPACE_ITEMS:
        src = REPO_ROOT / item
        if src.is_dir():
            shutil.copytree(src, dest / item, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.is_file():
            shutil.copy2(src, dest / item)
    return dest


@pytest.fixture(scope="session")
def tiny_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temp workspace (eval_frozen/, trainer/, program.md, labwarden.toml) with
    `prepare --profile tiny` done: data, tokenizer and seal in `.labwarden/data/tiny/`.

    Session-scoped and shared: do not modify it; copy it (or use `copy_workspace`) to tamper.
    """
    ws = copy_workspace(tmp_path_factory.mktemp("tiny_workspace"))
    # Run from the copy so the seal hashes the copy's eval_frozen, the code that will run there.
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "eval_frozen.prepare", "--profile", "tiny", "--workspace", str(ws)],
        cwd=ws, env=env, capture_output=True, text=True, timeout=600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"prepare --profile tiny failed ({proc.returncode}):\n{proc.stderr}")
    return ws
