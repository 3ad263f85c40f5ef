"""Helpers shared by the guards tests (importable: conftest puts this folder on sys.path)."""

from __future__ import annotations

import difflib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parent / "corpus"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def diff(path: str, before: str, after: str) -> str:
    """A git-style unified diff of one file (new file when `before` is empty)."""
    a = before.splitlines(keepends=True)
    b = after.splitlines(keepends=True)
    head = f"diff --git a/{path} b/{path}\n" + ("new file mode 100644\n" if not before else "")
    return head + "".join(difflib.unified_diff(a, b, "/dev/null" if not before else f"a/{path}",
                                               f"b/{path}"))


def edit(root: Path, path: str, old: str, new: str) -> str:
    text = (root / path).read_text()
    assert text.count(old) == 1, f"{old!r} must occur once in {path}"
    return diff(path, text, text.replace(old, new))
