"""What a patch really changes: nothing, only a random seed, or code.

The keep rule never keeps a patch whose only effect is a different seed (a lucky seed is
noise, not research) or no effect at all (comments, whitespace). Deciding that from diff
lines is fragile, so the patch is applied to a scratch copy of the touched files and the
Python ASTs before and after are compared with every seed value blanked out, by the
normaliser the guards' `seed.fishing` review uses too (`guards/seeds.py`).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Literal

from unidiff import PatchSet
from unidiff.errors import UnidiffParseError

from guards.seeds import normalise, plain

Effect = Literal["none", "seed_only", "code"]


def _normal(source: str, blank_seeds: bool) -> str:
    # one seed normaliser for the keep rule and the guards' seed.fishing review
    return normalise(source) if blank_seeds else plain(source)


def classify_effect(diff: str, base_dir: Path) -> Effect:
    """`none`, `seed_only` or `code` for a unified diff against the files in `base_dir`.

    Anything that cannot be analysed (a non-Python file, a new or deleted file, a patch
    that does not apply, a syntax error) counts as `code`: this check only ever removes
    the right to be kept, so when in doubt it stays out of the way.
    """
    try:
        patch = PatchSet(diff)
    except UnidiffParseError:
        return "code"
    if not patch or any(f.is_added_file or f.is_removed_file or f.is_rename for f in patch):
        return "code"
    paths = [f.path for f in patch]
    if not all(p.endswith(".py") for p in paths):
        return "code"
    with tempfile.TemporaryDirectory(prefix="labwarden-effect-") as tmp:
        scratch = Path(tmp)
        for rel in paths:
            src = Path(base_dir) / rel
            if not src.is_file():
                return "code"
            (scratch / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, scratch / rel)
        proc = subprocess.run(["git", "apply", "--whitespace=nowarn", "-"], input=diff,
                              text=True, cwd=scratch, capture_output=True)
        if proc.returncode != 0:
            return "code"
        effect: Effect = "none"
        for rel in paths:
            try:
                before = (Path(base_dir) / rel).read_text(encoding="utf-8")
                after = (scratch / rel).read_text(encoding="utf-8")
                if _normal(before, False) == _normal(after, False):
                    continue
                if _normal(before, True) != _normal(after, True):
                    return "code"
            except (SyntaxError, UnicodeDecodeError, ValueError):
                return "code"
            effect = "seed_only"
        return effect
