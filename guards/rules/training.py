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

from guards.bindings import bound_names
from guards.context import CheckContext, FileState, Hit
from guards.findings import Finding
from guards.flow import Fact, FileFlow, Scope, file_flow, names_in, relevant
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


def verdicts(flow: FileFlow, budget: frozenset[str],
             clock: frozenset[str] = frozenset()) -> list[Hit]:
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
    out.extend(_loop_bounds(flow, trains, inside_only, budget | clock, word))
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


# Calls a training loop's header may make: they compute a count from what they are given.
_BOUND_CALLS = frozenset({"range", "len", "int", "min", "max", "abs", "round", "zip",
                          "enumerate", "reversed", "chunk", "split", "unbind", "size",
                          "numel", "dim"})
_PIECES = frozenset({"chunk", "split", "unbind"})
_LOOPS = (ast.For, ast.AsyncFor, ast.While, ast.ListComp, ast.SetComp, ast.DictComp)


def _header_parts(loop: ast.AST) -> list[ast.AST]:
    if isinstance(loop, ast.For | ast.AsyncFor):
        return [loop.iter]
    if isinstance(loop, ast.While):
        return [loop.test]
    return [x for g in loop.generators for x in (g.iter, *g.ifs)]  # type: ignore[attr-defined]


def _count_names(expr: ast.AST, receivers: set[str] | None = None) -> set[str]:
    """Names a loop's trip count depends on. `x.chunk(k)`, `x.split(k)`, `x.unbind()`
    (micro-batches of the batch just drawn) count by the size of `x` and by `k`, which
    change with every batch: their names go to `receivers`, judged against the clock
    (no piece count computed from the time) rather than for being fixed."""
    out: set[str] = set()
    todo = [expr]
    while todo:
        n = todo.pop()
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and (
                n.func.attr in _PIECES):
            if receivers is not None:
                receivers |= names_in(n)
            continue
        if isinstance(n, ast.Name):
            out.add(n.id)
        elif isinstance(n, ast.Attribute):
            out.add(n.attr)
        todo.extend(ast.iter_child_nodes(n))
    return out


def _bound_in(node: ast.AST) -> set[str]:
    """Every name a block binds anywhere inside it (its parameters too, for a def)."""
    out: set[str] = set()
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
        a = node.args
        out |= {x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)}
        out |= {x.arg for x in (a.vararg, a.kwarg) if x is not None}
    for n in ast.walk(node):
        if isinstance(n, ast.stmt):
            out |= bound_names(n)
    return out


def _tainted(block: ast.AST, seeds: set[str]) -> set[str]:
    """The seeds and every name the block computes from them (`final = elapsed > ...`)."""
    names = set(seeds)
    for _ in range(4):
        grew = False
        for n in ast.walk(block):
            if isinstance(n, ast.stmt) and not isinstance(n, ast.FunctionDef |
                                                            ast.AsyncFunctionDef):
                reads = set()
                for e in ast.iter_child_nodes(n):
                    if isinstance(e, ast.expr):
                        reads |= names_in(e)
                if reads & names:
                    new = bound_names(n) - names
                    if n is not block and isinstance(n, ast.If | ast.While | ast.Match):
                        # what a branch on the clock binds depends on the clock too
                        new |= {b for x in ast.walk(n) if isinstance(x, ast.stmt)
                                for b in bound_names(x)} - names
                    if new:
                        names |= new
                        grew = True
            elif isinstance(n, ast.NamedExpr) and names_in(n.value) & names and (
                    n.target.id not in names):
                names.add(n.target.id)
                grew = True
        if not grew:
            break
    return names


def _loop_bounds(flow: FileFlow, trains: set[str], inside_only: set[str],
                 clocks: frozenset[str], word: re.Pattern[str] | None) -> list[Hit]:
    """A pass of the budget loop may not train an unbounded or clock-chosen number of steps.

    By construction: a loop that trains inside the budget loop (a nested `for`, a
    comprehension) has a trip count fixed before the budget loop starts (its header reads
    no name the budget loop binds, nor the clock or budget, and calls only counting
    builtins); a nested `while` that trains is refused (its count is data); and neither a
    nested training loop nor a call of a helper that loops over training may sit under a
    condition computed from the clock ("if this is the last pass"). Helpers that train,
    called from the loop, loop only a number of times fixed in the file (not a parameter
    or a local). Training by plain statements under a clock condition (a batch-size or
    schedule switch) stays allowed: one pass, one step."""
    out: list[Hit] = []
    loops_over_training: set[str] = set()
    budget_nodes: dict[int, ast.AST] = {}
    for sc in flow.scopes:
        for f in sc.facts:
            if f.kind == "loop":
                node = f.mod.parents.get(f.node, f.node) if not isinstance(
                    f.node, ast.For | ast.AsyncFor | ast.While) else f.node
                budget_nodes[id(node)] = node

    def training(f: Fact) -> bool:
        return f.kind == "effect" or (f.kind == "call" and f.what in trains)

    def chain(f: Fact, stop: ast.AST) -> tuple[list[ast.AST], ast.AST | None]:
        """Ancestors of a fact up to its scope: (blocks between, the budget loop or None)."""
        between: list[ast.AST] = []
        cur = f.mod.parents.get(f.node)
        while cur is not None and cur is not stop:
            if id(cur) in budget_nodes:
                return between, cur
            between.append(cur)
            cur = f.mod.parents.get(cur)
        return between, None

    for sc in flow.scopes:
        for f in sc.facts:
            if training(f) and sc.name and any(isinstance(b, _LOOPS) for b in chain(
                    f, sc.node)[0]):
                loops_over_training.add(sc.name)
    cache: dict[int, tuple[set[str], set[str]]] = {}
    counted: dict[str, set[str]] = {}
    sites: list[tuple[Scope, Fact]] = []
    for sc in flow.scopes:
        exempt = bool(sc.name) and sc.name in inside_only and sc.kind == "def"
        sites.extend((sc, f) for f in sc.facts if f.kind == "call")
        for f in sc.facts:
            if not training(f):
                continue
            between, loop = chain(f, sc.node)
            if loop is None and not exempt:
                continue
            block = loop if loop is not None else sc.node
            if id(block) not in cache:
                bound = _bound_in(block)
                cache[id(block)] = (bound | set(clocks), _tainted(block, set(clocks)))
            variant, tainted = cache[id(block)]
            loops = [b for b in between if isinstance(b, _LOOPS)]
            for b in loops:
                why = None
                if isinstance(b, ast.While):
                    why = "a while loop that trains inside the budget loop (its count is data)"
                else:
                    parts = _header_parts(b)
                    receivers: set[str] = set()
                    used = set().union(*(_count_names(x, receivers) for x in parts)) & variant
                    used |= receivers & tainted  # a batch made bigger because of the time
                    calls = {c.func.id if isinstance(c.func, ast.Name) else c.func.attr
                             for x in parts for c in ast.walk(x) if isinstance(c, ast.Call)
                             and isinstance(c.func, ast.Name | ast.Attribute)}
                    odd = calls - _BOUND_CALLS
                    params = _params(sc.node) if loop is None else set()
                    if used and used <= params:
                        # a helper's count from its caller: judged at the call sites
                        counted.setdefault(sc.name or "", set()).update(used)
                    elif used:
                        why = (f"a training loop whose count reads {', '.join(sorted(used))}, "
                               "which changes while training runs")
                    elif odd:
                        why = (f"a training loop whose count calls {', '.join(sorted(odd))}() "
                               "(only range, len, min, max, zip and the like)")
                if why:
                    out.append(_hit(Fact("effect", "bound", b, f.mod, True), f"{why}: a pass "
                                    "of the budget loop must train a number of steps fixed "
                                    "before it starts.", "bound", word, flow.offsets))
            if loop is None or not (loops or (f.kind == "call" and f.what in
                                              loops_over_training)):
                continue
            for b in between:
                test = getattr(b, "test", None)
                if isinstance(b, ast.If | ast.IfExp | ast.While) and test is not None and (
                        names_in(test) & tainted):
                    out.append(_hit(Fact("effect", "clock-gate", test, f.mod, True),
                                    "a training loop under a condition on the clock (the last "
                                    "pass, say): a pass may not train more steps because of "
                                    "the time.", "clock-gate", word, flow.offsets))
                    break
    for sc, f in sites:  # arguments a helper counts its training loop with
        wanted = counted.get(f.what)
        if not wanted or not isinstance(f.node, ast.Call):
            continue
        between, loop = chain(f, sc.node)
        block = loop if loop is not None else sc.node
        variant = _bound_in(block) | set(clocks)
        orders = [d.node for d in flow.defs.get(f.what, []) if isinstance(
            d.node, ast.FunctionDef | ast.AsyncFunctionDef)]
        for d in orders:
            names = [x.arg for x in (*d.args.posonlyargs, *d.args.args)]
            given = dict(zip(names, f.node.args, strict=False))
            given.update({k.arg: k.value for k in f.node.keywords if k.arg})
            used = {x for p_, a in given.items() if p_ in wanted for x in names_in(a)}
            if used & variant:
                out.append(_hit(f, f"passes {', '.join(sorted(used & variant))} as the count of "
                                f"{f.what}()'s training loop: a pass of the budget loop must "
                                "train a number of steps fixed before it starts.", "bound",
                                word, flow.offsets))
                break
    return out


def _params(node: ast.AST) -> set[str]:
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return set()
    a = node.args
    return {x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)}


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
        facts = BudgetRule().facts(state, which, ctx)
        budget, clock = facts.budget, facts.clock
        s = ctx.settings
        key = (state.path, analysis.source, budget, clock, ctx.fingerprint)
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
        exports = (*s.protected_functions, *s.protected_calls)
        flow = file_flow(analysis.modules, budget, s.data_calls, exports)
        hits = _CACHE[key] = verdicts(flow, budget, clock)
        if len(_CACHE) > 256:
            _CACHE.popitem(last=False)
        return hits
