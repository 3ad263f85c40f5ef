"""Tokenizer round trip and byte lengths; BOS-aligned packing; the train-only dataloader."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest
import tiktoken
from ef_helpers import MINI, data_dir_of, write_text_folder

import eval_frozen.dataloader as dataloader_module
from eval_frozen.dataloader import load_profile, load_tokenizer, train_batches
from eval_frozen.errors import EvalInputError
from eval_frozen.packing import pack_rows
from eval_frozen.prepare import prepare

TEXT = "The quick brown fox — naïve café, 12345 jumps; 漢字 and emoji 🦊.\n\tdef f(x): return x"


def test_tokenizer_round_trip_and_byte_lengths(tiny_workspace):
    tok = load_tokenizer(data_dir_of(tiny_workspace))
    assert isinstance(tok.enc, tiktoken.Encoding)
    assert tok.vocab_size == load_profile("tiny").vocab_size == 1024
    assert tok.bos_id == tok.vocab_size - 1
    ids = tok.encode(TEXT)
    assert tok.decode(ids) == TEXT
    assert tok.bos_id not in ids
    # Bytes per token add up to the UTF-8 length: what bits per byte divides by.
    assert sum(tok.token_bytes[i] for i in ids) == len(TEXT.encode("utf-8"))
    assert tok.token_bytes[tok.bos_id] == 0
    assert all(b > 0 for b in tok.token_bytes[:-1])
    # BPE learned merges: English compresses well below one token per byte.
    assert len(ids) < 0.8 * len(TEXT.encode("utf-8"))
    # The special token's text is plain text, never the BOS id.
    assert tok.bos_id not in tok.encode("<|bos|>")


def test_tokenizer_load_errors(tiny_workspace, tmp_path):
    with pytest.raises(EvalInputError, match="no tokenizer"):
        load_tokenizer(tmp_path)
    shutil.copytree(data_dir_of(tiny_workspace) / "tokenizer", tmp_path / "tokenizer")
    (tmp_path / "tokenizer" / "ranks.tiktoken").write_text("not base64!! x\n")
    with pytest.raises(EvalInputError, match="corrupt"):
        load_tokenizer(tmp_path)


def test_pack_rows_starts_every_row_with_bos_and_drops_nothing():
    docs = [[1, 2, 3], [4] * 11, [], [5, 6]]
    rows = list(pack_rows(docs, 5, bos_id=9))
    assert all(len(r) == 5 and r[0] == 9 for r in rows)
    flat = [t for r in rows for t in r if t != 9]
    assert flat == [1, 2, 3] + [4] * 11 + [5, 6][: len(flat) - 14]
    assert len(flat) >= 14


def test_train_batches_shapes_alignment_and_targets(tiny_workspace):
    data = data_dir_of(tiny_workspace)
    tok = load_tokenizer(data)
    batches = train_batches(data, batch_size=8, seq_len=128)
    for _ in range(3):
        x, y, epoch = next(batches)
        assert x.shape == y.shape == (8, 128)
        assert str(x.dtype) == "torch.int64" and x.is_contiguous()
        assert (x[:, 0] == tok.bos_id).all()
        assert (x[:, 1:] == y[:, :-1]).all()
        assert epoch == 1
        assert int(x.max()) < tok.vocab_size


def test_train_batches_without_val_and_epochs(tmp_path):
    data = tmp_path / "data"
    meta = prepare(MINI, data, f"local:{write_text_folder(tmp_path / 'texts')}",
                   log=lambda _: None)
    shutil.rmtree(data / "val")  # the training sandbox does not mount it
    # Each row carries at least 31 document tokens (at most one extra BOS per 33 ids), so
    # one pass over the split takes at most this many batches of 4 rows.
    per_epoch = meta["train_tokens"] // (4 * 31) + 2
    epochs = [e for _, (_, _, e) in zip(range(per_epoch + 5), train_batches(data, 4, 32),
                                        strict=False)]
    assert epochs[0] == 1 and epochs[-1] == 2
    assert epochs == sorted(epochs)


def test_train_batches_missing_data(tmp_path):
    with pytest.raises(EvalInputError, match="no training shards"):
        next(train_batches(tmp_path, 4, 32))


def test_dataloader_cannot_reach_validation():
    src = Path(dataloader_module.__file__).read_text()
    tree = ast.parse(src)
    docs = {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.FunctionDef) and ast.get_docstring(node)}
    strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
               and isinstance(n.value, str) and id(n) not in docs]
    assert "train" in strings  # the check sees the folder names the loader uses
    assert not any("val" in s for s in strings)
    imported = {a.name if isinstance(n, ast.Import) else n.module
                for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)
                for a in n.names}
    assert not any(m and ("evaluate" in m or "sources" in m or "seal" in m) for m in imported)
