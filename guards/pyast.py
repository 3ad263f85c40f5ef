"""One version (before or after the patch) of a Python file, with the facts rules ask for.

Built once per file version and shared by every rule, so all rules together walk the tree
a handful of times. Facts are *resolved*: `import time as t; t.time = f` is a store to
`time.time`, `getattr(os, "sys"+"tem")` is a reference to `os.system`, and string
expressions built from constants (concatenation, joins, `chr`, base64, hex, rot13, slicing)
are folded to their value, because cheats hide in exactly those disguises.
"""

from __future__ import annotations

import ast
import builtins
from collections import ChainMap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from guards import fold

FOLD_STEPS_PER_MODULE = 20_000
BUILTIN_NAMES = frozenset(dir(builtins)) | {"__builtins__", "__import__"}
_MUTATORS = frozenset({
    "update", "setdefault", "pop", "popitem", "clear", "insert", "append", "extend",
    "remove", "__setitem__", "__delitem__", "__setattr__", "__delattr__", "putenv", "unsetenv",
})
_NAMING_CALLS = frozenset({"builtins.getattr", "builtins.__import__", "importlib.import_module",
                           "builtins.vars"})
CONTROL = _CONTROL = (ast.If, ast.While, ast.For, ast.AsyncFor, ast.With, ast.AsyncWith, ast.Try,
            ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.match_case)


@dataclass(frozen=True)
class Ref:
    """A resolved name: a load of `qual` (`time.perf_counter`, `builtins.eval`)."""

    qual: str
    node: ast.AST


@dataclass(frozen=True)
class Store:
    """A write to something resolved: `qual` is the target (`os.environ`, `time.time`).

    `key` is the subscript or attribute name written when it is known (folded), `"?"` when
    it is computed at run time, `None` when the whole target is replaced. `how` says which
    syntax did it: assign, augassign, delete, setattr, mutate, def, import.
    """

    qual: str
    key: str | None
    how: str
    node: ast.AST


@dataclass(frozen=True)
class StringValue:
    value: str
    node: ast.AST


class ChunkTree:
    """A parsed piece of source (a whole file or one top-level chunk) and its local facts.

    Depends only on the text and the path, so it is cached and shared across checks.
    """

    @cached_property
    def parents(self) -> dict[ast.AST, ast.AST]:
        """Child -> parent, built only for chunks a rule actually scans."""
        parents: dict[ast.AST, ast.AST] = {}
        for node in self.nodes:
            for child in ast.iter_child_nodes(node):
                parents[child] = node
        return parents

    def __init__(self, text: str, path: str) -> None:
        self.text = text
        self.path = path
        self.tree = ast.parse(text, filename=path)
        self.lines = text.splitlines()
        self.nodes: list[ast.AST] = list(ast.walk(self.tree))
        self.imports: list[tuple[str, str, ast.AST]] = []  # (bound name, qual, node)
        self.bound: set[str] = set()
        self.defs: set[str] = set()
        """Names of every function and method defined in the chunk."""
        self.classes: set[str] = set()
        self.names: set[str] = set()
        self.alias_candidates: list[tuple[str, ast.AST]] = []
        for node in self.nodes:
            if isinstance(node, ast.Name):
                self.names.add(node.id)
                if isinstance(node.ctx, ast.Store | ast.Del):
                    self.bound.add(node.id)
            elif isinstance(node, ast.Import):
                for a in node.names:
                    top = a.name.split(".")[0]
                    self.imports.append((a.asname or top, a.name if a.asname else top, node))
            elif isinstance(node, ast.ImportFrom):
                base = import_base(path, node)
                for a in node.names:
                    if a.name != "*":
                        self.imports.append((a.asname or a.name,
                                             f"{base}.{a.name}" if base else a.name, node))
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                self.bound.add(node.name)
                (self.classes if isinstance(node, ast.ClassDef) else self.defs).add(node.name)
            elif isinstance(node, ast.arg):
                self.bound.add(node.arg)
            elif isinstance(node, ast.ExceptHandler) and node.name:
                self.bound.add(node.name)
            elif isinstance(node, ast.Global | ast.Nonlocal):
                self.bound.update(node.names)
            elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(
                    node.targets[0], ast.Name) and isinstance(
                    node.value, ast.Name | ast.Attribute | ast.Call | ast.Subscript):
                self.alias_candidates.append((node.targets[0].id, node.value))
        for name, _, _ in self.imports:
            self.names.add(name)
        self.sorted_names = tuple(sorted(self.names))
        self.has_top_assign = any(isinstance(s, ast.Assign | ast.AnnAssign)
                                  for s in self.tree.body)


def import_base(path: str, node: ast.ImportFrom) -> str:
    """The absolute module an ImportFrom reads from (relative ones resolved by path)."""
    if not node.level:
        return node.module or ""
    pkg = path.removesuffix(".py").split("/")[:-1]
    pkg = pkg[: len(pkg) - (node.level - 1)] if node.level > 1 else pkg
    return ".".join([*pkg, *([node.module] if node.module else [])])


class Resolver:
    """Name resolution over one file's maps: imports, bound names, module constants."""

    path: str
    aliases: dict[str, str]
    import_bindings: dict[str, list[ast.AST]]
    import_quals: dict[str, list[str]]
    bound: set[str]
    env: dict[str, object]

    def import_base(self, node: ast.ImportFrom) -> str:
        return import_base(self.path, node)

    def _qual_for_fold(self, node: ast.AST) -> str | None:
        return self.qual(node)

    def qual(self, node: ast.AST) -> str | None:
        """Dotted, import-resolved name of an expression; None when it is not a name chain."""
        if isinstance(node, ast.Name):
            if node.id in self.aliases:
                return self.aliases[node.id]
            if node.id == "__builtins__":
                return "builtins"
            if node.id in BUILTIN_NAMES and node.id not in self.bound:
                return f"builtins.{node.id}"
            return None
        if isinstance(node, ast.Attribute):
            base = self.qual(node.value)
            return f"{base}.{node.attr}" if base else None
        if isinstance(node, ast.Call):
            fn = self.qual(node.func)
            if fn in ("builtins.getattr",) and len(node.args) >= 2:
                base = self.qual(node.args[0])
                name = self.fold_str(node.args[1])
                if base:
                    return f"{base}.{name if name is not None else '?'}"
            if fn in ("builtins.__import__", "importlib.import_module") and node.args:
                name = self.fold_str(node.args[0])
                return name if name else None
            if fn == "builtins.vars" and node.args:
                return self.qual(node.args[0])
            return None
        if isinstance(node, ast.Subscript):
            base = self.qual(node.value)
            key = self.fold_str(node.slice)
            if base in ("sys.modules",) and key:
                return key
            if base and base.endswith(".__dict__") and key:
                return f"{base.removesuffix('.__dict__')}.{key}"
            if base in ("builtins.globals",) and key:
                return key
            return None
        return None

    def receiver(self, node: ast.AST) -> str | None:
        """Like `qual`, but `globals()`, `locals()` and `vars()` name the namespace they return."""
        if isinstance(node, ast.Call) and not node.args:
            fn = self.qual(node.func)
            if fn in ("builtins.globals", "builtins.locals", "builtins.vars"):
                return fn
        return self.qual(node)

    def fold_str(self, node: ast.AST, env: Mapping[str, object] | None = None) -> str | None:
        budget = self.__dict__.get("fold_budget")
        if budget is None:
            budget = self.__dict__["fold_budget"] = fold.Budget(FOLD_STEPS_PER_MODULE)
        value = fold.evaluate(node, self.env if env is None else env, self._qual_for_fold,
                              budget=budget)
        if isinstance(value, bytes):
            return value.decode("latin-1")
        return value if isinstance(value, str) else None



@dataclass
class FileMaps(Resolver):
    """The file-wide maps every chunk of one file version resolves names against."""

    path: str
    aliases: dict[str, str]
    import_bindings: dict[str, list[ast.AST]]
    import_quals: dict[str, list[str]]
    bound: set[str]
    env: dict[str, object]
    defs: set[str] = field(default_factory=set)
    """Every function and method name defined in the file."""
    classes: set[str] = field(default_factory=set)
    """Every class name defined in the file."""

    @classmethod
    def build(cls, chunks: list[ChunkTree], path: str) -> FileMaps:
        maps = cls(path, {}, {}, {}, set(), {})
        for ch in chunks:
            for name, qual, node in ch.imports:
                maps.import_bindings.setdefault(name, []).append(node)
                maps.import_quals.setdefault(name, []).append(qual)
                maps.aliases.setdefault(name, qual)
            maps.bound |= ch.bound
            maps.defs |= ch.defs
            maps.classes |= ch.classes
        maps.bound |= set(maps.aliases)
        for ch in chunks:
            if ch.has_top_assign:
                fold.module_constants(ch.tree, maps._qual_for_fold, maps.env)
        candidates = [c for ch in chunks for c in ch.alias_candidates]
        for _ in range(3):  # `clock = time.perf_counter`, `T = time`, `ev = eval`
            changed = False
            for name, value in candidates:
                if name in maps.aliases:
                    continue
                q = maps.qual(value)
                if q:
                    maps.aliases[name] = q
                    changed = True
            if not changed:
                break
        return maps

    def fingerprint(self, names: tuple[str, ...]) -> tuple[object, ...]:
        """What of these maps a chunk using `names` can see (its cache key)."""
        memo = self.__dict__.setdefault("_memo", {})
        out = []
        for n in names:
            fp = memo.get(n)
            if fp is None:
                env = self.env.get(n)
                fp = memo[n] = (n, self.aliases.get(n), n in self.bound, n in self.defs,
                                n in self.classes, tuple(self.import_quals.get(n, ())),
                                None if env is None else hash(repr(env)))
            out.append(fp)
        return tuple(out)


class PyModule(Resolver):
    """One file version (or one chunk of it) with the facts rules ask for.

    `PyModule(source, path)` analyses a whole file. The engine analyses files chunk by
    chunk (`chunk=` and `maps=`): unchanged chunks reuse cached facts, so a patch costs
    what it changes. Raises SyntaxError when the source does not parse.
    """

    def __init__(self, source: str = "", path: str = "<patch>", *,
                 chunk: ChunkTree | None = None, maps: FileMaps | None = None) -> None:
        chunk = chunk or ChunkTree(source, path)
        maps = maps or FileMaps.build([chunk], path)
        self.chunk = chunk
        self.source = chunk.text
        self.path = path
        self.tree = chunk.tree
        self.lines = chunk.lines
        self.nodes = chunk.nodes
        self.aliases = maps.aliases
        self.import_bindings = maps.import_bindings
        self.import_quals = maps.import_quals
        self.bound = maps.bound
        self.env = maps.env
        self.defs = maps.defs
        self.classes = maps.classes
        self.fingerprint = maps.fingerprint(chunk.sorted_names)
        self.identity = (self.source, self.fingerprint)

    @property
    def parents(self) -> dict[ast.AST, ast.AST]:
        return self.chunk.parents

    # -- facts --------------------------------------------------------------------------
    @cached_property
    def refs(self) -> list[Ref]:
        """Every maximal resolvable name chain that is read, plus every imported name."""
        out: list[Ref] = []
        for node in self.nodes:
            if isinstance(node, ast.Import):
                out.extend(Ref(a.name, node) for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = self.import_base(node)
                out.append(Ref(base, node))
                out.extend(Ref(f"{base}.{a.name}", node) for a in node.names)
            elif isinstance(node, ast.Name | ast.Attribute | ast.Subscript | ast.Call):
                if isinstance(node, ast.Name | ast.Attribute | ast.Subscript) and not isinstance(
                    node.ctx, ast.Load
                ):
                    continue
                if isinstance(node, ast.Call) and self.qual(node.func) not in _NAMING_CALLS:
                    continue
                parent = self.parents.get(node)
                if isinstance(parent, ast.Attribute) and parent.value is node:
                    continue  # not maximal: the enclosing chain is reported instead
                q = self.qual(node)
                if q is not None:
                    out.append(Ref(q, node))
        return out

    @cached_property
    def calls(self) -> list[tuple[str, ast.Call]]:
        out = []
        for node in self.nodes:
            if isinstance(node, ast.Call):
                q = self.qual(node.func)
                if q:
                    out.append((q, node))
        return out

    @cached_property
    def stores(self) -> list[Store]:
        out: list[Store] = []
        for node in self.nodes:
            if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Delete):
                targets = (
                    node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
                )
                how = type(node).__name__.lower()
                for t in targets:
                    out.extend(self._target_stores(t, how, node))
            elif isinstance(node, ast.NamedExpr):
                out.extend(self._target_stores(node.target, "assign", node))
            elif isinstance(node, ast.For | ast.AsyncFor | ast.withitem | ast.comprehension):
                target = node.optional_vars if isinstance(node, ast.withitem) else node.target
                if target is not None:
                    out.extend(self._target_stores(target, "assign", node))
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                if node.name in self.import_bindings:
                    out.append(Store(self.aliases[node.name], None, "def", node))
            elif isinstance(node, ast.Call):
                out.extend(self._call_stores(node))
        mine = {id(n) for _, _, n in self.chunk.imports}
        for name, nodes in self.import_bindings.items():
            quals = self.import_quals[name]
            if len(set(quals)) > 1:  # `import time` then `import fake as time`: a rebinding
                for n, q in zip(nodes[1:], quals[1:], strict=True):
                    if id(n) in mine and q != quals[0]:
                        out.append(Store(self.aliases[name], None, "import", n))
        return out

    def _target_stores(self, t: ast.AST, how: str, stmt: ast.AST) -> Iterator[Store]:
        if isinstance(t, ast.Tuple | ast.List):
            for elt in t.elts:
                yield from self._target_stores(elt, how, stmt)
        elif isinstance(t, ast.Starred):
            yield from self._target_stores(t.value, how, stmt)
        elif isinstance(t, ast.Name):
            if t.id in self.import_bindings:
                yield Store(self.aliases[t.id], None, how, stmt)
            elif t.id == "__builtins__":
                yield Store("builtins", None, how, stmt)
        elif isinstance(t, ast.Attribute):
            base = self.qual(t.value)
            if base:
                yield Store(base, t.attr, how, stmt)
        elif isinstance(t, ast.Subscript):
            base = self.receiver(t.value)
            if base:
                key = self.fold_str(t.slice)
                yield Store(base, key if key is not None else "?", how, stmt)

    def _call_stores(self, node: ast.Call) -> Iterator[Store]:
        fn = self.qual(node.func)
        if fn in ("builtins.setattr", "builtins.delattr", "object.__setattr__") or (
            fn and fn.endswith((".__setattr__", ".__delattr__")) and fn.startswith("builtins.")
        ):
            if len(node.args) >= 2:
                base = self.qual(node.args[0])
                if base is None and isinstance(node.args[0], ast.Call):
                    base = self.qual(node.args[0])
                key = self.fold_str(node.args[1])
                if base:
                    yield Store(base, key if key is not None else "?", "setattr", node)
            return
        if isinstance(node.func, ast.Attribute) and node.func.attr in _MUTATORS:
            base = self.receiver(node.func.value)
            if base:
                key = self.fold_str(node.args[0]) if node.args else None
                yield Store(base, key if key is not None else "?", "mutate", node)
        if fn in ("os.putenv", "os.unsetenv") and node.args:
            key = self.fold_str(node.args[0])
            yield Store("os.environ", key if key is not None else "?", "mutate", node)

    @cached_property
    def strings(self) -> list[StringValue]:
        """String values in the code (docstrings and bare string statements excluded)."""
        out: list[StringValue] = []
        skip: set[int] = set()
        for node in self.nodes:
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
                skip.add(id(node.value))
        envs = self._local_envs()
        for node in self.nodes:
            if id(node) in skip:
                continue
            if isinstance(node, ast.Constant) and isinstance(node.value, str | bytes):
                parent = self.parents.get(node)
                if isinstance(parent, ast.JoinedStr):
                    continue  # the f-string as a whole is reported
                v = node.value
                out.append(StringValue(v.decode("latin-1") if isinstance(v, bytes) else v, node))
            elif isinstance(node, ast.JoinedStr | ast.BinOp | ast.Call | ast.Subscript | ast.Name):
                env = envs.get(id(node))
                if isinstance(node, ast.Name):
                    if env is None or not isinstance(node.ctx, ast.Load) or node.id in self.env:
                        continue  # module constants are reported where they are built
                    v = self.fold_str(node, env)
                    if v is not None and node.id not in self.env:
                        out.append(StringValue(v, node))
                    continue
                if isinstance(node, ast.Call) and self.qual(node.func) == "builtins.print":
                    printed = self._printed(node, env)
                    if printed is not None:
                        out.append(StringValue(printed, node))
                if not isinstance(node, ast.JoinedStr) and not self._may_fold(node) and (
                        env is None):
                    continue
                v = self.fold_str(node, env)
                if v is not None:
                    out.append(StringValue(v, node))
        return out

    def _printed(self, call: ast.Call, env: Mapping[str, object] | None) -> str | None:
        """The line a print() call writes, unknown parts as holes (None if all unknown)."""
        sep = " "
        for k in call.keywords:
            if k.arg == "sep":
                sep = self.fold_str(k.value, env) or ""
        parts: list[str] = []
        known = False
        for a in call.args:
            target = a.value if isinstance(a, ast.Starred) else a
            value = fold.evaluate(target, self.env if env is None else env,
                                  self._qual_for_fold)
            if isinstance(a, ast.Starred) and isinstance(value, list | tuple):
                parts.extend(str(x) for x in value)
                known = True
            elif isinstance(value, str | int | float):
                parts.append(str(value))
                known = True
            else:
                parts.append(fold.HOLE)
        return sep.join(parts) if known and len(parts) > 1 else None

    def _local_envs(self) -> dict[int, Mapping[str, object]]:
        """Per node inside a function: module constants plus the function's own
        single-assignment string constants (`k = "val" + "_bpb"` then `f"{k}"`)."""
        out: dict[int, Mapping[str, object]] = {}
        for fn in self.nodes:
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue
            counts: dict[str, int] = {}
            assigns: list[ast.Assign] = []
            for n in ast.walk(fn):
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store | ast.Del):
                    counts[n.id] = counts.get(n.id, 0) + 1
                elif isinstance(n, ast.Assign) and len(n.targets) == 1 and isinstance(
                        n.targets[0], ast.Name) and _has_const(n.value):
                    assigns.append(n)
            if not assigns:
                continue
            local: dict[str, object] = {}
            env = ChainMap(local, self.env)
            for n in sorted(assigns, key=lambda a: (a.lineno, a.col_offset)):
                name = n.targets[0].id  # type: ignore[attr-defined]
                if counts.get(name) != 1:
                    continue
                value = fold.evaluate(n.value, env, self._qual_for_fold)
                if value is not fold.UNKNOWN and isinstance(value, str | bytes | list | dict):
                    local[name] = value
            if local:
                for n in ast.walk(fn):
                    out[id(n)] = env
        return out

    def _may_fold(self, node: ast.AST) -> bool:
        """Cheap pre-filter: could this expression build a string from constants?"""
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Attribute) and f.attr in fold.STR_METHODS:
                return True
            q = self.qual(f)
            return q is not None and q in fold.FOLDABLE_CALLS
        return _has_const(node)

    # -- locations --------------------------------------------------------------------------
    def stmt_of(self, node: ast.AST) -> ast.AST:
        while not isinstance(node, ast.stmt) and node in self.parents:
            node = self.parents[node]
        return node

    def context_chain(self, node: ast.AST) -> tuple[str, ...]:
        """Headers of the enclosing blocks (`while t < B`, `def main`), innermost last."""
        chain: list[str] = []
        cur = self.parents.get(node)
        while cur is not None:
            if isinstance(cur, _CONTROL):
                chain.append(header(cur))
            cur = self.parents.get(cur)
        return tuple(reversed(chain))

    def statement_text(self, node: ast.AST) -> str:
        """The source of the statement holding `node` (just the header for a block)."""
        stmt = self.stmt_of(node)
        if isinstance(stmt, _CONTROL) or isinstance(stmt, ast.Try | ast.Match):
            return header(stmt)
        try:
            return ast.unparse(stmt)
        except Exception:  # odd nodes: fall back to the node type
            return type(stmt).__name__

    def line_text(self, lineno: int) -> str:
        if 1 <= lineno <= len(self.lines):
            return self.lines[lineno - 1].strip()
        return ""


def header(node: ast.AST) -> str:
    """A compact one-line signature of a block's header."""
    if isinstance(node, ast.If | ast.While):
        return f"{type(node).__name__.lower()} {ast.unparse(node.test)}"
    if isinstance(node, ast.For | ast.AsyncFor):
        return f"for {ast.unparse(node.target)} in {ast.unparse(node.iter)}"
    if isinstance(node, ast.With | ast.AsyncWith):
        return "with " + ", ".join(ast.unparse(i) for i in node.items)
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return f"{type(node).__name__} {node.name}"
    if isinstance(node, ast.match_case):
        return f"case {ast.unparse(node.pattern)}"
    return type(node).__name__.lower()


def _has_const(node: ast.AST) -> bool:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str | bytes):
            return True
    return False
