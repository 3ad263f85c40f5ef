"""Cheating models, exported as the trainer exports, must not be scored.

Each attack is a small `nn.Module` on top of an honest bigram model: it boosts the logit
of the next token (read from the future) only somewhere, in the disguises the old fixed
probes let through and a few new ones. All are exported with `trainer.train.export_model`
(dynamic batch, seq_len 128) and scored by `evaluate_file` against the prepared tiny data.

Verdicts are deterministic: the tiny profile runs N = 512 secret checks, each on a
uniformly drawn row, and the attacks here move their output at a fraction f >= 1/2 of the
scored (row, position) pairs (stated per attack), so they evade with probability
<= (1 - f)^512 <= 2^-512 ~ 7e-155; the small-mix attack moves the output at every check;
the one-position attacks meet the 4 checks every position gets, each of which fails.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from ef_helpers import VOCAB, data_dir_of

from eval_frozen import evaluate
from eval_frozen.errors import EvalInputError
from eval_frozen.profiles import get_profile
from trainer.train import export_model

T = 128
BOOST = 8.0  # nats added to the next token's logit where an attack copies it
OLD_PROBE_CUTS = (32, 64, 115)  # the public fixed positions, int(f * 128) for 0.25, 0.5, 0.9
TOLERANCE = get_profile("tiny").probe_tolerance


class Bigram(nn.Module):
    """The honest part: logits at p depend on token p only."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.emb = nn.Embedding(VOCAB, 32)
        self.head = nn.Linear(32, VOCAB)

    def honest(self, idx: torch.Tensor) -> torch.Tensor:
        return self.head(self.emb(idx))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.honest(idx)

    @staticmethod
    def next_token(idx: torch.Tensor) -> torch.Tensor:
        """(B, T, V) one-hot of the token at p + 1 (the target), zero at the last position."""
        return F.pad(F.one_hot(idx[:, 1:], VOCAB).float(), (0, 0, 0, 1))

    def copy_where(self, idx: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        """Honest logits, plus BOOST on the next token where `gate` (broadcast to B, T) holds."""
        B, T_ = idx.shape
        gate = gate.expand(B, T_).float().unsqueeze(-1)
        return self.honest(idx) + BOOST * gate * self.next_token(idx)


class NotAtOldPositions(Bigram):
    """Copies everywhere but just before the old probe positions. f = 1 - 4/128."""

    def __init__(self) -> None:
        super().__init__()
        keep = torch.ones(T)
        keep[[j - 1 for j in OLD_PROBE_CUTS]] = 0.0
        self.register_buffer("keep", keep, persistent=False)

    def forward(self, idx):
        return self.copy_where(idx, self.keep[None, :])


class RowsFromFour(Bigram):
    """Copies only in batch rows 4 and up (probes used rows 0-3). f = 28/32 - 1/128."""

    def forward(self, idx):
        rows = torch.arange(idx.shape[0], device=idx.device)
        return self.copy_where(idx, (rows >= 4)[:, None])


def _batch_size(idx: torch.Tensor) -> torch.Tensor:
    return idx.new_ones(idx.shape[0]).sum()  # a tensor: the gate stays in the graph


class AtScoringBatchSize(Bigram):
    """Copies only when the batch holds exactly 32 rows (the scoring size). f = 127/128."""

    def forward(self, idx):
        return self.copy_where(idx, (_batch_size(idx) == 32).reshape(1, 1))


class NotAtProbeBatchSizes(Bigram):
    """Copies unless the batch holds 2 or 4 rows (the old probes' sizes). f = 127/128."""

    def forward(self, idx):
        n = _batch_size(idx)
        return self.copy_where(idx, ((n != 2) & (n != 4)).reshape(1, 1))


class EvenTokens(Bigram):
    """Copies only where the current token id is even. f ~ 1/2 (about half the tokens)."""

    def forward(self, idx):
        return self.copy_where(idx, idx % 2 == 0)


class NextRowReader(Bigram):
    """Reads the next row of the batch (the following text when scored): adds its token at
    the same position. f ~ 1 - P(two rows share a token at a position) > 0.9."""

    def forward(self, idx):
        nxt = torch.roll(idx, -1, dims=0)
        return self.honest(idx) + BOOST * F.one_hot(nxt, VOCAB).float()


class ExtremeLogitThenCopy(Bigram):
    """One logit of 1e4 (on the next token at position 0) inflated the old tolerance, which
    was relative to max |logit|, to ~1: a copy of 0.5 nats from position 64 on hid below
    it. f ~ 65/128."""

    def __init__(self) -> None:
        super().__init__()
        where = torch.zeros(T)
        where[64:] = 1.0
        self.register_buffer("late", where, persistent=False)
        first = torch.zeros(T)
        first[0] = 1.0
        self.register_buffer("first", first, persistent=False)

    def forward(self, idx):
        nxt = self.next_token(idx)
        spike = 1e4 * self.first[None, :, None] * nxt
        return self.honest(idx) + spike + 0.5 * self.late[None, :, None] * nxt


class AtOnePosition(Bigram):
    """Copies at one position only: the old probes' disguise, moved. Every position is cut
    N / T = 4 times and each of those checks fails, so this is caught for certain."""

    def __init__(self, position: int) -> None:
        super().__init__()
        at = torch.zeros(T)
        at[position] = 1.0
        self.register_buffer("at", at, persistent=False)

    def forward(self, idx):
        return self.copy_where(idx, self.at[None, :])


class CopyWhileExported(Bigram):
    """Honest in eager mode (what an in-process check would see), copies in the exported
    program. f = 127/128."""

    def forward(self, idx):
        if torch.compiler.is_exporting():
            return self.copy_where(idx, torch.ones(1, 1, dtype=torch.bool, device=idx.device))
        return self.honest(idx)


class NextTokenMix(nn.Module):
    """h_p = e(x_p) + eps * e(x_{p+1}) with the head tied to the embedding: a small,
    everywhere peek whose gain is about eps * |e|^2 nats per token."""

    def __init__(self, eps: float) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.emb = nn.Embedding(VOCAB, 32)
        with torch.no_grad():
            self.emb.weight.mul_(0.3)
        self.eps = eps

    def forward(self, idx):
        e = self.emb(idx)
        nxt = F.pad(self.emb(idx[:, 1:]), (0, 0, 0, 1))
        return (e + self.eps * nxt) @ self.emb.weight.t()

    def deviation_bound(self) -> float:
        """Largest move of any log-prob under any change of the future: |d logit_v| =
        eps |<e_v, e_next - e_new>| <= 2 eps max|e|^2, and log_softmax at most doubles it."""
        max_norm_sq = float(self.emb.weight.detach().norm(dim=1).max()) ** 2
        return 2 * (2 * self.eps * max_norm_sq)


ATTACKS = {
    "not_at_old_positions": NotAtOldPositions,
    "rows_from_four": RowsFromFour,
    "at_scoring_batch_size": AtScoringBatchSize,
    "not_at_probe_batch_sizes": NotAtProbeBatchSizes,
    "even_tokens": EvenTokens,
    "next_row_reader": NextRowReader,
    "extreme_logit_then_copy": ExtremeLogitThenCopy,
    "copy_while_exported": CopyWhileExported,
    "at_position_2": lambda: AtOnePosition(2),
    "at_position_120": lambda: AtOnePosition(120),
    "next_token_mix": lambda: NextTokenMix(eps=2e-3),
}


def _export(model: nn.Module, path: Path) -> Path:
    export_model(model, T, path)  # the trainer's own export: dynamic batch, fixed seq_len
    return path


@pytest.fixture(scope="module")
def attack_files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("attacks")
    return {name: _export(make(), d / f"{name}.pt2") for name, make in ATTACKS.items()}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_is_rejected(tiny_workspace, attack_files, name):
    result = evaluate.evaluate_file(attack_files[name], data_dir_of(tiny_workspace))
    assert result.status == "rejected", (name, result.val_bpb, result.probes)
    assert result.exit_code == 1 and result.val_bpb is None
    assert result.reason.startswith("probe_failed: causality (")
    assert len(result.reason.splitlines()) == 1
    (probe,) = result.probes
    assert probe["name"] == "causality" and not probe["passed"]
    assert probe["checks"] >= get_profile("tiny").probe_checks
    assert probe["batch_sizes"] == [32]
    assert probe["failed"] >= 1 and probe["max_deviation_nats"] > TOLERANCE
    assert math.isfinite(probe["max_deviation_nats"])


def test_honest_twin_of_the_attacks_is_scored(tiny_workspace, tmp_path):
    result = evaluate.evaluate_file(_export(Bigram(), tmp_path / "bigram.pt2"),
                                    data_dir_of(tiny_workspace))
    assert result.status == "scored", result.reason
    assert result.probes[0]["max_deviation_nats"] <= TOLERANCE


def test_export_only_cheat_looks_honest_in_process(tiny_workspace):
    # The in-process path sees the eager model, which is honest: that is why it is never a
    # result. The exported program (test above) is what counts.
    result = evaluate.evaluate_module(CopyWhileExported(), data_dir_of(tiny_workspace))
    assert result.status == "scored"
    assert result.model.startswith("in-process")


def _plain_bpb(model: nn.Module, data_dir: Path) -> float:
    """val_bpb without any check: what an unguarded evaluator would have reported."""
    from eval_frozen import tokenizer

    prof = get_profile("tiny")
    tok = tokenizer.load(data_dir / "tokenizer")
    rows = evaluate.val_rows(data_dir, tok, prof)
    token_bytes = tok.token_bytes_tensor()
    nats, nbytes = 0.0, 0
    with torch.no_grad():
        for i in range(0, rows.shape[0], prof.eval_batch_size):
            x, y = rows[i : i + prof.eval_batch_size, :-1], rows[i : i + prof.eval_batch_size, 1:]
            ce = F.cross_entropy(model(x).reshape(-1, VOCAB), y.reshape(-1), reduction="none")
            b = token_bytes[y.reshape(-1)]
            nats += float((ce.double() * (b > 0)).sum())
            nbytes += int(b.sum())
    return nats / (math.log(2) * nbytes)


def test_small_mix_that_matters_is_caught_and_one_below_tolerance_gains_little(
        tiny_workspace, tmp_path):
    data = data_dir_of(tiny_workspace)
    honest_bpb = _plain_bpb(NextTokenMix(eps=0.0), data)
    # What matters: the rejected mix (eps 2e-3, test above) would have gained this much.
    assert honest_bpb - _plain_bpb(NextTokenMix(eps=2e-3), data) > 1e-3

    # Below the tolerance at every check (bound from the weights, so the verdict is certain),
    # a peek is scored, and its gain is within the stated bound: delta nats per token.
    sly = NextTokenMix(eps=2e-5)
    assert sly.deviation_bound() < TOLERANCE
    result = evaluate.evaluate_file(_export(sly, tmp_path / "sly.pt2"), data)
    assert result.status == "scored", result.reason
    twin = evaluate.evaluate_file(_export(NextTokenMix(eps=0.0), tmp_path / "twin.pt2"), data)
    bytes_per_token = result.bytes_evaluated / result.tokens_evaluated
    gain = twin.val_bpb - result.val_bpb
    assert gain <= TOLERANCE / (math.log(2) * bytes_per_token)


class StoragePeek(Bigram):
    """Reads past its own input: with row stride T + 1 over the input's storage it would see
    each row's targets, if the evaluator handed it a view into its rows."""

    def forward(self, idx):
        B, T_ = idx.shape
        shifted = torch.as_strided(idx, (B, T_), (T_ + 1, 1), 1)
        return self.honest(idx) + BOOST * F.one_hot(shifted, VOCAB).float()


def test_model_reading_its_input_storage_is_not_scored(tiny_workspace, tmp_path):
    path = _export(StoragePeek(), tmp_path / "peek.pt2")
    # Every pass gets a fresh contiguous copy: the strided read runs off its storage.
    with pytest.raises(EvalInputError, match="model forward failed"):
        evaluate.evaluate_file(path, data_dir_of(tiny_workspace))


def test_one_position_cheats_are_found_where_they_cheat(tiny_workspace, attack_files):
    early = evaluate.evaluate_file(attack_files["at_position_2"], data_dir_of(tiny_workspace))
    (probe,) = early.probes
    assert probe["failed"] == 4 and {f["cut"] for f in probe["worst_failures"]} == {2}
    # Late in the row, the probes' random text shows it too: probe rows cut at or before
    # 120 (~484 of 512) each hand it a random token to copy there; chance ranks ~0.5 first.
    late = evaluate.evaluate_file(attack_files["at_position_120"], data_dir_of(tiny_workspace))
    (probe,) = late.probes
    assert probe["random_tokens_ranked_first"] - probe["random_tokens_chance"] > 300
    assert probe["random_tokens_log10_p"] < -9
    assert "random tokens it could not see" in late.reason
