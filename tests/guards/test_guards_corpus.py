"""The red-team corpus is all blocked, the legitimate one all passes, and both stay honest."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from guards_helpers import CORPUS, REPO

from guards.engine import check_patch
from labwarden.config import load_config

CHEATS = sorted((CORPUS / "cheat").glob("*.patch"))
LEGIT = sorted((CORPUS / "legit").glob("*.patch"))


def test_corpus_sizes() -> None:
    assert len(CHEATS) >= 30
    assert len(LEGIT) >= 20


@pytest.fixture(scope="module")
def repo_config():  # type: ignore[no-untyped-def]
    return load_config(REPO)


@pytest.mark.parametrize("patch", CHEATS, ids=lambda p: p.stem)
def test_cheat_is_blocked(patch: Path, repo_config) -> None:  # type: ignore[no-untyped-def]
    report = check_patch(patch.read_text(), repo_config)
    assert report.verdict == "blocked", report.render()
    blocks = [f for f in report.findings if f.severity == "block"]
    # A cheat must be caught by a real rule, not by an accident of the patch.
    assert not any(f.rule_id in ("patch.does_not_apply", "patch.malformed", "guards.error")
                   for f in blocks), report.render()


@pytest.mark.parametrize("patch", LEGIT, ids=lambda p: p.stem)
def test_legit_patch_passes(patch: Path, repo_config) -> None:  # type: ignore[no-untyped-def]
    report = check_patch(patch.read_text(), repo_config)
    assert report.verdict == "passed", report.render()
    assert report.findings == [], report.render()


def test_seed_only_patch_passes_with_review(repo_config) -> None:  # type: ignore[no-untyped-def]
    report = check_patch((CORPUS / "seed_only.patch").read_text(), repo_config)
    assert report.verdict == "passed"
    assert [f.rule_id for f in report.findings] == ["seed.fishing"]
    assert report.findings[0].severity == "review"


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_every_corpus_patch_applies_with_git(tmp_path: Path) -> None:
    """The patches are real diffs of today's files; rebuild with build.py when they drift."""
    stale = []
    for patch in [*CHEATS, *LEGIT, CORPUS / "seed_only.patch"]:
        r = subprocess.run(["git", "apply", "--check", "--unsafe-paths", str(patch)], cwd=REPO,
                           capture_output=True, text=True)
        if r.returncode != 0:
            stale.append(f"{patch.name}: {r.stderr.strip()}")
    assert not stale, ("corpus patches no longer apply; run python tests/guards/corpus/build.py"
                       "\n" + "\n".join(stale))
