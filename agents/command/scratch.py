"""The scratch copy a command agent works in, and what it changed, as a `git diff`.

The copy holds only what agents may see: the editable files at the current best,
`program.md`, and the source of the frozen code's public API (the modules named in
`[guards] public_api` and the frozen modules they import, `.py` files only). Never the
hidden files, data, `.labwarden/`, earlier runs or any history: the files are written from
text, not copied as folders.

The base commit lives in a git folder beside the copy, never inside it: the command
cannot rewrite the history or the git config that labwarden's own `git diff` then reads
(hooks, filters and `core.*` settings there would run code or hide changes).
"""

from __future__ import annotations

import ast
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from labwarden.config import WorkspaceConfig
from labwarden.errors import LabwardenError

WORK = "ws"
"""The copy (the command's working folder), inside the scratch folder."""
GIT_DIR = "base.git"
AGENT_DIR = ".labwarden-agent"
EXCLUDE = (f"/{AGENT_DIR}/", "__pycache__/", "*.pyc", ".git")
MAX_DIFF_BYTES = 1_000_000
MAX_TREE_BYTES = 64 * 1024 * 1024
"""What the copy may weigh after the command (its brief folder aside) before it is staged."""

_GIT_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_AUTHOR_NAME": "labwarden", "GIT_AUTHOR_EMAIL": "labwarden@localhost",
            "GIT_COMMITTER_NAME": "labwarden", "GIT_COMMITTER_EMAIL": "labwarden@localhost",
            "GIT_TERMINAL_PROMPT": "0"}


class ScratchError(LabwardenError):
    """What the command left cannot be a proposal (a link, a file too large, ...)."""


def _module_file(root: Path, module: str) -> Path | None:
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, module: str) -> list[str]:
    """Modules `path` imports (absolute names; `from x import y` also names `x.y`)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, OSError):
        return []
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                head = ".".join(parts[: len(parts) - node.level + 1])
                name = f"{head}.{node.module}" if node.module else head
            else:
                name = node.module or ""
            out.append(name)
            out += [f"{name}.{a.name}" for a in node.names]
    return out


def public_sources(config: WorkspaceConfig) -> dict[str, str]:
    """rel path -> text of the frozen public API's source and the frozen modules it needs."""
    from guards.settings import load_settings

    settings = load_settings(config)
    frozen = set(settings.frozen_modules)
    todo = list(settings.public_api)
    seen: set[str] = set()
    out: dict[str, str] = {}
    while todo:
        name = todo.pop()
        if name in seen or name.split(".")[0] not in frozen:
            continue
        seen.add(name)
        parts = name.split(".")
        # A public name (`pkg.mod.func`) is found through its module; parents come along.
        for i in range(1, len(parts) + 1):
            module = ".".join(parts[:i])
            path = _module_file(config.root, module)
            if path is None:
                continue
            rel = path.relative_to(config.root).as_posix()
            if rel in out or config.is_hidden(rel) or not config.is_frozen(rel):
                continue
            out[rel] = path.read_text(encoding="utf-8", errors="replace")
            todo += _imports(path, module)
    return out


def _git(folder: Scratch, *args: str, input: str | None = None) -> str:
    scratch = folder.path
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", **_GIT_ENV}
    done = subprocess.run(["git", f"--git-dir={scratch / GIT_DIR}",
                           f"--work-tree={scratch / WORK}", "-c", "core.hooksPath=/dev/null",
                           "-c", "core.fsmonitor=false", "-c", "core.autocrlf=false",
                           "-c", "diff.noprefix=false", *args],
                          cwd=scratch, env=env, input=input, capture_output=True, text=True,
                          check=False, timeout=120)
    if done.returncode != 0:
        raise ScratchError(f"git {args[0]} in the scratch copy failed: "
                           f"{(done.stderr or done.stdout).strip()[-300:]}")
    return done.stdout


@dataclass(frozen=True)
class Scratch:
    """One experiment's scratch folder: `ws/` (the copy) and `base.git` (its base commit)."""

    path: Path

    @property
    def work(self) -> Path:
        return self.path / WORK

    @classmethod
    def create(cls, folder: Path, files: dict[str, str]) -> Scratch:
        """Write `files` (rel path -> text) into `folder/ws` and commit them as the base."""
        scratch = cls(folder)
        scratch.work.mkdir(parents=True)
        for rel, text in sorted(files.items()):
            target = scratch.work / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        (scratch.work / AGENT_DIR).mkdir(exist_ok=True)
        _git(scratch, "init", "-q")
        (folder / GIT_DIR / "info").mkdir(parents=True, exist_ok=True)
        (folder / GIT_DIR / "info" / "exclude").write_text("\n".join(EXCLUDE) + "\n")
        _git(scratch, "add", "-A")
        _git(scratch, "commit", "-q", "--no-verify", "-m", "base")
        return scratch

    def diff(self) -> str:
        """What the command changed against the base, as a unified diff ('' for nothing)."""
        total = 0
        for dirpath, dirnames, filenames in os.walk(self.work):
            if Path(dirpath) == self.work:
                dirnames[:] = [d for d in dirnames if d != AGENT_DIR]
            total += sum(os.lstat(os.path.join(dirpath, f)).st_size for f in filenames)
        if total > MAX_TREE_BYTES:
            raise ScratchError(f"the command left {total} bytes in its copy, more than "
                               f"{MAX_TREE_BYTES}: not a reviewable proposal.")
        _git(self, "add", "-A")
        raw = _git(self, "diff", "--cached", "--raw", "--no-renames", "HEAD")
        for line in raw.splitlines():
            meta, _, rel = line.partition("\t")
            modes = meta.split()[:2]
            if any(m.lstrip(":") in ("120000", "160000") for m in modes):
                raise ScratchError(f"the command left a symbolic link or a repository at "
                                   f"{rel}: a proposal holds only plain files.")
        diff = _git(self, "diff", "--cached", "--no-color", "--no-ext-diff", "--no-renames",
                    "--no-textconv", "HEAD")
        if len(diff.encode()) > MAX_DIFF_BYTES:
            raise ScratchError(f"the change is {len(diff.encode())} bytes as a diff, more than "
                               f"{MAX_DIFF_BYTES}: not a reviewable proposal.")
        return diff
