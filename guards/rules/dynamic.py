"""Dynamic code: anything that runs code the guards cannot read.

`exec`/`eval`/`compile`/`__import__`, importlib and friends are blocked outright (every
string-obfuscation trick ends in one of them). `getattr`/`setattr` with names computed at
run time are blocked on modules and flagged for review on other objects, where they are
sometimes ordinary code (`setattr(self, f"layer{i}", ...)`).
"""

from __future__ import annotations

import ast

from guards.context import CheckContext, Hit
from guards.pyast import PyModule
from guards.rules._match import first_match
from guards.rules.astrule import AstRule, hit

DYNAMIC = (
    "builtins.exec", "builtins.eval", "builtins.compile", "builtins.__import__",
    "builtins.execfile", "importlib", "imp", "pkgutil", "zipimport", "runpy", "marshal",
    "codeop", "types.CodeType", "types.FunctionType", "types.ModuleType", "types.LambdaType",
    "pydoc.locate", "torch.utils.cpp_extension", "torch.jit.CompilationUnit", "cffi",
    "builtins.__build_class__", "sys.setrecursionlimit.__self__", "builtins.help",
    "builtins.license", "builtins.credits", "builtins.copyright", "pydoc", "pydoc_data",
    "linecache", "sysconfig", "site", "numpy.info", "numpy.source", "numpy.lookfor",
    "numpy.lib.utils", "torch.jit", "torch.fx", "torch.library", "torch.ops.load_library",
    "torch.classes.load_library", "torch._C", "typing.get_type_hints", "typing.ForwardRef",
    "typing._eval_type", "functools.singledispatch", "functools.singledispatchmethod",
    "numpy.lib.utils.safe_eval", "collections.namedtuple.__globals__",
)
SENSITIVE = ("builtins", "os", "sys", "time", "datetime", "signal", "subprocess", "importlib",
             "gc", "inspect", "ctypes", "socket", "shutil", "pickle", "marshal", "types", "io",
             "pathlib", "threading", "multiprocessing", "torch.export", "torch.load",
             "torch.save")
_ATTR_FNS = ("builtins.getattr", "builtins.setattr", "builtins.delattr", "builtins.hasattr")


class DynamicCodeRule(AstRule):
    id = "dynamic.code"
    description = ("Running code the guards cannot read: exec, eval, compile, __import__, "
                   "importlib, marshal, code objects, native extensions built at run time.")

    def scan(self, mod: PyModule, ctx: CheckContext) -> list[Hit]:
        out = []
        for ref in mod.refs:
            if first_match(ref.qual, DYNAMIC):
                decoded = ""
                parent = mod.parents.get(ref.node)
                if isinstance(parent, ast.Call) and parent.func is ref.node and parent.args:
                    v = mod.fold_str(parent.args[0])
                    if v is not None:
                        decoded = f" (argument folds to {v[:60]!r})"
                out.append(hit(mod, ref.node, f"uses {ref.qual}{decoded}: dynamic code is not "
                               "allowed.", "ref", ref.qual))
        mod.strings  # noqa: B018 -- folding every string is what spends the budget
        budget = mod.__dict__.get("fold_budget")
        if budget is not None and budget.exhausted:
            out.append(Hit(("fold-budget", mod.source), 1, "the code builds too many strings "
                           "from constants to check them all; simplify it.",
                           mod.line_text(1)))
        return out


class ComputedAttrRule(AstRule):
    id = "dynamic.getattr"
    description = ("getattr/setattr/delattr with names computed at run time: blocked, except "
                   "reads of plain objects by names drawn from a literal list (review).")

    def scan(self, mod: PyModule, ctx: CheckContext) -> list[Hit]:
        out = []
        for q, call in mod.calls:
            if q not in _ATTR_FNS or len(call.args) < 2:
                continue
            if mod.fold_str(call.args[1]) is not None:
                continue  # a constant name is an ordinary attribute access; other rules see it
            target = mod.qual(call.args[0])
            s = ctx.settings
            names = _literal_loop_names(mod, call.args[1])
            reading = q in ("builtins.getattr", "builtins.hasattr")
            sensitive = not reading or names is None or (
                target is not None and first_match(
                    target, (*SENSITIVE, *s.frozen_modules, *s.public_api)) is not None) or any(
                n.startswith("_") or n in ("step", "backward") for n in names)
            out.append(hit(mod, call, f"{q.split('.')[-1]} with a computed name on "
                           f"{target or ast.unparse(call.args[0])}"
                           + ("" if names is None else f" (one of {', '.join(names)})") + ".",
                           "computed", severity=None if sensitive else "review"))
        return out


def _literal_loop_names(mod: PyModule, node: ast.AST) -> list[str] | None:
    """The values a loop variable takes when it iterates a literal list of strings."""
    if not isinstance(node, ast.Name):
        return None
    cur = mod.parents.get(node)
    while cur is not None:
        loops = [cur] if isinstance(cur, ast.For) else list(cur.generators) if isinstance(
            cur, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp) else []
        loop = next((g for g in loops if isinstance(g.target, ast.Name)
                     and g.target.id == node.id), None)
        if loop is not None:
            it = loop.iter
            if isinstance(it, ast.Tuple | ast.List | ast.Set) and all(
                    isinstance(e, ast.Constant) and isinstance(e.value, str) for e in it.elts):
                return [e.value for e in it.elts]  # type: ignore[attr-defined]
            return None
        cur = mod.parents.get(cur)
    return None
