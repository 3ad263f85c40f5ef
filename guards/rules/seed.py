"""Seed fishing: a patch whose only effect is a different random seed.

A lucky seed looks like an improvement until the noise floor is measured; the keep rule
handles that, and this rule tells the reviewer what it is looking at (severity review).
"""

from __future__ import annotations

import ast
import re

from guards.context import CheckContext
from guards.findings import Finding
from guards.patch import Patch
from guards.rules.base import Rule

_SEEDISH = re.compile(r"seed|rng|random_state|prngkey|generator", re.IGNORECASE)
_SEED_CALLS = re.compile(r"(^|_)(manual_seed(_all)?|seed|set_seed|seed_everything|default_rng|"
                         r"RandomState|PRNGKey|Generator)$")


def _normalise(tree: ast.AST) -> str:
    """ast.dump with every seed value replaced by a placeholder."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(
                fn, ast.Name) else ""
            if _SEED_CALLS.search(name):
                node.args = [ast.Constant("<seed>") for _ in node.args]
                for k in node.keywords:
                    k.value = ast.Constant("<seed>")
            for k in node.keywords:
                if k.arg and _SEEDISH.search(k.arg):
                    k.value = ast.Constant("<seed>")
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t.id if isinstance(t, ast.Name) else t.attr if isinstance(
                t, ast.Attribute) else "" for t in targets]
            if names and all(_SEEDISH.search(n) for n in names) and node.value is not None:
                node.value = ast.Constant("<seed>")
    return ast.dump(tree)


class SeedFishingRule(Rule):
    id = "seed.fishing"
    severity = "review"
    description = "A patch whose only effect is a different random seed (a lucky seed)."

    def check(self, patch: Patch, context: CheckContext) -> list[Finding]:
        # Cheap gate first: every changed line must mention something seed-like.
        changed = [(f, ln) for f in patch.files for ln in f.added_lines() + f.removed_lines()]
        meaningful = [(f, ln) for f, ln in changed
                      if ln[1].strip() and not ln[1].strip().startswith("#")]
        if not meaningful or not all(_SEEDISH.search(text) for _, (_, text) in meaningful):
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
            if _normalise(ast.parse(before.source)) != _normalise(ast.parse(after.source)):
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
