"""Helpers of the full-loop tests: the real CLI in a subprocess, git, the audit trail."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

BUDGET = "2"  # training seconds per experiment: the loop, not the model, is under test


def labwarden(ws: Path, *args: str, timeout: float = 900,
              env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "agents.cli", *args, "--workspace", str(ws)],
                          cwd=ws, env=env, capture_output=True, text=True, timeout=timeout)


def git(ws: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=ws, capture_output=True, text=True,
                          check=True).stdout.strip()


def audit_rows(ws: Path) -> list[dict]:
    db = sqlite3.connect(ws / ".labwarden" / "audit.sqlite")
    db.row_factory = sqlite3.Row
    rows = [dict(r) for r in db.execute(
        "SELECT a.*, GROUP_CONCAT(f.rule_id) AS rules FROM attempts a "
        "LEFT JOIN findings f ON f.attempt_id = a.id GROUP BY a.id ORDER BY a.id")]
    db.close()
    return rows
