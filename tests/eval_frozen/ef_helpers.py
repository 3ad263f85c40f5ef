"""Helpers for the eval_frozen tests (imported by name: conftest puts this folder on sys.path)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from eval_frozen.profiles import get_profile

VOCAB = 1024  # the tiny profile's vocabulary


class TinyAttention(nn.Module):
    """One attention block and a head: enough to be causal or not, small enough to be fast.

    `mode`: "causal", "noncausal" (no mask: sees the future), "batchmix" (adds the batch
    mean: each row sees the others), "nan" (logits are NaN).
    """

    def __init__(self, vocab: int = VOCAB, dim: int = 32, heads: int = 2, mode: str = "causal"):
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(VOCAB, dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.head = nn.Linear(dim, vocab)
        self.heads = heads
        self.mode = mode

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.emb(idx)
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.mode != "noncausal")
        x = x + y.transpose(1, 2).reshape(B, T, C)
        if self.mode == "batchmix":
            x = x + x.mean(dim=0, keepdim=True)
        logits = self.head(x)
        if self.mode == "nan":
            logits = logits * float("nan")
        return logits


def export_model(model: nn.Module, path: Path, seq_len: int = 128) -> Path:
    ids = torch.randint(0, VOCAB - 1, (4, seq_len))
    program = torch.export.export(model, (ids,),
                                  dynamic_shapes={"idx": {0: torch.export.Dim("batch")}})
    torch.export.save(program, str(path))
    return path


def data_dir_of(ws: Path, profile: str = "tiny") -> Path:
    return ws / ".labwarden" / "data" / profile


def run_evaluator(ws: Path, model: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    """`python -m eval_frozen.evaluate` from the workspace root, as the sandbox runs it."""
    return subprocess.run(
        [sys.executable, "-m", "eval_frozen.evaluate", "--model", str(model),
         "--data-dir", str(data_dir_of(ws)), "--out", str(out), *extra],
        cwd=ws, capture_output=True, text=True, timeout=600,
    )


MINI = replace(get_profile("tiny"), name="mini", vocab_size=300, seq_len=32,
               eval_tokens=32 * 8, eval_batch_size=4, val_fraction=0.3)
"""A profile small enough to prepare from a handful of files in a test."""


def write_text_folder(folder: Path, n: int = 24) -> Path:
    """`n` real English text files (pydoc topics) in `folder`."""
    from pydoc_data.topics import topics

    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(sorted(topics)[:n]):
        (folder / f"{i:02d}_{name}.txt").write_text(topics[name], encoding="utf-8")
    return folder
