"""The offline source: real English prose that ships with every CPython.

Two parts, both read without importing arbitrary modules:
- `pydoc_data.topics`: the language reference topics behind `help()` (~0.5 MB), which
  make the whole validation split,
- the docstrings of the standard library's `.py` files (~1.7 MB), which make the whole
  training split. They are found by a regex tokenizer rather than `ast`: parsing 10 MB
  of stdlib with `ast` takes 10-30 s on two cores, the tokenizer under a second. It
  takes every string literal that stands alone on its lines as a statement (docstrings,
  nearly all) and decodes it with `ast.literal_eval`, so escapes are exact.

Why the split follows the files and not a hash of names: the training step runs an
interpreter, and an interpreter carries its own docstrings wherever it goes (in `.py`,
in `.pyc`, in `__doc__`), so a validation text drawn from them could be rebuilt by the
trainer. `pydoc_data` is documentation data only `help()` reads: the sandbox image is
built without it and the local backend does not show it to the training step, so the
validation text is not readable from there (checked by the conformance suite). The
profile's `val_fraction` does not apply here; the topics hold ~140k tokens at the
`small` vocabulary, twice what its evaluation scores.

Documents are named `pydoc:<topic>` and `stdlib:<path>#<n>`.
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
from eval_frozen.sources import SourceInfo, store_splits

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
SPLIT_RULE = "v2-topics-val"
"""Names the split rule in the fingerprint: v1 hashed topic and module names to either side,
so validation text came from the interpreter's own docstrings too."""


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
    """(split, document name, text) in a fixed order: every topic is `val`, every
    docstring `train`."""
    from pydoc_data.topics import topics  # a plain dict literal; importing it runs no code

    for topic in sorted(topics):
        text = topics[topic].strip()
        if text:
            yield "val", f"pydoc:{topic}", text
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
            yield "train", f"{key}#{i}", doc


class BuiltinSource:
    spec = "builtin"

    def fingerprint(self) -> str:
        # The corpus is a function of the interpreter's stdlib (its version and location)
        # and of the split rule, whose version bump re-prepares folders made by an older one.
        return f"builtin:{SPLIT_RULE}:{sys.version}:{stdlib_dir()}"

    def materialize(self, data_dir: Path, profile: Profile,
                    log: Callable[[str], None]) -> SourceInfo:
        splits: dict[str, list[tuple[str, str]]] = {"train": [], "val": []}
        for split, name, text in documents():
            splits[split].append((name, text))
        for docs in splits.values():
            # Order by a hash of the name: neighbours in a batch come from unrelated modules.
            docs.sort(key=lambda d: hashlib.sha256(d[0].encode()).digest())
        info = store_splits(self.spec, data_dir, splits, _SHARD_CHARS,
                            {"python": sys.version.split()[0], "split_rule": SPLIT_RULE})
        log(f"builtin: {info.train_docs} train docs ({info.train_chars} chars), "
            f"{info.val_docs} val docs ({info.val_chars} chars), Python {info.details['python']}")
        return info
