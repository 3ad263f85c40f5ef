"""The informational MFU figure: nanoGPT's FLOPs count and the GPU peak by exact name."""

from __future__ import annotations

import pytest

from trainer import train


def test_flops_per_token_is_6n_plus_12lct():
    model = train.GPT(300, 64, depth=3, width=32, n_head=2, mlp_ratio=4)
    L, C, T = 3, 32, 64
    # Matmul weights per block: q, k, v, proj (C x C each) and the MLP (C x 4C, 4C x C);
    # the head (C x V); the embedding is a lookup and counts nothing.
    n = L * (4 * C * C + 2 * 4 * C * C) + C * 300
    assert train.flops_per_token(model, T) == 6 * n + 12 * L * C * T
    assert train.MFU_FORMULA == "6N+12LCT"


def test_the_anchor_config_compares_with_nanogpt():
    """nanoGPT's estimate_mfu for GPT-2 small (L=12, C=768, T=1024, about 85M matmul
    weights without the head) is 6N + 12·L·C·T: the attention term is 12, not 6."""
    model = train.GPT(50304, 1024, depth=1, width=64, n_head=2, mlp_ratio=4)
    n = sum(p.numel() for p in model.blocks.parameters()) + model.lm_head.weight.numel()
    attention = train.flops_per_token(model, 1024) - 6 * n
    assert attention == 12 * 1 * 64 * 1024


@pytest.mark.parametrize(("name", "peak"), [
    ("NVIDIA H100 80GB HBM3", 989.5e12),
    ("NVIDIA H100 PCIe", 756e12),
    ("NVIDIA H100 NVL", 835e12),
    ("NVIDIA H200", 989.5e12),
    ("NVIDIA A100-SXM4-80GB", 312e12),
    ("NVIDIA L4", 121e12),
    ("NVIDIA L40S", 362e12),
    ("NVIDIA L40", 181e12),
    ("NVIDIA A10", 125e12),
])
def test_gpu_peak_by_exact_name(name, peak):
    assert train.gpu_peak_flops(name) == peak


@pytest.mark.parametrize("name", [
    "NVIDIA A10G",             # not an A10: no guess
    "NVIDIA L4 (custom)",      # contains "L4" but is not it
    "H100",                    # a fragment
    "NVIDIA GeForce RTX 4090",
    "",
])
def test_unlisted_or_partial_names_have_no_peak(name):
    assert train.gpu_peak_flops(name) is None


def test_no_name_is_a_substring_match():
    # The old lookup took the first key found inside the name: "L4" inside "L40S".
    names = list(train.GPU_PEAK_FLOPS)
    for a in names:
        for b in names:
            if a != b and a in b:
                assert train.gpu_peak_flops(b) != train.gpu_peak_flops(a) or b.startswith(a)
    assert train.gpu_peak_flops("NVIDIA L40S") != train.gpu_peak_flops("NVIDIA L4")


def test_summary_names_the_formula(tiny_workspace, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tiny_workspace)
    monkeypatch.setenv("LABWARDEN_PROFILE", "tiny")
    monkeypatch.setenv("LABWARDEN_TIME_BUDGET", "0.2")
    monkeypatch.setenv("LABWARDEN_OUT_DIR", str(tmp_path))
    monkeypatch.setattr(train.torch.cuda, "is_available", lambda: False)
    assert train.main() == 0
    lines = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines()
                 if ":" in line)
    assert lines["mfu_formula"].strip() == "6N+12LCT"
    assert lines["mfu_percent"].strip() == "n/a"  # CPU: no peak to divide by
