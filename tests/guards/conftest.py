"""Fixtures for the guards tests: a throwaway copy of the workspace files the guards read."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "corpus")]  # guards_helpers.py, corpus/build.py

from guards_helpers import REPO  # noqa: E402


@pytest.fixture()
def workspace(tmp_path: Path) -> Path:
    """labwarden.toml, trainer/ and eval_frozen/*.py copied into a temp folder."""
    root = tmp_path / "ws"
    root.mkdir()
    shutil.copy(REPO / "labwarden.toml", root / "labwarden.toml")
    shutil.copytree(REPO / "trainer", root / "trainer",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (root / "eval_frozen").mkdir()
    for f in (REPO / "eval_frozen").glob("*.py"):
        shutil.copy(f, root / "eval_frozen" / f.name)
    return root


@pytest.fixture()
def config(workspace: Path):  # type: ignore[no-untyped-def]
    from labwarden.config import load_config

    return load_config(workspace)
