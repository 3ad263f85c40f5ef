"""prepare: idempotent, refuses a validation split too small for the profile; profiles."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from ef_helpers import MINI, data_dir_of, write_text_folder

from eval_frozen.errors import EvalInputError
from eval_frozen.prepare import main as prepare_main
from eval_frozen.prepare import prepare
from eval_frozen.profiles import get_profile


def test_second_prepare_changes_nothing(workspace_copy, capsys):
    data = data_dir_of(workspace_copy)
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in data.rglob("*") if p.is_file()}
    assert prepare_main(["--profile", "tiny", "--workspace", str(workspace_copy)]) == 0
    assert "up to date" in capsys.readouterr().out
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in data.rglob("*") if p.is_file()}
    assert after == before


def test_broken_data_is_prepared_again(workspace_copy, capsys):
    data = data_dir_of(workspace_copy)
    seal_before = json.loads((data / "seal.json").read_text())["seal_hash"]
    (data / "tokenizer" / "ranks.tiktoken").write_text("")
    assert prepare_main(["--profile", "tiny", "--workspace", str(workspace_copy)]) == 0
    assert "ready" in capsys.readouterr().out
    assert json.loads((data / "seal.json").read_text())["seal_hash"] == seal_before


def test_validation_too_small_for_the_profile(tmp_path):
    greedy = replace(MINI, eval_tokens=32 * 100_000)
    with pytest.raises(EvalInputError, match="validation split holds .* rows .* scores 100000"):
        prepare(greedy, tmp_path / "data", f"local:{write_text_folder(tmp_path / 't')}",
                log=lambda _: None)
    assert not (tmp_path / "data" / "seal.json").exists()  # never looks ready


def test_profiles(capsys):
    gpu = get_profile("gpu")
    assert (gpu.seq_len, gpu.vocab_size, gpu.time_budget_s) == (2048, 8192, 300.0)
    assert gpu.default_source == "climbmix" and gpu.eval_tokens == 20_971_520
    tiny = get_profile("tiny")
    assert tiny.device == "cpu" and tiny.eval_tokens % tiny.seq_len == 0
    with pytest.raises(ValueError, match="unknown profile 'huge'; choose one of: gpu, small, tiny"):
        get_profile("huge")
    assert prepare_main(["--profile", "huge"]) == 2
    assert "unknown profile" in capsys.readouterr().err
