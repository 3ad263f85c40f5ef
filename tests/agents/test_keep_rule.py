"""The keep rule: noise floor, margin, and seed-only or no-op patches never kept."""

from __future__ import annotations

import pytest

from agents.keep import decide
from agents.ledger import NoiseFloor
from agents.patch_effect import classify_effect

TRAIN = """\
import torch

SEED = 1337               # torch RNG seed
LR = 0.02                 # learning rate


def main():
    torch.manual_seed(SEED)
    g = torch.Generator().manual_seed(7)
    return LR
"""

NOISE = NoiseFloor(mean=1.50, std=0.01, n=3)


def diff(old: str, new: str, n: int = 1) -> str:
    lines = TRAIN.splitlines()
    i = next(k for k, line in enumerate(lines) if line == old)
    ctx_before = lines[max(0, i - n):i]
    ctx_after = lines[i + 1:i + 1 + n]
    start = max(0, i - n) + 1
    body = [f" {x}" for x in ctx_before] + [f"-{old}", f"+{new}"] + [f" {x}" for x in ctx_after]
    count = len(ctx_before) + 1 + len(ctx_after)
    return ("--- a/trainer/train.py\n+++ b/trainer/train.py\n"
            f"@@ -{start},{count} +{start},{count} @@\n" + "\n".join(body) + "\n")


@pytest.fixture()
def base(tmp_path):
    (tmp_path / "trainer").mkdir()
    (tmp_path / "trainer" / "train.py").write_text(TRAIN)
    return tmp_path


def test_within_noise_is_discarded_and_beyond_is_kept():
    within = decide(1.49, best=1.50, noise=NOISE, keep_k=2.0, min_noise=0.0)
    assert within.status == "discard"
    assert within.margin == pytest.approx(0.01) and within.threshold == pytest.approx(0.02)
    beyond = decide(1.47, best=1.50, noise=NOISE, keep_k=2.0, min_noise=0.0)
    assert beyond.status == "keep" and beyond.margin == pytest.approx(0.03)
    worse = decide(1.60, best=1.50, noise=NOISE, keep_k=2.0, min_noise=0.0)
    assert worse.status == "discard" and worse.margin == pytest.approx(-0.10)


def test_one_baseline_falls_back_to_min_noise_and_maximize_flips_sign():
    single = NoiseFloor(mean=1.5, std=0.0, n=1)
    d = decide(1.495, best=1.5, noise=single, keep_k=2.0, min_noise=0.005)
    assert d.status == "discard" and d.threshold == pytest.approx(0.01)
    up = decide(0.80, best=0.70, noise=NOISE, keep_k=2.0, min_noise=0.0, direction="maximize")
    assert up.status == "keep" and up.margin == pytest.approx(0.10)


def test_seed_only_change_is_never_kept_even_when_much_better(base):
    for old, new in (("SEED = 1337               # torch RNG seed",
                      "SEED = 42                 # torch RNG seed"),
                     ("    g = torch.Generator().manual_seed(7)",
                      "    g = torch.Generator().manual_seed(8)")):
        patch = diff(old, new)
        effect = classify_effect(patch, base)
        assert effect == "seed_only"
        d = decide(1.0, best=1.5, noise=NOISE, keep_k=2.0, min_noise=0.0, effect=effect)
        assert d.status == "discard" and "seed" in d.reason


def test_comment_only_change_has_no_effect_and_real_change_is_code(base):
    comment = diff("LR = 0.02                 # learning rate", "LR = 0.02  # the learning rate")
    assert classify_effect(comment, base) == "none"
    assert decide(1.0, best=1.5, noise=NOISE, keep_k=2.0, min_noise=0.0,
                  effect="none").status == "discard"
    real = diff("LR = 0.02                 # learning rate", "LR = 0.03                 # lr")
    assert classify_effect(real, base) == "code"
    assert classify_effect("not a diff", base) == "code"
