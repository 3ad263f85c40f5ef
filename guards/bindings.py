"""Every way a statement binds a name: the one notion of "a write" the rules share.

Python binds names in many more places than `x = ...`: `:=` anywhere in an expression
(call arguments, comprehensions, conditions), `for` and comprehension targets, `with ...
as`, `except ... as`, `match` captures, `del`, augmented and annotated assignments, tuple
and star targets, imports, `def`/`class` names, and `global`/`nonlocal` (a function
rebinding a name of an outer scope). The budget rule, the clock variables and the model
after the loop all ask this module, so a write one rule sees, every rule sees.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

_HEADER_FIELDS: dict[type, tuple[str, ...]] = {
    ast.If: ("test",), ast.While: ("test",), ast.For: ("iter",), ast.AsyncFor: ("iter",),
    ast.With: ("items",), ast.AsyncWith: ("items",), ast.Match: ("subject",),
    ast.Try: (), ast.FunctionDef: ("decorator_list", "args", "returns"),
    ast.AsyncFunctionDef: ("decorator_list", "args", "returns"),
    ast.ClassDef: ("decorator_list", "bases", "keywords"),
}
if hasattr(ast, "TryStar"):
    _HEADER_FIELDS[ast.TryStar] = ()


class Binding:
    """Names one construct binds, the expression it binds them from (None: unknown, as
    for `del`, `global`, `except`), and the node to report."""

    __slots__ = ("names", "value", "node", "how")

    def __init__(self, names: frozenset[str], value: ast.AST | None, node: ast.AST,
                 how: str) -> None:
        self.names, self.value, self.node, self.how = names, value, node, how


def target_names(t: ast.AST) -> set[str]:
    """What a target writes: names, attribute names, a subscripted name (not its index)."""
    names: set[str] = set()
    todo = [t]
    while todo:
        n = todo.pop()
        if isinstance(n, ast.Name):
            names.add(n.id)
        elif isinstance(n, ast.Tuple | ast.List):
            todo.extend(n.elts)
        elif isinstance(n, ast.Starred):
            todo.append(n.value)
        elif isinstance(n, ast.Attribute):
            names.add(n.attr)
        elif isinstance(n, ast.Subscript) and isinstance(n.value, ast.Name | ast.Attribute):
            todo.append(n.value)
    return names


def header_exprs(stmt: ast.stmt) -> list[ast.AST]:
    """The expressions a statement evaluates itself (a compound statement's header, not
    its body): where a `:=` in that statement can hide."""
    fields = _HEADER_FIELDS.get(type(stmt))
    if fields is None:
        return [stmt]
    out: list[ast.AST] = []
    for f in fields:
        v = getattr(stmt, f, None)
        if isinstance(v, list):
            out.extend(x for x in v if isinstance(x, ast.AST))
        elif isinstance(v, ast.AST):
            out.append(v)
    return out


def walrus(exprs: list[ast.AST]) -> Iterator[ast.NamedExpr]:
    for e in exprs:
        for n in ast.walk(e):
            if isinstance(n, ast.NamedExpr):
                yield n


def _pattern_names(p: ast.AST) -> set[str]:
    out = set()
    for n in ast.walk(p):
        if isinstance(n, ast.MatchAs | ast.MatchStar) and n.name:
            out.add(n.name)
        elif isinstance(n, ast.MatchMapping) and n.rest:
            out.add(n.rest)
    return out


def statement_bindings(stmt: ast.stmt) -> list[Binding]:
    """Every binding `stmt` makes by itself (its body's statements are their own)."""
    out: list[Binding] = []

    def add(names: set[str], value: ast.AST | None, node: ast.AST, how: str) -> None:
        if names:
            out.append(Binding(frozenset(names), value, node, how))

    if isinstance(stmt, ast.Assign):
        add({n for t in stmt.targets for n in target_names(t)}, stmt.value, stmt, "assign")
    elif isinstance(stmt, ast.AugAssign | ast.AnnAssign):
        add(target_names(stmt.target), stmt.value, stmt, "assign")
    elif isinstance(stmt, ast.Delete):
        add({n for t in stmt.targets for n in target_names(t)}, None, stmt, "del")
    elif isinstance(stmt, ast.For | ast.AsyncFor):
        add(target_names(stmt.target), stmt.iter, stmt, "for")
    elif isinstance(stmt, ast.With | ast.AsyncWith):
        for item in stmt.items:
            if item.optional_vars is not None:
                add(target_names(item.optional_vars), item.context_expr, stmt, "with")
    elif isinstance(stmt, ast.Try) or type(stmt).__name__ == "TryStar":
        for h in stmt.handlers:  # type: ignore[attr-defined]
            if h.name:
                add({h.name}, None, h, "except")
    elif isinstance(stmt, ast.Match):
        for case in stmt.cases:
            add(_pattern_names(case.pattern), stmt.subject, stmt, "match")
    elif isinstance(stmt, ast.Global | ast.Nonlocal):
        add(set(stmt.names), None, stmt, "global")
    elif isinstance(stmt, ast.Import | ast.ImportFrom):
        add({(a.asname or a.name).split(".")[0] for a in stmt.names if a.name != "*"}, None,
            stmt, "import")
    elif isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        add({stmt.name}, None, stmt, "def")
    for w in walrus(header_exprs(stmt)):
        if isinstance(w.target, ast.Name):
            # reported at the statement, so the finding quotes the whole line
            add({w.target.id}, w.value, stmt, "walrus")
    return out


def bound_names(stmt: ast.stmt) -> set[str]:
    return {n for b in statement_bindings(stmt) for n in b.names}


def bindings(stmt: ast.stmt) -> list[tuple[str, ast.AST]]:
    """(name, where) for every binding `stmt` makes by itself; `where` is the `:=` node for
    a walrus, else the statement (or the `except` handler)."""
    out: list[tuple[str, ast.AST]] = []
    for b in statement_bindings(stmt):
        if b.how == "walrus":
            continue
        out.extend((n, b.node) for n in sorted(b.names))
    for w in walrus(header_exprs(stmt)):
        if isinstance(w.target, ast.Name):
            out.append((w.target.id, w))
    return out
