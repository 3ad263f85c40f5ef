"""The frozen dataloader's background prefetch: same batches, same order, bounded, stops."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from ef_helpers import MINI, write_text_folder

import eval_frozen.dataloader as dataloader_module
from eval_frozen.dataloader import load_tokenizer, train_batches
from eval_frozen.errors import EvalInputError
from eval_frozen.packing import pack_rows
from eval_frozen.prepare import prepare
from eval_frozen.shards import iter_texts


@pytest.fixture(scope="module")
def mini_data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prefetch")
    data = tmp / "data"
    meta = prepare(MINI, data, f"local:{write_text_folder(tmp / 'texts')}", log=lambda _: None)
    data.joinpath("per_epoch").write_text(str(meta["train_tokens"] // (4 * 31) + 2))
    return data


def _inline_rows(data, batch_size: int, seq_len: int, n: int) -> list[tuple[np.ndarray, int]]:
    """What the loader yielded before it had a thread: packed rows in shard order, epochs."""
    tok = load_tokenizer(data)
    out: list[tuple[np.ndarray, int]] = []
    epoch = 1
    rows: list[list[int]] = []  # rows left at the end of a pass open the next one's batch
    while len(out) < n:
        docs = (d for texts in iter_texts(data / "train") for d in tok.encode_batch(texts))
        for row in pack_rows(docs, seq_len + 1, tok.bos_id):
            rows.append(row)
            if len(rows) == batch_size:
                out.append((np.array(rows, dtype=np.int64), epoch))
                rows = []
                if len(out) == n:
                    break
        epoch += 1
    return out


def _batch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "train_batches"]


def test_prefetched_batches_are_the_inline_batches_in_order(mini_data):
    # More than one pass over the split (see test_train_batches_without_val_and_epochs).
    n = int((mini_data / "per_epoch").read_text()) + 5
    expected = _inline_rows(mini_data, 4, 32, n)
    assert expected[-1][1] == 2, "the test must cross an epoch boundary"
    got = train_batches(mini_data, 4, 32)
    for i, (rows, epoch) in enumerate(expected):
        x, y, e = next(got)
        assert e == epoch, f"batch {i}"
        assert np.array_equal(x.numpy(), rows[:, :-1]), f"batch {i}"
        assert np.array_equal(y.numpy(), rows[:, 1:]), f"batch {i}"
        assert x.is_contiguous() and y.is_contiguous()
    got.close()


def test_prefetch_is_bounded_and_stops_when_closed(mini_data, monkeypatch):
    built: list[int] = []
    original = dataloader_module._cpu_batches

    def counting(*args, **kwargs):
        for item in original(*args, **kwargs):
            built.append(1)
            yield item

    monkeypatch.setattr(dataloader_module, "_cpu_batches", counting)
    before = set(_batch_threads())
    it = train_batches(mini_data, 4, 32)
    assert not set(_batch_threads()) - before, "nothing is read before the first next()"
    next(it)
    ours = set(_batch_threads()) - before
    assert len(ours) == 1
    # The thread fills the queue and then waits: never more than the bound ahead.
    deadline = time.monotonic() + 60
    while len(built) < 1 + dataloader_module.PREFETCH_BATCHES and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    assert len(built) <= 2 + dataloader_module.PREFETCH_BATCHES
    it.close()
    (thread,) = ours
    thread.join(timeout=60)
    assert not thread.is_alive()


def test_errors_on_the_thread_reach_the_loop(tmp_path, mini_data):
    import shutil

    shutil.copytree(mini_data, tmp_path / "d")
    with pytest.raises(EvalInputError, match="fewer than"):
        next(train_batches(tmp_path / "d", 100_000, 32))
    with pytest.raises(EvalInputError, match="no training shards"):
        next(train_batches(tmp_path / "nothing", 4, 32))


def test_exit_stops_and_joins_the_thread(mini_data):
    """What the atexit hook does: no prefetch thread is left inside native code when the
    interpreter finalizes (a daemon thread there can abort the process)."""
    before = set(_batch_threads())
    it = train_batches(mini_data, 4, 32)
    next(it)
    (thread,) = set(_batch_threads()) - before
    dataloader_module._stop_producers()
    assert not thread.is_alive()
    del it


def test_a_process_exits_cleanly_with_the_thread_busy(mini_data):
    import subprocess
    import sys

    code = ("import sys; from eval_frozen.dataloader import train_batches; "
            f"it = train_batches({str(mini_data)!r}, 4, 32); next(it); sys.exit(0)")
    for _ in range(3):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "terminate" not in done.stderr
