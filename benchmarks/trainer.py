"""Trainer and evaluator throughput: a script, not a test.

    python benchmarks/trainer.py [--seconds 10] [--data-dir .labwarden/data/tiny]

Prints training tokens/s for the `tiny` and `small` profiles on CPU (the trainer's model,
optimizers and sizes, on random token batches so no prepared data is needed), on a CUDA
GPU the same for the `gpu` profile with bf16 autocast and torch.compile plus its MFU, and
the frozen evaluator's scoring tokens/s on a prepared data folder when one is given or
found. Numbers depend on the machine and on what else runs on it: quote both.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # run from a checkout without installing


def train_throughput(profile_name: str, device: str, seconds: float) -> dict[str, float]:
    """Steps of the trainer's model and optimizers on random ids; tokens/s after warm-up."""
    import torch
    import torch.nn.functional as F

    from eval_frozen.dataloader import load_profile
    from trainer import train

    profile = load_profile(profile_name)
    depth, width, B = train.model_size(profile.name)
    T, V = profile.seq_len, profile.vocab_size
    torch.manual_seed(0)
    model = train.GPT(V, T, depth, width, train.N_HEAD, train.MLP_RATIO).to(device)
    optimizers = train.build_optimizers(model)
    cuda = device == "cuda"
    step_model = torch.compile(model) if cuda else model
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda)
    x = torch.randint(0, V, (B, T), device=device)
    y = torch.randint(0, V, (B, T), device=device)

    def step() -> None:
        with autocast:
            logits = step_model(x)
        loss = F.cross_entropy(logits.view(-1, V), y.view(-1))
        loss.backward()
        for opt in optimizers:
            opt.step()
        model.zero_grad(set_to_none=True)
        loss.item()  # a sync point, as in the training loop

    for _ in range(3):  # allocation, compilation
        step()
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step()
        steps += 1
    elapsed = time.perf_counter() - t0
    tokens_per_s = steps * B * T / elapsed
    out = {"tokens_per_s": tokens_per_s, "steps": steps, "batch": B, "seq_len": T,
           "params_M": sum(p.numel() for p in model.parameters()) / 1e6}
    if cuda:
        name = torch.cuda.get_device_name()
        peak = next((f for k, f in train.GPU_PEAK_FLOPS.items() if k in name), None)
        if peak:
            out["mfu_percent"] = 100 * train.flops_per_token(model, T) * tokens_per_s / peak
    return out


def eval_throughput(data_dir: Path) -> dict[str, float]:
    """The evaluator's official path (seal, load, probes, scoring) on a freshly exported model."""
    import torch

    from eval_frozen.dataloader import load_profile
    from eval_frozen.evaluate import evaluate_file
    from eval_frozen.seal import read as read_seal
    from trainer import train

    profile = load_profile(read_seal(data_dir).get("profile") or "tiny")
    depth, width, _ = train.model_size(profile.name)
    torch.manual_seed(0)
    model = train.GPT(profile.vocab_size, profile.seq_len, depth, width, train.N_HEAD,
                      train.MLP_RATIO)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.pt2"
        t0 = time.perf_counter()
        train.export_model(model, profile.seq_len, path)
        export_s = time.perf_counter() - t0
        result = evaluate_file(path, data_dir, profile.name, device="cpu")
    if result.status != "scored":
        raise SystemExit(f"evaluator did not score the model: {result.reason}")
    return {"tokens_per_s": result.timings["tokens_per_s"], "tokens": result.tokens_evaluated,
            "total_s": result.timings.get("total_s", 0.0), "export_s": export_s,
            "profile": profile.name}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="timed seconds per profile")
    parser.add_argument("--data-dir", default=None,
                        help="prepared data for the evaluator (default .labwarden/data/tiny)")
    args = parser.parse_args()

    import torch

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}")
    if hasattr(os, "getloadavg"):
        print(f"load average at start: {os.getloadavg()[0]:.2f}")
    for name in ("tiny", "small"):
        r = train_throughput(name, "cpu", args.seconds)
        print(f"train {name:5s} cpu : {r['tokens_per_s']:9.0f} tokens/s  ({r['steps']} steps of "
              f"{r['batch']}x{r['seq_len']}, {r['params_M']:.2f}M params)")
    if torch.cuda.is_available():
        r = train_throughput("gpu", "cuda", args.seconds)
        mfu = f"{r['mfu_percent']:.1f}%" if "mfu_percent" in r else "n/a (unknown GPU)"
        print(f"train gpu   cuda: {r['tokens_per_s']:9.0f} tokens/s  MFU {mfu}  "
              f"({torch.cuda.get_device_name()}, {r['batch']}x{r['seq_len']}, "
              f"{r['params_M']:.1f}M params)")
    else:
        print("train gpu   cuda: skipped (no CUDA GPU)")

    data_dir = Path(args.data_dir) if args.data_dir else REPO_ROOT / ".labwarden/data/tiny"
    if (data_dir / "val").is_dir():
        r = eval_throughput(data_dir)
        print(f"evaluate {r['profile']} cpu: {r['tokens_per_s']:9.0f} tokens/s scored "
              f"({r['tokens']} tokens; whole evaluation {r['total_s']:.1f}s; "
              f"export {r['export_s']:.1f}s)")
    else:
        print(f"evaluate: skipped (no prepared data in {data_dir}; "
              f"run 'labwarden prepare --profile tiny')")
    return 0


if __name__ == "__main__":
    sys.exit(main())
