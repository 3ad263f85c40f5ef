"""A patch as lines to show, with the lines a finding points at marked.

Patches come from agents and may be malformed (miscounted hunks are common in LLM output),
so this reads them tolerantly and never raises: a line it cannot place is still shown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agents.report.model import Finding

_HUNK = re.compile(r"^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@")


@dataclass(frozen=True)
class PatchLine:
    text: str
    kind: str
    """'file' (--- / +++ / diff headers), 'hunk', 'add', 'del', 'ctx', or 'other'."""
    file: str | None
    old: int | None
    new: int | None
    marked: bool = False
    notes: tuple[str, ...] = ()
    """Rule ids of the findings that point at this line."""


def _strip(path: str) -> str:
    path = path.split("\t", 1)[0].strip()
    if path.startswith(("a/", "b/")):
        path = path[2:]
    return path


def parse(patch: str) -> list[PatchLine]:
    lines: list[PatchLine] = []
    old_file: str | None = None
    file: str | None = None
    old = new = None
    texts = patch.splitlines()
    for i, text in enumerate(texts):
        nxt = texts[i + 1] if i + 1 < len(texts) else ""
        if text.startswith("--- ") and nxt.startswith("+++ "):
            old = new = None  # a new file's headers, even right after a hunk (plain `diff -u`)
        if text.startswith("diff --git "):
            parts = text.split(" ")
            file = _strip(parts[-1]) if len(parts) >= 4 else None
            old_file = _strip(parts[-2]) if len(parts) >= 4 else None
            old = new = None
            lines.append(PatchLine(text, "file", file, None, None))
        elif text.startswith("--- ") and old is None:
            old_file = _strip(text[4:])
            if nxt.startswith("+++ "):  # the header pair names one file: the target's name
                target = _strip(nxt[4:])
                file = old_file if target == "/dev/null" else target
            lines.append(PatchLine(text, "file", file, None, None))
        elif text.startswith("+++ ") and old is None:
            target = _strip(text[4:])
            # A deleted file's "+++ /dev/null": findings name the old path.
            file = old_file if target == "/dev/null" else target
            lines.append(PatchLine(text, "file", file, None, None))
        elif m := _HUNK.match(text):
            old, new = int(m.group(1)), int(m.group(2))
            lines.append(PatchLine(text, "hunk", file, None, None))
        elif old is not None and new is not None and text.startswith("+"):
            lines.append(PatchLine(text, "add", file, None, new))
            new += 1
        elif old is not None and new is not None and text.startswith("-"):
            lines.append(PatchLine(text, "del", file, old, None))
            old += 1
        elif old is not None and new is not None and (text.startswith(" ") or text == ""):
            lines.append(PatchLine(text, "ctx", file, old, new))
            old += 1
            new += 1
        else:
            lines.append(PatchLine(text, "other", file, None, None))
    return lines


def mark(lines: list[PatchLine], findings: tuple[Finding, ...] | list[Finding]) -> list[PatchLine]:
    """Mark the lines each finding points at.

    A finding's line is a line of the file after the patch (an added line), or, when no
    added or context line has that number, of the file before it (a removed line). A
    finding about a removed line (evidence starting "(removed) ") marks the removed line
    with that text. A finding with a file and no line marks that file's headers.
    """
    notes: dict[int, list[str]] = {}
    for f in findings:
        hits = _locate(lines, f)
        for i in hits:
            notes.setdefault(i, []).append(f.rule)
    return [
        PatchLine(ln.text, ln.kind, ln.file, ln.old, ln.new, True, tuple(dict.fromkeys(notes[i])))
        if i in notes else ln
        for i, ln in enumerate(lines)
    ]


def _same(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return False
    return _strip(a) == _strip(b)


REMOVED = "(removed) "
"""How the guards prefix the evidence of a finding about a line the patch took away."""


def _locate(lines: list[PatchLine], f: Finding) -> list[int]:
    if not f.file:
        return []
    if f.evidence.startswith(REMOVED):
        # The guards number such a finding in the file after the patch, where the line no
        # longer exists; find the removed line by its text instead.
        text = f.evidence[len(REMOVED):].strip()
        hits = [i for i, ln in enumerate(lines)
                if ln.kind == "del" and _same(ln.file, f.file) and text
                and ln.text[1:].strip().startswith(text)]
        if hits:
            return hits
    if f.line is None or f.line <= 0:
        return [i for i, ln in enumerate(lines) if ln.kind == "file" and _same(ln.file, f.file)]
    for kind, attr in (("add", "new"), ("ctx", "new"), ("del", "old")):
        hits = [
            i for i, ln in enumerate(lines)
            if ln.kind == kind and _same(ln.file, f.file) and getattr(ln, attr) == f.line
        ]
        if hits:
            return hits
    return []
