"""Models that act differently only while exported, or only when probed.

Three rules:

- `model.monkeypatch`: stores into other modules and classes (global monkeypatches of
  `F.scaled_dot_product_attention`, `nn.Embedding.forward`, a class's own `forward` after
  its definition), functions installed on objects, methods replaced by assignment. Only
  literal settings of compiler and backend flags are allowed.
- `model.hook`: anything that registers a hook (forward, pre-forward, backward, state-dict,
  global module hooks, tensor gradient hooks): code that runs where no one calls it.
- `model.export_mode`: the tracing-state predicates (`torch.compiler.is_exporting()`,
  `torch._dynamo.is_compiling()`, `torch.jit.is_tracing()`, grad and inference mode)
  anywhere; and in model code (every `forward` and what it calls by name) conditions on
  modes, devices, dtypes, shapes or input values, uses of the batch size beyond reshaping,
  and indexing the rows of the input: the exported program must compute the same function
  on every row at every batch size, which is what the evaluator's probes assume.
"""

from __future__ import annotations

import ast
from collections import Counter, OrderedDict

from guards.context import CheckContext, FileState, Hit
from guards.findings import Finding
from guards.flow import attribute_names
from guards.patch import Patch
from guards.pyast import BUILTIN_NAMES, PyModule
from guards.rules._match import first_match, listed
from guards.rules.astrule import AstRule, hit
from guards.rules.base import Rule

CONFIG_NAMESPACES = ("torch.backends.*", "torch._inductor.config", "torch._inductor.config.*",
                     "torch._dynamo.config", "torch._dynamo.config.*", "torch._functorch.config",
                     "torch._functorch.config.*")
MODULE_API = frozenset({"forward", "__call__", "_call_impl", "extra_repr", "state_dict",
                        "load_state_dict", "parameters", "named_parameters", "train", "eval",
                        "to", "apply", "zero_grad", "step", "backward"})
TRACE_STATE = ("torch.compiler.is_exporting", "torch.compiler.is_compiling",
               "torch.compiler.is_dynamo_compiling", "torch._dynamo.is_compiling",
               "torch._dynamo.external_utils.is_compiling", "torch.jit.is_tracing",
               "torch.jit.is_scripting", "torch.onnx.is_in_onnx_export",
               "torch.fx._symbolic_trace.is_fx_tracing", "torch._C._get_tracing_state",
               "torch.is_grad_enabled", "torch.is_inference_mode_enabled",
               "torch.is_autocast_enabled", "torch.is_autocast_cpu_enabled",
               "torch._C.is_grad_enabled", "torch.cond", "torch.export")
MODE_ATTRS = frozenset({"training", "requires_grad", "grad_fn", "is_leaf", "grad", "is_cuda",
                        "device", "dtype", "is_meta", "layout", "_version", "shape", "ndim",
                        "is_sparse", "is_quantized", "is_nested", "is_mps", "is_cpu"})
MODE_CALLS = frozenset({"size", "numel", "dim", "stride", "nelement", "data_ptr",
                        "is_contiguous", "get_device", "is_inference", "is_floating_point",
                        "item", "tolist", "any", "all"})
MODE_VALUES = frozenset({"training", "requires_grad", "grad_fn", "is_leaf", "grad", "is_cuda",
                         "device", "dtype", "is_meta", "layout", "_version", "is_inference",
                         "is_mps", "is_cpu"})
SHAPE_CALLS = frozenset({"view", "reshape", "expand", "new_zeros", "new_ones", "new_empty",
                         "new_full", "zeros", "ones", "empty", "full", "randn", "rand",
                         "unflatten", "repeat", "tile", "broadcast_to", "expand_as", "flatten",
                         "split", "chunk", "view_as", "reshape_as"})


def _function_like(mod: PyModule, value: ast.AST | None, params: set[str]) -> bool:
    if value is None:
        return False
    if isinstance(value, ast.Lambda):
        return True
    if isinstance(value, ast.Name):
        return value.id in mod.defs or value.id in params
    if isinstance(value, ast.Call):
        q = mod.qual(value.func) or ""
        f = value.func
        return q.endswith("functools.partial") or q.startswith("types.") or (
            isinstance(f, ast.Attribute) and f.attr in ("__get__", "MethodType"))
    if isinstance(value, ast.Attribute):
        return value.attr in mod.defs or value.attr in MODULE_API
    return False


def _enclosing(mod: PyModule, node: ast.AST, kinds: tuple[type, ...]) -> ast.AST | None:
    cur = mod.parents.get(node)
    while cur is not None:
        if isinstance(cur, kinds):
            return cur
        cur = mod.parents.get(cur)
    return None


def _params(fn: ast.AST | None) -> set[str]:
    if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
        return set()
    a = fn.args
    return {x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)} - {"self", "cls"}


class MonkeypatchRule(AstRule):
    id = "model.monkeypatch"
    description = ("Global monkeypatches and replaced methods: stores into torch or other "
                   "modules and their classes (F.scaled_dot_product_attention = ..., "
                   "nn.Embedding.forward = ...), classes patched after definition, functions "
                   "installed on objects. Literal compiler/backend flags are allowed.")

    def scan(self, mod: PyModule, ctx: CheckContext) -> list[Hit]:
        out: list[Hit] = []
        for node in mod.nodes:
            targets: list[tuple[ast.AST, str, ast.AST | None, ast.AST]] = []
            if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Delete):
                value = None if isinstance(node, ast.Delete) else node.value
                tlist = node.targets if isinstance(node, ast.Assign | ast.Delete) else [
                    node.target]
                todo = list(tlist)
                while todo:
                    t = todo.pop()
                    if isinstance(t, ast.Tuple | ast.List):
                        todo.extend(t.elts)
                        value = None  # unpacked: the value per target is unknown
                    elif isinstance(t, ast.Attribute):
                        targets.append((t.value, t.attr, value, node))
                    elif isinstance(t, ast.Name) and isinstance(
                            mod.parents.get(node), ast.ClassDef) and (
                            _function_like(mod, value, set()) or t.id in MODULE_API):
                        out.append(hit(mod, node, f"class body binds {t.id} to a function by "
                                       "assignment: define methods with def.", "classbind",
                                       t.id))
            elif isinstance(node, ast.Call) and mod.qual(node.func) in (
                    "builtins.setattr", "builtins.delattr") and len(node.args) >= 2:
                name = mod.fold_str(node.args[1])
                if name is not None:
                    value = node.args[2] if len(node.args) > 2 else None
                    targets.append((node.args[0], name, value, node))
            for base, attr, value, stmt in targets:
                out.extend(self._judge(mod, base, attr, value, stmt))
        return out

    def _judge(self, mod: PyModule, base: ast.AST, attr: str, value: ast.AST | None,
               stmt: ast.AST) -> list[Hit]:
        fn = _enclosing(mod, stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        params = _params(fn)
        q = mod.qual(base)
        is_self = isinstance(base, ast.Name) and base.id in ("self", "cls")
        func_value = _function_like(mod, value, params)
        if q is not None:
            full = f"{q}.{attr}"
            if listed(q, CONFIG_NAMESPACES) and not func_value:
                return []
            return [hit(mod, stmt, f"stores {full}: patching other modules (or their classes) "
                        "changes code the guards cannot see run.", "module", full)]
        root = base
        while isinstance(root, ast.Attribute | ast.Subscript | ast.Call):
            root = root.func if isinstance(root, ast.Call) else root.value
        if isinstance(root, ast.Name) and root.id in mod.classes:
            cls = _enclosing(mod, stmt, (ast.ClassDef,))
            if not (isinstance(cls, ast.ClassDef) and cls.name == root.id):
                return [hit(mod, stmt, f"patches the class {root.id} after its definition "
                            f"(.{attr}).", "class", root.id, attr)]
        if attr in MODULE_API and not (is_self and attr not in ("forward", "__call__")):
            return [hit(mod, stmt, f"replaces .{attr}: an nn.Module method the export and "
                        "the evaluator call.", "method", attr)]
        if func_value and not is_self:
            return [hit(mod, stmt, f"installs a function as .{attr} on another object.",
                        "install", attr)]
        if attr in mod.defs and func_value:
            return [hit(mod, stmt, f"replaces the method {attr} by assignment.", "method",
                        attr)]
        return []


class HookRule(AstRule):
    id = "model.hook"
    description = ("Registering hooks (forward, pre-forward, backward, state-dict, global "
                   "module hooks, tensor gradient hooks): code that runs where nobody calls it.")

    def scan(self, mod: PyModule, ctx: CheckContext) -> list[Hit]:
        out = []
        for node in mod.nodes:
            name = None
            if isinstance(node, ast.Attribute) and "hook" in node.attr.lower():
                name = node.attr
            elif isinstance(node, ast.Name) and "hook" in node.id.lower() and (
                    node.id in mod.import_bindings):
                name = node.id
            if name:
                out.append(hit(mod, node, f"uses {name}: hooks run code inside the model, or "
                               "the export, without being called.", "hook", name))
        return out


class TraceStateRule(AstRule):
    """The part of `model.export_mode` that needs no model: tracing predicates anywhere."""

    id = "model.trace_state"
    description = ("Asking whether code is being exported, compiled, traced or run without "
                   "grad (torch.compiler.is_exporting, torch._dynamo.is_compiling, "
                   "torch.jit.is_tracing, torch.is_grad_enabled, torch.cond).")

    def scan(self, mod: PyModule, ctx: CheckContext) -> list[Hit]:
        return [hit(mod, ref.node, f"uses {ref.qual}: a model may not act differently while "
                    "exported, compiled or traced.", "trace", ref.qual)
                for ref in mod.refs if first_match(ref.qual, TRACE_STATE)]


_CACHE: OrderedDict[tuple[object, ...], list[Hit]] = OrderedDict()


class ExportModeRule(Rule):
    id = "model.export_mode"
    description = ("Model code (forward and what it calls) that branches on modes, devices, "
                   "dtypes, shapes or input values, uses the batch size beyond reshaping, or "
                   "indexes input rows: behaviour the evaluator's probes would not see.")

    def check(self, patch: Patch, context: CheckContext) -> list[Finding]:
        if context.only_constants_changed() or not any(
                _touches_model(state, which) for state in context.python_files()
                for which in ("before", "after")):
            return []
        out = []
        for state in context.python_files():
            old = Counter(h.signature for h in self._hits(state, "before"))
            for h in self._hits(state, "after"):
                if old[h.signature] > 0:
                    old[h.signature] -= 1
                else:
                    out.append(context.finding(self.id, self.severity, state, h))
        return out

    def _hits(self, state: FileState, which: str) -> list[Hit]:
        analysis = state.analysis(which)
        if analysis is None:
            return []
        key = (state.path, analysis.source)
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
        fns: dict[str, list[tuple[int, PyModule, ast.FunctionDef | ast.AsyncFunctionDef,
                                  bool]]] = {}
        for offset, mod in analysis.modules:
            for node, method in _defs(mod):
                fns.setdefault(node.name, []).append((offset, mod, node, method))
        todo = [f for name in ("forward", "__call__") for f in fns.get(name, []) if f[3]]
        seen: set[int] = set()
        done = []
        while todo:
            offset, mod, fn, method = todo.pop()
            if id(fn) in seen:
                continue
            seen.add(id(fn))
            found, callees, free = _model_function(mod, fn, root=fn.name in (
                "forward", "__call__") and method)
            done.append((offset, mod, fn, found, free))
            for callee in callees:
                if callee not in ("forward", "__call__"):
                    todo.extend(fns.get(callee, []))
        wanted = {name for *_, free in done for name, _ in free} - BUILTIN_NAMES
        fixed = _module_names(analysis.modules, analysis.maps, wanted) if wanted else frozenset()
        hits: list[Hit] = []
        for offset, mod, fn, found, free in done:
            for name, node in free:
                if name in wanted and name not in fixed:
                    found = [*found, hit(mod, node, f"model code reads the module-level {name}, "
                                         "which can change between training and export; read "
                                         "constants or the module's own attributes.", "state",
                                         fn.name, name)]
            hits.extend(Hit(h.signature, h.line + offset if h.line else 0, h.message, h.evidence)
                        for h in found)
        _CACHE[key] = hits
        if len(_CACHE) > 256:
            _CACHE.popitem(last=False)
        return hits


_MUTATING = frozenset({"update", "append", "extend", "insert", "pop", "popitem", "clear",
                       "setdefault", "remove", "add", "discard", "sort", "reverse",
                       "__setitem__", "__delitem__"})


def _touches_model(state: FileState, which: str) -> bool:
    """Could the patch change model code (forward and what it may call), judged from names?

    Model code lives in classes and in the functions their bodies name, transitively; module
    names they read count too. A changed chunk outside all of that changes no verdict."""
    analysis = state.analysis(which)
    changed = state.changed_chunks(which)
    if analysis is None or not changed:
        return False
    inside: set[int] = set()
    names: set[str] = set()
    for _ in range(len(analysis.modules) + 1):
        grew = False
        for _, mod in analysis.modules:
            if id(mod) in inside:
                continue
            if mod.chunk.classes or mod.chunk.defs & names:
                inside.add(id(mod))
                names |= mod.chunk.names | attribute_names(mod)
                grew = True
        if not grew:
            break
    for _, mod in changed:
        if id(mod) in inside:
            return True
        for stmt in mod.tree.body:  # module-level names model code reads (LOGIT_SOFTCAP = ...)
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target] if (
                isinstance(stmt, ast.AnnAssign | ast.AugAssign)) else []
            if any(isinstance(t, ast.Name) and t.id in names for t in targets):
                return True
    return False


def _module_names(modules: list[tuple[int, PyModule]], maps: object,
                  wanted: set[str]) -> frozenset[str]:
    """Module-level names model code may read: imports, functions, classes, and constants
    bound to literals or displays (`ACT = {"gelu": F.gelu}`) that no code changes, passes
    on or aliases, so their value at export time is their value in training."""
    out = set(getattr(maps, "import_bindings", {})) | set(getattr(maps, "defs", ())) | set(
        getattr(maps, "classes", ()))
    counts: dict[str, int] = {}
    candidates: set[str] = set()
    for _, mod in modules:
        for stmt in mod.tree.body:
            if isinstance(stmt, ast.Assign | ast.AnnAssign) and stmt.value is not None:
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                for t in targets:
                    if isinstance(t, ast.Name):
                        counts[t.id] = counts.get(t.id, 0) + 1
                        if _scalar(stmt.value) or isinstance(
                                stmt.value, ast.Dict | ast.List | ast.Set | ast.Tuple):
                            candidates.add(t.id)
    candidates = {c for c in candidates if counts.get(c) == 1}
    if not candidates & wanted:
        return frozenset(out | candidates)
    changed: set[str] = set()
    for _, mod in modules:
        if not mod.chunk.names & candidates & wanted:
            continue
        for node in mod.nodes:
            if isinstance(node, ast.Subscript | ast.Attribute) and isinstance(
                    node.ctx, ast.Store | ast.Del) and isinstance(node.value, ast.Name):
                changed.add(node.value.id)
            elif isinstance(node, ast.Call):
                f = node.func
                if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and (
                        f.attr in _MUTATING):
                    changed.add(f.value.id)
                changed |= {a.id for a in (*node.args, *(k.value for k in node.keywords))
                            if isinstance(a, ast.Name) and a.id in candidates}
            elif isinstance(node, ast.Assign | ast.NamedExpr) and isinstance(
                    node.value, ast.Name):
                changed.add(node.value.id)  # an alias could be changed instead
            elif isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load) and (
                    node.id in candidates) and not isinstance(
                    mod.parents.get(mod.stmt_of(node)), ast.Module):
                changed.add(node.id)
    return frozenset(out | (candidates - changed))


def _scalar(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.UnaryOp):
        return _scalar(node.operand)
    if isinstance(node, ast.BinOp):
        return _scalar(node.left) and _scalar(node.right)
    if isinstance(node, ast.Tuple):
        return all(_scalar(e) for e in node.elts)
    return False


def _defs(mod: PyModule) -> list[tuple[ast.FunctionDef | ast.AsyncFunctionDef, bool]]:
    """Every function of a chunk, and whether it is a method (cached on the chunk)."""
    got = mod.__dict__.get("_fn_defs")
    if got is None:
        methods = {id(n) for c in mod.nodes if isinstance(c, ast.ClassDef) for n in c.body}
        got = mod.__dict__["_fn_defs"] = [
            (n, id(n) in methods) for n in mod.nodes
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)] if mod.chunk.defs else []
    return got  # type: ignore[no-any-return]


def _model_function(mod: PyModule, fn: ast.FunctionDef | ast.AsyncFunctionDef, root: bool
                    ) -> tuple[list[Hit], list[str], list[tuple[str, ast.AST]]]:
    """Export-mode facts of one function of model code (chunk-relative lines), and the
    names it calls (cached on the chunk: unchanged code is analysed once)."""
    cache = mod.__dict__.setdefault("_export_mode", {})
    key = (id(fn), root)
    if key not in cache:
        cache[key] = _analyse_model_function(mod, fn, root)
    return cache[key]  # type: ignore[no-any-return]


def _analyse_model_function(mod: PyModule, fn: ast.FunctionDef | ast.AsyncFunctionDef,
                            root: bool) -> tuple[list[Hit], list[str], list[tuple[str, ast.AST]]]:
    a = fn.args
    params = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
    if params and params[0] in ("self", "cls"):
        params = params[1:]
    tainted = set(params) | ({a.vararg.arg} if a.vararg else set()) | (
        {a.kwarg.arg} if a.kwarg else set())
    batch: set[str] = set()
    first = params[0] if params else None
    nodes: list[ast.AST] = []
    parents: dict[int, ast.AST] = {}
    todo: list[ast.AST] = [fn]
    while todo:
        n = todo.pop()
        nodes.append(n)
        for c in ast.iter_child_nodes(n):
            parents[id(c)] = n
            todo.append(c)
    callees = [n.func.id if isinstance(n.func, ast.Name) else n.func.attr
               for n in nodes if isinstance(n, ast.Call) and isinstance(
                   n.func, ast.Name | ast.Attribute)]

    def is_batch_expr(e: ast.AST) -> bool:
        """`x.size(0)`, `x.shape[0]`, `len(x)` of an input, or a name holding one."""
        if isinstance(e, ast.Name):
            return e.id in batch
        if isinstance(e, ast.Call) and isinstance(e.func, ast.Attribute) and e.func.attr == (
                "size") and e.args and isinstance(e.args[0], ast.Constant) and (
                e.args[0].value == 0) and _names(e.func.value) & tainted:
            return True
        if isinstance(e, ast.Subscript) and isinstance(e.value, ast.Attribute) and (
                e.value.attr == "shape") and isinstance(e.slice, ast.Constant) and (
                e.slice.value == 0) and _names(e.value) & tainted:
            return True
        if isinstance(e, ast.Call) and isinstance(e.func, ast.Name) and e.func.id == "len" and (
                e.args and _names(e.args[0]) & tainted):
            return True
        return False

    assigns = []
    for n in nodes:
        if isinstance(n, ast.Assign | ast.AugAssign | ast.AnnAssign) and n.value is not None:
            value_nodes = list(ast.walk(n.value))
            value_names = {x.id for x in value_nodes if isinstance(x, ast.Name)}
            shape_read = any(isinstance(x, ast.Attribute) and x.attr in MODE_ATTRS or (
                isinstance(x, ast.Call) and isinstance(x.func, ast.Attribute)
                and x.func.attr in MODE_CALLS) for x in value_nodes)
            tlist = n.targets if isinstance(n, ast.Assign) else [n.target]
            assigns.append((n, tlist, value_nodes, value_names, shape_read))
    assigns.sort(key=lambda t: (t[0].lineno, t[0].col_offset))
    rows = {first} if first else set()
    for _ in range(2):  # taint flows through assignments (in order, then once more)
        for n, tlist, value_nodes, value_names, shape_read in assigns:
            for t in tlist:
                names = [x.id for x in ast.walk(t) if isinstance(x, ast.Name)]
                if value_names & tainted or shape_read:
                    tainted.update(names)
                v = n.value
                # B, T, C = x.shape: the first name is the batch size
                if isinstance(t, ast.Tuple) and t.elts and isinstance(t.elts[0], ast.Name) and (
                        isinstance(v, ast.Attribute) and v.attr == "shape"
                        or isinstance(v, ast.Call) and isinstance(v.func, ast.Attribute)
                        and v.func.attr == "size" and not v.args) and value_names & tainted:
                    batch.add(t.elts[0].id)
                elif isinstance(t, ast.Name) and any(is_batch_expr(x) for x in value_nodes):
                    batch.add(t.id)
                # tensors computed from the first input (not lists of them): rows = the batch
                if isinstance(t, ast.Name) and value_names & rows and not isinstance(
                        v, ast.List | ast.ListComp | ast.Tuple | ast.Dict) and not any(
                        isinstance(x, ast.Call) and isinstance(x.func, ast.Attribute)
                        and x.func.attr in ("split", "chunk", "unbind", "tolist")
                        for x in value_nodes):
                    rows.add(t.id)

    out: list[Hit] = []

    def report(node: ast.AST, message: str, tag: str) -> None:
        out.append(hit(mod, node, message, tag, fn.name))

    for n in nodes:
        tests: list[ast.AST] = []
        if isinstance(n, ast.IfExp) and _dropout_gate(n, parents, mod):
            continue
        if isinstance(n, ast.If | ast.While | ast.IfExp):
            tests.append(n.test)
        elif isinstance(n, ast.comprehension):
            tests.extend(n.ifs)
        elif isinstance(n, ast.Match):
            tests.append(n.subject)
        for test in tests:
            why = _condition_problem(mod, test, tainted)
            if why:
                report(test, f"model code branches on {why}: the exported model must compute "
                       "the same function in every mode, on every row and batch size.", "branch")
        if isinstance(n, ast.Call | ast.Subscript) and is_batch_expr(n) or (
                isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id in batch):
            if not _in_shape_call(n, parents) and not _assigned(n, parents):
                report(n, "model code uses the batch size other than to reshape: it could "
                       "treat the evaluator's batches differently.", "batch")
        if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store | ast.Del) and (
                isinstance(n.value, ast.Name) and n.value.id in ("self", "cls")):
            report(n, f"model code stores self.{n.attr}: forward may not keep Python state "
                   "that makes later calls (the export) behave differently.", "state")
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in (
                "setattr", "delattr") and n.args and isinstance(n.args[0], ast.Name) and (
                n.args[0].id in ("self", "cls")):
            report(n, "model code sets attributes on itself: forward may not keep Python "
                   "state.", "state")
        if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Load) and (
                n.attr in MODE_VALUES) and not _passed_through(n, parents) and not (
                isinstance(parents.get(id(n)), ast.IfExp | ast.UnaryOp)
                and _dropout_gate(parents[id(n)], parents, mod)):
            report(n, f"model code computes with .{n.attr}: the export runs in another mode, "
                   "dtype and device than training (pass it only as device=/dtype=/.to()).",
                   "mode")
        if root and isinstance(n, ast.Subscript) and isinstance(n.value, ast.Name) and (
                n.value.id in rows):
            idx = n.slice.elts[0] if isinstance(n.slice, ast.Tuple) and n.slice.elts else n.slice
            full = isinstance(idx, ast.Slice) and idx.lower is None and idx.upper is None and (
                idx.step is None)
            if not full and not (isinstance(idx, ast.Constant) and idx.value in (None, Ellipsis)):
                report(n, f"forward indexes rows of its input {first}: every row must be "
                       "treated alike.", "rows")
    out.extend(_mixing(mod, fn, nodes, parents, first if root else None))
    local = set(params) | {x.id for x in nodes if isinstance(x, ast.Name) and isinstance(
        x.ctx, ast.Store | ast.Del)} | {x.arg for x in nodes if isinstance(x, ast.arg)} | {
        x.name for x in nodes if isinstance(x, ast.FunctionDef | ast.AsyncFunctionDef
                                            | ast.ClassDef)}
    free = [(x.id, x) for x in nodes if isinstance(x, ast.Name) and isinstance(x.ctx, ast.Load)
            and x.id not in local and x.id not in ("self", "cls")]
    return out, callees, free


# Ops that move data between positions: along the batch they mix rows (one row sees
# another's tokens), flattened (no dims) they mix everything.
_MOVE_OPS = frozenset({"roll", "flip", "gather", "index_select", "take_along_dim", "scatter",
                       "scatter_add", "index_add", "index_copy", "take"})
_REDUCE_OPS = frozenset({"sum", "mean", "cumsum", "cumprod", "amax", "amin", "max", "min",
                         "std", "var", "logsumexp", "softmax", "log_softmax", "prod", "median",
                         "norm", "cummax", "cummin", "sort", "argsort", "topk"})
"""Along dim 0 these mix rows too (a batch statistic); without dims they are left alone."""
_TOKEN_USES = frozenset({"size", "shape", "device", "ndim", "dim"})
_EMBEDDING_NAMES = ("wte", "tok_emb", "token_embedding", "tok_embeddings", "embed_tokens",
                    "embed", "embedding", "emb", "value_embed", "wpe", "wte_")


def _dims(call: ast.Call, name: str, method: bool) -> ast.AST | None | bool:
    """The dims/dim argument of a move op (False: the op has none given)."""
    kw = next((k.value for k in call.keywords if k.arg in ("dims", "dim", "axis")), None)
    if kw is not None:
        return kw
    pos = {"roll": 2, "flip": 1, "gather": 1, "index_select": 1, "take_along_dim": 2,
           "scatter": 1, "scatter_add": 1, "index_add": 1, "index_copy": 1}.get(
        name, 1 if name in _REDUCE_OPS and name != "topk" else None)
    if pos is None:
        return False
    pos -= 1 if method else 0
    return call.args[pos] if len(call.args) > pos else False


def _has_zero(node: ast.AST) -> bool:
    elts = node.elts if isinstance(node, ast.Tuple | ast.List) else [node]
    return any(isinstance(e, ast.Constant) and e.value == 0 for e in elts)


def _mixing(mod: PyModule, fn: ast.FunctionDef | ast.AsyncFunctionDef, nodes: list[ast.AST],
            parents: dict[int, ast.AST], tokens: str | None) -> list[Hit]:
    """Rows mixed, attention made non-causal, tokens read other than by lookup.

    By construction for what the AST says literally: a move op along dim 0 or with no
    dims; an attention call without `is_causal=True` and without a mask; the token input
    of a root forward used other than as an embedding's argument or for its size and
    device. Computed dims, hand-written attention without a mask and arithmetic on
    embeddings are left to the evaluator's probes (no false positives on honest models)."""
    out: list[Hit] = []
    embed_ok = False
    for n in nodes:
        if not isinstance(n, ast.Call):
            continue
        f = n.func
        name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(
            f, ast.Name) else ""
        q = mod.qual(f) or ""
        method = isinstance(f, ast.Attribute) and not q.startswith("torch")
        if (name in _MOVE_OPS or name in _REDUCE_OPS) and not (q and not q.startswith("torch")):
            dims = _dims(n, name, method)
            if (dims is False and name in ("roll", "take")) or (
                    dims not in (None, False) and _has_zero(dims)):  # type: ignore[arg-type]
                out.append(hit(mod, n, f"model code calls {name} along the batch dimension"
                               f"{'' if dims is not False else ' (flattened)'}: rows must not "
                               "see each other's tokens.", "mix",
                               fn.name))
        elif name == "scaled_dot_product_attention":
            causal = next((k.value for k in n.keywords if k.arg == "is_causal"), None)
            masked = any(k.arg == "attn_mask" for k in n.keywords) or len(n.args) > 3
            if not (isinstance(causal, ast.Constant) and causal.value is True) and not masked:
                out.append(hit(mod, n, "attention without is_causal=True (and without a "
                               "mask): a position may not attend to later tokens.", "causal",
                               fn.name))
    if tokens is None:
        return out
    uses = [n for n in nodes if isinstance(n, ast.Name) and n.id == tokens and isinstance(
        n.ctx, ast.Load)]
    for n in uses:  # is this the token input (looked up by an embedding somewhere)?
        parent = parents.get(id(n))
        if isinstance(parent, ast.Call) and n in parent.args and _self_call(parent) and (
                parent.func.attr.startswith(_EMBEDDING_NAMES)):  # type: ignore[union-attr]
            embed_ok = True
    if not embed_ok:
        return out
    # The token ids and every name computed from them, followed to a fixpoint: a value
    # made from the tokens position by position (arithmetic, the past only) may be
    # computed with and looked up; anything that can bring a later position's token to an
    # earlier one (a slice that drops the start, an index, a cross-position op, a right
    # pad, a helper) is refused. Bigram hashes of the previous token stay honest.
    derived, checked = {tokens}, set()
    while derived - checked:
        name = sorted(derived - checked)[0]
        checked.add(name)
        for n in nodes:
            if not (isinstance(n, ast.Name) and n.id == name and isinstance(n.ctx, ast.Load)):
                continue
            ok, targets = _token_flow(n, parents)
            if ok:
                derived |= targets
                continue
            out.append(hit(mod, n, f"forward computes with the token ids {tokens} other than "
                           "position by position, from the past, into an embedding lookup "
                           "(or reading their size and device): shifted, indexed or counted "
                           "tokens let a model see what it predicts.", "tokens", fn.name))
    return out


_ELEMENTWISE_METHODS = frozenset({"long", "int", "float", "to", "clamp", "clamp_min",
                                  "clamp_max", "remainder", "fmod", "ne", "eq", "type",
                                  "detach", "abs"})


def _prefix_slice(sl: ast.AST) -> bool:
    """`x[:, :k]`, `x[:, :-1]`, `x[..., :-1]`: every row, the first positions only."""
    parts = sl.elts if isinstance(sl, ast.Tuple) else [sl]
    if len(parts) < 2:
        return False
    head, rest = parts[0], parts[1:]
    if not (isinstance(head, ast.Slice) and head.lower is head.upper is head.step is None) \
            and not (isinstance(head, ast.Constant) and head.value is Ellipsis):
        return False
    return all(isinstance(p, ast.Slice) and p.lower is None and p.step is None for p in rest)


def _left_pad(call: ast.Call, cur: ast.AST) -> bool:
    """`F.pad(x, (k, 0))`: positions moved later, never earlier."""
    f = call.func
    name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
    if name != "pad" or not call.args or call.args[0] is not cur or len(call.args) < 2:
        return False
    pad = call.args[1]
    return (isinstance(pad, ast.Tuple) and len(pad.elts) == 2
            and all(isinstance(e, ast.Constant) and isinstance(e.value, int) for e in pad.elts)
            and pad.elts[1].value == 0)  # type: ignore[attr-defined]


def _token_flow(n: ast.Name, parents: dict[int, ast.AST]) -> tuple[bool, set[str]]:
    """Whether this use of a token-derived name only flows, position by position and from
    the past, into an embedding (or its size and device); the names it is assigned to."""
    cur: ast.AST = n
    while True:
        p = parents.get(id(cur))
        if isinstance(p, ast.Attribute) and p.value is cur and p.attr in _TOKEN_USES:
            return True, set()
        if isinstance(p, ast.Attribute) and p.value is cur and p.attr in _ELEMENTWISE_METHODS:
            call = parents.get(id(p))
            if isinstance(call, ast.Call) and call.func is p:
                cur = call
                continue
            return False, set()
        if isinstance(p, ast.BinOp | ast.UnaryOp | ast.Compare | ast.BoolOp):
            cur = p
            continue
        if isinstance(p, ast.Subscript) and p.value is cur and _prefix_slice(p.slice):
            cur = p
            continue
        if isinstance(p, ast.Call):
            if cur in p.args and _self_call(p):
                return True, set()
            if _left_pad(p, cur):
                cur = p
                continue
            return False, set()
        if isinstance(p, ast.Assign) and p.value is cur and all(
                isinstance(t, ast.Name) for t in p.targets):
            return True, {t.id for t in p.targets}  # type: ignore[attr-defined]
        return False, set()


def _self_call(call: ast.Call) -> bool:
    """`self.wte(idx)`, `self.transformer.wte(idx)`: a call of one of the model's modules."""
    f = call.func
    if not isinstance(f, ast.Attribute):
        return False
    base = f.value
    while isinstance(base, ast.Attribute):
        base = base.value
    return isinstance(base, ast.Name) and base.id == "self"


class TrainOnlyRule(AstRule):
    """Modules whose training-mode output is nothing: dropout with p close to 1."""

    id = "model.train_only"
    description = ("Modules that behave differently in training and evaluation beyond honest "
                   "regularisation: dropout with p >= 0.9 (nn.Dropout(1.0) zeroes a path in "
                   "training that evaluation then sees).")

    def scan(self, mod: PyModule, ctx: CheckContext) -> list[Hit]:
        out = []
        for n in mod.nodes:
            if not isinstance(n, ast.Call):
                continue
            q = mod.qual(n.func) or ""
            if not (q.startswith("torch.nn.") and "dropout" in q.rsplit(".", 1)[-1].lower()):
                continue
            p = n.args[1] if q.startswith("torch.nn.functional.") and len(n.args) > 1 else (
                n.args[0] if not q.startswith("torch.nn.functional.") and n.args else None)
            p = next((k.value for k in n.keywords if k.arg == "p"), p)
            if isinstance(p, ast.Constant) and isinstance(p.value, int | float) and (
                    p.value >= 0.9):
                out.append(hit(mod, n, f"dropout with p={p.value}: it zeroes (nearly) "
                               "everything while training and nothing in evaluation, so what "
                               "passes through it is seen only by the evaluator.", "dropout"))
        return out


_DROPOUT_ARGS = frozenset({"dropout_p", "p", "dropout", "attn_dropout", "training"})


def _dropout_gate(node: ast.AST, parents: dict[int, ast.AST],
                  mod: PyModule | None = None) -> bool:
    """`dropout_p=self.dropout if self.training else 0.0` (nanoGPT): dropout is meant to
    differ between training and evaluation, and this shape can do nothing else."""
    while isinstance(node, ast.UnaryOp):
        node = parents.get(id(node))  # type: ignore[assignment]
    if not isinstance(node, ast.IfExp):
        return False
    test = node.test.operand if isinstance(node.test, ast.UnaryOp) and isinstance(
        node.test.op, ast.Not) else node.test
    plain = all(isinstance(v, ast.Constant) or (isinstance(v, ast.Attribute) and isinstance(
        v.value, ast.Name) and v.value.id == "self") for v in (node.body, node.orelse))
    parent = parents.get(id(node))
    call = parents.get(id(parent)) if parent is not None else None
    # only into torch's own dropout: a helper of ours could use the value for anything
    torch_call = isinstance(call, ast.Call) and mod is not None and (
        mod.qual(call.func) or "").startswith("torch.")
    return isinstance(test, ast.Attribute) and test.attr == "training" and isinstance(
        test.value, ast.Name) and test.value.id == "self" and plain and isinstance(
        parent, ast.keyword) and parent.arg in _DROPOUT_ARGS and torch_call


def _passed_through(node: ast.AST, parents: dict[int, ast.AST]) -> bool:
    """`device=x.device`, `x.to(y.dtype)`: a mode value handed on, not computed with."""
    parent = parents.get(id(node))
    if isinstance(parent, ast.keyword):
        return True
    if isinstance(parent, ast.Call) and node in parent.args and isinstance(
            parent.func, ast.Attribute) and parent.func.attr in (
            "to", "type", "type_as", "new_zeros", "new_ones", "new_empty", "new_full", "view"):
        return True
    return False


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _condition_problem(mod: PyModule, test: ast.AST, tainted: set[str]) -> str | None:
    # `x is None` / `x is not None` on an optional argument is a plain default check.
    if isinstance(test, ast.Compare) and all(isinstance(op, ast.Is | ast.IsNot)
                                             for op in test.ops) and all(
            isinstance(c, ast.Constant) and c.value is None for c in test.comparators):
        return None
    if isinstance(test, ast.BoolOp):
        for v in test.values:
            why = _condition_problem(mod, v, tainted)
            if why:
                return why
        return None
    if isinstance(test, ast.UnaryOp):
        return _condition_problem(mod, test.operand, tainted)
    for n in ast.walk(test):
        if isinstance(n, ast.Attribute) and n.attr in MODE_ATTRS:
            return f".{n.attr}"
        if isinstance(n, ast.Call):
            q = mod.qual(n.func) or ""
            if q.startswith("torch"):
                return f"{q}()"
            if isinstance(n.func, ast.Attribute) and n.func.attr in MODE_CALLS:
                return f".{n.func.attr}()"
            if q == "builtins.len":
                return "len()"
        if isinstance(n, ast.Name) and n.id in tainted:
            return f"{n.id} (derived from the inputs or their shapes)"
    return None


def _in_shape_call(node: ast.AST, parents: dict[int, ast.AST]) -> bool:
    cur = parents.get(id(node))
    child = node
    while cur is not None and not isinstance(cur, ast.stmt):
        if isinstance(cur, ast.Call) and child is not cur.func:
            name = cur.func.attr if isinstance(cur.func, ast.Attribute) else (
                cur.func.id if isinstance(cur.func, ast.Name) else "")
            if name in SHAPE_CALLS:
                return True
        child, cur = cur, parents.get(id(cur))
    return False


def _assigned(node: ast.AST, parents: dict[int, ast.AST]) -> bool:
    """The expression only computes a value that is bound to a name (tracked as batch)."""
    cur = parents.get(id(node))
    while cur is not None and not isinstance(cur, ast.stmt):
        if isinstance(cur, ast.Call | ast.Subscript | ast.Compare | ast.IfExp):
            return False
        cur = parents.get(id(cur))
    return isinstance(cur, ast.Assign | ast.AnnAssign) and all(
        isinstance(t, ast.Name | ast.Tuple) for t in getattr(cur, "targets", [getattr(
            cur, "target", None)]))


RULES = [MonkeypatchRule, HookRule, TraceStateRule, ExportModeRule, TrainOnlyRule]
