"""Training outside the budget loop: extra steps after it, before the clock, in hooks.

The budget bounds the loop, so every optimizer step, backward pass and batch draw must run
inside it. Rather than naming helpers we expect, the rule follows what runs
(`guards/flow.py`): an effect outside the loop is allowed only in a function that is
called *only* from inside the loop (directly or through other such functions) and is
never handed out as a value. Methods torch or the evaluator call implicitly (forward,
state_dict, dunders, anything behind an unknown decorator) never qualify, so training
hidden in a wrapped export, a forward pass or an exit hook is caught the same way.
Besides: the loop-owning function runs once (not twice, not in a loop), a patch adds no
second budget loop, and after the loop the exported model is not replaced or rewritten.
"""

from __future__ import annotations

import ast
import re
from collections import Counter, OrderedDict

from guards.context import CheckContext, FileState, Hit
from guards.findings import Finding
from guards.flow import Fact, FileFlow, Scope, file_flow, relevant
from guards.patch import Patch
from guards.pyast import header
from guards.rules.base import Rule
from guards.rules.timing import BudgetRule

_CACHE: OrderedDict[tuple[object, ...], list[Hit]] = OrderedDict()


def _hit(f: Fact, message: str, tag: str, budget_word: re.Pattern[str] | None,
         offsets: dict[int, int]) -> Hit:
    node = f.node
    if isinstance(node, ast.For | ast.AsyncFor | ast.While):
        text = header(node)
    else:
        try:
            text = ast.unparse(node)
        except Exception:  # unparse of odd nodes must never break a check
            text = type(node).__name__
    if budget_word is not None:
        text = budget_word.sub("BUDGET", text)
    line = getattr(node, "lineno", 0)
    offset = offsets.get(id(f.mod), 0)
    return Hit((tag, f.what, text), line + offset if line else 0, message,
               f.mod.line_text(line))


def verdicts(flow: FileFlow, budget: frozenset[str]) -> list[Hit]:
    word = re.compile(r"\b(" + "|".join(map(re.escape, sorted(budget))) + r")\b") if (
        budget) else None
    scopes = flow.scopes
    by_node = {id(sc.node): sc for sc in scopes}
    calls: dict[str, list[tuple[Scope, Fact]]] = {}
    values: dict[str, list[tuple[Scope, Fact]]] = {}
    for sc in scopes:
        for f in sc.facts:
            if f.kind == "call":
                calls.setdefault(f.what, []).append((sc, f))
            elif f.kind == "value":
                values.setdefault(f.what, []).append((sc, f))

    trains: set[str] = set()
    anonymous: set[int] = set()
    for _ in range(len(scopes) + 1):
        grew = False
        for sc in scopes:
            if any(not f.inside and (f.kind == "effect" or (f.kind == "call" and f.what in trains))
                   for f in sc.facts):
                if sc.name and sc.name not in trains:
                    trains.add(sc.name)
                    grew = True
                elif not sc.name and id(sc.node) not in anonymous:
                    anonymous.add(id(sc.node))
                    grew = True
        if not grew:
            break

    inside_only: set[str] = set()
    for _ in range(len(flow.defs) + 1):
        grew = False
        for name, defs in flow.defs.items():
            if name in inside_only or any(d.implicit for d in defs):
                continue
            sites = calls.get(name, [])
            if not sites:
                continue
            if any(not f.inside and sc.name not in inside_only for sc, f in values.get(name, [])):
                continue
            if all(f.inside or (sc.name in inside_only and sc.kind != "module")
                   for sc, f in sites):
                inside_only.add(name)
                grew = True
        if not grew:
            break

    owners = {sc.name for sc in scopes if sc.budget_loops and sc.name}
    out: list[Hit] = []
    for sc in scopes:
        # A generator's body runs wherever it is advanced (after the loop too), so where
        # it is called says nothing: a generator that trains is never exempt.
        generator = sc.kind == "def" and is_generator(sc.node)
        exempt = bool(sc.name) and sc.name in inside_only and sc.kind != "module" and (
            not generator)
        for f in sc.facts:
            if f.kind == "value":
                lam = by_node.get(id(f.node)) if f.what in ("<lambda>", "<generator>") else None
                if f.what in trains or f.what in owners or (
                        lam is not None and id(lam.node) in anonymous):
                    # An escape is blocked wherever it happens, inside the loop included:
                    # once returned, stored, yielded or passed, the function object can be
                    # called anywhere and no rule follows it there.
                    out.append(_hit(f, f"hands out {f.what}, which trains, as a value (returned, "
                                    "stored, passed, a hook or a partial): it could run outside "
                                    "the loop.", "value", word, flow.offsets))
                continue
            if f.kind == "loop":
                out.append(_hit(f, "a budget loop: a patch may not add another one (a second "
                                "training phase).", "loop", word, flow.offsets))
            elif f.kind == "after" or (f.kind == "after-call" and f.what in flow.mutators):
                what = f.what if f.kind == "after" else f"passes the model to {f.what}(), " \
                    "which changes it,"
                out.append(_hit(f, f"{what} after the timed loop: the exported model must be "
                                "the one the loop trained.", "after", word, flow.offsets))
            elif f.kind == "effect-value":
                out.append(_hit(f, f"{f.what}: an optimizer step or backward pass held as a "
                                "value can run anywhere, outside the loop too.", "effect",
                                word, flow.offsets))
            elif f.inside or exempt:
                continue
            elif f.kind == "effect" and generator:
                out.append(_hit(f, f"{f.what} in a generator: its body runs wherever it is "
                                "advanced, after the loop too, so generators may not train.",
                                "effect", word, flow.offsets))
            elif f.kind == "effect":
                out.append(_hit(f, f"{f.what} outside the budget loop: training must happen "
                                "inside the timed loop.", "effect", word, flow.offsets))
            elif f.kind == "call" and f.what in trains and f.what not in owners:
                out.append(_hit(f, f"calls {f.what}(), which trains, outside the budget loop.",
                                "call", word, flow.offsets))
    for name in owners:
        sites = calls.get(name, [])
        for _, f in sites[1:]:
            out.append(_hit(f, f"calls {name}(), which runs the budget loop, a second time.",
                            "owner-again", word, flow.offsets))
        for _, f in sites:
            if f.looping or f.inside:
                out.append(_hit(f, f"calls {name}(), which runs the budget loop, inside a loop.",
                                "owner-loop", word, flow.offsets))
    return out


def is_generator(node: ast.AST) -> bool:
    """Does this def's own body yield (nested defs and lambdas are their own scopes)?"""
    todo = list(ast.iter_child_nodes(node))
    while todo:
        n = todo.pop()
        if isinstance(n, ast.Yield | ast.YieldFrom):
            return True
        if not isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda |
                          ast.ClassDef):
            todo.extend(ast.iter_child_nodes(n))
    return False


class OutsideLoopRule(Rule):
    id = "train.outside_loop"
    description = ("Training outside the budget loop: optimizer steps, backward passes or batch "
                   "draws before the clock, after the loop, in hooks, forward passes or exports; "
                   "a second budget loop or a second run of it; the model replaced after it.")

    def check(self, patch: Patch, context: CheckContext) -> list[Finding]:
        if context.only_constants_changed() or not self._touches_training(context):
            return []
        out = []
        for state in context.python_files():
            old = Counter(h.signature for h in self._hits(state, "before", context))
            for h in self._hits(state, "after", context):
                if old[h.signature] > 0:
                    old[h.signature] -= 1
                else:
                    out.append(context.finding(self.id, self.severity, state, h))
        return out

    def _touches_training(self, ctx: CheckContext) -> bool:
        """Does the patch change a chunk that can matter to a training verdict?"""
        s = ctx.settings
        exports = (*s.protected_functions, *s.protected_calls)
        for state in ctx.python_files():
            for which in ("before", "after"):
                analysis = state.analysis(which)
                changed = state.changed_chunks(which)
                if analysis is None or not changed:
                    continue
                budget = BudgetRule().facts(state, which, ctx).budget
                keep = relevant(analysis.modules, budget, s.data_calls, exports)
                if any(id(mod) in keep for _, mod in changed):
                    return True
        return False

    def _hits(self, state: FileState, which: str, ctx: CheckContext) -> list[Hit]:
        analysis = state.analysis(which)
        if analysis is None:
            return []
        budget = BudgetRule().facts(state, which, ctx).budget
        s = ctx.settings
        key = (state.path, analysis.source, budget, ctx.fingerprint)
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
        exports = (*s.protected_functions, *s.protected_calls)
        flow = file_flow(analysis.modules, budget, s.data_calls, exports)
        hits = _CACHE[key] = verdicts(flow, budget)
        if len(_CACHE) > 256:
            _CACHE.popitem(last=False)
        return hits
