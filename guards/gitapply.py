"""The tree `git apply` really produces, in a scratch folder, for the files a patch names.

The sandbox applies patches with plain `git apply` (sandbox/staging.py). Rules must judge
exactly those files, so the guard applies the patch the same way into a scratch copy of
the files it names and hands back what git wrote: any file git creates, changes or
removes that the in-memory reading of the patch did not predict is a divergence, and the
engine blocks it (`patch.divergent`).

git is started with `os.posix_spawnp` rather than `subprocess`: the check is one short
command, and importing `subprocess` costs more than running git here.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


class GitTree:
    """What git did: `files` maps every path left in the scratch tree to its bytes."""

    __slots__ = ("files", "links", "error", "missing")

    def __init__(self, error: str | None = None, missing: bool = False) -> None:
        self.files: dict[str, bytes] = {}
        self.links: set[str] = set()
        """Paths git left as symlinks (never read, never followed)."""
        self.error = error
        """git's first error line when it refused the patch."""
        self.missing = missing
        """git is not installed: nothing was applied."""


def _scratch() -> Path:
    # tmpfs first: creating and removing the scratch tree costs milliseconds on a disk
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(
        os.environ.get("TMPDIR") or "/tmp")
    for _ in range(20):
        path = base / f"labwarden-guard-{os.getpid()}-{os.urandom(6).hex()}"
        try:
            path.mkdir(mode=0o700)
            return path
        except FileExistsError:
            continue
    raise OSError("could not create a scratch folder for git apply")


def _run_git(args: list[str], env: dict[str, str], err_path: Path) -> int:
    git = shutil.which("git")
    if git is None:
        return -1
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, str(err_path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
    ]
    pid = os.posix_spawn(git, [git, *args], env, file_actions=actions)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def git_apply(patch_text: str, root: Path, paths: list[str]) -> GitTree:
    """Apply `patch_text` with `git apply` to copies of `paths` (workspace-relative,
    already validated as safe) and return the resulting tree."""
    if shutil.which("git") is None:
        return GitTree(missing=True)
    base = _scratch()
    try:
        tree = base / "tree"
        tree.mkdir()
        for rel in paths:
            src = root / rel
            if src.is_file() and not src.is_symlink():
                dst = tree / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_bytes(src.read_bytes())
        patch_file = base / "patch.diff"
        patch_file.write_bytes(patch_text.encode("utf-8", "surrogateescape"))
        # As in the sandbox: no enclosing repository may change how git reads paths.
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_CEILING_DIRECTORIES":
               str(base), "HOME": str(base), "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C"}
        err = base / "stderr"
        code = _run_git(["-C", str(tree), "apply", str(patch_file)], env, err)
        if code != 0:
            text = err.read_text("utf-8", "replace") if err.exists() else ""
            lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
            return GitTree(error=(lines[0] if lines else f"git apply exited {code}"))
        out = GitTree()
        for folder, dirs, names in os.walk(tree):
            here = Path(folder)
            for name in [*names, *dirs]:
                path = here / name
                rel = path.relative_to(tree).as_posix()
                if path.is_symlink():
                    out.links.add(rel)
                elif name in names and path.is_file():
                    out.files[rel] = path.read_bytes()
        return out
    finally:
        shutil.rmtree(base, ignore_errors=True)
