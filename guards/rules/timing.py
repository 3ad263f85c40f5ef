"""Time tampering: the budget is enforced from outside, but a patch that tries is a cheat.

Three rules. `time.timer`: replacing `time.*` (or datetime) functions, by assignment,
setattr, shadowing an imported name, or time-faking libraries. `time.signal`: signal
handlers, alarms, CPU limits and exit hooks. `time.budget`: the statements that read the
budget, the loop's stop condition and every write to the clock variables it compares
(found from the code, not from names we guessed) must stay as they are.
"""

from __future__ import annotations

import ast

from guards.context import CheckContext, Hit
from guards.pyast import PyModule
from guards.rules._match import first_match
from guards.rules.astrule import AstRule, hit

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


class BudgetRule(AstRule):
    id = "time.budget"
    report_lost = True
    description = ("Changing the time budget: the line that reads it, the constant that holds "
                   "it, the loop's stop condition, or the clock variables it compares.")

    def scan(self, mod: PyModule, ctx: CheckContext) -> list[Hit]:
        s = ctx.settings
        env_names = set(s.budget_env)
        const_names = set(s.budget_names)
        if not env_names and not const_names:
            return []
        out: list[Hit] = []
        stmts = [n for n in mod.nodes if isinstance(n, ast.stmt)]
        simple = [n for n in stmts if not isinstance(n, _COMPOUND)]

        # 1. Budget sources: statements reading the env var or binding a budget constant.
        budget: set[str] = set(const_names)
        strings_by_stmt: dict[ast.AST, set[str]] = {}
        for sv in mod.strings:
            strings_by_stmt.setdefault(mod.stmt_of(sv.node), set()).add(sv.value)
        for stmt in simple:
            reads_env = bool(strings_by_stmt.get(stmt, set()) & env_names)
            binds = self._bound(stmt)
            imports = isinstance(stmt, ast.ImportFrom) and any(
                a.name in const_names for a in stmt.names)
            if reads_env or (binds & const_names) or imports:
                if isinstance(stmt, ast.ImportFrom):
                    budget |= {a.asname or a.name for a in stmt.names if a.name in const_names}
                else:
                    budget |= binds
                out.append(hit(mod, stmt, "the time budget's source may not change.", "source",
                               mod.context_chain(stmt)))
        # Simple aliases of the budget (`B = TIME_BUDGET`, `b = float(budget_s)`).
        for stmt in simple:
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(
                    stmt.targets[0], ast.Name):
                v = stmt.value
                while isinstance(v, ast.Call) and len(v.args) == 1 and isinstance(
                        v.func, ast.Name) and v.func.id in ("float", "int"):
                    v = v.args[0]
                if (isinstance(v, ast.Name) and v.id in budget) or (
                        isinstance(v, ast.Attribute) and v.attr in budget):
                    budget.add(stmt.targets[0].id)

        def mentions_budget(node: ast.AST) -> bool:
            return bool(_names(node) & budget or _attr_names(node) & budget)

        # 2. Stop conditions: loop tests and `if ...: break` tests that involve the budget.
        clock: set[str] = set()
        for stmt in stmts:
            test = None
            if isinstance(stmt, ast.While):
                test = stmt.test
            elif isinstance(stmt, ast.If) and _stops(stmt.body):
                test = stmt.test
            if test is None or not mentions_budget(test):
                continue
            out.append(hit(mod, test, "the loop's stop condition on the time budget may not "
                           "change.", "stop", mod.context_chain(stmt)))
            for cmp in (n for n in ast.walk(test) if isinstance(n, ast.Compare)):
                if mentions_budget(cmp):
                    clock |= _names(cmp) - budget
        # 3. Clock variables: what the stop condition compares, and what those are made of.
        clock -= set(mod.aliases) | {"self"}
        for _ in range(3):
            grew = False
            for stmt in simple:
                targets = self._bound(stmt)
                if targets & clock:
                    value = getattr(stmt, "value", None)
                    if value is not None:
                        extra = {n for n in _names(value) - clock - budget
                                 if n not in mod.aliases and not _is_called(value, n)}
                        if extra:
                            clock |= extra
                            grew = True
            for n in mod.nodes:
                if isinstance(n, ast.NamedExpr) and n.target.id in clock:
                    extra = {x for x in _names(n.value) - clock - budget
                             if x not in mod.aliases and not _is_called(n.value, x)}
                    if extra:
                        clock |= extra
                        grew = True
            if not grew:
                break
        watched = clock | budget
        for stmt in simple:
            if self._bound(stmt) & watched:
                out.append(hit(mod, stmt, "writes to the clock or budget variables may not "
                               "change.", "write", mod.context_chain(stmt)))
        for n in mod.nodes:
            if isinstance(n, ast.NamedExpr) and n.target.id in watched:
                out.append(hit(mod, n, "writes to the clock or budget variables may not change.",
                               "write", mod.context_chain(n)))
        # 4. Any other write of the budget env var (os.environ[...] = ..., putenv).
        for st in mod.stores:
            if st.qual == "os.environ" and st.key in env_names:
                out.append(hit(mod, st.node, "writes the time budget's environment variable.",
                               "env", st.key))
        return out

    @staticmethod
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
