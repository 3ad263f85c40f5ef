"""The public API the trainer imports: profile, tokenizer and training batches. Train split only.

    from eval_frozen.dataloader import load_profile, load_tokenizer, train_batches

This module reads `<data dir>/tokenizer/` and `<data dir>/train/` and nothing else; it has no
way to name the validation split, and works where `val/` is not mounted (the training
sandbox). Everything else in eval_frozen is private to the evaluator and prepare.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval_frozen import tokenizer as _tokenizer
from eval_frozen.errors import EvalInputError
from eval_frozen.packing import pack_rows
from eval_frozen.profiles import Profile, get_profile
from eval_frozen.shards import iter_texts, list_shards

if TYPE_CHECKING:
    import torch

__all__ = ["Profile", "Tokenizer", "load_profile", "load_tokenizer", "train_batches"]

Tokenizer = _tokenizer.Tokenizer


def load_profile(name: str) -> Profile:
    """The frozen profile `name` (tiny, small, gpu); ValueError naming the choices otherwise."""
    return get_profile(name)


def load_tokenizer(data_dir: str | Path) -> Tokenizer:
    """The prepared tokenizer: `.encode(text)`, `.decode(ids)`, `.vocab_size`, `.bos_id`."""
    return _tokenizer.load(Path(data_dir) / "tokenizer")


def _train_docs(train_dir: Path, tok: Tokenizer) -> Iterator[list[int]]:
    # tiktoken releases the GIL: one thread per core keeps a GPU fed.
    threads = max(1, min(16, os.cpu_count() or 1))
    for texts in iter_texts(train_dir):
        yield from tok.encode_batch(texts, num_threads=threads)


# Batches the background thread builds ahead of the training loop (a bounded queue).
PREFETCH_BATCHES = 4


def train_batches(data_dir: str | Path, batch_size: int, seq_len: int,
                  device: str = "cpu") -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
    """Yield `(x, y, epoch)` forever: int64 `(batch_size, seq_len)` inputs and next-token targets.

    Rows are BOS-aligned (see `eval_frozen.packing`), read in shard order; `epoch` counts
    passes over the train split from 1. Raises EvalInputError if the train split is missing.

    Reading, tokenization and batch building run on a background thread, up to
    PREFETCH_BATCHES ahead, so the loop does not wait for them; on CUDA the batches are
    pinned there and copied to the device without blocking. The batches and their order
    are those of the same code run inline. The thread starts at the first `next()` (the
    first read of the train split, where the sandbox starts the budget) and stops when
    the iterator is closed or collected.
    """
    data_dir = Path(data_dir)
    train_dir = data_dir / "train"
    if not list_shards(train_dir):
        raise EvalInputError(f"no training shards in {train_dir}; run `labwarden prepare` first.")
    if batch_size < 1 or seq_len < 1:
        raise ValueError(
            f"batch_size and seq_len must be positive, but got {batch_size}, {seq_len}.")
    yield from _prefetched(
        _cpu_batches(data_dir, batch_size, seq_len, device.startswith("cuda")), device)


def _cpu_batches(data_dir: Path, batch_size: int, seq_len: int,
                 pin: bool) -> Iterator[tuple[torch.Tensor, int]]:
    """(rows (batch_size, seq_len + 1) on the CPU, epoch), forever."""
    import numpy as np
    import torch

    train_dir = data_dir / "train"
    tok = load_tokenizer(data_dir)
    epoch = 1
    rows: list[list[int]] = []
    while True:
        produced = False
        for row in pack_rows(_train_docs(train_dir, tok), seq_len + 1, tok.bos_id):
            rows.append(row)
            if len(rows) == batch_size:
                produced = True
                # via numpy: ten times faster than torch.tensor on nested lists
                batch = torch.from_numpy(np.array(rows, dtype=np.int64))
                rows = []
                yield (batch.pin_memory() if pin else batch), epoch
        if not produced and epoch == 1:
            raise EvalInputError(f"the train split in {train_dir} holds fewer than "
                                 f"{batch_size} rows of {seq_len + 1} tokens.")
        epoch += 1


_DONE = object()
_PRODUCERS: list[tuple[Any, Any]] = []  # (stop event, thread) of every live prefetch


def _stop_producers() -> None:
    """At exit, stop and join every prefetch thread while the interpreter still runs: a
    daemon thread still inside native code (tokenizer, numpy, torch) when the process
    finalizes can abort it ("terminate called without an active exception")."""
    for stop, _ in _PRODUCERS:
        stop.set()
    for _, thread in _PRODUCERS:
        thread.join(timeout=60)


atexit.register(_stop_producers)


def _prefetched(source: Iterator[tuple[torch.Tensor, int]],
                device: str) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=PREFETCH_BATCHES)
    stop = threading.Event()

    def offer(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in source:
                if not offer(item):
                    return
        except BaseException as e:  # handed to the loop, raised there
            offer((_DONE, e))

    thread = threading.Thread(target=produce, name="train_batches", daemon=True)
    _PRODUCERS[:] = [(e, t) for e, t in _PRODUCERS if t.is_alive()]
    _PRODUCERS.append((stop, thread))
    thread.start()
    try:
        while True:
            batch, epoch = q.get()
            if batch is _DONE:
                raise epoch
            if device != "cpu":
                batch = batch.to(device, non_blocking=device.startswith("cuda"))
            yield batch[:, :-1].contiguous(), batch[:, 1:].contiguous(), epoch
    finally:
        stop.set()
