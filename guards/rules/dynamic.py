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
    "builtins.__build_class__", "sys.setrecursionlimit.__self__",
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
    description = ("getattr/setattr/delattr with names computed at run time: blocked on modules, "
                   "sent to review elsewhere.")

    def scan(self, mod: PyModule, ctx: CheckContext) -> list[Hit]:
        out = []
        for q, call in mod.calls:
            if q not in _ATTR_FNS or len(call.args) < 2:
                continue
            if mod.fold_str(call.args[1]) is not None:
                continue  # a constant name is an ordinary attribute access; other rules see it
            target = mod.qual(call.args[0])
            s = ctx.settings
            sensitive = target is not None and (
                q != "builtins.getattr" and q != "builtins.hasattr"
                or first_match(target, (*SENSITIVE, *s.frozen_modules, *s.public_api)))
            out.append(hit(mod, call, f"{q.split('.')[-1]} with a computed name on "
                           f"{target or ast.unparse(call.args[0])}.", "computed",
                           severity=None if sensitive else "review"))
        return out
