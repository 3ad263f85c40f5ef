"""Decode a Python file the way the interpreter will, or say why it must be refused.

`ast.parse` of a str ignores coding cookies, but the interpreter honours them: a file
declaring `# coding: utf-7` runs code that the str the guards parsed shows only as a
comment. So a file is accepted only when the interpreter would read it as UTF-8 (no
cookie, or a UTF-8 one; an optional UTF-8 BOM) and its bytes are valid UTF-8. Both of
the first two lines are checked, whatever the interpreter would skip: a cookie has no
honest use in a research patch beyond naming UTF-8.

Characters that make a text display differently from how it parses (bidirectional
overrides, "Trojan Source") are refused too: the reviewer must see what runs.
"""

from __future__ import annotations

import re
from functools import lru_cache

_BOM = b"\xef\xbb\xbf"
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


@lru_cache(maxsize=1)
def _cookie() -> re.Pattern[bytes]:
    # PEP 263, as the tokenizer matches it (compiled on first use: most files have none)
    return re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)", re.ASCII)


def _normal(name: str) -> str:
    """tokenize's normalisation of an encoding name."""
    enc = name[:12].lower().replace("_", "-")
    if enc == "utf-8" or enc.startswith("utf-8-"):
        return "utf-8"
    return enc


def decode_python(data: bytes) -> tuple[str | None, str | None]:
    """(text, None) when the interpreter would read `data` as this UTF-8 text, else
    (None, reason)."""
    body = data[len(_BOM):] if data.startswith(_BOM) else data
    for line in body.split(b"\n", 2)[:2]:
        m = _cookie().match(line) if b"coding" in line else None
        if m:
            declared = m.group(1).decode("ascii", "replace")
            if _normal(declared) != "utf-8":
                return None, (f"declares the source encoding {declared!r}; "
                              "only UTF-8 sources are accepted (a cookie changes what runs, "
                              "not what the guards read).")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, f"is not valid UTF-8 (byte {e.start}); Python sources must be UTF-8."
    if not text.isascii():
        for i, ch in enumerate(text):
            if ch in _BIDI:
                line = text.count("\n", 0, i) + 1
                return None, (f"contains the bidirectional control character U+{ord(ch):04X} "
                              f"on line {line}: it makes the code display differently from how "
                              "it runs.")
    return text, None
