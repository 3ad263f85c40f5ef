"""Fold constant expressions to their value, the way an obfuscating cheat builds strings.

A tiny, side-effect-free evaluator over a safe subset: literals, `+ - * % // ^ | & << >>`,
slicing, `chr`/`ord`/`str`/`bytes`/`join`/`reversed`, string methods, comprehensions over
known iterables, and the decoders cheats use (base64, binascii, bytes.fromhex, codecs with
rot13/hex/base64, zlib/gzip/bz2/lzma, urllib's unquote). Anything else is `UNKNOWN`. Sizes
are capped so a hostile patch cannot make the guard itself slow.
"""

from __future__ import annotations

import ast
import base64
import binascii
import codecs
import re
from collections import ChainMap
from collections.abc import Callable, Mapping
from typing import Any

UNKNOWN: Any = object()
MAX_LEN = 100_000
MAX_ITEMS = 10_000  # elements a folded range or comprehension may produce
MAX_DEPTH = 40

QualFn = Callable[[ast.AST], "str | None"]

_DECODERS: dict[str, Callable[..., Any]] = {
    "base64.b64decode": base64.b64decode,
    "base64.standard_b64decode": base64.standard_b64decode,
    "base64.urlsafe_b64decode": base64.urlsafe_b64decode,
    "base64.b32decode": base64.b32decode,
    "base64.b16decode": base64.b16decode,
    "base64.a85decode": base64.a85decode,
    "base64.b85decode": base64.b85decode,
    "base64.decodebytes": base64.decodebytes,
    "binascii.unhexlify": binascii.unhexlify,
    "binascii.a2b_hex": binascii.a2b_hex,
    "binascii.a2b_base64": binascii.a2b_base64,
    "bytes.fromhex": bytes.fromhex,
    "bytearray.fromhex": bytes.fromhex,
    "codecs.decode": codecs.decode,
    "codecs.encode": codecs.encode,
}
_LAZY_DECODERS = {
    "zlib.decompress": ("zlib", "decompress"),
    "gzip.decompress": ("gzip", "decompress"),
    "bz2.decompress": ("bz2", "decompress"),
    "lzma.decompress": ("lzma", "decompress"),
    "urllib.parse.unquote": ("urllib.parse", "unquote"),
    "urllib.parse.unquote_plus": ("urllib.parse", "unquote_plus"),
    "html.unescape": ("html", "unescape"),
}
STR_METHODS = _STR_METHODS = frozenset({
    "join", "decode", "encode", "replace", "lower", "upper", "strip", "lstrip", "rstrip",
    "format", "swapcase", "title", "capitalize", "removeprefix", "removesuffix", "zfill",
    "casefold", "center", "ljust", "rjust", "split", "rsplit", "translate", "hex",
})
_BUILTINS: dict[str, Callable[..., Any]] = {
    "builtins.chr": chr, "builtins.ord": ord, "builtins.str": str, "builtins.bytes": bytes,
    "builtins.bytearray": bytes, "builtins.int": int, "builtins.len": len,
    "builtins.list": list, "builtins.tuple": tuple, "builtins.reversed": lambda x: list(
        reversed(x)), "builtins.sorted": sorted, "builtins.hex": hex, "builtins.abs": abs,
    "str.join": str.join, "str.maketrans": str.maketrans, "builtins.str.maketrans": str.maketrans,
}
FOLDABLE_CALLS = frozenset({*_DECODERS, *_LAZY_DECODERS, *_BUILTINS, "builtins.range",
                            "builtins.map"})
_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
    ast.Mod: lambda a, b: a % b, ast.FloorDiv: lambda a, b: a // b,
    ast.BitXor: lambda a, b: a ^ b, ast.BitOr: lambda a, b: a | b,
    ast.BitAnd: lambda a, b: a & b, ast.LShift: lambda a, b: a << b if b < 64 else UNKNOWN,
    ast.RShift: lambda a, b: a >> b,
}


def _small(value: Any) -> Any:
    if isinstance(value, str | bytes | list | tuple) and len(value) > MAX_LEN:
        return UNKNOWN
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 1 << 4096:
        return UNKNOWN
    return value


class Budget:
    """Steps a fold may take: a hostile patch must not make the guard itself slow."""

    def __init__(self, steps: int) -> None:
        self.left = steps

    @property
    def exhausted(self) -> bool:
        return self.left <= 0


STEPS_PER_FOLD = 2_000


def evaluate(node: ast.AST, env: Mapping[str, Any], qual: QualFn, depth: int = 0,
             budget: Budget | None = None) -> Any:
    """The value of `node` if it is built from constants only, else `UNKNOWN`.

    `budget` (shared by the caller across folds) caps the total work; each top-level call
    also gets at most STEPS_PER_FOLD steps.
    """
    if depth == 0:
        outer = budget
        budget = Budget(min(STEPS_PER_FOLD, outer.left if outer else STEPS_PER_FOLD))
        value = evaluate(node, env, qual, 1, budget)
        if outer is not None:
            outer.left -= STEPS_PER_FOLD - budget.left if budget.left > 0 else STEPS_PER_FOLD
        return value
    assert budget is not None
    budget.left -= 1
    if depth > MAX_DEPTH or budget.left <= 0:
        return UNKNOWN
    try:
        return _small(_eval(node, env, qual, depth + 1, budget))
    except Exception:  # any failure of the fold just means "not a constant"
        return UNKNOWN


def _eval(node: ast.AST, env: Mapping[str, Any], qual: QualFn, depth: int,
          budget: Budget) -> Any:
    def ev(n: ast.AST, local: dict[str, Any] | None = None) -> Any:
        return evaluate(n, ChainMap(local, env) if local else env, qual, depth, budget)

    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return env.get(node.id, UNKNOWN)
    if isinstance(node, ast.JoinedStr):
        parts = []
        for v in node.values:
            if isinstance(v, ast.Constant):
                parts.append(str(v.value))
            else:
                inner = ev(v.value) if isinstance(v, ast.FormattedValue) else UNKNOWN
                if inner is UNKNOWN:
                    parts.append("{…}")
                else:
                    spec = ""
                    if isinstance(v, ast.FormattedValue) and v.format_spec is not None:
                        spec = ev(v.format_spec)
                        if spec is UNKNOWN:
                            spec = ""
                    parts.append(format(inner, spec))
        return "".join(parts)
    if isinstance(node, ast.BinOp):
        left, right = ev(node.left), ev(node.right)
        if isinstance(node.op, ast.Mod) and isinstance(left, str) and (
                right is UNKNOWN or isinstance(node.right, ast.Tuple)):
            # "%s_%s: %f" % ("val", "bpb", x) still tells us the shape of the line
            items = [ev(e) for e in node.right.elts] if isinstance(node.right, ast.Tuple) else [
                right]
            return percent(left, items)
        if left is UNKNOWN or right is UNKNOWN:
            return UNKNOWN
        if isinstance(node.op, ast.Mult):
            n = right if isinstance(right, int) else left if isinstance(left, int) else 0
            if isinstance(n, int) and n > MAX_LEN:
                return UNKNOWN
        return _BINOPS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd | ast.Invert):
        v = ev(node.operand)
        if v is UNKNOWN:
            return UNKNOWN
        return -v if isinstance(node.op, ast.USub) else (+v if isinstance(node.op, ast.UAdd)
                                                         else ~v)
    if isinstance(node, ast.Dict):
        keys = [ev(k) if k is not None else UNKNOWN for k in node.keys]
        vals = [ev(v) for v in node.values]
        if any(k is UNKNOWN or not isinstance(k, str | int) for k in keys) or any(
                v is UNKNOWN for v in vals):
            return UNKNOWN
        return dict(zip(keys, vals, strict=True))
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        items = [ev(e) for e in node.elts]
        return UNKNOWN if any(i is UNKNOWN for i in items) else list(items)
    if isinstance(node, ast.Subscript):
        base = ev(node.value)
        if base is UNKNOWN:
            return UNKNOWN
        if isinstance(node.slice, ast.Slice):
            lo = ev(node.slice.lower) if node.slice.lower else None
            hi = ev(node.slice.upper) if node.slice.upper else None
            st = ev(node.slice.step) if node.slice.step else None
            if UNKNOWN in (lo, hi, st):
                return UNKNOWN
            return base[lo:hi:st]
        idx = ev(node.slice)
        return UNKNOWN if idx is UNKNOWN else base[idx]
    if isinstance(node, ast.ListComp | ast.GeneratorExp | ast.SetComp):
        if len(node.generators) != 1 or node.generators[0].is_async:
            return UNKNOWN
        gen = node.generators[0]
        if not isinstance(gen.target, ast.Name):
            return UNKNOWN
        seq = ev(gen.iter)
        if seq is UNKNOWN or len(seq) > MAX_ITEMS:
            return UNKNOWN
        out = []
        for item in seq:
            local = {gen.target.id: item}
            if not all(ev(cond, local) is True for cond in gen.ifs):
                continue
            v = ev(node.elt, local)
            if v is UNKNOWN:
                return UNKNOWN
            out.append(v)
        return out
    if isinstance(node, ast.Call):
        return _call(node, qual, ev)
    return UNKNOWN


def _call(node: ast.Call, qual: QualFn, ev: Callable[..., Any]) -> Any:
    if any(isinstance(a, ast.Starred) for a in node.args):
        return UNKNOWN
    args = [ev(a) for a in node.args]
    kwargs = {k.arg: ev(k.value) for k in node.keywords if k.arg}
    if isinstance(node.func, ast.Attribute) and node.func.attr == "format" and (
            any(a is UNKNOWN for a in args) or any(v is UNKNOWN for v in kwargs.values())):
        fmt = ev(node.func.value)
        if isinstance(fmt, str):  # "{}_{}: {:.4f}".format("val", "bpb", x)
            return braces(fmt, args, kwargs)
    if any(a is UNKNOWN for a in args) or any(v is UNKNOWN for v in kwargs.values()):
        return UNKNOWN
    name = qual(node.func)
    if name in _DECODERS:
        return _DECODERS[name](*args, **kwargs)
    if name in _LAZY_DECODERS:
        import importlib

        mod, attr = _LAZY_DECODERS[name]
        return getattr(importlib.import_module(mod), attr)(*args, **kwargs)
    if name in _BUILTINS:
        return _BUILTINS[name](*args, **kwargs)
    if name == "builtins.range":
        r = range(*args)
        return list(r) if len(r) <= MAX_ITEMS else UNKNOWN
    if name == "builtins.map" and len(node.args) == 2:
        fn = qual(node.args[0])
        if fn in _BUILTINS and isinstance(args[1], list | str | bytes | tuple):
            return [_BUILTINS[fn](x) for x in args[1]]
        return UNKNOWN
    if isinstance(node.func, ast.Attribute) and node.func.attr in _STR_METHODS:
        obj = ev(node.func.value)
        if isinstance(obj, str | bytes | bytearray):
            return getattr(obj, node.func.attr)(*args, **kwargs)
    return UNKNOWN


def module_constants(tree: ast.Module, qual: QualFn, env: dict[str, Any] | None = None
                     ) -> dict[str, Any]:
    """Top-level `NAME = <foldable>` bindings, evaluated in order (the last one wins).

    Pass `env` to continue from earlier chunks of the same file.
    """
    env = {} if env is None else env
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target = stmt.targets[0]
            if isinstance(target, ast.Name):
                value = evaluate(stmt.value, env, qual)
                if value is not UNKNOWN and isinstance(value, str | bytes | int | list):
                    env[target.id] = value
                else:
                    env.pop(target.id, None)
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value:
            value = evaluate(stmt.value, env, qual)
            if value is not UNKNOWN and isinstance(value, str | bytes | int | list):
                env[stmt.target.id] = value
    return env


_PERCENT = re.compile(r"%(?:\(([^)]*)\))?([-#0 +]*\d*(?:\.\d+)?)([diouxXeEfFgGcrsa%])")
_BRACE = re.compile(r"\{\{|\}\}|\{([^{}!:]*)(![rsa])?(?::([^{}]*))?\}")
HOLE = "{…}"


def percent(fmt: str, items: list[Any]) -> str:
    """`fmt % items` with unknown items shown as holes (the shape of the line stays)."""
    it = iter(items)

    def one(m: re.Match[str]) -> str:
        if m.group(3) == "%":
            return "%"
        value = next(it, UNKNOWN)
        if value is UNKNOWN:
            return HOLE
        try:
            return ("%" + m.group(2) + m.group(3)) % (value,)
        except Exception:  # a mismatched value: only the shape matters
            return HOLE

    return _PERCENT.sub(one, fmt)


def braces(fmt: str, args: list[Any], kwargs: dict[str | None, Any]) -> str:
    """`fmt.format(*args, **kwargs)` with unknown values shown as holes."""
    auto = iter(range(len(args) + 1))

    def one(m: re.Match[str]) -> str:
        if m.group(0) in ("{{", "}}"):
            return m.group(0)[0]
        field, spec = m.group(1), m.group(3) or ""
        if field == "":
            value = args[next(auto)] if len(args) else UNKNOWN
        elif field.isdigit():
            value = args[int(field)] if int(field) < len(args) else UNKNOWN
        else:
            value = kwargs.get(field, UNKNOWN)
        if value is UNKNOWN:
            return HOLE
        try:
            return format(value, spec)
        except Exception:  # a mismatched value: only the shape matters
            return HOLE

    try:
        return _BRACE.sub(one, fmt)
    except (IndexError, StopIteration):
        return fmt
