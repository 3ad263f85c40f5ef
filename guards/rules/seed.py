"""Seed fishing: a patch whose only effect is a different random seed.

A lucky seed looks like an improvement until the noise floor is measured; the keep rule
handles that, and this rule tells the reviewer what it is looking at (severity review).
"""

from __future__ import annotations

import ast

from guards.context import CheckContext
from guards.findings import Finding
from guards.patch import Patch
from guards.rules.base import Rule
from guards.seeds import SEEDISH, normalise


class SeedFishingRule(Rule):
    id = "seed.fishing"
    severity = "review"
    description = "A patch whose only effect is a different random seed (a lucky seed)."

    def check(self, patch: Patch, context: CheckContext) -> list[Finding]:
        # Cheap gate first: every changed line must mention something seed-like.
        changed = [(f, ln) for f in patch.files for ln in f.added_lines() + f.removed_lines()]
        meaningful = [(f, ln) for f, ln in changed
                      if ln[1].strip() and not ln[1].strip().startswith("#")]
        if not meaningful or not all(SEEDISH.search(text) for _, (_, text) in meaningful):
            return []
        if any(f.status != "modified" for f in patch.files):
            return []
        first_line = None
        for state in context.files:
            before, after = state.python("before"), state.python("after")
            if before is None or after is None:
                return []
            if ast.dump(before.tree) == ast.dump(after.tree):
                continue
            if normalise(before.source) != normalise(after.source):
                return []
            if first_line is None:
                added = state.change.added_lines()
                first_line = (state.path, added[0][0] if added else 0,
                              added[0][1].strip() if added else "")
        if first_line is None:
            return []
        path, line, evidence = first_line
        return [self.finding(path, line, evidence, "the patch only changes a random seed; "
                             "a better score from it is noise, not an improvement.")]
