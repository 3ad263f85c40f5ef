"""karpathy/climbmix-400b-shuffle: parquet shards with a `text` column, fetched over HTTP.

Training shards are `shard_00000.parquet` onwards; the validation shard is pinned to the
last one (`shard_06542.parquet`, as autoresearch does) and lands in `val/`, never in
`train/`. Downloads run in parallel threads, retry with backoff, check that the file is
readable parquet, and write atomically (temp file, then rename), so an interrupted
prepare never leaves a half shard that a later run would trust.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from eval_frozen.errors import EvalInputError
from eval_frozen.profiles import Profile
from eval_frozen.shards import atomic_write_bytes, list_shards, shard_name
from eval_frozen.sources import SourceInfo

DEFAULT_BASE_URL = "https://huggingface.co/datasets/karpathy/climbmix-400b-shuffle/resolve/main"
BASE_URL_ENV = "LABWARDEN_CLIMBMIX_URL"
VAL_SHARD = 6542  # the last shard; pinned so every run scores on the same text
ATTEMPTS = 5
TIMEOUT_S = 60.0


def _check_parquet(data: bytes) -> None:
    import io

    import pyarrow.parquet as pq

    pf = pq.ParquetFile(io.BytesIO(data))
    if "text" not in pf.schema_arrow.names:
        raise ValueError("no 'text' column")


def download(url: str, dest: Path, *, attempts: int = ATTEMPTS, backoff_s: float = 1.0,
             log: Callable[[str], None] = lambda _: None) -> None:
    """Fetch `url` into `dest` atomically, retrying; EvalInputError after the last attempt."""
    last = ""
    for attempt in range(1, attempts + 1):
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp:
                data = resp.read()
            _check_parquet(data)
            atomic_write_bytes(dest, data)
            return
        except (urllib.error.URLError, OSError, ValueError) as e:
            last = f"{type(e).__name__}: {e}"
            log(f"climbmix: attempt {attempt}/{attempts} for {dest.name} failed ({last})")
            if attempt < attempts:
                time.sleep(backoff_s * 2 ** (attempt - 1))
    raise EvalInputError(f"could not download {url} after {attempts} attempts ({last}).")


class ClimbmixSource:
    def __init__(self, base_url: str | None = None, *, workers: int = 8,
                 backoff_s: float = 1.0) -> None:
        self.base_url = (base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")
        self.spec = "climbmix" if self.base_url == DEFAULT_BASE_URL else f"climbmix:{self.base_url}"
        self.workers = workers
        self.backoff_s = backoff_s

    def fingerprint(self) -> str:
        # Shards are immutable upstream; which ones we fetch depends only on the profile.
        return "climbmix"

    def materialize(self, data_dir: Path, profile: Profile,
                    log: Callable[[str], None]) -> SourceInfo:
        n_train = profile.climbmix_train_shards
        if not 0 < n_train <= VAL_SHARD:
            raise EvalInputError(f"climbmix_train_shards must be in 1..{VAL_SHARD}, "
                                 f"but got {n_train}.")
        jobs = [(i, data_dir / "train" / shard_name(i)) for i in range(n_train)]
        jobs.append((VAL_SHARD, data_dir / "val" / shard_name(VAL_SHARD)))
        # Idempotent: a shard already in place was verified and renamed into place whole.
        todo = [(i, dest) for i, dest in jobs if not dest.exists()]
        for split in ("train", "val"):
            expected = {dest.name for _, dest in jobs if dest.parent.name == split}
            for stray in list_shards(data_dir / split):
                if stray.name not in expected:
                    stray.unlink()  # a shard from another profile setting would break disjointness
        log(f"climbmix: {len(jobs) - len(todo)} shard(s) present, downloading {len(todo)} "
            f"from {self.base_url}")
        with ThreadPoolExecutor(max_workers=max(1, min(self.workers, len(todo) or 1))) as pool:
            futures = [
                pool.submit(download, f"{self.base_url}/{shard_name(i)}", dest,
                            backoff_s=self.backoff_s, log=log)
                for i, dest in todo
            ]
            for f in futures:
                f.result()
        return SourceInfo(
            spec=self.spec,
            train_docs=_count_rows(data_dir / "train"),
            val_docs=_count_rows(data_dir / "val"),
            train_chars=0,  # unknown without reading every shard; the seal hashes the files
            val_chars=0,
            details={"base_url": self.base_url, "train_shards": n_train,
                     "val_shard": shard_name(VAL_SHARD)},
        )


def _count_rows(split_dir: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in list_shards(split_dir))
