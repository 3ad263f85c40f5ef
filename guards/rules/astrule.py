"""Base for rules that scan Python ASTs and report what the patch added (or removed)."""

from __future__ import annotations

import abc
import ast

from guards.context import CheckContext, Hit
from guards.findings import Finding
from guards.patch import Patch
from guards.pyast import PyModule
from guards.rules.base import Rule


class AstRule(Rule):
    """Scan both versions of each Python file; report hits the patch introduced.

    Rules for which *removing* something is the cheat (the budget check, the export call)
    set `report_lost = True`: then hits that disappear are reported too.
    """

    report_lost: bool = False

    @abc.abstractmethod
    def scan(self, mod: PyModule, ctx: CheckContext) -> list[Hit]:
        """Facts of one file version; signatures must not contain line numbers."""

    def check(self, patch: Patch, context: CheckContext) -> list[Finding]:
        def scanner(mod: PyModule) -> list[Hit]:
            return self.scan(mod, context)

        # The key names this very rule object: two plugins may share an id across registries.
        key = f"{self.id}@{type(self).__qualname__}@{id(self)}"
        out = [context.finding(self.id, self.severity, s, h)
               for s, h in context.diff_hits(key, scanner)]
        if self.report_lost:
            for s, h in context.lost_hits(key, scanner):
                f = context.finding(self.id, self.severity, s, h, lost=True)
                out.append(Finding(f.rule_id, f.severity, f.file, f.line,
                                   f"(removed) {h.evidence}"[:300], h.message))
        return out


def hit(mod: PyModule, node: ast.AST, message: str, *sig: object,
        severity: str | None = None) -> Hit:
    """A hit located at `node`, identified by `sig` plus the statement's source."""
    stmt = mod.stmt_of(node)
    line = getattr(node, "lineno", 0) or getattr(stmt, "lineno", 0)
    try:
        text = ast.unparse(node)
    except Exception:  # unparse of odd nodes must never break a check
        text = type(node).__name__
    return Hit(signature=(*sig, text), line=line, message=message,
               evidence=mod.line_text(line), severity=severity)  # type: ignore[arg-type]
