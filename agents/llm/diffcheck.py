"""Is a coder's diff usable at all? (Parses, touches only editable files, applies.)

This is a format check so that a malformed answer can be asked for again, not a security
check: the guards still judge every diff that passes here.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from unidiff import PatchSet
from unidiff.errors import UnidiffParseError

from labwarden.config import matches_any


def strip_prefix(path: str) -> str:
    return path[2:] if path.startswith(("a/", "b/")) else path


def validate_diff(diff: str, base_dir: Path, editable: tuple[str, ...]) -> str:
    """The diff with a final newline, or ValueError saying what is wrong with it."""
    if not diff.strip():
        raise ValueError("the diff is empty")
    if not diff.endswith("\n"):
        diff += "\n"
    try:
        patch = PatchSet(diff)
    except UnidiffParseError as e:
        raise ValueError(f"not a unified diff: {e}") from None
    if not patch:
        raise ValueError("no file headers (--- a/PATH, +++ b/PATH) found")
    for f in patch:
        for raw in (f.source_file, f.target_file):
            path = strip_prefix(raw)
            if path != "/dev/null" and not matches_any(path, editable):
                raise ValueError(f"{path} is not editable; editable files match {list(editable)}")
    proc = subprocess.run(["git", "apply", "--check", "--whitespace=nowarn", "-"], input=diff,
                          text=True, cwd=base_dir, capture_output=True)
    if proc.returncode != 0:
        reason = " ".join(proc.stderr.split())[:400]
        raise ValueError(f"git apply --check failed: {reason}")
    return diff
