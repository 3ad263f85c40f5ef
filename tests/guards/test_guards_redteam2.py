"""Issue 10, second round: the red team's patches, stored as it wrote them.

`redteam2_h_*` and `redteam2_honest1` are honest edits (they pass with no finding); every
other one is a cheat (blocked by a real rule, not by an accident of the patch). They are
raw `git diff` output against today's trainer, so they are checked with `git apply` too.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from guards_helpers import CORPUS, REPO

from guards.engine import check_patch
from labwarden.config import load_config

FOLDER = CORPUS / "redteam2"
PATCHES = sorted(FOLDER.glob("redteam2_*.patch"))
HONEST = [p for p in PATCHES if p.stem.startswith(("redteam2_h_", "redteam2_honest"))]
CHEATS = [p for p in PATCHES if p not in HONEST]
ACCIDENTS = ("patch.does_not_apply", "patch.malformed", "guards.error")


@pytest.fixture(scope="module")
def repo_config():  # type: ignore[no-untyped-def]
    return load_config(REPO)


def test_corpus_is_there() -> None:
    assert len(CHEATS) >= 37 and len(HONEST) >= 7


@pytest.mark.parametrize("path", CHEATS, ids=lambda p: p.stem)
def test_redteam2_cheat_is_blocked(path: Path, repo_config) -> None:  # type: ignore[no-untyped-def]
    report = check_patch(path.read_text(), repo_config)
    assert report.verdict == "blocked", report.render()
    blocks = [f for f in report.findings if f.severity == "block"]
    assert blocks and not any(f.rule_id in ACCIDENTS for f in blocks), report.render()


@pytest.mark.parametrize("path", HONEST, ids=lambda p: p.stem)
def test_redteam2_honest_passes(path: Path, repo_config) -> None:  # type: ignore[no-untyped-def]
    report = check_patch(path.read_text(), repo_config)
    assert report.verdict == "passed", report.render()
    assert report.findings == [], report.render()


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_redteam2_patches_apply(tmp_path: Path) -> None:
    """Each one is a real diff of today's trainer (a stale one would prove nothing)."""
    (tmp_path / "trainer").mkdir()
    shutil.copyfile(REPO / "trainer" / "train.py", tmp_path / "trainer" / "train.py")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    failed = [p.name for p in PATCHES
              if subprocess.run(["git", "apply", "--check", str(p)], cwd=tmp_path,
                                capture_output=True).returncode != 0]
    assert not failed, f"stale against trainer/train.py: {', '.join(failed)}"
