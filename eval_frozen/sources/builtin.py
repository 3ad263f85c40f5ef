"""The offline source: real English prose that ships with every CPython.

Two parts, both read without importing arbitrary modules:
- `pydoc_data.topics`: the language reference topics behind `help()` (~0.5 MB),
- the docstrings of the standard library's `.py` files (~1.7 MB), found by a regex
  tokenizer rather than `ast`: parsing 10 MB of stdlib with `ast` takes 10-30 s on two
  cores, the tokenizer under a second. It takes every string literal that stands alone
  on its lines as a statement (docstrings, nearly all) and decodes it with
  `ast.literal_eval`, so escapes are exact.

Documents are named `pydoc:<topic>` and `stdlib:<path>#<n>`. The split hashes the topic
or the module path, so one module's docstrings all land on one side (no near-duplicate
methods across the split) and editing one module never moves another.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import re
import sys
import sysconfig
from collections.abc import Callable, Iterator
from pathlib import Path

from eval_frozen.profiles import Profile
from eval_frozen.sources import SourceInfo, split_of, store_splits

# Folders with no prose (codec tables, tests) or read separately (pydoc_data).
_SKIP_PARTS = {"site-packages", "dist-packages", "test", "tests", "idle_test", "encodings",
               "pydoc_data", "__pycache__"}

_TOKEN = re.compile(
    r"""
      (?P<comment>\#[^\n]*)
    | (?P<string>[rRuUbBfF]{0,2}(?:\"\"\"(?:\\.|[^\\])*?\"\"\"|'''(?:\\.|[^\\])*?'''
                               |"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'))
    | (?P<newline>\n)
    | (?P<other>(?:[^\#"'\nrRuUbBfF]|[rRuUbBfF]{1,2}(?!["']))+)
    """,
    re.VERBOSE | re.DOTALL,
)  # `other` stops before a string prefix (r, b, f, u) so the literal keeps it
_SHARD_CHARS = 4_000_000  # one train shard and one val shard for the whole corpus


def docstrings(source: str) -> list[str]:
    """Statement-level string literals of a Python source (its docstrings), cleaned."""
    found: list[str] = []
    line_blank = True  # only whitespace since the last newline
    pending: str | None = None  # a literal that began its line; kept if nothing follows
    for m in _TOKEN.finditer(source):
        kind = m.lastgroup
        text = m.group()
        if kind == "comment":
            continue
        if kind == "newline":
            if pending is not None:
                found.append(pending)
                pending = None
            line_blank = True
        elif kind == "other":
            if text.strip():
                line_blank = False
                pending = None
        else:  # a string literal
            prefix = text[: len(text) - len(text.lstrip("rRuUbBfF"))].lower()
            pending = text if line_blank and "b" not in prefix and "f" not in prefix else None
            line_blank = False
    if pending is not None:
        found.append(pending)
    out = []
    for literal in found:
        try:
            value = ast.literal_eval(literal)
        except (ValueError, SyntaxError):
            continue
        if isinstance(value, str):
            cleaned = inspect.cleandoc(value).strip()
            if cleaned:
                out.append(cleaned)
    return out


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def documents() -> Iterator[tuple[str, str, str]]:
    """(split key, document name, text) in a fixed order."""
    from pydoc_data.topics import topics  # a plain dict literal; importing it runs no code

    for topic in sorted(topics):
        text = topics[topic].strip()
        if text:
            yield f"pydoc:{topic}", f"pydoc:{topic}", text
    root = stdlib_dir()
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if _SKIP_PARTS.intersection(rel.parts[:-1]):
            continue
        try:
            src = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        key = f"stdlib:{rel.as_posix()}"
        for i, doc in enumerate(docstrings(src)):
            yield key, f"{key}#{i}", doc


class BuiltinSource:
    spec = "builtin"

    def fingerprint(self) -> str:
        # The corpus is a function of the interpreter's stdlib: its version and location.
        return f"builtin:{sys.version}:{stdlib_dir()}"

    def materialize(self, data_dir: Path, profile: Profile,
                    log: Callable[[str], None]) -> SourceInfo:
        splits: dict[str, list[tuple[str, str]]] = {"train": [], "val": []}
        for key, name, text in documents():
            splits[split_of(key, profile.val_fraction)].append((name, text))
        for docs in splits.values():
            # Order by a hash of the name: neighbours in a batch come from unrelated modules.
            docs.sort(key=lambda d: hashlib.sha256(d[0].encode()).digest())
        info = store_splits(self.spec, data_dir, splits, _SHARD_CHARS,
                            {"python": sys.version.split()[0]})
        log(f"builtin: {info.train_docs} train docs ({info.train_chars} chars), "
            f"{info.val_docs} val docs ({info.val_chars} chars), Python {info.details['python']}")
        return info
