"""Data sources: the built-in corpus is real, deterministic and split disjointly (validation
from the help() topics only, training from the docstrings); local folders."""

from __future__ import annotations

import hashlib
import json
import sys

import pyarrow.parquet as pq
import pytest
from ef_helpers import MINI, data_dir_of, write_text_folder

from eval_frozen.errors import EvalInputError
from eval_frozen.prepare import prepare
from eval_frozen.profiles import get_profile
from eval_frozen.shards import list_shards
from eval_frozen.sources import parse_source, split_of
from eval_frozen.sources.builtin import SPLIT_RULE, BuiltinSource, docstrings


def _docs(split_dir):
    names, texts = [], []
    for shard in list_shards(split_dir):
        t = pq.read_table(shard)
        names += t.column("name").to_pylist()
        texts += t.column("text").to_pylist()
    return names, texts


def test_docstrings_takes_statement_strings_only():
    src = '''"""Module doc."""
x = """not a docstring"""
# a comment with "quotes" and """triples"""
def f():
    r"""Raw \\n doc: keeps the backslash."""
    y = 'inline' + "strings"
    return b"""bytes are not prose"""
class C:
    "Single-quoted\\tdoc with an escape."
'''
    assert docstrings(src) == [
        "Module doc.",
        "Raw \\n doc: keeps the backslash.",
        "Single-quoted   doc with an escape.",  # cleandoc expands tabs
    ]


def test_builtin_split_is_disjoint_and_matches_recorded_hash(tiny_workspace):
    data = data_dir_of(tiny_workspace)
    train_names, train_texts = _docs(data / "train")
    val_names, val_texts = _docs(data / "val")
    assert len(train_names) > 5000 and len(val_names) > 50
    assert not set(train_names) & set(val_names)
    # Validation is the help() topics, every one of them; training the stdlib's docstrings.
    from pydoc_data.topics import topics

    assert sorted(val_names) == sorted(f"pydoc:{t}" for t in topics if topics[t].strip())
    assert all(n.startswith("stdlib:") for n in train_names)
    assert not set(val_texts) & set(train_texts)
    # Real English prose, not generated strings.
    assert any("The \"if\" statement is used for conditional execution" in t for t in val_texts)
    meta = json.loads((data / "source.json").read_text())
    assert meta["source"]["details"]["split_rule"] == SPLIT_RULE
    for split, names, texts in (("train", train_names, train_texts), ("val", val_names, val_texts)):
        h = hashlib.sha256()
        for n, t in zip(names, texts, strict=True):
            h.update(n.encode() + b"\0" + t.encode() + b"\0")
        assert h.hexdigest() == meta["source"]["details"]["text_sha256"][split]


def test_builtin_fingerprint_names_the_split_rule():
    # A folder prepared by the old rule (topics and modules hashed to either side) has
    # another fingerprint, so prepare redoes it instead of calling it up to date.
    fp = BuiltinSource().fingerprint()
    assert fp.startswith(f"builtin:{SPLIT_RULE}:") and sys.version in fp


def test_builtin_validation_holds_the_small_profiles_evaluation(tmp_path):
    # The largest CPU profile scores 64k tokens: the topics alone must hold them.
    small = get_profile("small")
    meta = prepare(small, tmp_path / "small", "builtin", log=lambda _: None)
    assert meta["val_rows"] >= small.eval_rows
    assert meta["val_tokens"] > 1.5 * small.eval_tokens


def test_builtin_is_deterministic(tiny_workspace, tmp_path):
    # Rebuilt in this process, byte for byte what the fixture's prepare wrote in another.
    tiny = data_dir_of(tiny_workspace)
    info = BuiltinSource().materialize(tmp_path, get_profile("tiny"), log=lambda _: None)
    meta = json.loads((tiny / "source.json").read_text())
    assert info.details["text_sha256"] == meta["source"]["details"]["text_sha256"]
    for split in ("train", "val"):
        a = [p.read_bytes() for p in list_shards(tmp_path / split)]
        b = [p.read_bytes() for p in list_shards(tiny / split)]
        assert a == b and a


def test_split_is_stable_per_name():
    # A document's side depends on its own name only.
    assert split_of("stdlib:json/__init__.py", 0.1) == split_of("stdlib:json/__init__.py", 0.1)
    sides = [split_of(f"doc{i}", 0.1) for i in range(2000)]
    assert 120 < sides.count("val") < 280


def test_local_source_prepares_disjoint_splits(tmp_path):
    folder = write_text_folder(tmp_path / "texts")
    (folder / "binary.bin").write_bytes(b"\xff\xfe\x00bad")
    meta = prepare(MINI, tmp_path / "data", f"local:{folder}", log=lambda _: None)
    assert meta["source"]["details"]["skipped_non_utf8"] == 1
    train, _ = _docs(tmp_path / "data" / "train")
    val, _ = _docs(tmp_path / "data" / "val")
    assert train and val and not set(train) & set(val)
    assert len(train) + len(val) == 24


def test_local_source_rejects_missing_or_empty_folder(tmp_path):
    with pytest.raises(EvalInputError, match="not a folder"):
        prepare(MINI, tmp_path / "data", f"local:{tmp_path / 'nope'}", log=lambda _: None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(EvalInputError, match="empty train or val"):
        prepare(MINI, tmp_path / "data", f"local:{tmp_path / 'empty'}", log=lambda _: None)


def test_unknown_source_names_the_choices():
    with pytest.raises(EvalInputError, match="builtin.*local:PATH.*climbmix"):
        parse_source("s3://bucket")
