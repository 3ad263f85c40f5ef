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
from collections import OrderedDict

from guards.bindings import bindings
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
DATA_READERS = ("numpy.memmap", "numpy.fromfile", "numpy.load", "numpy.loadtxt", "torch.from_file",
                "torch.load", "builtins.open")
READ_ONLY = frozenset({
    "builtins.print", "builtins.len", "builtins.sum", "builtins.min", "builtins.max",
    "builtins.sorted", "builtins.isinstance", "builtins.str", "builtins.repr", "builtins.format",
    "builtins.round", "builtins.float", "builtins.int", "builtins.any", "builtins.all",
    "builtins.zip", "builtins.enumerate", "builtins.list", "builtins.tuple", "builtins.id",
    "builtins.type", "builtins.hash", "builtins.iter", "builtins.next", "builtins.dict",
    "builtins.bool", "builtins.abs", "builtins.getattr", "builtins.hasattr", "math.sqrt",
    "math.log", "math.exp", "math.isfinite",
})


_EAGER = frozenset({"builtins.list", "builtins.tuple", "builtins.set", "builtins.frozenset",
                    "builtins.dict", "builtins.sorted", "builtins.sum", "builtins.min",
                    "builtins.max", "builtins.any", "builtins.all", "torch.cat", "torch.stack",
                    "torch.tensor"})


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


# Plain slotted classes, not dataclasses: the check runs in a fresh process per patch, and
# building a dataclass costs more at import than these classes ever cost at run time.
class Fact:
    """One thing a scope does, with where it sits."""

    __slots__ = ("kind", "what", "node", "mod", "inside", "looping")

    def __init__(self, kind: str, what: str, node: ast.AST, mod: PyModule, inside: bool,
                 looping: bool = False) -> None:
        self.kind = kind  # effect | effect-value | call | value | loop | after | after-call
        self.what = what
        self.node = node
        self.mod = mod
        self.inside = inside
        self.looping = looping


class Scope:
    """The module, a def or a lambda, and the facts of its own body."""

    __slots__ = ("name", "kind", "node", "mod", "cls", "implicit", "facts", "budget_loops")

    def __init__(self, name: str | None, kind: str, node: ast.AST, mod: PyModule,
                 cls: str | None = None, implicit: bool = False) -> None:
        self.name = name
        self.kind = kind  # module | def | lambda
        self.node = node
        self.mod = mod
        self.cls = cls
        self.implicit = implicit
        self.facts: list[Fact] = []
        self.budget_loops = 0


class FileFlow:
    __slots__ = ("scopes", "defs", "offsets", "mutators")

    def __init__(self, defs: dict[str, list[Scope]] | None = None) -> None:
        self.scopes: list[Scope] = []
        self.defs: dict[str, list[Scope]] = defs if defs is not None else {}
        self.offsets: dict[int, int] = {}
        """Line offset of each chunk (by id of its PyModule): facts are cached per chunk."""
        self.mutators: frozenset[str] = frozenset()
        """Functions called with the model after the loop that change their arguments."""


class ChunkFlow:
    """What walking one chunk found; depends only on the chunk and the names it uses."""

    __slots__ = ("module", "scopes", "data_names", "data_funcs", "after")

    def __init__(self, module: Scope, scopes: list[Scope], data_names: frozenset[str],
                 data_funcs: frozenset[str], after: bool) -> None:
        self.module = module
        self.scopes = scopes
        self.data_names = data_names
        self.data_funcs = data_funcs
        self.after = after


class _Walker:
    def __init__(self, mod: PyModule, budget: frozenset[str], data_calls: tuple[str, ...],
                 data_names: set[str], export_names: frozenset[str],
                 params: dict[str, list[list[str]]], data_funcs: set[str],
                 defs: frozenset[str], exports: tuple[str, ...] = ()) -> None:
        self.exports = exports
        self.mod = mod
        self.budget = budget
        self.data_calls = data_calls
        self.data_names = data_names
        self.export_names = export_names
        self.params = params
        self.data_funcs = data_funcs
        self.defs = defs
        self.scopes: list[Scope] = []

    # -- scopes --------------------------------------------------------------------
    def scope(self, name: str | None, kind: str, node: ast.AST, cls: str | None,
              implicit: bool) -> Scope:
        sc = Scope(name, kind, node, self.mod, cls, implicit)
        self.scopes.append(sc)
        return sc

    def fact(self, sc: Scope, kind: str, what: str, node: ast.AST, inside: bool,
             looping: bool = False) -> None:
        sc.facts.append(Fact(kind, what, node, self.mod, inside, looping))

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
        if state["after"] and self.export_names:
            self.rebinds(node, sc, inside)
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
            for t in targets:
                self.target(t, sc, inside, state)
            if value is not None:
                bound = [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
                if self.is_data_source(value):
                    self.data_names.update(bound)
                if state["after"] and names_in(value) & self.export_names:
                    # `plist = list(model.parameters())`: still the model, after the loop
                    self.export_names = self.export_names | (set(bound) - set(self.defs))
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

    def rebinds(self, node: ast.stmt, sc: Scope, inside: bool) -> None:
        """After the loop, every binding of the exported model's names counts (`:=`, `del`,
        `except ... as`, `case`, `global`, `import ... as`, `def`), not only `=` and `for`,
        which `target` judges with what they iterate."""
        plain = isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign | ast.For |
                           ast.AsyncFor | ast.With | ast.AsyncWith)
        for name, where in bindings(node):
            if (not plain or isinstance(where, ast.NamedExpr)) and name in self.export_names:
                self.fact(sc, "after", f"rebinds {name}", where, inside)
        if isinstance(node, ast.Delete):
            for t in node.targets:
                if not isinstance(t, ast.Name) and names_in(t) & self.export_names:
                    self.fact(sc, "after", "deletes from the model", t, inside)

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

    def is_data_source(self, value: ast.AST) -> bool:
        """A value that is (or iterates) the training data: a data call, a reader of data
        files, a helper returning one, or an alias or wrapper of a data iterator (but not
        one batch drawn from it)."""
        if isinstance(value, ast.Name):
            return value.id in self.data_names
        if not isinstance(value, ast.Call):
            return False
        q = self.mod.qual(value.func)
        if q == "builtins.next":
            return False
        if q and first_match(q, (*self.data_calls, *DATA_READERS)):
            if q == "builtins.open":
                mode = value.args[1] if len(value.args) > 1 else next(
                    (k.value for k in value.keywords if k.arg == "mode"), None)
                m = self.mod.fold_str(mode) if mode is not None else "r"
                return m is None or not any(c in m for c in "wax")
            return True
        if isinstance(value.func, ast.Name) and value.func.id in self.data_funcs:
            return True
        if isinstance(value.func, ast.Name) and value.func.id in self.defs:
            return False  # the file's own helpers: judged by what they return (data_funcs)
        return any(isinstance(a, ast.Name) and a.id in self.data_names for a in (
            *value.args, *(k.value for k in value.keywords)))

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
            if isinstance(n, ast.GeneratorExp) and not self.consumed(n, parents.get(id(n))):
                # lazy like a lambda: its body runs where it is advanced, not where it is
                child = self.scope(None, "lambda", n, None, True)
                self.fact(sc, "value", "<generator>", n, inside)
                for part in ast.iter_child_nodes(n):
                    self.expr(part, child, False, True, {"after": False})
                continue
            comp = isinstance(n, ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp)
            if isinstance(n, ast.Call):
                self.call(n, sc, inside, loop_here, state)
            elif isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load):
                parent = parents.get(id(n))
                called = isinstance(parent, ast.Call) and parent.func is n
                if n.id in self.data_names and not called and not (
                        isinstance(parent, ast.Call) and isinstance(parent.func, ast.Name)
                        and (parent.func.id in self.defs or parent.func.id == "next")):
                    self.fact(sc, "effect", f"consumes the training data ({n.id})", n, inside)
                elif n.id in self.defs and not called:
                    self.fact(sc, "value", n.id, n, inside)
            elif isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Load):
                parent = parents.get(id(n))
                called = isinstance(parent, ast.Call) and parent.func is n
                if not called and n.attr in EFFECT_ATTRS:
                    self.fact(sc, "effect-value", f"takes .{n.attr} as a value", n, inside)
                elif not called and n.attr in self.defs:
                    # a bound method kept as a value (`fn = trainer.refine`), any object's
                    self.fact(sc, "value", n.attr, n, inside)
            for child in ast.iter_child_nodes(n):
                parents[id(child)] = n
                stack.append((child, loop_here or comp))

    def consumed(self, gen: ast.GeneratorExp, parent: ast.AST | None) -> bool:
        """A generator expression handed straight to a call that exhausts it on the spot
        (`sum(...)`, `torch.stack(...)`) runs where it stands, like a list comprehension."""
        if not isinstance(parent, ast.Call) or gen not in parent.args:
            return False
        q = self.mod.qual(parent.func)
        return q in _EAGER

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
        if state["after"] and not inside:
            self.after_call(node, sc, attr, q, inside)

    def after_call(self, node: ast.Call, sc: Scope, attr: str | None, q: str | None,
                   inside: bool) -> None:
        """After the loop, the model may be read and exported, not changed."""
        func = node.func
        if attr is not None and isinstance(func, ast.Attribute) and (
                names_in(func.value) & self.export_names):
            if (attr.endswith("_") and attr not in INPLACE_OK) or attr in (
                    "load_state_dict", "apply", "register_parameter", "register_buffer"):
                self.fact(sc, "after", f"calls .{attr}() on the model", node, inside)
            return
        args = [*node.args, *(k.value for k in node.keywords)]
        if not any(names_in(a) & self.export_names for a in args):
            return
        if isinstance(func, ast.Name) and q is None:
            if func.id in self.defs and func.id not in self.exports:
                # judged once every chunk is known: does the helper change its arguments?
                self.fact(sc, "after-call", func.id, node, inside)
            return
        if q is not None and (q in READ_ONLY or first_match(q, self.exports)):
            return
        self.fact(sc, "after", f"passes the model to {q or ast.unparse(func)}()", node, inside)

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


class _Params(dict[str, list[list[str]]]):
    """Parameter names of the file's functions, looked up only when a call needs them."""

    def __init__(self, modules: list[tuple[int, PyModule]]) -> None:
        super().__init__()
        self.modules = modules

    def __missing__(self, name: str) -> list[list[str]]:
        found = []
        for _, mod in self.modules:
            if name in mod.chunk.defs:
                for node in mod.nodes:
                    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and (
                            node.name == name):
                        a = node.args
                        found.append([x.arg for x in (*a.posonlyargs, *a.args)])
        self[name] = found
        return found

    def get(self, name: str, default: object = None) -> list[list[str]]:  # type: ignore[override]
        return self[name]


_CHUNKS: OrderedDict[tuple[object, ...], ChunkFlow] = OrderedDict()


def attribute_names(mod: PyModule) -> frozenset[str]:
    """Every attribute name a chunk mentions (cached on the chunk)."""
    got = mod.__dict__.get("_attr_names")
    if got is None:
        got = mod.__dict__["_attr_names"] = frozenset(
            n.attr for n in mod.nodes if isinstance(n, ast.Attribute))
    return got  # type: ignore[no-any-return]


def _walk_chunk(mod: PyModule, budget: frozenset[str], data_calls: tuple[str, ...],
                data_names: set[str], data_funcs: set[str], export_names: frozenset[str],
                params: dict[str, list[list[str]]], defs: frozenset[str],
                after: bool, export_calls: tuple[str, ...]) -> ChunkFlow:
    names = mod.chunk.names | attribute_names(mod)
    # parameters matter only where a data iterator is passed to one of the file's functions
    used_params = tuple(sorted((n, tuple(map(tuple, params[n]))) for n in names & defs)) if (
        names & data_names) else ()
    key = (id(mod), mod.identity, budget & names, frozenset(data_names & names),
           frozenset(data_funcs & names), export_names & names, defs & names, used_params,
           data_calls, after, export_calls)
    got = _CHUNKS.get(key)
    if got is not None:
        _CHUNKS.move_to_end(key)
        return got
    dn, df = set(data_names & names), set(data_funcs & names)
    w = _Walker(mod, budget, data_calls, dn, export_names & names, params, df, defs,
                export_calls)
    module = Scope(None, "module", mod.tree, mod)
    state = {"after": after}
    w.run_module(mod.tree, module, state)
    got = _CHUNKS[key] = ChunkFlow(module, w.scopes, frozenset(dn), frozenset(df),
                                   state["after"])
    if len(_CHUNKS) > 2048:
        _CHUNKS.popitem(last=False)
    return got


def relevant(modules: list[tuple[int, PyModule]], budget: frozenset[str],
             data_calls: tuple[str, ...], export_calls: tuple[str, ...]) -> set[int]:
    """ids of the chunks whose content can matter to any training verdict, from names alone.

    A chunk matters when it mentions an effect word, the budget, the data or the export, or
    the name of a function defined in a chunk that matters (callers of what may train). A
    patch that changes no chunk that matters, on either side, cannot change a verdict."""
    base = set(_EFFECT_WORDS | budget) | {c.rsplit(".", 1)[-1] for c in (*data_calls,
                                                                         *export_calls)}
    words = set(base)
    out: set[int] = set()
    for _ in range(len(modules) + 1):
        grew = False
        for _, mod in modules:
            if id(mod) in out:
                continue
            seen = mod.chunk.names | attribute_names(mod) | mod.chunk.defs
            if seen & words:
                out.add(id(mod))
                words |= mod.chunk.defs
                grew = True
        if not grew:
            break
    return out


# Words a chunk must mention for walking it to find anything (the rest is skipped).
_EFFECT_WORDS = frozenset({*EFFECT_ATTRS, "next", "getattr", "autograd", "grad", "func", "vjp",
                           "jvp", "jacrev", "jacfwd", "hessian",
                           *(r.rsplit(".", 1)[-1] for r in DATA_READERS)})


def file_flow(modules: list[tuple[int, PyModule]], budget: frozenset[str],
              data_calls: tuple[str, ...], export_calls: tuple[str, ...]) -> FileFlow:
    """The flow facts of one file version (its chunks in order).

    Only chunks that mention something training-related are walked: an effect word, the
    budget, the data iterator, the export, or a function already known to train or to own
    the loop. A chunk mentioning none of these cannot add a fact any verdict uses.
    """
    defs: set[str] = set()
    for _, mod in modules:
        defs |= mod.chunk.defs
        for node in mod.tree.body:  # module-level `f = lambda: ...` counts as a function
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Lambda) and len(
                    node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                defs.add(node.targets[0].id)
    export_words = {c.rsplit(".", 1)[-1] for c in export_calls}
    data_words = {c.rsplit(".", 1)[-1] for c in data_calls}
    export_names: set[str] = set()
    early: set[str] = set()
    params = _Params(modules)
    for _, mod in modules:
        if (mod.chunk.names | attribute_names(mod)) & export_words:
            for node in mod.nodes:
                if isinstance(node, ast.Call) and node.args and isinstance(node.args[0],
                                                                            ast.Name):
                    q = mod.qual(node.func) or (node.func.id if isinstance(node.func, ast.Name)
                                                else None)
                    if q and first_match(q, export_calls):
                        export_names.add(node.args[0].id)  # the model that gets exported
        if (mod.chunk.names | attribute_names(mod)) & data_words:
            for node in mod.nodes:  # `batches = train_batches(...)`: known before the walk
                if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
                    q = mod.qual(node.value.func)
                    if q and first_match(q, data_calls):
                        early.update(n.id for t in node.targets for n in ast.walk(t)
                                     if isinstance(n, ast.Name))
    frozen_defs, exports = frozenset(defs), frozenset(export_names)
    data_names: set[str] = set(early)
    data_funcs: set[str] = set()
    chunks: dict[int, ChunkFlow] = {}
    words = set(_EFFECT_WORDS | budget | data_words | exports | export_words)
    for _ in range(8):  # until nothing new is learnt (walks are cached per chunk)
        seen = (len(data_names), len(data_funcs), len(words))
        after = False
        for i, (_, mod) in enumerate(modules):
            if not (mod.chunk.names | attribute_names(mod)) & words:
                continue
            cf = _walk_chunk(mod, budget, data_calls, data_names, data_funcs, exports, params,
                             frozen_defs, after, export_calls)
            data_names |= cf.data_names
            data_funcs |= cf.data_funcs
            after = cf.after
            chunks[i] = cf
            for sc in cf.scopes:  # callers of what trains or owns the loop matter too
                if sc.name and (sc.budget_loops or any(
                        f.kind in ("effect", "after") or (f.kind == "call" and f.what in words)
                        for f in sc.facts)):
                    words.add(sc.name)
            if cf.module.budget_loops:
                words |= defs & (mod.chunk.names | attribute_names(mod))
        words |= data_names | data_funcs
        if (len(data_names), len(data_funcs), len(words)) == seen:
            break
    flow = FileFlow(defs={n: [] for n in defs})
    if not modules:
        return flow
    module_scope = Scope(None, "module", modules[0][1].tree, modules[0][1])
    flow.scopes.append(module_scope)
    for i, (offset, mod) in enumerate(modules):
        cf = chunks.get(i)
        if cf is None:
            continue
        flow.offsets[id(mod)] = offset
        module_scope.facts.extend(cf.module.facts)
        module_scope.budget_loops += cf.module.budget_loops
        for sc in cf.scopes:
            flow.scopes.append(sc)
            if sc.name:
                flow.defs.setdefault(sc.name, []).append(sc)
    called = {f.what for sc in flow.scopes for f in sc.facts if f.kind == "after-call"}
    if called:
        flow.mutators = _mutators(modules, called)
    return flow


def _mutators(modules: list[tuple[int, PyModule]], names: set[str]) -> frozenset[str]:
    """Which of these functions change their arguments: in-place calls (`p.mul_()`,
    `nn.init.zeros_(m.weight)`), stores into them, loading state into them."""
    out = set()
    for _, mod in modules:
        if not mod.chunk.defs & names:
            continue
        for node in mod.nodes:
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or (
                    node.name not in names):
                continue
            a = node.args
            params = {x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)}
            for n in ast.walk(node):
                if isinstance(n, ast.For) and names_in(n.iter) & params:
                    params |= {x.id for x in ast.walk(n.target) if isinstance(x, ast.Name)}
            for n in ast.walk(node):
                if isinstance(n, ast.Call):
                    f = n.func
                    name = f.attr if isinstance(f, ast.Attribute) else (
                        f.id if isinstance(f, ast.Name) else "")
                    touches = names_in(f.value) if isinstance(f, ast.Attribute) else set()
                    touches |= {x for a in n.args for x in names_in(a)}
                    if touches & params and ((name.endswith("_") and name not in INPLACE_OK)
                                             or name in ("load_state_dict", "apply")):
                        out.add(node.name)
                elif isinstance(n, ast.Attribute | ast.Subscript) and isinstance(
                        n.ctx, ast.Store | ast.Del) and names_in(n) & params:
                    out.add(node.name)
    return frozenset(out)
