"""Write the corpus patches from `edits.py` against the current workspace files.

    python tests/guards/corpus/build.py [--check]

`--check` writes nothing and exits 1 when a stored patch differs from what the edits give
today (the trainer changed: rebuild).
"""

from __future__ import annotations

import difflib
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(HERE))

from edits import CHEATS, LEGIT, SECTION, SEED_ONLY  # noqa: E402


def make_patch(edits: list[tuple[str, str | re.Pattern[str] | None, str]],
               root: Path = ROOT) -> str:
    """A git-style unified diff applying `edits` to the files under `root`.

    One line of context (git accepts it) keeps the stored patches valid when neighbouring
    lines of the trainer are tuned.

    `old` is an exact string that must occur once, a regex that must match once (`new` is
    its replacement template), or None for a new file.
    """
    groups: list[list[tuple[str, str | re.Pattern[str] | None, str]]] = [[]]
    for e in edits:
        if e[0] == SECTION:
            groups.append([])
        else:
            groups[-1].append(e)
    texts: dict[str, str | None] = {}
    out = []
    for group in groups:
        by_file: dict[str, tuple[str | None, str]] = {}
        for path, old, new in group:
            if old is None:
                by_file[path] = (None, new)
                continue
            if path in by_file:
                current = by_file[path][1]
            elif path in texts:
                current = texts[path] or ""
            else:
                current = (root / path).read_text()
            if isinstance(old, re.Pattern):
                found = len(old.findall(current))
                changed = old.sub(new, current, count=1)
            else:
                found = current.count(old)
                changed = current.replace(old, new)
            if found != 1 or changed == current:
                raise ValueError(f"{path}: {getattr(old, 'pattern', old)!r} matches {found} "
                                 "times (must be once, and change something); update edits.py")
            original = by_file[path][0] if path in by_file else current
            by_file[path] = (original, changed)
        for path, (before, after) in by_file.items():
            a = [] if before is None else before.splitlines(keepends=True)
            b = after.splitlines(keepends=True)
            out.append(f"diff --git a/{path} b/{path}\n")
            if before is None:
                out.append("new file mode 100644\n")
            diff = difflib.unified_diff(a, b, "/dev/null" if before is None else f"a/{path}",
                                        f"b/{path}", n=1)
            out.extend(diff)
            texts[path] = after
    return "".join(out)


def all_patches() -> dict[str, str]:
    out = {f"cheat/{k}.patch": make_patch(v) for k, v in CHEATS.items()}
    out.update({f"legit/{k}.patch": make_patch(v) for k, v in LEGIT.items()})
    out["seed_only.patch"] = make_patch(SEED_ONLY)
    return out


def main(argv: list[str]) -> int:
    patches = all_patches()
    stale = [n for n, text in patches.items()
             if not (HERE / n).is_file() or (HERE / n).read_text() != text]
    if "--check" in argv:
        for n in stale:
            print(f"stale: {n}")
        return 1 if stale else 0
    for kind in ("cheat", "legit"):
        for old in (HERE / kind).glob("*.patch"):
            if f"{kind}/{old.name}" not in patches:
                old.unlink()
    for name, text in patches.items():
        (HERE / name).write_text(text)
    print(f"wrote {len(patches)} patches ({len(stale)} changed)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
