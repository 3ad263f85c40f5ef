"""Strings spelled at run time: text the folding rules cannot read.

The leakage, path and metric rules read strings after folding constants (`"v" + "al"`,
`"lav"[::-1]`), which is complete for text the code spells out. A string whose letters
come from numbers or positions computed while it runs (`chr(ord("u") + len(sys.argv))`,
`os.path.join("a", "b")[1]` for "/") cannot be folded, so the routes from numbers and
positions to characters are refused instead, wherever they appear:

- `chr` other than called on an integer literal (as a value to `map`, or on a computed
  code point), `bytes`/`bytearray` built from anything but a literal, `.to_bytes`,
  `.fromhex`, `.translate`/`.maketrans`, `%c` and the `c` format type;
- letters picked out of alphabets (`string.ascii_*`, `string.printable`, ...), or out of
  a string literal or a computed string (`str(...)`, `repr(...)`, `os.path.join(...)`,
  `f"..."`) by an index or slice the folding cannot compute.

What it costs honest code: character codes and alphabet indexing, which a training script
does not need (a tokenizer does, and it lives in the frozen tree); `"abc"[0]` and other
literal indexes still fold and pass.
"""

from __future__ import annotations

import ast
import re

from guards.context import CheckContext, Hit
from guards.pyast import PyModule
from guards.rules.astrule import AstRule, hit

_CHAR_METHODS = frozenset({"to_bytes", "fromhex", "translate", "maketrans"})
_ALPHABETS = ("string.ascii_letters", "string.ascii_lowercase", "string.ascii_uppercase",
              "string.printable", "string.punctuation", "string.hexdigits", "string.octdigits",
              "string.whitespace", "string.digits")
_TEXT_CALLS = frozenset({"builtins.str", "builtins.repr", "builtins.format", "builtins.ascii",
                         "os.path.join", "os.path.basename", "os.getcwd", "builtins.chr"})
_PERCENT_C = re.compile(r"%[-+ #0]*\d*(\.\d+)?c")
_FORMAT_C = re.compile(r"^[^}]*c$")


def _literal_int(node: ast.AST) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        node = node.operand
    return isinstance(node, ast.Constant) and type(node.value) is int


def _literal_index(node: ast.AST) -> bool:
    if isinstance(node, ast.Slice):
        return all(p is None or _literal_int(p) for p in (node.lower, node.upper, node.step))
    return _literal_int(node)


class ComputedStringRule(AstRule):
    id = "strings.computed"
    description = ("Strings spelled from numbers or positions at run time (chr of a computed "
                   "code point, bytes from numbers, %c, letters indexed out of alphabets or "
                   "computed strings): text the path, leakage and metric rules cannot read.")

    def scan(self, mod: PyModule, ctx: CheckContext) -> list[Hit]:
        out: list[Hit] = []
        parents = mod.parents
        for node in mod.nodes:
            if isinstance(node, ast.Name | ast.Attribute) and isinstance(node.ctx, ast.Load):
                q = mod.qual(node)
                parent = parents.get(node)
                called = isinstance(parent, ast.Call) and parent.func is node
                if q in ("builtins.chr", "builtins.bytes", "builtins.bytearray"):
                    args = parent.args if called else []  # type: ignore[union-attr]
                    kws = parent.keywords if called else []  # type: ignore[union-attr]
                    if q == "builtins.chr":
                        ok = called and len(args) == 1 and not kws and _literal_int(args[0])
                    else:
                        ok = called and not kws and (not args or (len(args) == 1 and isinstance(
                            args[0], ast.Constant) and isinstance(args[0].value,
                                                                  str | bytes | int)))
                    if not ok:
                        out.append(hit(mod, parent if called else node, f"{q.split('.')[-1]} of "
                                       "a computed value: characters spelled from numbers at run "
                                       "time are refused.", "chr", q))
                elif q and q in _ALPHABETS:
                    out.append(hit(mod, node, f"{q}: letters picked from an alphabet spell text "
                                   "the guards cannot read.", "alphabet", q))
                elif isinstance(node, ast.Attribute) and node.attr in _CHAR_METHODS and q is None:
                    out.append(hit(mod, node, f".{node.attr}: characters from numbers or a "
                                   "mapping, at run time.", "method", node.attr))
            elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
                base = node.value
                textual = (isinstance(base, ast.Constant) and isinstance(base.value, str)) or (
                    isinstance(base, ast.JoinedStr)) or (isinstance(base, ast.Call) and (
                        mod.qual(base.func) in _TEXT_CALLS or (isinstance(
                            base.func, ast.Attribute) and isinstance(base.func.value, ast.Constant)
                            and isinstance(base.func.value.value, str))))
                literal_base = isinstance(base, ast.Constant)
                if textual and not (literal_base and _literal_index(node.slice)):
                    out.append(hit(mod, node, "picks characters out of a string by a position "
                                   "computed at run time (or out of a computed string): text "
                                   "the guards cannot read.", "index"))
            elif isinstance(node, ast.FormattedValue) and node.format_spec is not None:
                spec = node.format_spec
                text = "".join(v.value for v in getattr(spec, "values", [])
                               if isinstance(v, ast.Constant) and isinstance(v.value, str))
                if _FORMAT_C.match(text):
                    out.append(hit(mod, node, "the c format type turns a number into a "
                                   "character.", "format-c"))
            elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and isinstance(
                    node.left, ast.Constant) and isinstance(node.left.value, str) and (
                    _PERCENT_C.search(node.left.value)):
                out.append(hit(mod, node, "%c turns a number into a character.", "percent-c"))
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and (
                    node.func.attr == "format" and isinstance(node.func.value, ast.Constant)
                    and isinstance(node.func.value.value, str)
                    and re.search(r"\{[^}]*:[^}]*c\}", node.func.value.value)):
                out.append(hit(mod, node, "the c format type turns a number into a character.",
                               "format-c"))
            elif isinstance(node, ast.Call) and mod.qual(node.func) == "builtins.format" and (
                    len(node.args) > 1 and isinstance(node.args[1], ast.Constant)
                    and isinstance(node.args[1].value, str)
                    and _FORMAT_C.match(node.args[1].value)):
                out.append(hit(mod, node, "format(..., 'c') turns a number into a character.",
                               "format-c"))
        return out
