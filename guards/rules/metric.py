"""Metric spoofing: printing or writing lines shaped like the evaluator's metric.

Only the evaluator's own output file counts, so a spoofed `val_bpb:` line cannot change a
score; it can still fool a person or a log-scraping tool, and it is the clearest sign of
intent there is. Strings are folded, and the metric name is matched loosely
(`val_bpb`, `VAL-BPB`, `val bpb`).
"""

from __future__ import annotations

import ast
import re
from pathlib import PurePosixPath

from guards.context import CheckContext, Hit
from guards.pyast import PyModule
from guards.rules.astrule import AstRule, hit


def metric_pattern(names: tuple[str, ...]) -> re.Pattern[str] | None:
    parts = []
    for name in names:
        tokens = [re.escape(t) for t in re.split(r"[_\-\s]+", name) if t]
        if tokens:
            parts.append(r"[\s_\-]*".join(tokens))
    return re.compile("|".join(parts), re.IGNORECASE) if parts else None


_COMMON = frozenset({"val", "valid", "validation", "test", "train", "loss", "acc", "accuracy",
                     "score", "error", "err", "eval", "metric", "avg", "mean", "total", "final",
                     "best", "top", "per", "rate"})


def distinctive(names: tuple[str, ...]) -> tuple[str, ...]:
    """Tokens of the metric names no honest log line needs (`bpb` of `val_bpb`)."""
    out = []
    for name in names:
        for tok in re.split(r"[_\-\s]+", name.lower()):
            if len(tok) >= 3 and tok not in _COMMON:
                out.append(tok)
    return tuple(dict.fromkeys(out))


class MetricSpoofRule(AstRule):
    id = "metric.spoof"
    description = ("Printing or writing lines shaped like the evaluator's metric (val_bpb), "
                   "binding a variable of that name, or writing the evaluator's output files.")

    def scan(self, mod: PyModule, ctx: CheckContext) -> list[Hit]:
        s = ctx.settings
        rx = metric_pattern(s.metric_names)
        out = []
        files = {f.lower() for f in s.metric_files}
        tokens = distinctive(s.metric_names)
        for sv in mod.strings:
            low = sv.value.lower()
            if rx is not None and rx.search(sv.value):
                out.append(hit(mod, sv.node, f"the string {sv.value[:60]!r} is shaped like the "
                               "evaluator's metric.", "string", sv.value))
            elif any(t in low for t in tokens):
                out.append(hit(mod, sv.node, f"the string {sv.value[:60]!r} names the metric "
                               f"({', '.join(t for t in tokens if t in low)}): only the "
                               "evaluator reports it.", "token", sv.value))
            elif files and PurePosixPath(sv.value.strip()).name.lower() in files:
                out.append(hit(mod, sv.node, f"names the evaluator's output file {sv.value!r}.",
                               "file", sv.value))
        names = {n.lower() for n in s.metric_names}
        for node in mod.nodes:
            target = None
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                target = node.id
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                target = node.attr
            elif isinstance(node, ast.keyword) and node.arg:
                target = node.arg
            if target and target.lower() in names:
                out.append(hit(mod, node, f"binds {target}, the evaluator's metric name.",
                               "bind", target, mod.statement_text(node)))
        return out
