"""Checks on the model's behaviour, not its score: output contract and causality.

- `check_logits`: logits are a float tensor of shape (B, T, V) with V the frozen
  vocabulary, all finite. A violation is bad input (EvalInputError, exit 2).
- `causality_probe`: change token j of a row; the logits at positions < j must not move.
  A model that attends to the future fails (it would "predict" text it has already seen).
- `batch_probe`: change one row of a batch; the other rows' logits must not move. The
  evaluator's rows are consecutive text, so a model that looks across the batch could read
  the next row, which is the future.
- `consistency_probe`: rows probed in a small batch get the same logits inside a scoring
  batch, so a model cannot be causal only at the probe's batch size.
A failed probe is a rejection with a named reason (exit 1), never a score.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from eval_frozen.errors import EvalInputError

if TYPE_CHECKING:
    import torch

Forward = Callable[["torch.Tensor"], Any]


def check_logits(out: object, batch: int, seq_len: int, vocab_size: int) -> torch.Tensor:
    import torch

    if isinstance(out, tuple | list) and len(out) == 1:
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise EvalInputError(f"model returned {type(out).__name__}, expected a logits tensor.")
    if tuple(out.shape) != (batch, seq_len, vocab_size):
        raise EvalInputError(
            f"model returned logits of shape {tuple(out.shape)}, expected "
            f"({batch}, {seq_len}, {vocab_size}) = (B, T, vocabulary size)."
        )
    if not out.is_floating_point():
        raise EvalInputError(f"model returned {out.dtype} logits, expected floating point.")
    out = out.float()
    if not torch.isfinite(out).all():
        bad = int((~torch.isfinite(out)).sum())
        raise EvalInputError(f"model returned non-finite logits (NaN or inf) at {bad} entries.")
    return out


def run_forward(forward: Forward, x: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """One forward pass with the output contract checked; model errors become EvalInputError."""
    try:
        out = forward(x)
    except EvalInputError:
        raise
    except Exception as e:
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise EvalInputError(f"model forward failed on ids of shape {tuple(x.shape)} "
                             f"({type(e).__name__}: {first}).") from None
    return check_logits(out, x.shape[0], x.shape[1], vocab_size)


def _perturbed(token: torch.Tensor, vocab_size: int, bos_id: int) -> torch.Tensor:
    """A different ordinary (non-BOS) token at each position."""
    shifted = (token + 1 + vocab_size // 2) % vocab_size
    return shifted.masked_fill(shifted == bos_id, (bos_id + 1) % vocab_size)


def causality_probe(forward: Forward, rows: torch.Tensor, positions: list[int], *,
                    vocab_size: int, bos_id: int, tolerance: float,
                    base: torch.Tensor | None = None) -> dict:
    """Perturb token j of every row for each j; report the largest change before j.

    `base`: the logits of `rows` if already computed."""
    if base is None:
        base = run_forward(forward, rows, vocab_size)
    scale = max(1.0, float(base.abs().max()))
    results = []
    for j in positions:
        x = rows.clone()
        x[:, j] = _perturbed(x[:, j], vocab_size, bos_id)
        out = run_forward(forward, x, vocab_size)
        before = float((out[:, :j] - base[:, :j]).abs().max())
        at_or_after = float((out[:, j:] - base[:, j:]).abs().max())
        results.append({"j": j, "max_change_before_j": before,
                        "max_change_from_j": at_or_after, "ok": before <= tolerance * scale})
    return {"name": "causality", "passed": all(r["ok"] for r in results),
            "tolerance": tolerance * scale, "rows": int(rows.shape[0]), "positions": results}


def batch_probe(forward: Forward, rows: torch.Tensor, *, vocab_size: int, bos_id: int,
                tolerance: float) -> dict:
    """Change every token after BOS in the last row; the other rows must not change."""
    base = run_forward(forward, rows, vocab_size)
    scale = max(1.0, float(base.abs().max()))
    x = rows.clone()
    x[-1, 1:] = _perturbed(x[-1, 1:], vocab_size, bos_id)
    out = run_forward(forward, x, vocab_size)
    change = float((out[:-1] - base[:-1]).abs().max())
    return {"name": "batch_independence", "passed": change <= tolerance * scale,
            "tolerance": tolerance * scale, "max_change_other_rows": change,
            "rows": int(rows.shape[0])}


def consistency_probe(small: torch.Tensor, big: torch.Tensor, *, tolerance: float) -> dict:
    """The same rows scored in a small batch (`small`) and at the head of a big one (`big`)."""
    scale = max(1.0, float(small.abs().max()))
    change = float((big - small).abs().max())
    return {"name": "batch_consistency", "passed": change <= tolerance * scale,
            "tolerance": tolerance * scale, "max_change": change,
            "batch_sizes": [int(small.shape[0]), int(big.shape[0])]}
