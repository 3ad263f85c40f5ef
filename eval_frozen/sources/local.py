"""A local folder of UTF-8 text files: each file is one document, named by its relative path.

Files that are not valid UTF-8 are skipped (and counted); hidden files and folders too.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from eval_frozen.errors import EvalInputError
from eval_frozen.profiles import Profile
from eval_frozen.sources import SourceInfo, split_of, store_splits

_SHARD_CHARS = 64_000_000


class LocalSource:
    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().resolve()
        self.spec = f"local:{self.root}"

    def _files(self) -> list[Path]:
        if not self.root.is_dir():
            raise EvalInputError(f"local source {self.root} is not a folder.")
        return sorted(
            p for p in self.root.rglob("*")
            if p.is_file() and not any(part.startswith(".")
                                       for part in p.relative_to(self.root).parts)
        )

    def fingerprint(self) -> str:
        # Names, sizes and mtimes: a changed file re-runs prepare, an untouched folder does not.
        h = hashlib.sha256()
        for p in self._files():
            st = p.stat()
            h.update(f"{p.relative_to(self.root)}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
        return f"{self.spec}:{h.hexdigest()}"

    def materialize(self, data_dir: Path, profile: Profile,
                    log: Callable[[str], None]) -> SourceInfo:
        splits: dict[str, list[tuple[str, str]]] = {"train": [], "val": []}
        skipped = 0
        for path in self._files():
            try:
                text = path.read_text(encoding="utf-8").strip()
            except (UnicodeDecodeError, OSError):
                skipped += 1
                continue
            if text:
                name = path.relative_to(self.root).as_posix()
                splits[split_of(name, profile.val_fraction)].append((name, text))
        if not splits["train"] or not splits["val"]:
            n = len(splits["train"]) + len(splits["val"])
            raise EvalInputError(
                f"local source {self.root}: {n} text file(s) give an empty train or val split; "
                f"it needs more files (val takes ~{profile.val_fraction:.0%} of them by name hash)."
            )
        info = store_splits(self.spec, data_dir, splits, _SHARD_CHARS,
                            {"skipped_non_utf8": skipped, "root": os.fspath(self.root)})
        log(f"local: {info.train_docs} train files, {info.val_docs} val files"
            + (f", {skipped} skipped (not UTF-8)" if skipped else ""))
        return info
