"""Matching resolved names against configured lists (`subprocess`, `os.exec*`)."""

from __future__ import annotations

import fnmatch
from functools import lru_cache


def qual_matches(qual: str, pattern: str) -> bool:
    """`os.system` matches `os.system` and `os.system.x`; `*` patterns use fnmatch."""
    if "*" in pattern or "?" in pattern:
        return fnmatch.fnmatchcase(qual, pattern) or fnmatch.fnmatchcase(qual, pattern + ".*")
    return qual == pattern or qual.startswith(pattern + ".")


@lru_cache(maxsize=65536)
def first_match(qual: str, patterns: tuple[str, ...]) -> str | None:
    """The first pattern `qual` matches (memoised: rules ask the same questions a lot)."""
    for p in patterns:
        if qual_matches(qual, p):
            return p
    return None


def under(qual: str, module: str) -> bool:
    return qual == module or qual.startswith(module + ".")


@lru_cache(maxsize=65536)
def listed(name: str, patterns: tuple[str, ...]) -> bool:
    """Allow-list matching: an exact entry, or a glob (`torch.optim.*`); no prefixes, so
    listing `torch` does not list `torch.compiler`."""
    return any(name == p or (("*" in p or "?" in p) and fnmatch.fnmatchcase(name, p))
               for p in patterns)
