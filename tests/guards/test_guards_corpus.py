"""The red-team corpus is all blocked, the legitimate one all passes, and both stay honest."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from build import CHEATS as CHEAT_EDITS
from build import LEGIT as LEGIT_EDITS
from build import all_patches, make_patch
from guards_helpers import CORPUS, REPO

from guards.engine import check_patch
from labwarden.config import load_config

CHEATS = sorted((CORPUS / "cheat").glob("*.patch"))
LEGIT = sorted((CORPUS / "legit").glob("*.patch"))


def test_corpus_sizes() -> None:
    assert len(CHEATS) >= 30 and len(CHEAT_EDITS) >= 30
    assert len(LEGIT) >= 20 and len(LEGIT_EDITS) >= 20


def test_stored_patches_are_current() -> None:
    """The .patch files are today's diffs; when the trainer changes, rebuild them."""
    stale = [name for name, text in all_patches().items()
             if not (CORPUS / name).is_file() or (CORPUS / name).read_text() != text]
    assert not stale, f"run python tests/guards/corpus/build.py (stale: {', '.join(stale)})"


@pytest.fixture(scope="module")
def repo_config():  # type: ignore[no-untyped-def]
    return load_config(REPO)


@pytest.mark.parametrize("name", sorted(CHEAT_EDITS))
def test_cheat_is_blocked(name: str, repo_config) -> None:  # type: ignore[no-untyped-def]
    report = check_patch(make_patch(CHEAT_EDITS[name]), repo_config)
    assert report.verdict == "blocked", report.render()
    blocks = [f for f in report.findings if f.severity == "block"]
    # A cheat must be caught by a real rule, not by an accident of the patch.
    assert not any(f.rule_id in ("patch.does_not_apply", "patch.malformed", "guards.error")
                   for f in blocks), report.render()


@pytest.mark.parametrize("name", sorted(LEGIT_EDITS))
def test_legit_patch_passes(name: str, repo_config) -> None:  # type: ignore[no-untyped-def]
    report = check_patch(make_patch(LEGIT_EDITS[name]), repo_config)
    assert report.verdict == "passed", report.render()
    assert report.findings == [], report.render()


def test_seed_only_patch_passes_with_review(repo_config) -> None:  # type: ignore[no-untyped-def]
    report = check_patch(all_patches()["seed_only.patch"], repo_config)
    assert report.verdict == "passed"
    assert [f.rule_id for f in report.findings] == ["seed.fishing"]
    assert report.findings[0].severity == "review"


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_every_corpus_patch_applies_with_git(tmp_path: Path) -> None:
    """The corpus is real diffs of today's files: git itself accepts every one."""
    # A copy of the versioned files only: state a run leaves in the checkout (a prepared
    # .labwarden/, say) must not make a new-file patch look stale.
    tree = tmp_path / "tree"
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout
    for rel in filter(None, listed.split("\0")):
        if (REPO / rel).is_file():
            (tree / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(REPO / rel, tree / rel)
    failed = []
    for name, text in all_patches().items():
        path = tmp_path / name.replace("/", "_")
        path.write_text(text)
        r = subprocess.run(["git", "apply", "--check", str(path)], cwd=tree,
                           capture_output=True, text=True)
        if r.returncode != 0:
            failed.append(f"{name}: {r.stderr.strip()}")
    assert not failed, "\n".join(failed)
