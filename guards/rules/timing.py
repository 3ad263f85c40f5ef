"""Time tampering: the budget is enforced from outside, but a patch that tries is a cheat.

Three rules. `time.timer`: replacing `time.*` (or datetime) functions, by assignment,
setattr, shadowing an imported name, or time-faking libraries. `time.signal`: signal
handlers, alarms, CPU limits and exit hooks. `time.budget`: the statements that read the
budget, the loop's stop condition and every write to the clock variables it compares
(found from the code, not from names we guessed) must stay as they are.
"""

from __future__ import annotations

import ast
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

from guards.context import CheckContext, FileState, Hit, shift
from guards.findings import Finding
from guards.patch import Patch
from guards.pyast import PyModule
from guards.rules._match import first_match
from guards.rules.astrule import AstRule, hit
from guards.rules.base import Rule

TIME_MODULES = ("time", "datetime", "timeit", "torch.cuda.Event", "torch.cuda.synchronize",
                "torch.cuda.Event.elapsed_time")
TIME_FAKERS = ("freezegun", "time_machine", "libfaketime", "fakeclock")
SIGNALS = ("signal", "faulthandler.dump_traceback_later", "threading.Timer", "resource.setrlimit",
           "resource.prlimit", "os.alarm", "_thread.interrupt_main", "atexit", "sys.exit",
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


@dataclass
class _Summary:
    """What one chunk says about the budget; merged over the file in `BudgetRule`."""

    sources: list[tuple[Hit, frozenset[str]]] = field(default_factory=list)
    aliases: list[tuple[str, str]] = field(default_factory=list)
    tests: list[tuple[Hit, frozenset[str], list[tuple[frozenset[str], frozenset[str]]]]] = field(
        default_factory=list)
    assigns: list[tuple[frozenset[str], frozenset[str]]] = field(default_factory=list)
    writes: list[tuple[frozenset[str], Hit]] = field(default_factory=list)
    env_hits: list[Hit] = field(default_factory=list)
    targets: frozenset[str] = frozenset()
    """Every name this chunk writes: lets the file-wide passes skip it quickly."""


_SUMMARIES: OrderedDict[tuple[object, ...], _Summary] = OrderedDict()


class BudgetRule(Rule):
    id = "time.budget"
    description = ("Changing the time budget: the line that reads it, the constant that holds "
                   "it, the loop's stop condition, or the clock variables it compares.")

    def check(self, patch: Patch, context: CheckContext) -> list[Finding]:
        s = context.settings
        if not s.budget_env and not s.budget_names:
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

    def _file_hits(self, state: FileState, which: str, ctx: CheckContext) -> list[Hit]:
        """Budget facts of one version. Only chunks that changed, or whose text names the
        budget or a clock, can contribute; the rest are never summarised (a cold check
        reads the whole base file only once, as text)."""
        analysis = state.analysis(which)
        if analysis is None:
            return []
        s = ctx.settings
        changed = {id(mod) for _, mod in state.changed_chunks(which)}
        needles = set(s.budget_env) | set(s.budget_names)
        chosen: dict[int, tuple[int, _Summary]] = {}
        budget: set[str] = set()
        clock: set[str] = set()
        for _ in range(6):
            for idx, (offset, mod) in enumerate(analysis.modules):
                if idx not in chosen and (id(mod) in changed
                                          or any(n in mod.source for n in needles)):
                    chosen[idx] = (offset, self._summary(mod, ctx))
            parts = [chosen[i] for i in sorted(chosen)]
            budget, clock = self._sets(parts, set(analysis.maps.aliases), s.budget_names)
            if budget | clock <= needles:
                break
            needles |= budget | clock
        return self._hits([chosen[i] for i in sorted(chosen)], budget, clock)

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
              const_names: tuple[str, ...]) -> tuple[set[str], set[str]]:
        """The names holding the budget, and the clock names its stop conditions compare."""
        budget = set(const_names)
        for _, sm in parts:
            for _, names in sm.sources:
                budget |= names
        for _ in range(3):  # simple aliases of the budget (`B = TIME_BUDGET`)
            grew = False
            for _, sm in parts:
                for target, src in sm.aliases:
                    if src in budget and target not in budget:
                        budget.add(target)
                        grew = True
            if not grew:
                break
        clock: set[str] = set()
        for _, sm in parts:
            for _, names, compares in sm.tests:
                if names & budget:
                    for names_, attrs in compares:
                        if (names_ | attrs) & budget:
                            clock |= names_ - budget
        clock -= aliases | {"self"}
        for _ in range(4):  # what the compared clocks are computed from
            grew = False
            for _, sm in parts:
                if not sm.targets & clock:
                    continue
                for targets, values in sm.assigns:
                    if targets & clock:
                        extra = values - clock - budget
                        if extra:
                            clock |= extra
                            grew = True
            if not grew:
                break
        return budget, clock

    @staticmethod
    def _hits(parts: list[tuple[int, _Summary]], budget: set[str], clock: set[str]
              ) -> list[Hit]:
        out: list[Hit] = []
        watched = clock | budget
        for offset, sm in parts:
            out.extend(shift(h, offset) for h, _ in sm.sources)
            out.extend(shift(h, offset) for h, names, _ in sm.tests if names & budget)
            out.extend(shift(h, offset) for h in sm.env_hits)
            if sm.targets & watched:
                out.extend(shift(h, offset) for targets, h in sm.writes if targets & watched)
        return out

    def _summarise(self, mod: PyModule, ctx: CheckContext) -> _Summary:
        s = ctx.settings
        env_names, const_names = set(s.budget_env), set(s.budget_names)
        sm = _Summary()
        strings_by_stmt: dict[int, set[str]] = {}
        for sv in mod.strings:
            strings_by_stmt.setdefault(id(mod.stmt_of(sv.node)), set()).add(sv.value)
        for stmt in mod.nodes:
            if not isinstance(stmt, ast.stmt):
                continue
            if isinstance(stmt, ast.While) or (isinstance(stmt, ast.If) and _stops(stmt.body)):
                test = stmt.test
                names = frozenset(_names(test) | _attr_names(test))
                compares = [(frozenset(_names(c)), frozenset(_attr_names(c)))
                            for c in ast.walk(test) if isinstance(c, ast.Compare)]
                sm.tests.append((hit(mod, test, "the loop's stop condition on the time budget "
                                     "may not change.", "stop", mod.context_chain(stmt)),
                                 names, compares))
                for n in ast.walk(test):
                    if isinstance(n, ast.NamedExpr):
                        values = frozenset(x for x in _names(n.value)
                                           if x not in mod.aliases and not _is_called(n.value, x))
                        sm.assigns.append((frozenset({n.target.id}), values))
                        sm.writes.append((frozenset({n.target.id}), hit(
                            mod, n, "writes to the clock or budget variables may not change.",
                            "write", mod.context_chain(n))))
                continue
            if isinstance(stmt, _COMPOUND):
                continue
            binds = _bound(stmt)
            reads_env = bool(strings_by_stmt.get(id(stmt), set()) & env_names)
            imported = frozenset(a.asname or a.name for a in getattr(stmt, "names", [])
                                 if isinstance(stmt, ast.ImportFrom) and a.name in const_names)
            if reads_env or (binds & const_names) or imported:
                sm.sources.append((hit(mod, stmt, "the time budget's source may not change.",
                                       "source", mod.context_chain(stmt)),
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
                values = frozenset() if value is None else frozenset(
                    x for x in _names(value) if x not in mod.aliases and not _is_called(value, x))
                sm.assigns.append((frozenset(binds), values))
                sm.writes.append((frozenset(binds), hit(
                    mod, stmt, "writes to the clock or budget variables may not change.",
                    "write", mod.context_chain(stmt))))
        for st in mod.stores:
            if st.qual == "os.environ" and st.key in env_names:
                sm.env_hits.append(hit(mod, st.node, "writes the time budget's environment "
                                       "variable.", "env", st.key))
        sm.targets = frozenset(n for targets, _ in sm.assigns for n in targets)
        return sm


def _bound(stmt: ast.AST) -> set[str]:
    targets: list[ast.AST] = []
    if isinstance(stmt, ast.Assign):
        targets = list(stmt.targets)
    elif isinstance(stmt, ast.AugAssign | ast.AnnAssign):
        targets = [stmt.target]
    elif isinstance(stmt, ast.Delete):
        targets = list(stmt.targets)
    names: set[str] = set()
    for t in targets:
        for n in ast.walk(t):
            if isinstance(n, ast.Name):
                names.add(n.id)
            elif isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store | ast.Del):
                names.add(n.attr)
    return names


_COMPOUND = (ast.If, ast.While, ast.For, ast.AsyncFor, ast.With, ast.AsyncWith, ast.Try,
             ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Match)


def _is_called(expr: ast.AST, name: str) -> bool:
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == name
               for n in ast.walk(expr))
