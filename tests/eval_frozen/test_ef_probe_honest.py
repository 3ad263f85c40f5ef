"""No false positives: honest models, the trainer's own GPT first, pass the causality check.

The probes compare equal-shape passes, so an honest model's scored log-probabilities come
out the same whatever the row's neighbours, its index and the text after the cut: on CPU
bit for bit (0.0 nats measured), bfloat16 arithmetic inside the graph included.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from ef_helpers import VOCAB, data_dir_of

from eval_frozen import evaluate
from eval_frozen.profiles import get_profile
from trainer import train

T = 128
TOLERANCE = get_profile("tiny").probe_tolerance


def trainer_gpt(depth: int, width: int, seed: int) -> train.GPT:
    """The trainer's GPT with weights that make every part matter (at init the output
    projections are zero, so each block would be the identity)."""
    torch.manual_seed(seed)
    model = train.GPT(VOCAB, T, depth, width, train.N_HEAD, train.MLP_RATIO)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def _export(model: nn.Module, path: Path) -> Path:
    train.export_model(model, T, path)
    return path


def _assert_scored_cleanly(result: evaluate.EvalResult) -> None:
    assert result.status == "scored", result.reason
    (probe,) = result.probes
    assert probe["passed"] and probe["failed"] == 0
    assert probe["checks"] >= get_profile("tiny").probe_checks
    assert probe["max_deviation_nats"] <= TOLERANCE


# (2, 128) is the tiny profile's own size; the others are smaller, to keep the test fast.
@pytest.mark.parametrize("depth, width, seed", [(2, 128, 1), (1, 32, 0), (3, 48, 2)])
def test_trainer_gpt_is_scored_at_several_sizes_and_seeds(tiny_workspace, tmp_path, depth,
                                                          width, seed):
    path = _export(trainer_gpt(depth, width, seed), tmp_path / "gpt.pt2")
    _assert_scored_cleanly(evaluate.evaluate_file(path, data_dir_of(tiny_workspace)))


class AutocastGPT(nn.Module):
    """The trainer's GPT run under bfloat16 autocast inside forward (exported as an autocast
    region: the runtime guard follows it)."""

    def __init__(self) -> None:
        super().__init__()
        self.gpt = trainer_gpt(1, 64, 3)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return self.gpt(idx).float()


class CastToBf16(nn.Module):
    """Attention and head computed in bfloat16 by explicit casts in the graph."""

    def __init__(self, dim: int = 64, heads: int = 4) -> None:
        super().__init__()
        torch.manual_seed(4)
        self.emb = nn.Embedding(VOCAB, dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.head = nn.Linear(dim, VOCAB)
        self.heads = heads

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.emb(idx).bfloat16()
        B, T_, C = x.shape
        qkv = F.linear(x, self.qkv.weight.bfloat16(), self.qkv.bias.bfloat16())
        q, k, v = qkv.view(B, T_, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + y.transpose(1, 2).reshape(B, T_, C)
        return F.linear(x, self.head.weight.bfloat16(), self.head.bias.bfloat16()).float()


@pytest.mark.parametrize("make", [AutocastGPT, CastToBf16], ids=["autocast", "casts"])
def test_model_computing_in_bfloat16_is_scored(tiny_workspace, tmp_path, make):
    path = _export(make(), tmp_path / "bf16.pt2")
    _assert_scored_cleanly(evaluate.evaluate_file(path, data_dir_of(tiny_workspace)))


def test_eval_mode_dropout_and_zero_probability_dropout_are_accepted(tiny_workspace, tmp_path):
    class WithDropout(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gpt = trainer_gpt(1, 32, 5)
            self.drop = nn.Dropout(0.1)  # off after export_model's .eval()

        def forward(self, idx):
            return F.dropout(self.drop(self.gpt(idx)), p=0.0, training=True)

    path = _export(WithDropout(), tmp_path / "dropout.pt2")
    _assert_scored_cleanly(evaluate.evaluate_file(path, data_dir_of(tiny_workspace)))
