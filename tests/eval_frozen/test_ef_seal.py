"""The seal: written by prepare, verified, and broken by any change to a frozen file."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from ef_helpers import data_dir_of

from eval_frozen import seal
from eval_frozen.errors import EvalInputError


def _seal_cli(ws, *args):
    return subprocess.run([sys.executable, "-m", "eval_frozen.seal", "--workspace", str(ws), *args],
                          cwd=ws, capture_output=True, text=True, timeout=300)


def test_prepare_writes_a_complete_seal(tiny_workspace):
    data = data_dir_of(tiny_workspace)
    s = json.loads((data / "seal.json").read_text())
    assert set(s["groups"]) == {"code", "tokenizer", "train", "val", "meta"}
    assert "train/shard_00000.parquet" in s["groups"]["train"]
    assert "val/shard_00000.parquet" in s["groups"]["val"]
    assert "tokenizer/ranks.tiktoken" in s["groups"]["tokenizer"]
    assert "eval_frozen/evaluate.py" in s["groups"]["code"]
    assert len(s["seal_hash"]) == 64


def test_verify_cli_ok_then_names_each_kind_of_break(workspace_copy):
    ws = workspace_copy
    data = data_dir_of(ws)
    ok = _seal_cli(ws, "--verify")
    assert ok.returncode == 0, ok.stderr
    assert json.loads((data / "seal.json").read_text())["seal_hash"] in ok.stdout

    (ws / "eval_frozen" / "probes.py").write_text(
        (ws / "eval_frozen" / "probes.py").read_text() + "\n# tampered\n")
    broken = _seal_cli(ws, "--verify")
    assert broken.returncode == 1
    assert "changed eval_frozen/probes.py" in broken.stderr


def test_verify_names_changed_missing_and_extra_data(workspace_copy):
    data = data_dir_of(workspace_copy)
    shard = data / "val" / "shard_00000.parquet"
    original = shard.read_bytes()
    shard.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    assert seal.verify(data).problem == "changed val/shard_00000.parquet"
    shard.write_bytes(original)
    assert seal.verify(data)

    (data / "train" / "shard_00001.parquet").write_bytes(b"smuggled")
    assert seal.verify(data).problem == "extra train/shard_00001.parquet"
    # The evaluator's groups do not include train: it still verifies without it.
    assert seal.verify(data, seal.EVAL_GROUPS)
    (data / "train" / "shard_00001.parquet").unlink()

    (data / "tokenizer" / "tokenizer.json").unlink()
    assert seal.verify(data).problem == "missing tokenizer/tokenizer.json"


def test_editing_seal_json_is_detected(workspace_copy):
    data = data_dir_of(workspace_copy)
    s = json.loads((data / "seal.json").read_text())
    name = "val/shard_00000.parquet"
    s["groups"]["val"][name] = "0" * 64
    (data / "seal.json").write_text(json.dumps(s))
    check = seal.verify(data)
    assert not check and "seal.json itself was edited" in check.problem


def test_missing_seal_is_an_input_error(tmp_path):
    with pytest.raises(EvalInputError, match="no seal"):
        seal.verify(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "eval_frozen.seal", "--verify",
                           "--data-dir", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "no seal" in proc.stderr


def test_reseal_after_change_then_verify(workspace_copy):
    data = data_dir_of(workspace_copy)
    before = json.loads((data / "seal.json").read_text())["seal_hash"]
    (data / "val" / "extra.parquet").write_bytes(b"x")
    assert _seal_cli(workspace_copy).returncode == 0
    after = json.loads((data / "seal.json").read_text())["seal_hash"]
    assert after != before
    assert seal.verify(data)


def test_verify_code_of_another_checkout(workspace_copy):
    data = data_dir_of(workspace_copy)
    code = workspace_copy / "eval_frozen"
    assert seal.verify(data, code_root=code)
    (code / "sneaky.py").write_text("x = 1\n")
    assert seal.verify(data, code_root=code).problem == "extra eval_frozen/sneaky.py"
    assert seal.verify(data)  # the running package is untouched
