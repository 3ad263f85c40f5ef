"""One pass over a chunk that finds every way added code reaches past the allow-lists.

Facts are tagged by the rule that reports them (`guards/rules/reach.py`):

- `position`: a protected object or a module used other than called or read in place
  (bound, passed, stored, returned, subscripted, decorated, a default, in a container);
- `attribute`: an attribute a protected module does not offer, a torch submodule outside
  the allow-list, a private attribute of another object, a module re-exported by another;
- `dunder`: dunder attributes, names, methods and strings outside the short allow-list;
- `shadow`: a binding (any syntax) of a protected builtin or an imported name;
- `import`: imports outside the allow-list, protected modules bound to other names;
- `class`: class keywords, metaclasses, classes built at run time.

The pass is cached per chunk and settings, and every rule reads the same result.
"""

from __future__ import annotations

import ast
import re
from typing import TYPE_CHECKING

from guards import policy
from guards.context import Hit
from guards.modules import is_module, top_level_names
from guards.pyast import BUILTIN_NAMES, PyModule
from guards.rules._match import first_match, listed

if TYPE_CHECKING:
    from guards.context import CheckContext

_DUNDER = re.compile(r"__[A-Za-z][A-Za-z0-9_]*__")
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef, ast.ListComp,
           ast.SetComp, ast.DictComp, ast.GeneratorExp)
_CONTAINERS = (ast.Tuple, ast.List, ast.Set, ast.Dict, ast.Starred)


class Policy:
    """The policy tables merged with one workspace's `[guards]` extensions."""

    def __init__(self, ctx: CheckContext) -> None:
        s = ctx.settings
        self.root = ctx.root
        self.config = ctx.config
        self.imports = (*policy.ALLOWED_IMPORTS, *s.allowed_imports, *s.public_api)
        self.allowed = tuple(s.allowed_attributes)
        self.private = (*policy.ALLOWED_PRIVATE, *s.allowed_attributes)
        local = {c for c in s.protected_calls if "." not in c} | set(s.protected_functions)
        self.local_protected = frozenset(local)
        self.protected = (*policy.PROTECTED, *(c for c in s.protected_calls if "." in c),
                          *s.frozen_modules, *(f"{m}.*" for m in s.frozen_modules))
        self.frozen = tuple(s.frozen_modules)

    def is_protected(self, qual: str) -> bool:
        if qual in policy.VALUE_OK or listed(qual, self.allowed):
            return False
        last = qual.rsplit(".", 1)[-1]
        if last.isupper() and "." in qual:
            return False  # module constants (signal.SIGTERM, resource.RUSAGE_SELF) are data
        return first_match(qual, self.protected) is not None

    def local_module(self, qual: str) -> bool:
        top = qual.split(".")[0]
        return (self.root / top).is_dir() and self.config.is_editable(f"{top}/__init__.py") or (
            self.root / f"{top}.py").is_file() and self.config.is_editable(f"{top}.py")


_POLICIES: dict[str, Policy] = {}


def policy_for(ctx: CheckContext) -> Policy:
    p = _POLICIES.get(ctx.fingerprint)
    if p is None:
        p = _POLICIES[ctx.fingerprint] = Policy(ctx)
    return p


def reach_hits(mod: PyModule, ctx: CheckContext) -> list[Hit]:
    cache = mod.__dict__.setdefault("_reach", {})
    if ctx.fingerprint not in cache:
        cache[ctx.fingerprint] = _Scan(mod, policy_for(ctx)).run()
    return cache[ctx.fingerprint]


def module_prefix(parts: list[str], root: object) -> int:
    """How many leading components of a dotted name are modules."""
    n = 0
    while n < len(parts) and is_module(".".join(parts[: n + 1]), root):  # type: ignore[arg-type]
        n += 1
    return n


class _Scan:
    def __init__(self, mod: PyModule, pol: Policy) -> None:
        self.mod = mod
        self.pol = pol
        self.parents = mod.parents
        self.out: list[Hit] = []
        self.seen: set[tuple[object, ...]] = set()
        self.annotations: set[int] = set()
        for node in mod.nodes:
            ann = None
            if isinstance(node, ast.arg | ast.AnnAssign):
                ann = node.annotation
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                ann = node.returns
            if ann is not None:
                self.annotations.update(id(n) for n in ast.walk(ann))
        self.imported = set(mod.import_bindings)

    # -- reporting -------------------------------------------------------------------
    def hit(self, tag: str, node: ast.AST, message: str, *sig: object) -> None:
        key = (tag, id(node), *sig)
        if key in self.seen:
            return
        self.seen.add(key)
        line = getattr(node, "lineno", 0) or getattr(self.mod.stmt_of(node), "lineno", 0)
        try:
            text = ast.unparse(node)
        except Exception:  # unparse of odd nodes must never break a check
            text = type(node).__name__
        self.out.append(Hit((tag, *sig, text), line, message, self.mod.line_text(line)))

    # -- positions -------------------------------------------------------------------
    def position(self, node: ast.AST, qual: str) -> str | None:
        """None when `node` is called or read in place; else how it is used."""
        if id(node) in self.annotations:
            return None
        parent = self.parents.get(node)
        if isinstance(parent, ast.Call):
            return None if parent.func is node else "passed as an argument"
        if isinstance(parent, ast.keyword):
            grand = self.parents.get(parent)
            return "used as a class keyword" if isinstance(grand, ast.ClassDef) else (
                "passed as an argument")
        if isinstance(parent, ast.Subscript):
            if parent.value is node:
                return None if qual in policy.MAPPINGS else "subscripted"
            return "used as an index"
        if isinstance(parent, ast.Compare):
            if qual in policy.MAPPINGS and node in parent.comparators and all(
                    isinstance(op, ast.In | ast.NotIn) for op in parent.ops):
                return None
            return "compared"
        if isinstance(parent, ast.Expr):
            return None
        if isinstance(parent, ast.ClassDef):
            return None if node in parent.bases else "used as a decorator"
        if isinstance(parent, ast.FunctionDef | ast.AsyncFunctionDef):
            return "used as a decorator"
        if isinstance(parent, ast.arguments):
            return "used as a default argument"
        if isinstance(parent, ast.Assign | ast.AnnAssign | ast.AugAssign | ast.NamedExpr):
            return "bound to a name or stored"
        if isinstance(parent, ast.Return | ast.Yield | ast.YieldFrom | ast.Lambda):
            return "returned"
        if isinstance(parent, _CONTAINERS):
            return "put in a container"
        if isinstance(parent, ast.comprehension | ast.For | ast.AsyncFor):
            return "iterated"
        if isinstance(parent, ast.withitem):
            return "used as a context manager"
        if isinstance(parent, ast.FormattedValue | ast.JoinedStr):
            return "formatted into a string"
        return "used as a value"

    # -- the pass ----------------------------------------------------------------------
    def run(self) -> list[Hit]:
        mod, pol = self.mod, self.pol
        for ref in mod.refs:
            node = ref.node
            if isinstance(node, ast.Import | ast.ImportFrom):
                continue
            q = ref.qual
            pos = self.position(node, q)
            self.chain(q, node, pos)
            if pos is None:
                continue
            if is_module(q, pol.root) or (isinstance(node, ast.Name) and node.id in self.imported
                                          and q == mod.aliases.get(node.id) and "." not in q):
                self.hit("position", node, f"the module {q} is {pos}: a module may only be used "
                         "as `module.name`.", q)
            elif pol.is_protected(q):
                self.hit("position", node, f"{q} is {pos}: protected objects (clocks, the "
                         "environment, builtins that reach code or attributes, frames, "
                         "processes, serialisation, the export) may only be called in place.", q)
        for node in mod.nodes:
            if isinstance(node, ast.Attribute):
                self.attribute(node)
            elif isinstance(node, ast.Name):
                self.name(node)
            elif isinstance(node, ast.arg):
                self.binding(node, node.arg)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                self.binding(node, node.name)
                if _DUNDER.fullmatch(node.name) and node.name not in policy.ALLOWED_DUNDER_DEFS:
                    self.hit("dunder", node, f"defines {node.name}: the interpreter calls it "
                             "implicitly (hooks, descriptors, finalizers, pickling).", node.name)
            elif isinstance(node, ast.ClassDef):
                self.binding(node, node.name)
                self.klass(node)
            elif isinstance(node, ast.ExceptHandler) and node.name:
                self.binding(node, node.name)
            elif isinstance(node, ast.Global):
                self.hit("shadow", node, f"declares {', '.join(node.names)} global: functions "
                         "may not rebind module-level names (state the model and the unchanged "
                         "code read).", *node.names)
            elif isinstance(node, ast.Nonlocal):
                for n in node.names:
                    if n in self.imported or n in policy.SHADOW_PROTECTED or n in BUILTIN_NAMES:
                        self.hit("shadow", node, f"declares {n} nonlocal to rebind it.", n)
            elif isinstance(node, ast.MatchAs | ast.MatchStar) and node.name:
                self.binding(node, node.name)
            elif isinstance(node, ast.MatchMapping) and node.rest:
                self.binding(node, node.rest)
            elif isinstance(node, ast.Import | ast.ImportFrom):
                self.imports(node)
            elif isinstance(node, ast.Call):
                self.call(node)
        for sv in mod.strings:
            for d in set(_DUNDER.findall(sv.value)):
                if d not in policy.ALLOWED_DUNDER_STRINGS:
                    self.hit("dunder", sv.node, f"the string {sv.value[:60]!r} names {d}: "
                             "dunder names reach interpreter internals.", d)
        for node in mod.nodes:  # names of protected local functions (the export), as values
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and (
                    node.id in pol.local_protected):
                pos = self.position(node, node.id)
                if pos is not None:
                    self.hit("position", node, f"{node.id} is {pos}: the function that feeds the "
                             "evaluator may only be called in place.", node.id)
        return self.out

    def chain(self, q: str, node: ast.AST, pos: str | None) -> None:
        parts = q.split(".")
        n = module_prefix(parts, self.pol.root)
        if n == 0:
            return
        m = ".".join(parts[:n])
        rest = parts[n:]
        pol = self.pol
        if listed(q, pol.allowed):
            return
        for i, part in enumerate(parts):
            if part.startswith("_") and not _DUNDER.fullmatch(part):
                prefix = ".".join(parts[: i + 1])
                if not listed(prefix, pol.private):
                    self.hit("attribute", node, f"{prefix} is private: training code may not "
                             "reach into the internals of other modules.", prefix)
                    return
        if m.split(".")[0] == "torch" and not listed(m, policy.ALLOWED_TORCH_MODULES):
            self.hit("attribute", node, f"{m} is not one of the torch modules training code may "
                     "use.", m)
            return
        if m.split(".")[0] == "numpy" and m not in policy.NUMPY_MODULES:
            self.hit("attribute", node, f"{m} is not one of the numpy modules training code may "
                     f"use ({', '.join(policy.NUMPY_MODULES)}).", m)
            return
        if not rest:
            return
        a = rest[0]
        if (m == "numpy" and a not in policy.NUMPY_ATTRS and not a.isupper()) or (
                m == "torch" and (a in policy.TORCH_FILE_ATTRS or a.endswith("Storage"))) or (
                m == "torch.utils" and a not in policy.TORCH_UTILS_ATTRS):
            self.hit("attribute", node, f"{m}.{a} is not one of the {m} names training code may "
                     "use (array construction and math; file readers, storages, native "
                     "libraries and paths into the interpreter are refused; a workspace may "
                     "extend the list with [guards] allowed_attributes).", f"{m}.{a}")
            return
        allowed = policy.MODULE_ATTRS.get(m, None)
        if m in policy.MODULE_ATTRS and allowed is not None and a not in allowed and (
                not a.isupper()):
            self.hit("attribute", node, f"{m}.{a} is not one of the {m} names training code "
                     f"may use ({', '.join(sorted(allowed))}).", f"{m}.{a}")
            return
        if m == "os" and a == "path" and len(rest) > 1 and rest[1] not in policy.MODULE_ATTRS[
                "os.path"]:  # type: ignore[operator]
            self.hit("attribute", node, f"os.path.{rest[1]} is not one of the os.path names "
                     "training code may use.", f"os.path.{rest[1]}")
            return
        # `datetime.datetime`, `copy.copy`: a module's eponymous member, not a re-export
        if a in top_level_names() and a != m.rsplit(".", 1)[-1] and (
                len(rest) > 1 or pos is not None):
            self.hit("attribute", node, f"{m}.{a} reaches the module {a} through {m}: import "
                     "what you need by its own name (if it is allowed at all).", f"{m}.{a}")

    def attribute(self, node: ast.Attribute) -> None:
        attr = node.attr
        if _DUNDER.fullmatch(attr):
            if attr not in policy.ALLOWED_DUNDER_ATTRS or (
                    attr == "__class__" and not isinstance(node.ctx, ast.Load)):
                self.hit("dunder", node, f"touches .{attr}: dunder attributes reach interpreter "
                         "internals (frames, globals, classes, the builtins).", attr)
            return
        if isinstance(node.ctx, ast.Store | ast.Del) and self.mod.qual(node) is not None:
            q = self.mod.qual(node) or ""
            self.chain(q, node, "stored")
        if attr in policy.FILE_METHODS and not listed(self.mod.qual(node) or attr,
                                                       self.pol.allowed):
            self.hit("attribute", node, f"touches .{attr}, which reads or writes files or "
                     "native libraries by name (whatever the object): files go through the "
                     "run's own folders with open/torch.save.", attr)
            return
        if attr in policy.MODULE_INTERNALS or (attr.startswith("_") and "hook" in attr):
            self.hit("attribute", node, f"touches .{attr}, an nn.Module internal (hooks, the "
                     "call path).", attr)
            return
        if not attr.startswith("_") or attr in policy.ALLOWED_PRIVATE_ATTRS:
            return
        base = node.value
        if isinstance(base, ast.Name) and base.id in ("self", "cls"):
            return
        if self.mod.qual(node) is not None:
            return  # a module chain: `chain` judged it
        self.hit("attribute", node, f"reads .{attr}, a private attribute of another object.",
                 attr)

    def name(self, node: ast.Name) -> None:
        if _DUNDER.fullmatch(node.id) and node.id not in policy.ALLOWED_DUNDER_NAMES:
            self.hit("dunder", node, f"uses {node.id}: module internals (the builtins, the "
                     "loader, the file) are off limits.", node.id)
            return
        if not isinstance(node.ctx, ast.Load):
            self.binding(node, node.id)

    def binding(self, node: ast.AST, name: str) -> None:
        if name in self.imported:
            self.hit("shadow", node, f"rebinds {name}, which the file imports: unchanged code "
                     "that uses it would run something else.", name)
        elif name in policy.SHADOW_PROTECTED or name in self.pol.local_protected:
            self.hit("shadow", node, f"binds the protected name {name}: code that calls it "
                     "would run something else.", name)
        elif name in BUILTIN_NAMES and self.module_level(node):
            self.hit("shadow", node, f"rebinds the builtin {name} for the whole module.", name)

    def module_level(self, node: ast.AST) -> bool:
        cur = self.parents.get(node)
        while cur is not None:
            if isinstance(cur, _SCOPES):
                return False
            cur = self.parents.get(cur)
        return True

    def klass(self, node: ast.ClassDef) -> None:
        for kw in node.keywords:
            self.hit("class", kw, f"class {node.name} passes {kw.arg or '**'}= to its "
                     "construction: metaclasses and __init_subclass__ run code at definition.",
                     kw.arg)
        for base in node.bases:
            if isinstance(base, ast.Call):
                self.hit("class", base, f"class {node.name} derives from a class built at run "
                         "time.", "call")
                continue
            q = self.mod.qual(base) or (base.id if isinstance(base, ast.Name) else "")
            if q in ("builtins.type", "abc.ABCMeta", "enum.EnumMeta", "enum.EnumType") or (
                    q.endswith("Meta") or q.endswith("MetaClass") or q.endswith("Metaclass")):
                self.hit("class", base, f"class {node.name} is a metaclass: it would run code "
                         "whenever a class is defined.", q)

    def call(self, node: ast.Call) -> None:
        q = self.mod.qual(node.func)
        if q == "builtins.type" and len(node.args) == 3:
            self.hit("class", node, "type() with three arguments builds a class at run time.",
                     "type3")
        elif q in ("builtins.vars", "builtins.globals", "builtins.locals"):
            self.hit("position", node, f"{q.split('.')[-1]}() reads a namespace by name: it "
                     "reaches any object without naming it.", q)
        elif q in ("builtins.getattr", "builtins.setattr", "builtins.delattr",
                   "builtins.hasattr") and len(node.args) >= 2:
            name = self.mod.fold_str(node.args[1])
            if name is None:
                return
            if _DUNDER.fullmatch(name) and name not in policy.ALLOWED_DUNDER_ATTRS:
                self.hit("dunder", node, f"{q.split('.')[-1]} of {name}: dunder attributes "
                         "reach interpreter internals.", name)
            elif name.startswith("_") and not _DUNDER.fullmatch(name) and not (
                    isinstance(node.args[0], ast.Name) and node.args[0].id in ("self", "cls")):
                self.hit("attribute", node, f"{q.split('.')[-1]} of the private attribute "
                         f"{name} of another object.", name)
            elif name in policy.MODULE_INTERNALS or (name.startswith("_") and "hook" in name):
                self.hit("attribute", node, f"{q.split('.')[-1]} of {name}, an nn.Module "
                         "internal.", name)

    def imports(self, node: ast.Import | ast.ImportFrom) -> None:
        pol = self.pol
        if isinstance(node, ast.Import):
            for a in node.names:
                self.one_import(node, a.name)
                if a.asname and pol.is_protected(a.name):
                    self.hit("import", node, f"imports {a.name} as {a.asname}: protected "
                             "modules may not be bound to another name.", a.name, a.asname)
                bound = a.asname or a.name.split(".")[0]
                self.rebinding(node, bound, a.name if a.asname else a.name.split(".")[0])
            return
        if node.level:
            return  # relative: a module of the editable tree itself
        base = node.module or ""
        self.one_import(node, base)
        for a in node.names:
            if a.name == "*":
                continue
            full = f"{base}.{a.name}"
            if is_module(full, pol.root):
                self.one_import(node, full)
            elif pol.is_protected(full) and (a.asname or first_match(full, pol.protected)):
                allowed = policy.MODULE_ATTRS.get(base)
                if a.asname or allowed is None or a.name not in allowed:
                    self.hit("import", node, f"imports {full} by name: use {base}.{a.name} in "
                             "place (protected objects may not be bound to names).", full)
            self.rebinding(node, a.asname or a.name, full)

    def rebinding(self, node: ast.AST, bound: str, qual: str) -> None:
        first = self.mod.import_quals.get(bound, [qual])[0]
        if first != qual:
            self.hit("shadow", node, f"imports {qual} as {bound}, which already names {first}.",
                     bound)
        elif bound in policy.SHADOW_PROTECTED:
            self.hit("shadow", node, f"imports over the builtin {bound}.", bound)

    def one_import(self, node: ast.AST, name: str) -> None:
        pol = self.pol
        if not name or listed(name, pol.imports) or pol.local_module(name):
            return
        if first_match(name, pol.frozen):
            return  # the frozen tree's own rule (evaluator.import) decides
        self.hit("import", node, f"imports {name}: patches may import only what a training "
                 "script needs (torch and its model/optim modules, math, numpy, dataclasses, "
                 "functools, itertools, collections, typing, contextlib, ...).", name)
