"""The guards' seed.fishing review and the keep rule agree on what a seed-only change is."""

from __future__ import annotations

from pathlib import Path

import pytest
from guards_helpers import diff

from agents.patch_effect import classify_effect
from guards.engine import check_patch
from guards.seeds import seed_only

BASE = """import numpy as np
import torch
SEED = 1337
rng = np.random.default_rng(7)
key = jax.random.PRNGKey(0)
bits = np.random.Generator(np.random.PCG64(3))
g = torch.Generator("cpu")
torch.manual_seed(SEED)
x = torch.randn(3, generator=g)
"""

CASES = [
    ("SEED = 1337", "SEED = 42", True),
    ("default_rng(7)", "default_rng(8)", True),
    ("PRNGKey(0)", "PRNGKey(1)", True),
    ("PCG64(3)", "PCG64(4)", True),
    ("torch.manual_seed(SEED)", "torch.manual_seed(SEED + 1)", True),
    ('torch.Generator("cpu")', 'torch.Generator("cuda")', False),
    ("torch.randn(3,", "torch.randn(4,", False),
]


@pytest.mark.parametrize("old, new, expected", CASES)
def test_one_normaliser(old: str, new: str, expected: bool) -> None:
    assert seed_only(BASE, BASE.replace(old, new)) is expected


@pytest.mark.parametrize("old, new, expected", CASES)
def test_keep_rule_and_guards_agree(old: str, new: str, expected: bool, tmp_path: Path,
                                    config) -> None:  # type: ignore[no-untyped-def]
    path = config.root / "trainer" / "train.py"
    text = path.read_text()
    before = text + "\n\n" + BASE
    path.write_text(before)
    patch = diff("trainer/train.py", before, before.replace(old, new))
    review = [f.rule_id for f in check_patch(patch, config).findings] == ["seed.fishing"]
    effect = classify_effect(patch, config.root)
    assert review is expected and (effect == "seed_only") is expected, (review, effect)
