"""The probe plan: secret, fresh per run, shaped like scoring, replacing the future properly."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from ef_helpers import VOCAB, data_dir_of

from eval_frozen import evaluate
from eval_frozen.model_io import load_program
from eval_frozen.probes import draw_plan, probe_input
from eval_frozen.profiles import get_profile
from trainer.train import export_model

T = 128
BOS = VOCAB - 1  # the tokenizer puts BOS after the byte-pair ranks


def test_plan_has_the_scoring_shapes_distinct_rows_and_uniform_cuts():
    rng = np.random.default_rng(1)
    plan = draw_plan([32] * 8, T, 512, rng)
    assert len(plan) == 16 and all(len(pb.rows) == 32 for pb in plan)
    for pb in plan:
        assert len(set(pb.rows)) == len(pb.rows)  # a row never meets itself in a batch
        assert all(0 <= r < 256 for r in pb.rows) and all(0 <= c < T for c in pb.cuts)
    cuts = np.concatenate([pb.cuts for pb in plan])
    # Every position is cut equally often (512 / 128), the last one included.
    assert np.bincount(cuts, minlength=T).tolist() == [4] * T
    # Rows sit in a random order: almost none keeps its scoring neighbour below it.
    kept = sum(b - a == 1 for pb in plan for a, b in zip(pb.rows, pb.rows[1:], strict=False))
    assert kept < 0.05 * sum(len(pb.rows) - 1 for pb in plan)


def test_partial_last_batch_gets_probe_batches_of_its_own_size():
    plan = draw_plan([24] * 10 + [16], T, 512, np.random.default_rng(2))
    sizes = [len(pb.rows) for pb in plan]
    assert set(sizes) == {24, 16} and sum(sizes) >= 512
    for pb in plan:
        if len(pb.rows) == 16:
            assert set(pb.rows) == set(range(240, 256))  # the rows scored at that size
        else:
            assert max(pb.rows) < 240


def test_probe_input_keeps_the_prefix_and_replaces_every_later_token():
    rng = np.random.default_rng(3)
    inputs = torch.randint(0, VOCAB, (64, T))
    inputs[:, 0] = BOS
    inputs[5, 40:60] = BOS  # BOS inside a row (a document start) is replaced too
    (pb,) = draw_plan([64], T, 64, rng)
    x = probe_input(inputs, pb, vocab_size=VOCAB, bos_id=BOS, rng=rng)
    assert x.shape == (64, T) and x.dtype == torch.int64
    for i, (r, c) in enumerate(zip(pb.rows, pb.cuts, strict=True)):
        assert torch.equal(x[i, : c + 1], inputs[r, : c + 1])
        tail, original = x[i, c + 1 :], inputs[r, c + 1 :]
        assert bool((tail != original).all()) and bool((tail != BOS).all())
        assert bool(((tail >= 0) & (tail < VOCAB)).all())


class Copier(nn.Module):
    """A bigram model that adds the next token's one-hot (8 nats) when `gate(batch size)`."""

    def __init__(self, only_batch_size: int | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(VOCAB, 16)
        self.head = nn.Linear(16, VOCAB)
        self.only = only_batch_size

    def forward(self, idx):
        nxt = F.pad(F.one_hot(idx[:, 1:], VOCAB).float(), (0, 0, 0, 1))
        gate = torch.ones((), device=idx.device)
        if self.only is not None:
            gate = (idx.new_ones(idx.shape[0]).sum() == self.only).float()
        return self.head(self.emb(idx)) + 8.0 * gate * nxt


def _export(model: nn.Module, path: Path) -> Path:
    export_model(model, T, path)
    return path


def test_cheat_only_in_the_partial_last_batch_is_rejected(tiny_workspace, tmp_path):
    """Scoring in batches of 24 leaves a last batch of 16 rows; the cheat copies only there
    (6% of the scored rows). Those rows get 32 checks of their own, each failing unless
    the cut is the last position: evasion (1/128)^32 ~ 4e-68."""
    profile = replace(get_profile("tiny"), eval_batch_size=24)
    data = data_dir_of(tiny_workspace)
    honest = evaluate.score(load_program(_export(Copier(0), tmp_path / "h.pt2")), data, profile)
    assert honest.status == "scored", honest.reason
    assert honest.probes[0]["batch_sizes"] == [16, 24]
    sly = evaluate.score(load_program(_export(Copier(16), tmp_path / "s.pt2")), data, profile)
    assert sly.status == "rejected" and sly.reason.startswith("probe_failed: causality")
    assert all(f["row"] >= 240 for f in sly.probes[0]["worst_failures"])


def test_plan_is_fresh_every_run_and_ignores_every_seed_a_trainer_can_set(tiny_workspace,
                                                                         tmp_path):
    path = _export(Copier(), tmp_path / "copier.pt2")
    seen = []
    for _ in range(2):
        torch.manual_seed(0)
        np.random.seed(0)
        random.seed(0)
        result = evaluate.evaluate_file(path, data_dir_of(tiny_workspace))
        assert result.status == "rejected"
        seen.append([(f["row"], f["cut"]) for f in result.probes[0]["worst_failures"]])
    assert len(seen[0]) == 5 and seen[0] != seen[1]


@pytest.mark.parametrize("n_rows, batch", [(256, 32), (250, 32), (7, 32)])
def test_every_scored_row_can_be_drawn(n_rows, batch):
    sizes = [min(batch, n_rows - i) for i in range(0, n_rows, batch)]
    rows = {r for pb in draw_plan(sizes, T, 4096, np.random.default_rng(4)) for r in pb.rows}
    assert rows == set(range(n_rows))
