"""Documents on disk: parquet shards with a `text` column, one folder per split.

Every source (built-in, local folder, climbmix) ends up in this one format, so the
dataloader and the evaluator read a single layout: `<split>/shard_NNNNN.parquet`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

SHARD_GLOB = "shard_*.parquet"
ROWS_PER_GROUP = 1024  # small row groups keep the first batch of a stream quick to read


def shard_name(index: int) -> str:
    return f"shard_{index:05d}.parquet"


def list_shards(split_dir: Path) -> list[Path]:
    """The split's shards in name order (ignores partial `.tmp` downloads)."""
    return sorted(p for p in Path(split_dir).glob(SHARD_GLOB) if p.is_file())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file and rename, so a crash never leaves half a file under `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes 0600 files; the sandbox reads them as another user through a mount.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_shard(path: Path, names: list[str], texts: list[str]) -> None:
    """One parquet shard holding `name` and `text` columns, written atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"name": pa.array(names, pa.string()), "text": pa.array(texts, pa.string())})
    sink = pa.BufferOutputStream()
    # No statistics or timestamps: the same documents always give the same bytes (the seal).
    pq.write_table(table, sink, row_group_size=ROWS_PER_GROUP, compression="zstd",
                   write_statistics=False)
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


def iter_texts(split_dir: Path, batch_rows: int = 256) -> Iterator[list[str]]:
    """Batches of document texts from every shard of one split, in a fixed order."""
    import pyarrow.parquet as pq

    for shard in list_shards(split_dir):
        pf = pq.ParquetFile(shard)
        for batch in pf.iter_batches(batch_size=batch_rows, columns=["text"]):
            yield [t for t in batch.column(0).to_pylist() if t]


def write_split(split_dir: Path, docs: Iterable[tuple[str, str]], shard_chars: int) -> int:
    """Write (name, text) documents into shards of about `shard_chars` characters each.

    Returns the number of shards. Existing shards in the folder are replaced.
    """
    split_dir.mkdir(parents=True, exist_ok=True)
    for old in list_shards(split_dir):
        old.unlink()
    names: list[str] = []
    texts: list[str] = []
    size = 0
    index = 0
    for name, text in docs:
        names.append(name)
        texts.append(text)
        size += len(text)
        if size >= shard_chars:
            write_shard(split_dir / shard_name(index), names, texts)
            index += 1
            names, texts, size = [], [], 0
    if texts or index == 0:
        write_shard(split_dir / shard_name(index), names, texts)
        index += 1
    return index
