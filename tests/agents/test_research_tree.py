"""The research branch: kept patches become commits in a worktree; the user's branch,
index and working tree stay exactly as they were."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from agents.research_tree import ResearchTree
from labwarden.config import load_config

TOML = '[workspace]\neditable = ["trainer/**"]\nstate_dir = ".labwarden"\n'
DIFF = """\
--- a/trainer/train.py
+++ b/trainer/train.py
@@ -1,2 +1,2 @@
-LR = 0.02
+LR = 0.03
 DEPTH = 2
"""


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


def make_workspace(root: Path) -> Path:
    (root / "trainer").mkdir(parents=True)
    (root / "trainer" / "train.py").write_text("LR = 0.02\nDEPTH = 2\n")
    (root / "labwarden.toml").write_text(TOML)
    return root


@pytest.mark.parametrize("subfolder", ["", "research/ws"])
def test_keep_commits_on_the_research_branch_only(tmp_path, subfolder):
    repo = tmp_path / "repo"
    ws = make_workspace(repo / subfolder if subfolder else repo)
    (repo / ".gitignore").write_text(".labwarden/\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=u", "-c", "user.email=u@u", "commit", "-q", "-m", "init")
    (ws / "trainer" / "train.py").write_text("LR = 0.5  # the user's uncommitted edit\nDEPTH = 2\n")
    head, status = git(repo, "rev-parse", "HEAD"), git(repo, "status", "--porcelain")

    tree = ResearchTree.open(load_config(ws), "labwarden/research")
    assert tree.files(("trainer/**",)) == {"trainer/train.py": "LR = 0.02\nDEPTH = 2\n"}
    sha = tree.commit(DIFF, "raise LR", "r1-001")
    assert sha and tree.commit(DIFF, "raise LR", "r1-001") == sha  # replay: no second commit
    assert (tree.path / "trainer" / "train.py").read_text() == "LR = 0.03\nDEPTH = 2\n"
    assert git(repo, "rev-list", "--count", "labwarden/research") == "2"
    assert "Labwarden-Experiment: r1-001" in git(repo, "log", "-1", "--format=%B",
                                                 "labwarden/research")
    assert git(repo, "rev-parse", "HEAD") == head
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    assert git(repo, "status", "--porcelain") == status
    assert (ws / "trainer" / "train.py").read_text().startswith("LR = 0.5")
    # A later run continues the same branch from where it stood.
    again = ResearchTree.open(load_config(ws), "labwarden/research")
    assert again.head() == sha


def test_outside_git_a_copy_holds_the_best_files(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    tree = ResearchTree.open(load_config(ws), "labwarden/research")
    assert tree.top is None and tree.head() is None
    assert tree.commit(DIFF, "raise LR", "r1-001") is None
    assert tree.commit(DIFF, "raise LR", "r1-001") is None  # applied once, not twice
    assert (tree.path / "trainer" / "train.py").read_text() == "LR = 0.03\nDEPTH = 2\n"
    assert (ws / "trainer" / "train.py").read_text() == "LR = 0.02\nDEPTH = 2\n"
    assert not (tree.path / ".labwarden").exists()  # the state folder is not copied into itself


def test_a_stale_worktree_still_takes_the_kept_patch(tmp_path):
    """A worktree whose files or stat data moved since checkout (a copied workspace, a
    stray edit) is put back at the tip, so the commit holds the kept patch and only it."""
    repo = make_workspace(tmp_path / "repo")
    (repo / ".gitignore").write_text(".labwarden/\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=u", "-c", "user.email=u@u", "commit", "-q", "-m", "init")
    tree = ResearchTree.open(load_config(repo), "labwarden/research")
    (tree.path / "trainer" / "train.py").write_text("LR = 9.9\nDEPTH = 2\n")
    sha = tree.commit(DIFF, "raise LR", "r1-001")
    assert sha and (tree.path / "trainer" / "train.py").read_text() == "LR = 0.03\nDEPTH = 2\n"
    assert git(repo, "show", "--format=", "--unified=0", "labwarden/research").count("+LR") == 1
