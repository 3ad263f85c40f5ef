"""The frozen evaluator: scores an exported model in bits per byte of validation text.

    python -m eval_frozen.evaluate --model OUT/model.pt2 --data-dir DIR --out metrics.json
        [--profile P] [--device cpu|cuda]          (also: labwarden evaluate ...)

Steps: verify the seal groups the evaluator reads (code, tokenizer, val); load the
exported program (no trainer Python runs, see model_io); run the probes (output contract,
causality, batch independence); score exactly `profile.eval_tokens` target positions of
the validation split, packed into rows exactly as training rows are packed.

val_bpb = sum of cross-entropy in nats over targets / (ln 2 * sum of their UTF-8 bytes);
BOS targets (0 bytes) count in neither sum, so the metric does not depend on the
vocabulary and a model cannot gain by predicting document starts.

metrics.json, written in every case:
    status            "scored" | "rejected" | "error"
    val_bpb           float, only when scored
    reason            "" when scored; else "seal_broken: ...", "probe_failed: causality ..."
                      or the input error
    tokens_evaluated  target positions scored (= profile.eval_tokens when scored)
    bytes_evaluated   UTF-8 bytes those targets stand for
    seal_hash, probes, timings (seconds, tokens_per_s), profile, device, model

Exit codes: 0 scored; 1 rejected (a probe failed or the seal is broken: the run is
discarded with a named reason); 2 input error (missing data or model, corrupt model file,
wrong vocabulary, non-finite logits), one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval_frozen import seal as _seal
from eval_frozen import tokenizer as _tokenizer
from eval_frozen.errors import EvalInputError
from eval_frozen.packing import pack_rows
from eval_frozen.probes import (
    Forward,
    batch_probe,
    causality_probe,
    consistency_probe,
    run_forward,
)
from eval_frozen.profiles import Profile, get_profile
from eval_frozen.shards import iter_texts, list_shards

if TYPE_CHECKING:
    import torch

__all__ = ["EvalResult", "evaluate_file", "evaluate_module", "score", "val_rows"]


@dataclass
class EvalResult:
    status: str
    val_bpb: float | None = None
    reason: str = ""
    tokens_evaluated: int = 0
    bytes_evaluated: int = 0
    seal_hash: str = ""
    probes: list[dict] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    profile: str = ""
    device: str = "cpu"
    model: str = ""

    @property
    def exit_code(self) -> int:
        return {"scored": 0, "rejected": 1}.get(self.status, 2)


def val_rows(data_dir: Path, tok: _tokenizer.Tokenizer, profile: Profile) -> torch.Tensor:
    """The first `profile.eval_rows` packed validation rows, int64 (rows, seq_len + 1)."""
    import numpy as np
    import torch

    val_dir = Path(data_dir) / "val"
    if not list_shards(val_dir):
        raise EvalInputError(f"no validation shards in {val_dir}; run `labwarden prepare`.")

    threads = max(1, min(16, os.cpu_count() or 1))

    def docs():
        for texts in iter_texts(val_dir):
            yield from tok.encode_batch(texts, num_threads=threads)

    rows = []
    for row in pack_rows(docs(), profile.seq_len + 1, tok.bos_id):
        rows.append(row)
        if len(rows) == profile.eval_rows:
            break
    if len(rows) < profile.eval_rows:
        raise EvalInputError(f"the validation split in {val_dir} gives {len(rows)} rows, "
                             f"profile {profile.name} needs {profile.eval_rows}.")
    return torch.from_numpy(np.array(rows, dtype=np.int64))  # numpy: fast on nested lists


def _probe_positions(profile: Profile) -> list[int]:
    T = profile.seq_len
    return sorted({min(T - 1, max(1, int(f * T))) for f in profile.probe_positions})


def score(forward: Forward, data_dir: Path, profile: Profile, *, device: str = "cpu",
          tok: _tokenizer.Tokenizer | None = None) -> EvalResult:
    """Probes, then val_bpb, for any callable `ids (B, T) -> logits (B, T, V)`.

    Shared by the exported-file path and the in-process path, so they differ only in how
    the model was loaded. Raises EvalInputError on bad input.
    """
    import torch
    import torch.nn.functional as F

    tok = tok or _tokenizer.load(Path(data_dir) / "tokenizer")
    if tok.vocab_size != profile.vocab_size:
        raise EvalInputError(f"the tokenizer has {tok.vocab_size} tokens but profile "
                             f"{profile.name} fixes {profile.vocab_size}; re-run prepare.")
    V = tok.vocab_size
    result = EvalResult(status="scored", profile=profile.name, device=device)
    t0 = time.perf_counter()
    rows = val_rows(data_dir, tok, profile)
    result.timings["data_s"] = time.perf_counter() - t0

    with torch.no_grad():
        t0 = time.perf_counter()
        n_probe = max(2, profile.probe_rows)
        probe_x = rows[:n_probe, :-1].to(device)
        reference = run_forward(forward, probe_x, V)
        result.probes.append(causality_probe(
            forward, probe_x, _probe_positions(profile), vocab_size=V, bos_id=tok.bos_id,
            tolerance=profile.probe_tolerance, base=reference))
        result.probes.append(batch_probe(
            forward, rows[: max(4, n_probe), :-1].to(device), vocab_size=V, bos_id=tok.bos_id,
            tolerance=profile.probe_tolerance))
        result.timings["probes_s"] = time.perf_counter() - t0
        failed = [p for p in result.probes if not p["passed"]]
        if failed:
            result.status = "rejected"
            result.reason = "probe_failed: " + ", ".join(p["name"] for p in failed) + " (" + \
                "; ".join(_probe_detail(p) for p in failed) + ")"
            return result

        t0 = time.perf_counter()
        token_bytes = tok.token_bytes_tensor(device)
        nats = torch.zeros((), dtype=torch.float64, device=device)
        nbytes = torch.zeros((), dtype=torch.int64, device=device)
        B = profile.eval_batch_size
        for i in range(0, rows.shape[0], B):
            batch = rows[i : i + B].to(device)
            x, y = batch[:, :-1], batch[:, 1:]
            logits = run_forward(forward, x, V)
            if i == 0:
                # The probes ran on small batches; the score on big ones. A model that acts
                # differently by batch size (causal only when probed) shows it here.
                result.probes.append(consistency_probe(
                    reference, logits[:n_probe], tolerance=profile.probe_tolerance))
            ce = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1), reduction="none")
            b = token_bytes[y.reshape(-1)]
            nats += (ce.double() * (b > 0)).sum()
            nbytes += b.sum()
        elapsed = time.perf_counter() - t0
    if not result.probes[-1]["passed"]:
        result.status = "rejected"
        result.reason = f"probe_failed: batch_consistency ({_probe_detail(result.probes[-1])})"
        return result
    total_bytes = int(nbytes)
    if total_bytes == 0:
        raise EvalInputError("the validation rows hold no text bytes.")
    result.val_bpb = float(nats) / (math.log(2) * total_bytes)
    result.tokens_evaluated = rows.shape[0] * profile.seq_len
    result.bytes_evaluated = total_bytes
    result.timings["eval_s"] = elapsed
    result.timings["tokens_per_s"] = result.tokens_evaluated / max(elapsed, 1e-9)
    return result


def _probe_detail(p: dict) -> str:
    if p["name"] == "batch_consistency":
        return (f"logits of the same rows moved by {p['max_change']:.3g} between batch sizes "
                f"{p['batch_sizes'][0]} and {p['batch_sizes'][1]}")
    if p["name"] == "causality":
        bad = [r for r in p["positions"] if not r["ok"]]
        return (f"changing token {bad[0]['j']} moved earlier logits by "
                f"{bad[0]['max_change_before_j']:.3g} > {p['tolerance']:.3g}")
    return f"changing one row moved other rows by {p['max_change_other_rows']:.3g}"


def evaluate_module(model: Any, data_dir: str | Path, profile: str | Profile = "tiny",
                    device: str = "cpu") -> EvalResult:
    """Score an in-process model (an `nn.Module` or any callable) with the evaluator's code.

    For tests and debugging: no seal check and no export, so its number is not a result.
    """
    prof = profile if isinstance(profile, Profile) else get_profile(profile)
    if hasattr(model, "eval"):
        model.eval()
    return score(model, Path(data_dir), prof, device=device)


def _resolve_profile(name: str | None, data_dir: Path) -> Profile:
    sealed = _seal.read(data_dir).get("profile")
    prof = get_profile(name or sealed or "tiny")
    if sealed and sealed != prof.name:
        raise EvalInputError(f"{data_dir} was prepared for profile {sealed!r}, not {prof.name!r}.")
    return prof


def evaluate_file(model_path: str | Path, data_dir: str | Path, profile: str | None = None,
                  device: str | None = None) -> EvalResult:
    """The official path: seal check, safe load of the exported program, probes, val_bpb.

    Returns a result for scored and rejected runs; raises EvalInputError on bad input.
    """
    from eval_frozen.model_io import load_program

    data_dir = Path(data_dir)
    t_start = time.perf_counter()
    if not data_dir.is_dir():
        raise EvalInputError(f"data dir {data_dir} not found; run `labwarden prepare`.")
    prof = _resolve_profile(profile, data_dir)
    device = device or prof.device
    _check_device(device)
    t0 = time.perf_counter()
    check = _seal.verify(data_dir, _seal.EVAL_GROUPS)
    seal_s = time.perf_counter() - t0
    if not check:
        return EvalResult(status="rejected", reason=f"seal_broken: {check.problem}",
                          seal_hash=check.seal_hash, profile=prof.name, device=device,
                          model=str(model_path), timings={"seal_s": seal_s})
    t0 = time.perf_counter()
    forward = load_program(model_path, device)
    load_s = time.perf_counter() - t0
    result = score(forward, data_dir, prof, device=device)
    result.seal_hash = check.seal_hash
    result.model = str(model_path)
    result.timings.update(seal_s=seal_s, load_s=load_s, total_s=time.perf_counter() - t_start)
    return result


def _check_device(device: str) -> None:
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EvalInputError(f"device {device!r} requested but no CUDA GPU is available; "
                             f"pass --device cpu.")
    if not (device == "cpu" or device.startswith("cuda")):
        raise EvalInputError(f"device must be cpu or cuda[:N], but got {device!r}.")


def write_metrics(path: Path, result: EvalResult) -> None:
    from eval_frozen.shards import atomic_write_bytes

    data = asdict(result)
    data["timings"] = {k: round(v, 4) for k, v in data["timings"].items()}
    atomic_write_bytes(Path(path), (json.dumps(data, indent=1) + "\n").encode())


# ---- command: labwarden evaluate -----------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="the exported program (model.pt2)")
    parser.add_argument("--data-dir", default=None,
                        help="prepared data (default <workspace>/.labwarden/data/<profile>)")
    parser.add_argument("--out", default="metrics.json", help="where to write metrics.json")
    parser.add_argument("--profile", default=None,
                        help="tiny, small or gpu (default: the one the data was prepared for)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: the profile's)")
    parser.add_argument("--workspace", default=None,
                        help="workspace root, to find the data dir "
                             "(default: nearest folder with labwarden.toml)")


def run(args: argparse.Namespace) -> int:
    from eval_frozen.prepare import resolve_data_dir

    out = Path(args.out)
    try:
        data_dir = resolve_data_dir(args.data_dir, args.workspace, args.profile or "tiny")
        result = evaluate_file(args.model, data_dir, args.profile, args.device)
    except (EvalInputError, ValueError) as e:
        result = EvalResult(status="error", reason=str(e), profile=args.profile or "",
                            model=str(args.model))
        print(f"labwarden evaluate: error: {e}", file=sys.stderr)
    except Exception as e:  # a bug of ours still leaves a metrics file saying so
        result = EvalResult(status="error", reason=f"internal error: {type(e).__name__}: {e}",
                            profile=args.profile or "", model=str(args.model))
        write_metrics(out, result)
        raise
    write_metrics(out, result)
    if result.status == "scored":
        print(f"val_bpb: {result.val_bpb:.6f}")
        print(f"tokens_evaluated: {result.tokens_evaluated}")
        print(f"tokens_per_s: {result.timings.get('tokens_per_s', 0):.0f}")
        print(f"seal_hash: {result.seal_hash}")
    elif result.status == "rejected":
        print(f"rejected: {result.reason}", file=sys.stderr)
    return result.exit_code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m eval_frozen.evaluate",
        description="Score an exported model with the frozen evaluator.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
