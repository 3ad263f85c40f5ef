"""Validation text carried into the training step inside the editable files themselves.

The training step cannot read the validation split, but the code it runs comes from the
patch: a trainer that ships the validation text as a string, a data file or a comment
under `trainer/` would train on it. The diff guards refuse such patches (new data files,
size); this is the check that holds without them: before training, the staged editable
files are searched for 40-character prose windows of the scored part of the validation
text (the windows of `sandbox.scan`, so a line survives quoting and escaping), and more
than a handful of them voids the experiment.

Known not to be caught: text carried encoded (compressed, encrypted, base64): only the
guards and the patch-size limit stand in its way, and agents never see the split.
"""

from __future__ import annotations

import functools
from pathlib import Path

from sandbox.scan import EXCERPT_CHARS, _split_texts, _word_windows

CARRIED_LIMIT = 20
"""More windows than this in the editable files is carried text, not a chance phrase (an
honest trainer shares none with the built-in validation text)."""
VAL_CHARS = 8_000_000
"""Windows come from this much validation text from its start: the evaluator scores rows
packed from the start of the split, so that is the text worth carrying."""


@functools.cache
def _val_windows(val_dir: str, stamp: tuple[tuple[str, int, int], ...]) -> frozenset[bytes]:
    """Prose windows of the first VAL_CHARS of the split (cached per content stamp)."""
    windows: set[bytes] = set()
    used = 0
    for text in _split_texts(Path(val_dir)):
        windows |= _word_windows(text.encode("utf-8", "replace"), EXCERPT_CHARS, prose=True)
        used += len(text)
        if used >= VAL_CHARS:
            break
    return frozenset(windows)


def _stamp(val_dir: Path) -> tuple[tuple[str, int, int], ...]:
    return tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns)
                        for p in val_dir.iterdir() if p.is_file()))


def carried_val_text(tree: Path, files: list[str], val_dir: Path) -> str | None:
    """A one-line reason when the files under `tree` carry validation text; else None."""
    if not val_dir.is_dir():
        return None
    windows = _val_windows(str(val_dir.resolve()), _stamp(val_dir))
    found: dict[str, int] = {}
    for rel in files:
        try:
            data = (tree / rel).read_bytes()
        except OSError:
            continue
        hits = len(_word_windows(data, EXCERPT_CHARS, prose=False) & windows)
        if hits:
            found[rel] = hits
    total = sum(found.values())
    if total <= CARRIED_LIMIT:
        return None
    worst = max(found, key=found.__getitem__)
    return (f"before training: the editable files carry validation text ({total} excerpts, "
            f"{found[worst]} in {worst}); the training step may not train on it")
