"""Fast checks of the trainer's parts: schedule, Muon's orthogonalisation, causality, export."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from trainer import train


def small_gpt(vocab: int = 300, seq_len: int = 16) -> train.GPT:
    torch.manual_seed(0)
    model = train.GPT(vocab, seq_len, depth=2, width=32, n_head=2, mlp_ratio=4)
    # Zero-initialised output projections make every block the identity; give them weights
    # so the checks below exercise attention and the MLP, not just the embedding.
    with torch.no_grad():
        for block in model.blocks:
            block.attn.proj.weight.normal_(std=0.2)
            block.mlp.proj.weight.normal_(std=0.2)
        model.lm_head.weight.normal_(std=0.2)
    return model.eval()


def test_schedule_warms_up_holds_and_warms_down(monkeypatch):
    monkeypatch.setattr(train, "WARMUP_FRAC", 0.1)
    monkeypatch.setattr(train, "WARMDOWN_FRAC", 0.4)
    monkeypatch.setattr(train, "FINAL_LR_FRAC", 0.1)
    f = train.lr_multiplier
    assert f(0.0) == 0.0
    assert f(0.05) == pytest.approx(0.5)
    assert f(0.1) == f(0.3) == f(0.6) == 1.0
    assert f(0.8) == pytest.approx(0.1 + 0.9 * 0.5)
    assert f(1.0) == pytest.approx(0.1)
    assert f(1.5) == pytest.approx(0.1)  # past the budget: the floor, never negative
    values = [f(p / 100) for p in range(60, 101)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


def test_newton_schulz_pushes_singular_values_towards_one():
    torch.manual_seed(0)
    for rows, cols in [(64, 32), (32, 96), (48, 48)]:
        k = min(rows, cols)
        U, _ = torch.linalg.qr(torch.randn(rows, k))
        V, _ = torch.linalg.qr(torch.randn(cols, k))
        G = U @ torch.diag(torch.logspace(-1.5, 1, k)) @ V.T  # condition number ~300
        s = torch.linalg.svdvals(train.newton_schulz(G, steps=5))
        assert s.min() > 0.5 and s.max() < 1.3, ((rows, cols), s.min(), s.max())
    batched = train.newton_schulz(torch.randn(3, 16, 24), steps=5)
    assert batched.shape == (3, 16, 24)
    assert torch.linalg.svdvals(batched).min() > 0.5


def test_optimizers_fit_a_fixed_batch():
    model = small_gpt()
    model.train()
    optimizers = train.build_optimizers(model)
    x = torch.randint(1, 300, (4, 16))
    y = torch.roll(x, -1, dims=1)
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(model(x).view(-1, 300), y.view(-1))
        loss.backward()
        for opt in optimizers:
            opt.step()
        model.zero_grad(set_to_none=True)
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
    # Muon must have touched every matrix in the blocks, AdamW the embedding and the head.
    assert sum(len(g["params"]) for g in optimizers[1].param_groups) == 2 * 6
    assert {id(p) for g in optimizers[0].param_groups for p in g["params"]} == {
        id(model.wte.weight), id(model.lm_head.weight)}


def test_model_is_causal():
    model = small_gpt()
    x = torch.randint(1, 300, (2, 16))
    j = 9
    x2 = x.clone()
    x2[:, j] = (x2[:, j] + 7) % 300
    with torch.no_grad():
        a, b = model(x), model(x2)
    assert a.shape == (2, 16, 300)
    assert torch.equal(a[:, :j], b[:, :j])
    assert (a[:, j:] - b[:, j:]).abs().max() > 1e-3  # the change does reach later positions


def test_logits_are_softcapped():
    model = small_gpt()
    with torch.no_grad():
        model.lm_head.weight.mul_(1000)
        logits = model(torch.randint(1, 300, (1, 16)))
    assert logits.abs().max() <= train.LOGIT_SOFTCAP
    assert torch.isfinite(logits).all()


def test_export_has_a_dynamic_batch_and_passes_the_evaluator_loader(tmp_path):
    from eval_frozen.model_io import load_program

    model = small_gpt()
    path = tmp_path / "out" / "model.pt2"
    with torch.no_grad():
        x = torch.randint(1, 300, (3, 16))
        want = model(x)
    train.export_model(model, 16, path)
    program = load_program(path)  # the evaluator's safe loader: operators only
    for rows in (1, 3):
        got = program(x[:rows])
        assert got.shape == (rows, 16, 300)
        assert torch.allclose(got, want[:rows], atol=1e-5)


def test_flops_per_token_counts_matmuls_and_attention():
    model = train.GPT(1024, 128, depth=2, width=128, n_head=4, mlp_ratio=4)
    per_block = 4 * 128 * 128 + 2 * 4 * 128 * 128
    expected = 6 * (2 * per_block + 1024 * 128) + 12 * 2 * 128 * 128
    assert train.flops_per_token(model, 128) == expected


def test_missing_data_is_exit_2_with_the_prepare_hint(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LABWARDEN_PROFILE", "tiny")
    monkeypatch.setenv("LABWARDEN_DATA_DIR", str(tmp_path / "nothing"))
    monkeypatch.setenv("LABWARDEN_OUT_DIR", str(tmp_path / "out"))
    assert train.main() == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "labwarden prepare --profile tiny" in err
    assert not (tmp_path / "out").exists()

