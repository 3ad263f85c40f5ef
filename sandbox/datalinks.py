"""The training step's own copy of the train split: a per-run folder of hard links.

Mounted where `data/train` is mounted, so the step reaches its data through this folder
only, and a watch on it (`sandbox.watch`) sees this step's reads and nobody else's: not
another experiment reading the shared shards, not the sandbox's own seal check.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def link_split(split: Path, dest: Path) -> Path:
    """Hard-link each file of `split` into the new folder `dest` (copy where linking fails:
    another file system, protected hard links). Sub-folders are not part of the shard
    layout (`<split>/shard_NNNNN.parquet`) and are left out."""
    dest.mkdir()
    for entry in sorted(split.iterdir()):
        if entry.is_symlink() or not entry.is_file():
            continue
        target = dest / entry.name
        try:
            os.link(entry, target)
        except OSError:
            shutil.copyfile(entry, target)
            target.chmod(0o644)
    dest.chmod(0o755)
    return dest


def remove_links(dest: Path) -> None:
    shutil.rmtree(dest, ignore_errors=True)
