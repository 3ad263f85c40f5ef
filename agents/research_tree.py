"""The research tree: the current best editable files, on a branch of their own.

In a git workspace it is a `git worktree` of the research branch under
`<state_dir>/worktree`; each kept experiment lands there as one commit (autoresearch's
habit), and the user's branch, index and working tree are never touched. The branch is
created from the user's HEAD on the first run and continued by later ones.

Outside git it is a plain copy of the workspace under `<state_dir>/best` (kept patches
are applied to it; there is no history to commit to).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from labwarden.config import WorkspaceConfig, matches_any
from labwarden.errors import LabwardenError

TRAILER = "Labwarden-Experiment"
_IDENTITY = ("-c", "user.name=labwarden", "-c", "user.email=labwarden@localhost")


class ResearchTreeError(LabwardenError):
    pass


def _git(cwd: Path, *args: str, input: str | None = None, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, input=input, text=True, capture_output=True,
                          env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    if check and proc.returncode != 0:
        raise ResearchTreeError(f"git {' '.join(args[:3])} failed in {cwd}: "
                                f"{' '.join(proc.stderr.split())[:300]}")
    return proc.stdout.strip()


class ResearchTree:
    def __init__(self, path: Path, *, top: Path | None, rel: str, branch: str | None) -> None:
        self.path = path
        """The workspace root inside the tree (what the sandbox gets as base_dir)."""
        self.top = top
        """The worktree's top folder; None outside git."""
        self.rel = rel
        """The workspace's path inside its repository ('' at the top)."""
        self.branch = branch

    @classmethod
    def open(cls, config: WorkspaceConfig, branch: str) -> ResearchTree:
        root = config.root
        probe = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=root, text=True,
                               capture_output=True)
        has_head = probe.returncode == 0 and subprocess.run(
            ["git", "rev-parse", "--verify", "HEAD"], cwd=root, capture_output=True).returncode == 0
        if not has_head:
            return cls._copy(config)
        top = Path(probe.stdout.strip()).resolve()
        rel = root.resolve().relative_to(top).as_posix()
        rel = "" if rel == "." else rel
        wt = config.state_path / "worktree"
        if not (wt / ".git").exists():
            _git(top, "worktree", "prune")
            exists = subprocess.run(["git", "rev-parse", "--verify", f"refs/heads/{branch}"],
                                    cwd=top, capture_output=True).returncode == 0
            if exists:
                _git(top, "worktree", "add", str(wt), branch)
            else:
                _git(top, "worktree", "add", "-b", branch, str(wt), "HEAD")
        current = _git(wt, "rev-parse", "--abbrev-ref", "HEAD")
        if current != branch:
            raise ResearchTreeError(
                f"{wt} holds branch {current!r}, not {branch!r}; remove it with "
                f"'git worktree remove {wt}' or set [agents].research_branch.")
        return cls(wt / rel if rel else wt, top=wt, rel=rel, branch=branch)

    @classmethod
    def _copy(cls, config: WorkspaceConfig) -> ResearchTree:
        best = config.state_path / "best"
        if not best.is_dir():
            state = config.state_path.resolve()

            def skip(folder: str, names: list[str]) -> list[str]:
                return [n for n in names if n in ("__pycache__", ".git")
                        or (Path(folder) / n).resolve() == state]

            tmp = best.with_name("best.tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(config.root, tmp, ignore=skip)
            tmp.rename(best)  # atomic: a half-made copy is never taken for the best tree
        return cls(best, top=None, rel="", branch=None)

    def head(self) -> str | None:
        return _git(self.top, "rev-parse", "HEAD") if self.top else None

    def files(self, editable: tuple[str, ...]) -> dict[str, str]:
        """Editable text files of the tree, path -> content, sorted by path."""
        out = {}
        for p in sorted(self.path.rglob("*")):
            rel = p.relative_to(self.path).as_posix()
            if "__pycache__" in rel or not p.is_file() or not matches_any(rel, editable):
                continue
            try:
                out[rel] = p.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
        return out

    def commit(self, diff: str, message: str, experiment_id: str) -> str | None:
        """Apply a kept patch and commit it; idempotent for the same experiment id.

        Returns the commit id (None outside git). If the branch tip already carries this
        experiment's trailer (the step ran, then the process died before checkpointing),
        nothing is applied twice.
        """
        if self.top is None:
            marker = self.path / ".labwarden-applied"
            done = marker.read_text().split() if marker.is_file() else []
            if experiment_id not in done:
                _git(self.path, "apply", "--whitespace=nowarn", "-", input=diff)
                with marker.open("a") as f:
                    f.write(experiment_id + "\n")
            return None
        if f"{TRAILER}: {experiment_id}" in _git(self.top, "log", "-1", "--format=%B"):
            return _git(self.top, "rev-parse", "HEAD")
        # The worktree is labwarden's own and must equal the branch tip, the current best.
        # `apply --index` compares stat data, which copying a workspace or reading the tree
        # can leave stale (seen as "does not match index" on a first keep in CI): put the
        # tree and its index back at the tip first, so only the kept patch is applied.
        _git(self.top, "reset", "-q", "--hard", "HEAD")
        args = ["apply", "--index", "--whitespace=nowarn"]
        if self.rel:
            args.append(f"--directory={self.rel}")
        _git(self.top, *args, "-", input=diff)
        _git(self.top, *_IDENTITY, "commit", "--no-verify", "-q", "-m",
             f"{message}\n\n{TRAILER}: {experiment_id}")
        return _git(self.top, "rev-parse", "HEAD")
