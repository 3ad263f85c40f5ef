"""Train a small GPT on the prepared train split for a fixed wall-clock budget, then export it.

Run from the workspace root: `python -m trainer.train`. The sandbox sets the environment;
the defaults are for running by hand:

    LABWARDEN_PROFILE      tiny | small | gpu                      (default tiny)
    LABWARDEN_DATA_DIR     prepared data; only train/ and tokenizer/ are read
                           (default .labwarden/data/<profile>)
    LABWARDEN_TIME_BUDGET  training seconds                        (default: the profile's)
    LABWARDEN_OUT_DIR      where model.pt2 is written              (default .labwarden/runs/manual)

This file is the research surface: agents change it through guarded patches (see
program.md). The score is computed elsewhere, by the frozen evaluator on the exported
model; the numbers printed here are informational only.
"""

from __future__ import annotations

import math
import os
import resource
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from eval_frozen.dataloader import load_profile, load_tokenizer, train_batches

# ---------------------------------------------------------------------------
# Hyperparameters (plain literals: one research change is one readable line)
# ---------------------------------------------------------------------------
SEED = 1337               # torch RNG seed for the initialisation
DEPTH = 2                 # transformer blocks at scale 1 (tiny)
WIDTH = 128               # model dimension at scale 1
N_HEAD = 4                # attention heads; head dim = width // heads
MLP_RATIO = 4             # MLP hidden units per model dimension
BATCH_SIZE = 16           # sequences per optimizer step at scale 1
LR = 0.02                 # Muon learning rate for the 2-D weight matrices
EMBED_LR = 0.6            # AdamW learning rate for the token embedding
UNEMBED_LR = 0.012        # AdamW learning rate for the output head
WEIGHT_DECAY = 0.0        # decoupled weight decay on the Muon matrices
ADAM_BETA1 = 0.8          # AdamW first-moment decay
ADAM_BETA2 = 0.95         # AdamW second-moment decay
MUON_MOMENTUM = 0.95      # Nesterov momentum of Muon
NS_STEPS = 5              # Newton-Schulz iterations per Muon update
WARMUP_FRAC = 0.0         # fraction of the time budget spent ramping the LR up
WARMDOWN_FRAC = 0.5       # final fraction of the time budget spent decaying the LR
FINAL_LR_FRAC = 0.0       # LR at the end of the warmdown, as a fraction of the peak
LOGIT_SOFTCAP = 15.0      # tanh cap on the logits; keeps early training stable
ROPE_BASE = 10000.0       # rotary embedding base frequency
LOG_EVERY = 50            # print a progress line every this many steps

# Other profiles multiply DEPTH, WIDTH and BATCH_SIZE by this factor (gpu: 8 x 512, 64 seqs).
PROFILE_SCALE = {"tiny": 1, "small": 1, "gpu": 4}

# Peak dense bf16 FLOP/s by GPU name, for the informational MFU figure.
GPU_PEAK_FLOPS: dict[str, float] = {}  # exact names; the table ends the file (moves no line)


# ---------------------------------------------------------------------------
# Model: a GPT with RoPE, RMSNorm, QK-norm, ReLU^2 MLP, untied head, softcapped logits
# ---------------------------------------------------------------------------
def rms_norm(x: torch.Tensor) -> torch.Tensor:
    # No learned gain: Muon handles the scale of the matrices that follow.
    return F.rms_norm(x, (x.size(-1),))


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    d = x.size(-1) // 2
    x1, x2 = x[..., :d], x[..., d:]
    return torch.cat([x1 * cos + x2 * sin, x2 * cos - x1 * sin], dim=-1)


class Attention(nn.Module):
    def __init__(self, dim: int, n_head: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        H, D = self.n_head, C // self.n_head
        q = self.q(x).view(B, T, H, D)
        k = self.k(x).view(B, T, H, D)
        v = self.v(x).view(B, T, H, D)
        q, k = rms_norm(q), rms_norm(k)  # QK-norm bounds the attention logits
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        y = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True
        )
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, hidden, bias=False)
        self.proj = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.relu(self.fc(x)).square())  # ReLU^2: cheap, beats GELU at this scale


class Block(nn.Module):
    def __init__(self, dim: int, n_head: int, mlp_ratio: int) -> None:
        super().__init__()
        self.attn = Attention(dim, n_head)
        self.mlp = MLP(dim, mlp_ratio * dim)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(rms_norm(x), cos, sin)
        return x + self.mlp(rms_norm(x))


class GPT(nn.Module):
    """Token ids (B, T) -> logits (B, T, vocab_size), T <= seq_len."""

    def __init__(self, vocab_size: int, seq_len: int, depth: int, width: int, n_head: int,
                 mlp_ratio: int) -> None:
        super().__init__()
        assert width % n_head == 0 and (width // n_head) % 2 == 0, "head dim must be even"
        self.wte = nn.Embedding(vocab_size, width)
        self.blocks = nn.ModuleList(Block(width, n_head, mlp_ratio) for _ in range(depth))
        self.lm_head = nn.Linear(width, vocab_size, bias=False)
        head_dim = width // n_head
        inv_freq = 1.0 / ROPE_BASE ** (torch.arange(0, head_dim, 2).float() / head_dim)
        angles = torch.outer(torch.arange(seq_len).float(), inv_freq)[None, :, None, :]
        # Precomputed for the whole context, so forward makes no tensors from Python ints
        # and the exported graph stays free of device-specific constants.
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        nn.init.normal_(self.wte.weight, std=1.0)
        nn.init.normal_(self.lm_head.weight, std=0.001)
        for block in self.blocks:
            for lin in (block.attn.q, block.attn.k, block.attn.v, block.mlp.fc):
                bound = math.sqrt(3.0 / lin.in_features)
                nn.init.uniform_(lin.weight, -bound, bound)
            # Zero output projections: each block starts as the identity.
            nn.init.zeros_(block.attn.proj.weight)
            nn.init.zeros_(block.mlp.proj.weight)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        T = idx.size(1)
        cos, sin = self.cos[:, :T], self.sin[:, :T]
        x = rms_norm(self.wte(idx))
        for block in self.blocks:
            x = block(x, cos, sin)
        logits = self.lm_head(rms_norm(x)).float()
        return LOGIT_SOFTCAP * torch.tanh(logits / LOGIT_SOFTCAP)


# ---------------------------------------------------------------------------
# Optimizer: Muon (orthogonalised momentum) for matrices, AdamW for the rest
# ---------------------------------------------------------------------------
@torch.no_grad()
def newton_schulz(G: torch.Tensor, steps: int) -> torch.Tensor:
    """Approximately orthogonalise G (push its singular values towards 1).

    The quintic coefficients trade exactness for speed: singular values land in roughly
    [0.7, 1.2], which trains as well as the exact polar factor at a fraction of the cost.
    """
    a, b, c = 3.4445, -4.7750, 2.0315
    X = G.bfloat16() if G.is_cuda else G.float()
    tall = X.size(-2) > X.size(-1)
    if tall:
        X = X.mT
    X = X / (X.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    for _ in range(steps):
        A = X @ X.mT
        X = a * X + (b * A + c * A @ A) @ X
    return X.mT if tall else X


class Muon(torch.optim.Optimizer):
    """SGD with Nesterov momentum whose update is orthogonalised by Newton-Schulz.

    Parameters of one group must share a shape: they are stacked and orthogonalised in one
    batched call, which matters on CPU where many small matmuls are overhead-bound.
    """

    def __init__(self, params: list[nn.Parameter], lr: float, momentum: float,
                 weight_decay: float, ns_steps: int) -> None:
        by_shape: dict[torch.Size, list[nn.Parameter]] = {}
        for p in params:
            by_shape.setdefault(p.shape, []).append(p)
        groups = [{"params": ps} for ps in by_shape.values()]
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, ns_steps=ns_steps)
        super().__init__(groups, defaults)

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = torch.stack([p.grad for p in params])
            state = self.state[params[0]]
            if "momentum" not in state:
                state["momentum"] = torch.zeros_like(grads)
            buf = state["momentum"]
            buf.lerp_(grads, 1 - group["momentum"])
            update = newton_schulz(grads.lerp_(buf, group["momentum"]), group["ns_steps"])
            rows, cols = params[0].shape
            lr = group["lr"] * max(1.0, rows / cols) ** 0.5  # same RMS update for tall matrices
            for p, u in zip(params, update.unbind(0), strict=True):
                p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(u.to(p.dtype), alpha=-lr)


def build_optimizers(model: GPT) -> list[torch.optim.Optimizer]:
    matrices = [p for p in model.blocks.parameters() if p.ndim == 2]
    adam_groups = [
        {"params": [model.wte.weight], "lr": EMBED_LR},
        {"params": [model.lm_head.weight], "lr": UNEMBED_LR},
    ]
    adam = torch.optim.AdamW(adam_groups, betas=(ADAM_BETA1, ADAM_BETA2), eps=1e-10,
                             weight_decay=0.0)
    muon = Muon(matrices, lr=LR, momentum=MUON_MOMENTUM, weight_decay=WEIGHT_DECAY,
                ns_steps=NS_STEPS)
    for opt in (adam, muon):
        for group in opt.param_groups:
            group["initial_lr"] = group["lr"]
    return [adam, muon]


def lr_multiplier(progress: float) -> float:
    """LR factor for a point of the time budget (0 = start, 1 = budget spent)."""
    if progress < WARMUP_FRAC:
        return progress / WARMUP_FRAC
    if progress > 1.0 - WARMDOWN_FRAC:
        decay = max(0.0, (1.0 - progress) / WARMDOWN_FRAC)
        return FINAL_LR_FRAC + (1.0 - FINAL_LR_FRAC) * decay
    return 1.0


# ---------------------------------------------------------------------------
# Export: the one artefact the frozen evaluator reads
# ---------------------------------------------------------------------------
def export_model(model: nn.Module, seq_len: int, path: Path) -> None:
    """Write `model` as a torch.export program: int64 ids (B, seq_len) -> logits (B, seq_len, V).

    Exported in fp32 on CPU so the evaluator can load it on any device; the batch dimension
    is dynamic, the context length is the profile's.
    """
    model = model.to("cpu", torch.float32).eval()
    example = torch.zeros(2, seq_len, dtype=torch.long)
    batch = torch.export.Dim("batch", min=1, max=4096)
    with torch.no_grad():
        program = torch.export.export(model, (example,), dynamic_shapes={"idx": {0: batch}})
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, str(path))


# ---------------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------------
def model_size(profile_name: str) -> tuple[int, int, int]:
    """(depth, width, batch size in sequences) for a profile: the constants times its scale."""
    scale = PROFILE_SCALE.get(profile_name, 1)
    return round(DEPTH * scale), round(WIDTH * scale), round(BATCH_SIZE * scale)


def flops_per_token(model: GPT, seq_len: int) -> float:
    """Training FLOPs per token, MFU_FORMULA: 6 per matmul weight, 12·L·C·T for attention."""
    n_matmul = sum(p.numel() for p in model.blocks.parameters()) + model.lm_head.weight.numel()
    depth, width = len(model.blocks), model.wte.weight.size(1)
    return 6 * n_matmul + 12 * depth * width * seq_len  # nanoGPT's count, not causal-halved


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> int:
    t_start = time.perf_counter()
    profile_name = os.environ.get("LABWARDEN_PROFILE", "tiny")
    profile = load_profile(profile_name)
    data_dir = Path(os.environ.get("LABWARDEN_DATA_DIR", f".labwarden/data/{profile.name}"))
    budget_s = float(os.environ.get("LABWARDEN_TIME_BUDGET", profile.time_budget_s))
    out_dir = Path(os.environ.get("LABWARDEN_OUT_DIR", ".labwarden/runs/manual"))
    if not (data_dir / "train").is_dir():
        print(f"trainer: error: no prepared train data in {data_dir}; "
              f"run 'labwarden prepare --profile {profile.name}'.", file=sys.stderr)
        return 2

    torch.manual_seed(SEED)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    tokenizer = load_tokenizer(data_dir)
    assert tokenizer.vocab_size <= profile.vocab_size, "tokenizer larger than the profile's vocab"

    depth, width, batch_size = model_size(profile.name)
    model = GPT(profile.vocab_size, profile.seq_len, depth, width, N_HEAD, MLP_RATIO).to(device)
    optimizers = build_optimizers(model)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"profile {profile.name}: depth {depth}, width {width}, batch {batch_size}x"
          f"{profile.seq_len}, {n_params / 1e6:.2f}M params, {device}, budget {budget_s:g}s")

    if device.type == "cuda":
        step_model = torch.compile(model)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16)
    else:
        step_model = model
        autocast = torch.autocast("cpu", enabled=False)
    batches = train_batches(data_dir, batch_size, profile.seq_len, device=str(device))

    # -----------------------------------------------------------------------
    # Training loop: the schedule runs on elapsed wall time, so every change to speed
    # shows up as more (or fewer) optimizer steps in the same budget.
    # -----------------------------------------------------------------------
    step, tokens, epoch, smooth_loss = 0, 0, 0, 0.0
    t_train = time.perf_counter()
    while (elapsed := time.perf_counter() - t_train) < budget_s:
        multiplier = lr_multiplier(elapsed / budget_s)
        for opt in optimizers:
            for group in opt.param_groups:
                group["lr"] = group["initial_lr"] * multiplier
        x, y, epoch = next(batches)
        with autocast:
            logits = step_model(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
        loss.backward()
        for opt in optimizers:
            opt.step()
        model.zero_grad(set_to_none=True)

        loss_f = loss.item()
        if not math.isfinite(loss_f):
            print(f"trainer: error: loss is {loss_f} at step {step}; training diverged.",
                  file=sys.stderr)
            return 1
        step += 1
        tokens += x.numel()
        smooth_loss = loss_f if step == 1 else 0.9 * smooth_loss + 0.1 * loss_f
        if step % LOG_EVERY == 0:
            print(f"step {step:5d} | loss {smooth_loss:.4f} | lr x{multiplier:.2f} | "
                  f"{elapsed:6.1f}s | epoch {epoch}", flush=True)
    training_s = time.perf_counter() - t_train

    t_export = time.perf_counter()
    model_path = out_dir / "model.pt2"
    export_model(model, profile.seq_len, model_path)
    export_s = time.perf_counter() - t_export

    tokens_per_s = tokens / max(training_s, 1e-9)
    mfu = "n/a"
    if device.type == "cuda":
        # MFU_FORMULA, as nanoGPT and autoresearch count (their 39.8% on an H100 compares)
        peak = gpu_peak_flops(torch.cuda.get_device_name())
        if peak is not None:
            mfu = f"{100 * flops_per_token(model, profile.seq_len) * tokens_per_s / peak:.1f}"

    print("---")
    print(f"profile:          {profile.name}")
    print(f"device:           {device}")
    print(f"num_params_M:     {n_params / 1e6:.3f}")
    print(f"depth:            {depth}")
    print(f"width:            {width}")
    print(f"steps:            {step}")
    print(f"epochs:           {epoch}")
    print(f"tokens:           {tokens}")
    print(f"tokens_per_sec:   {tokens_per_s:.0f}")
    print(f"train_loss:       {smooth_loss:.4f}")
    print(f"mfu_percent:      {mfu}")
    print(f"mfu_formula:      {MFU_FORMULA}")
    print(f"peak_memory_mb:   {peak_memory_mb(device):.1f}")
    print(f"training_seconds: {training_s:.1f}")
    print(f"export_seconds:   {export_s:.1f}")
    print(f"total_seconds:    {time.perf_counter() - t_start:.1f}")
    print(f"model:            {model_path}")
    return 0


# Peak dense bf16 FLOP/s (no sparsity) by the exact name torch.cuda.get_device_name() gives:
# an L4 is not an L40S, and H100 PCIe and NVL parts are slower than the SXM one. A GPU not
# listed shows MFU n/a rather than a guess.
GPU_PEAK_FLOPS.update({
    "NVIDIA H100 80GB HBM3": 989.5e12,  # SXM; autoresearch's anchor peak
    "NVIDIA H100 PCIe": 756e12,
    "NVIDIA H100 NVL": 835e12,
    "NVIDIA H200": 989.5e12,
    "NVIDIA H200 NVL": 835e12,
    "NVIDIA A100-SXM4-80GB": 312e12,
    "NVIDIA A100-SXM4-40GB": 312e12,
    "NVIDIA A100 80GB PCIe": 312e12,
    "NVIDIA A100-PCIE-40GB": 312e12,
    "NVIDIA L40S": 362e12,
    "NVIDIA L40": 181e12,
    "NVIDIA L4": 121e12,
    "NVIDIA A10": 125e12,
})
MFU_FORMULA = "6N+12LCT"  # N matmul weights, L layers, C width, T context (nanoGPT)


def gpu_peak_flops(name: str) -> float | None:
    """Peak dense bf16 FLOP/s of the GPU called exactly `name`; None if it is not listed."""
    return GPU_PEAK_FLOPS.get(name.strip())


if __name__ == "__main__":
    sys.exit(main())
