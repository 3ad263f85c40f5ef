"""Where training happens: every optimizer step, backward pass and batch draw, by scope.

A whole-file pass over one file version. Each scope (the module, every `def` and
`lambda`) records its training effects (`.backward()`, `.step()`, autograd calls, draws
from the training data iterator), its calls into the file's own functions, the functions
it passes around as values, and whether each of these sits inside the budget loop (a
loop whose condition, or whose stopping `if`, compares the time budget). Calls are
resolved by name (`f()` to every `def f`, `x.f()` to every method `f`), which
over-approximates what runs; `guards/rules/training.py` turns this into verdicts.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from guards.pyast import PyModule
from guards.rules._match import first_match

EFFECT_ATTRS = frozenset({"backward", "step"})
AUTOGRAD = ("torch.autograd.backward", "torch.autograd.grad", "torch.autograd.functional",
            "torch.func.grad", "torch.func.grad_and_value", "torch.func.vjp", "torch.func.jvp",
            "torch.func.jacrev", "torch.func.jacfwd", "torch.func.hessian")
# Methods of nn.Module (and dunders) torch or the evaluator may call without naming them.
IMPLICIT_METHODS = frozenset({
    "forward", "__call__", "state_dict", "load_state_dict", "parameters", "named_parameters",
    "buffers", "named_buffers", "children", "named_children", "modules", "named_modules",
    "train", "eval", "to", "cpu", "cuda", "float", "half", "bfloat16", "double", "type",
    "apply", "_apply", "zero_grad", "extra_repr", "__getattr__", "__setattr__", "_call_impl",
    "requires_grad_", "share_memory", "__iter__", "__next__", "__enter__", "__exit__",
    "__del__", "__len__", "__getitem__", "__repr__", "__str__", "__init__", "__post_init__",
})
ALLOWED_DECORATORS = ("torch.no_grad", "torch.inference_mode", "torch.enable_grad",
                      "torch.compile", "builtins.staticmethod", "builtins.classmethod",
                      "builtins.property", "functools.wraps", "functools.lru_cache",
                      "functools.cache", "functools.cached_property", "dataclasses.dataclass",
                      "torch.autocast", "torch.amp.autocast", "typing.overload")
INPLACE_OK = frozenset({"requires_grad_", "eval_", "train_"})


def names_in(node: ast.AST) -> set[str]:
    out = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            out.add(n.id)
        elif isinstance(n, ast.Attribute):
            out.add(n.attr)
    return out


def stops(body: list[ast.stmt]) -> bool:
    for stmt in body:
        for n in ast.walk(stmt):
            if isinstance(n, ast.Break | ast.Return | ast.Raise):
                return True
    return False


@dataclass
class Fact:
    """One thing a scope does, with where it sits."""

    kind: str  # effect | call | value | owner-call | loop | after
    what: str
    node: ast.AST
    mod: PyModule
    offset: int
    inside: bool
    looping: bool = False


@dataclass
class Scope:
    name: str | None
    kind: str  # module | def | lambda
    node: ast.AST
    mod: PyModule
    offset: int
    cls: str | None = None
    implicit: bool = False
    facts: list[Fact] = field(default_factory=list)
    budget_loops: int = 0


@dataclass
class FileFlow:
    scopes: list[Scope] = field(default_factory=list)
    defs: dict[str, list[Scope]] = field(default_factory=dict)


class _Walker:
    def __init__(self, flow: FileFlow, mod: PyModule, offset: int, budget: frozenset[str],
                 data_calls: tuple[str, ...], data_names: set[str],
                 export_names: frozenset[str], params: dict[str, list[list[str]]],
                 data_funcs: set[str]) -> None:
        self.flow = flow
        self.params = params
        self.data_funcs = data_funcs
        self.mod = mod
        self.offset = offset
        self.budget = budget
        self.data_calls = data_calls
        self.data_names = data_names
        self.export_names = export_names

    # -- scopes --------------------------------------------------------------------
    def scope(self, name: str | None, kind: str, node: ast.AST, cls: str | None,
              implicit: bool) -> Scope:
        sc = Scope(name, kind, node, self.mod, self.offset, cls, implicit)
        self.flow.scopes.append(sc)
        if name:
            self.flow.defs.setdefault(name, []).append(sc)
        return sc

    def fact(self, sc: Scope, kind: str, what: str, node: ast.AST, inside: bool,
             looping: bool = False) -> None:
        sc.facts.append(Fact(kind, what, node, self.mod, self.offset, inside, looping))

    def is_budget_loop(self, node: ast.While | ast.For | ast.AsyncFor) -> bool:
        if not self.budget:
            return False
        if isinstance(node, ast.While) and names_in(node.test) & self.budget:
            return True
        for stmt in node.body:
            for n in ast.walk(stmt):
                if isinstance(n, ast.If) and names_in(n.test) & self.budget and stops(n.body):
                    return True
        return False

    def decorated_implicitly(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
        for d in node.decorator_list:
            target = d.func if isinstance(d, ast.Call) else d
            q = self.mod.qual(target)
            if q is None or not first_match(q, ALLOWED_DECORATORS):
                return True
        return False

    # -- the walk ----------------------------------------------------------------------
    def run_module(self, tree: ast.Module, module_scope: Scope,
                   state: dict[str, bool]) -> None:
        for stmt in tree.body:
            self.stmt(stmt, module_scope, None, False, False, state)

    def body(self, stmts: list[ast.stmt], sc: Scope, cls: str | None, inside: bool,
             looping: bool, state: dict[str, bool]) -> None:
        for stmt in stmts:
            self.stmt(stmt, sc, cls, inside, looping, state)

    def stmt(self, node: ast.stmt, sc: Scope, cls: str | None, inside: bool, looping: bool,
             state: dict[str, bool]) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for d in node.decorator_list:
                self.expr(d, sc, inside, looping, state)
            self.defaults(node.args, sc, inside, looping, state)
            implicit = (cls is not None and node.name in IMPLICIT_METHODS) or (
                node.name.startswith("__") and node.name.endswith("__"))
            decorated = self.decorated_implicitly(node)
            child = self.scope(node.name, "def", node, cls, implicit or decorated)
            if decorated:
                self.fact(sc, "value", node.name, node, inside)  # handed to a decorator
            self.body(node.body, child, None, False, False, {"after": False})
            return
        if isinstance(node, ast.ClassDef):
            for e in (*node.decorator_list, *node.bases, *(k.value for k in node.keywords)):
                self.expr(e, sc, inside, looping, state)
            self.body(node.body, sc, node.name, inside, looping, state)
            return
        if isinstance(node, ast.While | ast.For | ast.AsyncFor):
            budget = self.is_budget_loop(node)
            if isinstance(node, ast.While):
                self.expr(node.test, sc, inside, looping, state)
            else:
                self.expr(node.iter, sc, inside, looping, state)
                self.target(node.target, sc, inside, state, iterating=node.iter)
            if budget:
                sc.budget_loops += 1
                self.fact(sc, "loop", "budget loop", node.test if isinstance(
                    node, ast.While) else node, inside, looping)
            self.body(node.body, sc, cls, inside or budget, True, state)
            self.body(node.orelse, sc, cls, inside, looping, state)
            if budget and not inside:
                state["after"] = True
            return
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            value = node.value
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if value is not None:
                if isinstance(value, ast.Lambda) and len(targets) == 1 and isinstance(
                        targets[0], ast.Name):
                    self.lam(value, sc, inside, looping, state, targets[0].id)
                else:
                    self.expr(value, sc, inside, looping, state)
                if isinstance(value, ast.Call):
                    q = self.mod.qual(value.func)
                    local = value.func.id if isinstance(value.func, ast.Name) else None
                    if (q and first_match(q, self.data_calls)) or local in self.data_funcs:
                        for t in targets:
                            self.data_names.update(n.id for n in ast.walk(t)
                                                   if isinstance(n, ast.Name))
            for t in targets:
                self.target(t, sc, inside, state)
            return
        if isinstance(node, ast.Return) and node.value is not None and sc.name and (
                self.makes_data(node.value)):
            self.data_funcs.add(sc.name)
        for _, child in ast.iter_fields(node):
            if isinstance(child, list):
                if child and isinstance(child[0], ast.stmt):
                    self.body(child, sc, cls, inside, looping, state)
                else:
                    for c in child:
                        if isinstance(c, ast.AST):
                            self.any(c, sc, cls, inside, looping, state)
            elif isinstance(child, ast.AST):
                self.any(child, sc, cls, inside, looping, state)

    def any(self, node: ast.AST, sc: Scope, cls: str | None, inside: bool, looping: bool,
            state: dict[str, bool]) -> None:
        if isinstance(node, ast.stmt):
            self.stmt(node, sc, cls, inside, looping, state)
        elif isinstance(node, ast.expr):
            self.expr(node, sc, inside, looping, state)
        elif isinstance(node, ast.withitem):
            self.expr(node.context_expr, sc, inside, looping, state)
            if node.optional_vars is not None:
                self.target(node.optional_vars, sc, inside, state)
        elif isinstance(node, ast.ExceptHandler | ast.match_case):
            for _, child in ast.iter_fields(node):
                if isinstance(child, list):
                    for c in child:
                        if isinstance(c, ast.AST):
                            self.any(c, sc, cls, inside, looping, state)
                elif isinstance(child, ast.AST):
                    self.any(child, sc, cls, inside, looping, state)
        else:
            for child in ast.iter_child_nodes(node):
                self.any(child, sc, cls, inside, looping, state)

    def makes_data(self, expr: ast.AST) -> bool:
        for n in ast.walk(expr):
            if isinstance(n, ast.Name) and n.id in self.data_names:
                return True
            if isinstance(n, ast.Call):
                q = self.mod.qual(n.func)
                if q and first_match(q, self.data_calls):
                    return True
        return False

    def defaults(self, args: ast.arguments, sc: Scope, inside: bool, looping: bool,
                 state: dict[str, bool]) -> None:
        for d in (*args.defaults, *(k for k in args.kw_defaults if k is not None)):
            self.expr(d, sc, inside, looping, state)

    def lam(self, node: ast.Lambda, sc: Scope, inside: bool, looping: bool,
            state: dict[str, bool], name: str | None) -> None:
        self.defaults(node.args, sc, inside, looping, state)
        child = self.scope(name, "lambda", node, None, False)
        if name is None:
            self.fact(sc, "value", "<lambda>", node, inside)
            child.implicit = True
        self.expr(node.body, child, False, False, {"after": False})

    def target(self, node: ast.AST, sc: Scope, inside: bool, state: dict[str, bool],
               iterating: ast.AST | None = None) -> None:
        """Stores: after the budget loop, writes into the exported model count."""
        if not state["after"]:
            return
        for n in ast.walk(node):
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                if n.id in self.export_names:
                    self.fact(sc, "after", f"rebinds {n.id}", n, inside)
                elif iterating is not None and names_in(iterating) & self.export_names:
                    self.export_names = self.export_names | {n.id}
            elif isinstance(n, ast.Attribute | ast.Subscript) and isinstance(
                    n.ctx, ast.Store | ast.Del) and names_in(n) & self.export_names:
                self.fact(sc, "after", "writes into the model", n, inside)
                break

    def expr(self, node: ast.AST, sc: Scope, inside: bool, looping: bool,
             state: dict[str, bool]) -> None:
        stack: list[tuple[ast.AST, bool]] = [(node, looping)]
        parents: dict[int, ast.AST] = {}
        while stack:
            n, loop_here = stack.pop()
            if isinstance(n, ast.Lambda):
                self.lam(n, sc, inside, loop_here, state, None)
                continue
            comp = isinstance(n, ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp)
            if isinstance(n, ast.Call):
                self.call(n, sc, inside, loop_here, state)
            elif isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load):
                parent = parents.get(id(n))
                called = isinstance(parent, ast.Call) and parent.func is n
                if n.id in self.data_names and not called and not (
                        isinstance(parent, ast.Call) and isinstance(parent.func, ast.Name)
                        and (parent.func.id in self.flow.defs or parent.func.id == "next")):
                    self.fact(sc, "effect", f"consumes the training data ({n.id})", n, inside)
                elif n.id in self.flow.defs and not called:
                    self.fact(sc, "value", n.id, n, inside)
            elif isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Load):
                parent = parents.get(id(n))
                called = isinstance(parent, ast.Call) and parent.func is n
                if not called and n.attr in EFFECT_ATTRS:
                    self.fact(sc, "effect", f"takes .{n.attr} as a value", n, inside)
                elif not called and isinstance(n.value, ast.Name) and n.value.id in (
                        "self", "cls") and n.attr in self.flow.defs:
                    self.fact(sc, "value", n.attr, n, inside)
            for child in ast.iter_child_nodes(n):
                parents[id(child)] = n
                stack.append((child, loop_here or comp))

    def call(self, node: ast.Call, sc: Scope, inside: bool, looping: bool,
             state: dict[str, bool]) -> None:
        mod = self.mod
        func = node.func
        attr = None
        if isinstance(func, ast.Attribute):
            attr = func.attr
        elif isinstance(func, ast.Call) and mod.qual(func.func) == "builtins.getattr" and len(
                func.args) >= 2:
            attr = mod.fold_str(func.args[1])
        q = mod.qual(func)
        if attr in EFFECT_ATTRS:
            self.fact(sc, "effect", f"calls .{attr}()", node, inside)
        elif q and first_match(q, AUTOGRAD):
            self.fact(sc, "effect", f"calls {q}", node, inside)
        elif q == "builtins.next" and node.args and self.makes_data(node.args[0]):
            self.fact(sc, "effect", "draws a training batch", node, inside)
        if isinstance(func, ast.Name) and q is None:
            self.fact(sc, "call", func.id, node, inside, looping)
            self.propagate(func.id, node)
        elif attr is not None and q is None:
            self.fact(sc, "call", attr, node, inside, looping)
        if state["after"] and attr is not None and isinstance(func, ast.Attribute) and (
                names_in(func.value) & self.export_names) and (
                (attr.endswith("_") and attr not in INPLACE_OK) or attr in (
                    "load_state_dict", "apply", "register_parameter", "copy_")):
            self.fact(sc, "after", f"calls .{attr}() on the model", node, inside)

    def propagate(self, callee: str, node: ast.Call) -> None:
        """A data iterator passed to one of the file's functions taints its parameter."""
        for i, a in enumerate(node.args):
            if isinstance(a, ast.Name) and a.id in self.data_names:
                for names in self.params.get(callee, ()):
                    if i < len(names):
                        self.data_names.add(names[i])
        for k in node.keywords:
            if k.arg and isinstance(k.value, ast.Name) and k.value.id in self.data_names:
                self.data_names.add(k.arg)


def file_flow(modules: list[tuple[int, PyModule]], budget: frozenset[str],
              data_calls: tuple[str, ...], export_calls: tuple[str, ...]) -> FileFlow:
    """The flow facts of one file version (its chunks in order)."""
    names: set[str] = set()
    params: dict[str, list[list[str]]] = {}
    export_names: set[str] = set()
    for _, mod in modules:
        for node in mod.nodes:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                names.add(node.name)
                a = node.args
                params.setdefault(node.name, []).append([x.arg for x in (*a.posonlyargs,
                                                                         *a.args)])
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Lambda) and len(
                    node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                names.add(node.targets[0].id)
            elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Name):
                q = mod.qual(node.func) or (node.func.id if isinstance(node.func, ast.Name)
                                            else None)
                if q and first_match(q, export_calls):
                    export_names.add(node.args[0].id)  # the model that gets exported
    data_names: set[str] = set()
    data_funcs: set[str] = set()
    flow = FileFlow()
    for _ in range(3):  # later passes see names tainted by later code
        seen = (len(data_names), len(data_funcs))
        flow = FileFlow(defs={n: [] for n in names})
        if not modules:
            return flow
        module_scope = Scope(None, "module", modules[0][1].tree, modules[0][1], 0)
        flow.scopes.append(module_scope)
        module_state = {"after": False}
        for offset, mod in modules:
            w = _Walker(flow, mod, offset, budget, data_calls, data_names,
                        frozenset(export_names), params, data_funcs)
            w.run_module(mod.tree, module_scope, module_state)
        if (len(data_names), len(data_funcs)) == seen:
            break
    return flow
