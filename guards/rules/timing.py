"""Time tampering: the budget is enforced from outside, but a patch that tries is a cheat.

Three rules. `time.timer`: replacing `time.*` (or datetime) functions, by assignment,
setattr, shadowing an imported name, or time-faking libraries. `time.signal`: signal
handlers, alarms, CPU limits and exit hooks. `time.budget`: the statements that read the
budget, the loop's stop condition and every write to the clock variables it compares
(found from the code, not from names we guessed) must stay as they are.
"""

from __future__ import annotations

import ast
import re
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

from guards.bindings import bindings, bound_names
from guards.context import CheckContext, FileState, Hit, _inert, shift
from guards.findings import Finding
from guards.patch import Patch
from guards.pyast import CONTROL, PyModule, header
from guards.rules._match import first_match
from guards.rules.astrule import AstRule, hit
from guards.rules.base import Rule

TIME_MODULES = ("time", "datetime", "timeit", "torch.cuda.Event", "torch.cuda.synchronize",
                "torch.cuda.Event.elapsed_time")
TIME_FAKERS = ("freezegun", "time_machine", "libfaketime", "fakeclock")
SIGNALS = ("signal", "faulthandler.dump_traceback_later", "threading.Timer", "resource.setrlimit",
           "resource.prlimit", "os.alarm", "_thread.interrupt_main", "atexit", "weakref.finalize",
           "sys.exitfunc", "os.register_at_fork", "threading.excepthook", "sys.excepthook",
           "sys.unraisablehook", "sys.exit",
           "builtins.exit", "builtins.quit", "os._exit")


class TimerRule(AstRule):
    id = "time.timer"
    description = ("Overwriting timers: replacing time.time/perf_counter/monotonic (directly, "
                   "through aliases, setattr or shadowing) or loading time-faking libraries.")

    def scan(self, mod: PyModule, ctx: CheckContext) -> list[Hit]:
        out = []
        for st in mod.stores:
            if first_match(st.qual, TIME_MODULES):
                target = st.qual + (f".{st.key}" if st.key else "")
                out.append(hit(mod, st.node, f"{st.how} of {target}: timers may not be replaced.",
                               "store", target))
        for ref in mod.refs:
            if first_match(ref.qual, TIME_FAKERS):
                out.append(hit(mod, ref.node, f"uses {ref.qual}, a time-faking library.",
                               "fake", ref.qual))
        return out


class SignalRule(AstRule):
    id = "time.signal"
    description = ("Signal handlers, alarms, CPU-time limits and exit hooks: ways to survive "
                   "or pre-empt the budget kill.")

    def scan(self, mod: PyModule, ctx: CheckContext) -> list[Hit]:
        out = []
        for ref in mod.refs:
            m = first_match(ref.qual, SIGNALS)
            if m in ("sys.exit", "builtins.exit", "builtins.quit", "os._exit"):
                continue  # exiting is fine; only hooks and handlers are suspicious
            if m:
                out.append(hit(mod, ref.node, f"uses {ref.qual}: signal handlers, alarms and "
                               "exit hooks are off limits.", "signal", ref.qual))
        return out


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _attr_names(node: ast.AST) -> set[str]:
    return {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}


_NUMERIC = frozenset({"float", "int", "max", "min", "abs", "round", "sum"})


def _value_names(expr: ast.AST, skip: dict[str, str]) -> frozenset[str]:
    """Names a value is computed from. Arguments of calls other than numeric builtins are
    left out: `t = helper(model, batches)` is not computed from the model, and taking it
    as such made every argument of a refactored training helper a "clock"."""
    out: set[str] = set()
    todo = [expr]
    while todo:
        n = todo.pop()
        if isinstance(n, ast.Name):
            if n.id not in skip:
                out.add(n.id)
        elif isinstance(n, ast.Call):
            if isinstance(n.func, ast.Name) and n.func.id in _NUMERIC:
                todo.extend(n.args)
            elif isinstance(n.func, ast.Attribute):
                todo.append(n.func.value)  # `clock.now()` depends on `clock`
        elif isinstance(n, ast.Lambda | ast.FunctionDef):
            continue
        else:
            todo.extend(ast.iter_child_nodes(n))
    return frozenset(out)


def _callee(expr: ast.AST | None) -> str | None:
    """The bare function name a value is the result of (`train(...)` -> train)."""
    while isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and (
            expr.func.id in _NUMERIC) and len(expr.args) == 1:
        expr = expr.args[0]
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name):
        return expr.func.id
    if isinstance(expr, ast.Name):
        return "=" + expr.id  # resolved later: the name may hold a helper's result
    return None


def _chain(mod: PyModule, node: ast.AST) -> tuple[str, ...]:
    """Headers of the blocks around `node` inside its own function. The function itself is
    left out, so a loop moved into a helper keeps its signature; where it may be called
    from is `train.outside_loop`'s business."""
    chain: list[str] = []
    cur = mod.parents.get(node)
    while cur is not None and not isinstance(cur, ast.FunctionDef | ast.AsyncFunctionDef |
                                             ast.Lambda):
        if isinstance(cur, CONTROL):
            chain.append(header(cur))
        cur = mod.parents.get(cur)
    return tuple(reversed(chain))


def _owner(mod: PyModule, node: ast.AST) -> str | None:
    cur = mod.parents.get(node)
    while cur is not None:
        if isinstance(cur, ast.FunctionDef | ast.AsyncFunctionDef):
            return cur.name
        cur = mod.parents.get(cur)
    return None


def _stops(body: list[ast.stmt]) -> bool:
    for stmt in body:
        for n in ast.walk(stmt):
            if isinstance(n, ast.Break | ast.Return | ast.Raise):
                return True
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name | ast.Attribute):
                name = n.func.id if isinstance(n.func, ast.Name) else n.func.attr
                if name in ("exit", "_exit", "quit"):
                    return True
    return False


class _Test:
    """A stop condition: a `while` test, or an `if` that leaves the loop."""

    __slots__ = ("mod", "node", "chain", "names", "compares", "owner")

    def __init__(self, mod: PyModule, node: ast.AST, chain: tuple[str, ...],
                 names: frozenset[str], compares: list[tuple[frozenset[str], frozenset[str]]],
                 owner: str | None) -> None:
        self.mod, self.node, self.chain = mod, node, chain
        self.names, self.compares, self.owner = names, compares, owner


@dataclass
class _Summary:
    """What one chunk says about the budget; merged over the file in `BudgetRule`."""

    sources: list[tuple[Hit, frozenset[str]]] = field(default_factory=list)
    aliases: list[tuple[str, str]] = field(default_factory=list)
    tests: list[_Test] = field(default_factory=list)
    assigns: list[tuple[frozenset[str], frozenset[str], str | None]] = field(
        default_factory=list)
    writes: list[tuple[frozenset[str], tuple[PyModule, ast.AST], str | None]] = field(
        default_factory=list)
    """Statements binding names: (names, (chunk, statement), the helper it came from)."""
    env_hits: list[Hit] = field(default_factory=list)
    calls: list[tuple[str, tuple[tuple[int | str, str], ...]]] = field(default_factory=list)
    """Calls of bare-named functions with name arguments: (callee, ((position|keyword, name)))."""
    params: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    """Every function defined: (name, parameter names in order)."""
    targets: frozenset[str] = frozenset()
    """Every name this chunk writes: lets the file-wide passes skip it quickly."""


class BudgetFacts:
    """The file-wide answer: names holding the budget, clock names, loop-owning helpers."""

    __slots__ = ("budget", "clock", "owners")

    def __init__(self, budget: frozenset[str], clock: frozenset[str],
                 owners: frozenset[str | None]) -> None:
        self.budget, self.clock, self.owners = budget, clock, owners


_SUMMARIES: OrderedDict[tuple[object, ...], _Summary] = OrderedDict()


class BudgetRule(Rule):
    id = "time.budget"
    description = ("Changing the time budget: the line that reads it, the constant that holds "
                   "it, the loop's stop condition, or the clock variables it compares.")

    def check(self, patch: Patch, context: CheckContext) -> list[Finding]:
        s = context.settings
        if not s.budget_env and not s.budget_names:
            return []
        if self._constants_far_from_the_clock(context):
            return []
        out = []
        for state in context.python_files():
            before = self._file_hits(state, "before", context)
            after = self._file_hits(state, "after", context)
            old = Counter(h.signature for h in before)
            for h in after:
                if old[h.signature] > 0:
                    old[h.signature] -= 1
                else:
                    out.append(context.finding(self.id, self.severity, state, h))
            new = Counter(h.signature for h in after)
            for h in before:
                if new[h.signature] > 0:
                    new[h.signature] -= 1
                else:
                    f = context.finding(self.id, self.severity, state, h, lost=True)
                    out.append(Finding(f.rule_id, f.severity, f.file, f.line,
                                       f"(removed) {h.evidence}"[:300], h.message))
        return out

    def _constants_far_from_the_clock(self, ctx: CheckContext) -> bool:
        """A patch that only changes literal constants (`LR = 0.03`) changes a budget fact
        only if a changed name is (or can become) a budget or clock name: its own
        assignment is then a write the rule compares. Tuner patches are mostly these, and
        summarising the loop for them costs most of a check, so this asks the narrower
        question first, in the rule's own terms: a constant reaches the clock only through
        a loop or `if` condition, or through a statement whose value (as `_value_names`
        reads it) uses it, followed to what that statement binds. Any of those, or a second
        binding of the name, sends the patch the full way."""
        if not ctx.only_constants_changed():
            return False
        budget_names = set(ctx.settings.budget_names)
        for state in ctx.python_files():
            analysis = state.analysis("after")
            if analysis is None:
                return False
            names: set[str] = set()
            for which in ("before", "after"):
                for _, mod in state.changed_chunks(which):
                    for stmt in mod.tree.body:
                        names |= bound_names(stmt)
            if names & budget_names:
                return False
            reached = set(names)
            for _ in range(8):
                grew = False
                for _, mod in analysis.modules:
                    if not mod.chunk.names & reached or _inert(mod):
                        continue
                    for node in mod.nodes:
                        if not isinstance(node, ast.stmt):
                            continue
                        if isinstance(node, ast.While | ast.If) and _names(node.test) & reached:
                            return False
                        bound = bound_names(node)
                        if bound & names:
                            return False  # the constant is bound a second time
                        if isinstance(node, _COMPOUND) or not bound:
                            continue
                        value = getattr(node, "value", None)
                        if value is not None and _value_names(value, {}) & reached and (
                                not bound <= reached):
                            reached |= bound
                            grew = True
                if not grew:
                    break
        return True

    def facts(self, state: FileState, which: str, ctx: CheckContext) -> BudgetFacts:
        """The budget and clock names of one version (shared with other rules)."""
        key = ("budget-facts", which, state.path)
        cached = ctx.memo.get(key)
        if cached is None:
            self._file_hits(state, which, ctx)
            cached = ctx.memo[key]
        return cached  # type: ignore[no-any-return]

    def _file_hits(self, state: FileState, which: str, ctx: CheckContext) -> list[Hit]:
        """Budget facts of one version. Only chunks that changed, or whose text names the
        budget or a clock, can contribute; the rest are never summarised (a cold check
        reads the whole base file only once, as text)."""
        key = ("budget-hits", which, state.path)
        if key in ctx.memo:
            return ctx.memo[key]  # type: ignore[no-any-return]
        analysis = state.analysis(which)
        s = ctx.settings
        if analysis is None:
            ctx.memo[("budget-facts", which, state.path)] = BudgetFacts(
                frozenset(s.budget_names), frozenset(), frozenset())
            ctx.memo[key] = []
            return []
        changed = {id(mod) for _, mod in state.changed_chunks(which)}
        needles = set(s.budget_env) | set(s.budget_names)
        chosen: dict[int, tuple[int, _Summary]] = {}
        budget: set[str] = set()
        clock: set[str] = set()
        owners: set[str | None] = set()
        for _ in range(6):
            for idx, (offset, mod) in enumerate(analysis.modules):
                if idx not in chosen and (id(mod) in changed
                                          or any(n in mod.source for n in needles)):
                    chosen[idx] = (offset, self._summary(mod, ctx))
            parts = [chosen[i] for i in sorted(chosen)]
            budget, clock, owners = self._sets(parts, set(analysis.maps.aliases),
                                               s.budget_names)
            if budget | clock | {o for o in owners if o} <= needles:
                break
            needles |= budget | clock | {o for o in owners if o}
        parts = [chosen[i] for i in sorted(chosen)]
        hits = self._hits(parts, budget, clock, owners)
        ctx.memo[("budget-facts", which, state.path)] = BudgetFacts(
            frozenset(budget), frozenset(clock), frozenset(owners))
        ctx.memo[key] = hits
        return hits

    def _summary(self, mod: PyModule, ctx: CheckContext) -> _Summary:
        key = (mod.source, mod.fingerprint, ctx.fingerprint)
        summary = _SUMMARIES.get(key)
        if summary is None:
            summary = _SUMMARIES[key] = self._summarise(mod, ctx)
            if len(_SUMMARIES) > 4096:
                _SUMMARIES.popitem(last=False)
        return summary

    @staticmethod
    def _sets(parts: list[tuple[int, _Summary]], aliases: set[str],
              const_names: tuple[str, ...]) -> tuple[set[str], set[str], set[str | None]]:
        """The names holding the budget, the clock names its stop conditions compare, and
        the functions owning a budget loop."""
        budget = set(const_names)
        for _, sm in parts:
            for _, names in sm.sources:
                budget |= names
        params: dict[str, list[tuple[str, ...]]] = {}
        for _, sm in parts:
            for fname, names in sm.params:
                params.setdefault(fname, []).append(names)
        for _ in range(4):  # aliases (`B = TIME_BUDGET`) and helpers' parameters
            grew = False
            for _, sm in parts:
                for target, src in sm.aliases:
                    if src in budget and target not in budget:
                        budget.add(target)
                        grew = True
                for callee, args in sm.calls:
                    for key, name in args:
                        if name not in budget:
                            continue
                        for names in params.get(callee, ()):
                            if isinstance(key, int):
                                param = names[key] if key < len(names) else None
                            else:
                                param = key if key in names else None
                            if param and param not in budget:
                                budget.add(param)
                                grew = True
            if not grew:
                break
        clock: set[str] = set()
        owners: set[str | None] = set()
        for _, sm in parts:
            for t in sm.tests:
                if t.names & budget:
                    owners.add(t.owner)
                    for names_, attrs in t.compares:
                        if (names_ | attrs) & budget:
                            clock |= names_ - budget
        clock -= aliases | {"self"}
        for _ in range(4):  # what the compared clocks are computed from
            grew = False
            for _, sm in parts:
                if not sm.targets & clock:
                    continue
                for targets, values, via in sm.assigns:
                    if targets & clock and (via is None or via.startswith("=")
                                            or via not in owners):
                        extra = values - clock - budget
                        if extra:
                            clock |= extra
                            grew = True
            if not grew:
                break
        return budget, clock, owners

    @staticmethod
    def _hits(parts: list[tuple[int, _Summary]], budget: set[str], clock: set[str],
              owners: set[str | None]) -> list[Hit]:
        out: list[Hit] = []
        watched = clock | budget
        # A helper may name the budget differently (a parameter): the facts are the same.
        word = re.compile(r"\b(" + "|".join(map(re.escape, sorted(budget))) + r")\b") if (
            budget) else None

        def norm(h: Hit, offset: int) -> Hit:
            if word is None:
                return shift(h, offset)
            sig = tuple(word.sub("BUDGET", x) if isinstance(x, str) else tuple(
                word.sub("BUDGET", y) for y in x) if isinstance(x, tuple) else x
                for x in h.signature)
            return shift(Hit(sig, h.line, h.message, h.evidence, h.severity), offset)

        owned = {t for _, sm in parts for targets, _, via in sm.assigns
                 if via is not None and via in owners for t in targets}

        def passes(via: str | None) -> bool:
            """A write of what a loop-owning helper returned (directly or via a name)."""
            if via is None:
                return False
            return via in owners or (via.startswith("=") and via[1:] in owned)

        for offset, sm in parts:
            out.extend(norm(h, offset) for h, _ in sm.sources)
            for t in sm.tests:
                if t.names & budget:
                    out.append(norm(hit(t.mod, t.node, "the loop's stop condition on the time "
                                        "budget may not change.", "stop", t.chain), offset))
            out.extend(norm(h, offset) for h in sm.env_hits)
            if sm.targets & watched:
                for targets, (mod, node), via in sm.writes:
                    if targets & watched and not passes(via):
                        out.append(norm(hit(mod, node, "writes to the clock or budget variables "
                                            "may not change.", "write", _chain(mod, node)),
                                        offset))
        return out

    def _summarise(self, mod: PyModule, ctx: CheckContext) -> _Summary:
        s = ctx.settings
        env_names, const_names = set(s.budget_env), set(s.budget_names)
        sm = _Summary()
        strings_by_stmt: dict[int, set[str]] = {}
        for sv in mod.strings:
            strings_by_stmt.setdefault(id(mod.stmt_of(sv.node)), set()).add(sv.value)
        skip = mod.aliases
        for node in mod.nodes:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                a = node.args
                sm.params.append((node.name, tuple(x.arg for x in (*a.posonlyargs, *a.args,
                                                                     *a.kwonlyargs))))
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                args: list[tuple[int | str, str]] = [
                    (i, x.id) for i, x in enumerate(node.args) if isinstance(x, ast.Name)]
                args += [(k.arg, k.value.id) for k in node.keywords
                         if k.arg and isinstance(k.value, ast.Name)]
                if args:
                    sm.calls.append((node.func.id, tuple(args)))
        for stmt in mod.nodes:
            if not isinstance(stmt, ast.stmt):
                continue
            if isinstance(stmt, ast.While) or (isinstance(stmt, ast.If) and _stops(stmt.body)):
                test = stmt.test
                names = frozenset(_names(test) | _attr_names(test))
                compares = [(frozenset(_names(c)), frozenset(_attr_names(c)))
                            for c in ast.walk(test) if isinstance(c, ast.Compare)]
                sm.tests.append(_Test(mod, test, _chain(mod, stmt), names, compares,
                                      _owner(mod, stmt)))
                for n in ast.walk(test):
                    if isinstance(n, ast.NamedExpr):
                        values = _value_names(n.value, skip)
                        sm.assigns.append((frozenset({n.target.id}), values, None))
                        sm.writes.append((frozenset({n.target.id}), (mod, n), None))
                continue
            if isinstance(stmt, _COMPOUND):
                # `for t in ...`, `with ... as t`, `except E as t`, `case t`, a walrus in a
                # header, `def`/`class`: bindings too, judged like any other write
                own = bindings(stmt)
                if own:
                    values = frozenset().union(*(_value_names(e, skip) for e in _headers(stmt)))
                    for n, node in own:
                        sm.assigns.append((frozenset({n}), values, None))
                        sm.writes.append((frozenset({n}), (mod, node), None))
                continue
            binds = bound_names(stmt)
            reads_env = bool(strings_by_stmt.get(id(stmt), set()) & env_names)
            imported = frozenset(a.asname or a.name for a in getattr(stmt, "names", [])
                                 if isinstance(stmt, ast.ImportFrom) and a.name in const_names)
            if reads_env or (binds & const_names) or imported:
                sm.sources.append((hit(mod, stmt, "the time budget's source may not change.",
                                       "source", _chain(mod, stmt)),
                                   imported or frozenset(binds)))
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(
                    stmt.targets[0], ast.Name):
                v = stmt.value
                while isinstance(v, ast.Call) and len(v.args) == 1 and isinstance(
                        v.func, ast.Name) and v.func.id in ("float", "int"):
                    v = v.args[0]
                if isinstance(v, ast.Name):
                    sm.aliases.append((stmt.targets[0].id, v.id))
                elif isinstance(v, ast.Attribute):
                    sm.aliases.append((stmt.targets[0].id, v.attr))
            if binds:
                value = getattr(stmt, "value", None)
                values = frozenset() if value is None else _value_names(value, skip)
                via = _callee(value)
                sm.assigns.append((frozenset(binds), values, via))
                sm.writes.append((frozenset(binds), (mod, stmt), via))
        for st in mod.stores:
            if st.qual in ("os.environ", "os.environb") and st.key in env_names:
                sm.env_hits.append(hit(mod, st.node, "writes the time budget's environment "
                                       "variable.", "env", st.key))
        sm.targets = frozenset(n for targets, _, _ in sm.assigns for n in targets)
        return sm


def _headers(stmt: ast.stmt) -> list[ast.AST]:
    """The expressions a compound statement evaluates itself (not its body)."""
    out: list[ast.AST] = []
    if isinstance(stmt, ast.For | ast.AsyncFor):
        out.append(stmt.iter)
    elif isinstance(stmt, ast.With | ast.AsyncWith):
        out.extend(i.context_expr for i in stmt.items)
    elif isinstance(stmt, ast.Match):
        out.append(stmt.subject)
    elif isinstance(stmt, ast.If):
        out.append(stmt.test)
    return out


_COMPOUND = (ast.If, ast.While, ast.For, ast.AsyncFor, ast.With, ast.AsyncWith, ast.Try,
             ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Match)
