"""Matching resolved names against configured lists (`subprocess`, `os.exec*`)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable


def qual_matches(qual: str, pattern: str) -> bool:
    """`os.system` matches `os.system` and `os.system.x`; `*` patterns use fnmatch."""
    if "*" in pattern or "?" in pattern:
        return fnmatch.fnmatchcase(qual, pattern) or fnmatch.fnmatchcase(qual, pattern + ".*")
    return qual == pattern or qual.startswith(pattern + ".")


def first_match(qual: str, patterns: Iterable[str]) -> str | None:
    for p in patterns:
        if qual_matches(qual, p):
            return p
    return None


def under(qual: str, module: str) -> bool:
    return qual == module or qual.startswith(module + ".")
