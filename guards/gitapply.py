"""The tree `git apply` really produces, in a scratch folder, for the files a patch names.

The sandbox applies patches with plain `git apply` (sandbox/staging.py). Rules must judge
exactly those files, so the guard applies the patch the same way into a scratch copy of
the files it names and hands back what git wrote: any file git creates, changes or
removes that the in-memory reading of the patch did not predict is a divergence, and the
engine blocks it (`patch.divergent`).

git is started with `os.posix_spawn` rather than `subprocess` (importing `subprocess` costs
more than running git here), and runs while the rules analyse the in-memory reading; the
engine compares the two at the end and blocks any difference.
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


class PendingGit:
    """A `git apply` running in its scratch folder while the guards analyse the patch."""

    def __init__(self, base: Path, pid: int | None, error: str | None = None) -> None:
        self.base, self.pid, self.error = base, pid, error

    def result(self) -> GitTree:
        """Wait for git, read what it wrote, remove the scratch folder."""
        try:
            if self.pid is None:
                return GitTree(error=self.error or "git apply could not be started")
            _, status = os.waitpid(self.pid, 0)
            self.pid = None
            code = os.waitstatus_to_exitcode(status)
            tree = self.base / "tree"
            if code != 0:
                err = self.base / "stderr"
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
            if self.pid is not None:  # never leave a child behind
                os.waitpid(self.pid, 0)
                self.pid = None
            shutil.rmtree(self.base, ignore_errors=True)


def start_git_apply(patch_text: str, root: Path, paths: list[str]) -> PendingGit | GitTree:
    """Start `git apply` of `patch_text` on copies of `paths` (workspace-relative, already
    validated as safe). Returns at once; `.result()` waits. A GitTree(missing=True) when
    git is not installed."""
    git = shutil.which("git")
    if git is None:
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
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
            (os.POSIX_SPAWN_OPEN, 2, str(base / "stderr"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
             0o600),
        ]
        pid = os.posix_spawn(git, [git, "-C", str(tree), "apply", str(patch_file)], env,
                             file_actions=actions)
        return PendingGit(base, pid)
    except OSError as e:
        return PendingGit(base, None, f"git apply could not be started: {e}")


def git_apply(patch_text: str, root: Path, paths: list[str]) -> GitTree:
    """`start_git_apply` and wait for it."""
    pending = start_git_apply(patch_text, root, paths)
    return pending if isinstance(pending, GitTree) else pending.result()
