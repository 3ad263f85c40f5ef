"""Data sources: each writes disjoint `train/` and `val/` shard folders under a data dir.

A source spec is a string: `builtin` (offline English text from the running CPython),
`local:PATH` (a folder of UTF-8 text files) or `climbmix[:BASE_URL]` (the
karpathy/climbmix-400b-shuffle parquet shards, validation shard pinned).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from eval_frozen.errors import EvalInputError
from eval_frozen.profiles import Profile

__all__ = ["Source", "SourceInfo", "parse_source", "split_of", "store_splits"]


@dataclass
class SourceInfo:
    """What a source wrote; saved as `source.json` next to the splits (and sealed)."""

    spec: str
    train_docs: int
    val_docs: int
    train_chars: int
    val_chars: int
    details: dict[str, Any] = field(default_factory=dict)


def store_splits(
    spec: str,
    data_dir: Path,
    splits: dict[str, list[tuple[str, str]]],
    shard_chars: int,
    details: dict[str, Any],
) -> SourceInfo:
    """Write the `train` and `val` documents as shards and describe them, text hashes included
    (the hashes go into `source.json`, which the seal covers)."""
    from eval_frozen.shards import write_split

    hashes = {}
    for split, docs in splits.items():
        h = hashlib.sha256()
        for name, text in docs:
            h.update(name.encode() + b"\0" + text.encode() + b"\0")
        hashes[split] = h.hexdigest()
        write_split(data_dir / split, docs, shard_chars)
    return SourceInfo(
        spec=spec,
        train_docs=len(splits["train"]),
        val_docs=len(splits["val"]),
        train_chars=sum(len(t) for _, t in splits["train"]),
        val_chars=sum(len(t) for _, t in splits["val"]),
        details={**details, "text_sha256": hashes},
    )


class Source(Protocol):
    """Writes `data_dir/train` and `data_dir/val`. Raises EvalInputError on bad input."""

    spec: str

    def fingerprint(self) -> str:
        """Cheap identity of the content this source would write (for idempotent prepare)."""
        ...

    def materialize(self, data_dir: Path, profile: Profile,
                    log: Callable[[str], None]) -> SourceInfo:
        ...


def split_of(name: str, val_fraction: float) -> str:
    """'val' or 'train' from a hash of the document's name: stable when other documents change."""
    import hashlib

    h = int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big")
    return "val" if (h % 1_000_000) < val_fraction * 1_000_000 else "train"


def parse_source(spec: str) -> Source:
    """The source a spec names; EvalInputError naming the accepted forms otherwise."""
    kind, _, arg = spec.partition(":")
    if kind == "builtin" and not arg:
        from eval_frozen.sources.builtin import BuiltinSource

        return BuiltinSource()
    if kind == "local" and arg:
        from eval_frozen.sources.local import LocalSource

        return LocalSource(Path(arg))
    if kind == "climbmix":
        from eval_frozen.sources.climbmix import ClimbmixSource

        return ClimbmixSource(base_url=arg or None)
    raise EvalInputError(
        f"unknown data source {spec!r}; use 'builtin', 'local:PATH' or 'climbmix[:BASE_URL]'."
    )
