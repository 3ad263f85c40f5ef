"""A fresh copy of the workspace for one experiment, and the patch applied to it.

The copy holds only what a step may see as code: the editable files (from `base_dir`,
the current best) and the frozen files outside the data folder (from the workspace).
Data is never copied; steps get it by mount. Hidden files are never copied.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from labwarden.config import WorkspaceConfig

_SKIP_DIRS = {".git", "__pycache__", ".pytest_cache", ".ruff_cache", ".venv", "node_modules"}


@dataclass(frozen=True)
class Staged:
    work: Path
    """Editable + frozen code: the training step's working tree (patched)."""
    frozen: Path
    """Frozen code only, straight from the workspace: the evaluation step's tree."""
    frozen_files: tuple[str, ...]
    """Relative paths of the frozen files, as copied into both trees."""


def _walk(root: Path, skip: tuple[Path, ...]) -> list[str]:
    """Relative POSIX paths of the regular files under root, minus skipped folders."""
    out: list[str] = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and here / d not in skip)
        for name in sorted(files):
            path = here / name
            if path.is_file() and not path.is_symlink() and not name.endswith(".pyc"):
                out.append(path.relative_to(root).as_posix())
    return out


def code_files(config: WorkspaceConfig, root: Path) -> tuple[list[str], list[str]]:
    """(editable, frozen) files under root, data and state folders excluded."""
    skip = tuple(p.resolve() for p in (root / config.state_dir, root / config.data_dir))
    editable, frozen = [], []
    for rel in _walk(root.resolve(), skip):
        if config.is_hidden(rel):
            continue
        if config.is_editable(rel):
            editable.append(rel)
        elif config.is_frozen(rel):
            frozen.append(rel)
    return editable, frozen


def _copy(src_root: Path, dst_root: Path, rels: list[str]) -> None:
    for rel in rels:
        dst = dst_root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src_root / rel, dst)


def stage(config: WorkspaceConfig, base_dir: Path | None, run_dir: Path) -> Staged:
    """Copy editable files from base_dir and frozen code from the workspace into run_dir."""
    base = (base_dir or config.root).resolve()
    editable, _ = code_files(config, base)
    _, frozen = code_files(config, config.root)
    work, frozen_dir = run_dir / "work", run_dir / "frozen"
    _copy(base, work, editable)
    _copy(config.root, work, frozen)
    _copy(config.root, frozen_dir, frozen)
    work.mkdir(parents=True, exist_ok=True)
    frozen_dir.mkdir(parents=True, exist_ok=True)
    return Staged(work=work, frozen=frozen_dir, frozen_files=tuple(frozen))


def _git(args: list[str], cwd: Path, patch_file: Path) -> subprocess.CompletedProcess[str]:
    # GIT_CEILING_DIRECTORIES stops git from finding an enclosing repository (the state
    # folder usually sits inside one), which would make it skip paths "outside" cwd.
    env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(cwd.parent)}
    return subprocess.run(
        ["git", "apply", *args, str(patch_file)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def apply_patch(config: WorkspaceConfig, work: Path, patch_file: Path) -> str | None:
    """Apply the patch to the staged tree. Returns None, or the reason it was refused.

    Refused: a patch touching a file that is not editable (guards should have blocked
    it; the sandbox does not rely on that), and one that `git apply --check` rejects.
    """
    if shutil.which("git") is None:
        from sandbox.errors import SandboxUnavailable

        raise SandboxUnavailable(
            "git is not installed; the sandbox applies patches with "
            "'git apply' (apt-get install git)."
        )
    numstat = _git(["--numstat", "-z"], work, patch_file)
    if numstat.returncode != 0:
        return f"git apply: {_first_line(numstat.stderr) or 'not a patch'}"
    touched = _numstat_paths(numstat.stdout)
    if not touched:
        return "the patch changes no file"
    for rel in touched:
        if not config.is_editable(rel):
            return f"the patch touches {rel}, which is not editable"
    check = _git(["--check"], work, patch_file)
    if check.returncode != 0:
        return f"git apply --check: {_first_line(check.stderr)}"
    done = _git([], work, patch_file)
    if done.returncode != 0:
        return f"git apply: {_first_line(done.stderr)}"
    return None


def _numstat_paths(out: str) -> list[str]:
    """Paths from `git apply --numstat -z`: "A\tD\tpath\0", or "A\tD\t\0old\0new\0"."""
    tokens = out.split("\0")
    paths, i = [], 0
    while i < len(tokens):
        token = tokens[i]
        if token.count("\t") >= 2:
            path = token.split("\t", 2)[2]
            if path:
                paths.append(path)
                i += 1
            else:  # a rename or copy: both names follow
                paths.extend(t for t in tokens[i + 1 : i + 3] if t)
                i += 3
        else:
            i += 1
    return paths


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else ""


def digest_files(root: Path, rels: tuple[str, ...] | list[str]) -> dict[str, str]:
    """SHA-256 of each file (missing files map to "missing")."""
    out = {}
    for rel in rels:
        path = root / rel
        try:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            out[rel] = "missing"
    return out
