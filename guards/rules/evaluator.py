"""Evaluator tampering: reaching into the frozen tree, patching it, or bypassing the export.

Config-driven (`[guards]` frozen_modules, public_api, protected_symbols, protected_calls,
protected_functions), so the same rules protect `eval_frozen` here and `prepare.py`'s
`evaluate_bpb` in an autoresearch checkout.
"""

from __future__ import annotations

import ast
import fnmatch
import re
from pathlib import Path

from guards.context import CheckContext, Hit
from guards.pyast import PyModule
from guards.rules._match import first_match, under
from guards.rules.astrule import AstRule, hit
from guards.settings import GuardSettings
from labwarden.config import matches_any

_MOCKING = ("unittest.mock", "mock", "pytest.MonkeyPatch", "pytest.monkeypatch", "_pytest",
            "freezegun", "time_machine", "pyfakefs")


_ALL: dict[str, frozenset[str] | None] = {}


def declared_all(root: Path, module: str) -> frozenset[str] | None:
    """The names a workspace module declares in `__all__` (None: it declares none).

    Read from the file, never imported (the guards must not run the frozen tree)."""
    key = f"{root}:{module}"
    if key in _ALL:
        return _ALL[key]
    rel = Path(*module.split("."))
    found: frozenset[str] | None = None
    for path in (root / rel.with_suffix(".py"), root / rel / "__init__.py"):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        m = re.search(r"^__all__\s*(?::[^=]*)?=\s*([\[(][^\])]*[\])])", text, re.MULTILINE)
        if m:
            try:
                names = ast.literal_eval(m.group(1))
                found = frozenset(n for n in names if isinstance(n, str))
            except (ValueError, SyntaxError):
                found = frozenset()  # an `__all__` we cannot read exports nothing
        break
    _ALL[key] = found
    return found


def allowed(qual: str, s: GuardSettings, root: Path | None = None) -> bool:
    """May code read `qual`? Everything outside the frozen modules, and their public API:
    of a public module that declares `__all__`, only the names it lists."""
    frozen = [m for m in s.frozen_modules if under(qual, m)]
    if not frozen:
        return True
    for api in s.public_api:
        if under(qual, api):
            rest = qual[len(api):].lstrip(".").split(".") if qual != api else []
            if rest and root is not None:
                names = declared_all(root, api)
                if names is not None and rest[0] not in names:
                    return False
            return not any(fnmatch.fnmatchcase(part, g) for part in rest
                           for g in s.protected_symbols)
    return False


def _import_names(mod: PyModule, node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = mod.import_base(node)
    return [base if a.name == "*" else f"{base}.{a.name}" for a in node.names]


class FrozenImportRule(AstRule):
    id = "evaluator.import"
    description = ("Importing or reading the frozen tree beyond its public API (the evaluator, "
                   "its constants, the validation loader), including by dotted-name strings.")

    def scan(self, mod: PyModule, ctx: CheckContext) -> list[Hit]:
        s = ctx.settings
        if not s.frozen_modules:
            return []
        out: list[Hit] = []
        for node in mod.nodes:
            if isinstance(node, ast.Import | ast.ImportFrom):
                for name in _import_names(mod, node):
                    if not allowed(name, s, ctx.root):
                        out.append(hit(mod, node, f"imports {name} from the frozen tree; only "
                                       f"{', '.join(s.public_api) or 'nothing'} is public.",
                                       "import", name))
        for ref in mod.refs:
            if isinstance(ref.node, ast.Import | ast.ImportFrom):
                continue
            if not allowed(ref.qual, s, ctx.root):
                out.append(hit(mod, ref.node, f"reads {ref.qual}, which is not the frozen "
                               "tree's public API.", "ref", ref.qual))
        dotted = [re.compile(rf"^{re.escape(m)}(\.\w+)*(:\w+)?$") for m in s.frozen_modules]
        for sv in mod.strings:
            v = sv.value.strip()
            if any(rx.match(v) for rx in dotted) and not allowed(v.replace(":", "."), s, ctx.root):
                out.append(hit(mod, sv.node, f"names the frozen module path {v!r} in a string.",
                               "string", v))
        return out


class TamperRule(AstRule):
    id = "evaluator.tamper"
    description = ("Assigning to, wrapping, shadowing or monkey-patching the frozen tree's "
                   "functions and constants, the export calls, or loading mocking tools.")

    def scan(self, mod: PyModule, ctx: CheckContext) -> list[Hit]:
        s = ctx.settings
        out: list[Hit] = []
        guarded = (*s.frozen_modules, *s.public_api, *s.protected_calls)
        for st in mod.stores:
            if first_match(st.qual, guarded):
                target = st.qual + (f".{st.key}" if st.key else "")
                out.append(hit(mod, st.node, f"{st.how} of {target}: frozen and evaluator-facing "
                               "names may not be replaced or modified.", "store", target))
        for ref in mod.refs:
            if first_match(ref.qual, _MOCKING):
                out.append(hit(mod, ref.node, f"uses {ref.qual}: monkey-patching tools are not "
                               "allowed in training code.", "mock", ref.qual))
        return out


class ExportRule(AstRule):
    id = "evaluator.export"
    report_lost = True
    description = ("Changing, removing, moving or redefining the call that exports the model "
                   "for the evaluator (or the call to the evaluator itself), or the lines that "
                   "read the sandbox's LABWARDEN_* settings.")

    def scan(self, mod: PyModule, ctx: CheckContext) -> list[Hit]:
        s = ctx.settings
        out: list[Hit] = []
        if s.protected_env:  # where the sandbox tells the trainer its data and output dirs
            for sv in mod.strings:
                if any(fnmatch.fnmatchcase(sv.value, g) for g in s.protected_env):
                    out.append(hit(mod, sv.node, f"the statement reading {sv.value} (set by the "
                                   "sandbox) must stay as it is.", "env-read",
                                   mod.statement_text(sv.node), mod.context_chain(sv.node)))
        if not (s.protected_calls or s.protected_functions):
            return out
        local = {c for c in s.protected_calls if "." not in c} | set(s.protected_functions)
        for call in mod.nodes:
            if not isinstance(call, ast.Call):
                continue
            name = mod.qual(call.func) or ""
            bare = call.func.id if isinstance(call.func, ast.Name) else None
            if first_match(name, s.protected_calls) or (bare and bare in local):
                fn = ast.unparse(call.func)
                out.append(hit(mod, call, f"the evaluator-facing call {fn}(...) "
                               "must stay exactly as it is, where it is.", "call",
                               mod.context_chain(call), mod.statement_text(call)))
        for node in mod.nodes:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and \
                    node.name in s.protected_functions:
                out.append(Hit(("def", node.name, ast.dump(node)), node.lineno,
                               f"the body of {node.name}() is frozen: it feeds the evaluator.",
                               mod.line_text(node.lineno)))
            elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    if isinstance(t, ast.Name) and t.id in local:
                        out.append(hit(mod, node, f"rebinds {t.id}, which feeds the evaluator.",
                                       "rebind", t.id))
        return out


class FrozenPathStringRule(AstRule):
    id = "evaluator.paths"
    description = "Naming frozen files (evaluator, data prep, tokenizer, seal) in code strings."

    def scan(self, mod: PyModule, ctx: CheckContext) -> list[Hit]:
        frozen = ctx.config.frozen
        out = []
        for sv in mod.strings:
            v = sv.value.strip().removeprefix("./")
            if not v or len(v) > 300 or not _PATHLIKE.search(v):
                continue
            if matches_any(v, frozen) or matches_any(v.rstrip("/") + "/x", frozen):
                out.append(hit(mod, sv.node, f"the string {v!r} names a frozen file.", "path", v))
        return out


_PATHLIKE = re.compile(r"/|\.\w{1,5}$")
