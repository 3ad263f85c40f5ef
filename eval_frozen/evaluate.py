"""The frozen evaluator: scores an exported model in bits per byte of validation text.

    python -m eval_frozen.evaluate --model OUT/model.pt2 --data-dir DIR --out metrics.json
        [--profile P] [--device cpu|cuda]          (also: labwarden evaluate ...)

Steps: verify the seal groups the evaluator reads (code, tokenizer, val); load the
exported program (no trainer Python runs; static checks, then every pass under a runtime
guard: see model_io); score exactly `profile.eval_tokens` target positions of the
validation split, packed into rows exactly as training rows are packed; then check
causality on what was scored: `profile.probe_checks` secret (row, cut) checks drawn from
the OS's randomness, at the scoring batch sizes, compared in nats (see probes). Only the
exported program is ever checked and scored, so a model that acts differently while being
exported gains nothing; `evaluate_module` (in-process) is for tests and never a result.

val_bpb = sum of cross-entropy in nats over targets / (ln 2 * sum of their UTF-8 bytes);
BOS targets (0 bytes) count in neither sum, so the metric does not depend on the
vocabulary and a model cannot gain by predicting document starts.

metrics.json, written in every case:
    status            "scored" | "rejected" | "error"
    val_bpb           float, only when scored
    reason            "" when scored; else "seal_broken: ...", "probe_failed: causality (...)",
                      "model_refused: ..." (a file built to run code or dodge the checks:
                      pickles, code in shape expressions, calls that are not operators,
                      random operators, writes to state) or the input error
    probes            [{"name": "causality", "passed", "checks", "failed",
                        "max_deviation_nats", "tolerance_nats", "batch_sizes", "rows",
                        "worst_failures": [{"row", "cut", "deviation_nats"}, ...],
                        "random_tokens", "random_tokens_ranked_first",
                        "random_tokens_chance", "random_tokens_log10_p",
                        "nondeterministic_kernels": CUDA operators that ran without a
                        deterministic kernel (always [] on CPU)}]
    tokens_evaluated  target positions scored (= profile.eval_tokens when scored)
    bytes_evaluated   UTF-8 bytes those targets stand for
    seal_hash, timings (seconds: data_s, eval_s, probes_s, seal_s, load_s, total_s;
                      tokens_per_s), profile, device, model

Exit codes: 0 scored; 1 rejected (a probe failed, the model was refused, or the seal is
broken: the run is discarded with a named reason); 2 input error (missing data or model,
corrupt model file, wrong vocabulary, non-finite logits), one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval_frozen import seal as _seal
from eval_frozen import tokenizer as _tokenizer
from eval_frozen.errors import EvalInputError, ModelRefused
from eval_frozen.model_io import GuardedForward, deterministic_algorithms, load_program
from eval_frozen.packing import pack_rows
from eval_frozen.probes import (
    CausalityCheck,
    Forward,
    describe_failure,
    draw_plan,
    probe_input,
    run_forward,
    target_log_probs,
)
from eval_frozen.profiles import Profile, get_profile
from eval_frozen.shards import iter_texts, list_shards

if TYPE_CHECKING:
    import torch

__all__ = ["EvalResult", "evaluate_file", "evaluate_module", "score", "val_rows"]

IN_PROCESS = "in-process module (not a result: no seal, no export)"


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


def _batch_sizes(n_rows: int, batch_size: int) -> list[int]:
    return [min(batch_size, n_rows - i) for i in range(0, n_rows, batch_size)]


def score(forward: Forward, data_dir: Path, profile: Profile, *, device: str = "cpu",
          tok: _tokenizer.Tokenizer | None = None) -> EvalResult:
    """val_bpb, then the causality check on what was scored, for `ids (B, T) -> logits (B, T, V)`.

    Shared by the exported-file path and the in-process path, so they differ only in how
    the model was loaded. Every pass runs under model_io's runtime guard. Raises
    EvalInputError on bad input.
    """
    import numpy as np
    import torch

    if not isinstance(forward, GuardedForward):
        forward = GuardedForward(forward)

    tok = tok or _tokenizer.load(Path(data_dir) / "tokenizer")
    if tok.vocab_size != profile.vocab_size:
        raise EvalInputError(f"the tokenizer has {tok.vocab_size} tokens but profile "
                             f"{profile.name} fixes {profile.vocab_size}; re-run prepare.")
    V = tok.vocab_size
    result = EvalResult(status="scored", profile=profile.name, device=device)
    t0 = time.perf_counter()
    rows = val_rows(data_dir, tok, profile)
    result.timings["data_s"] = time.perf_counter() - t0

    # Drawn here, from the OS, for this run only; the model sees none of it until the
    # probe passes, which come after every scoring pass.
    rng = np.random.default_rng(secrets.randbits(128))
    sizes = _batch_sizes(rows.shape[0], profile.eval_batch_size)
    plan = draw_plan(sizes, profile.seq_len, profile.probe_checks, rng)
    check = CausalityCheck(plan, profile.probe_tolerance, vocab_size=V, bos_id=tok.bos_id)

    with torch.no_grad(), deterministic_algorithms(device) as nondeterministic:
        t0 = time.perf_counter()
        token_bytes = tok.token_bytes_tensor(device)
        nats = torch.zeros((), dtype=torch.float64, device=device)
        nbytes = torch.zeros((), dtype=torch.int64, device=device)
        first = 0
        for size in sizes:
            batch = rows[first : first + size].to(device)
            x, y = batch[:, :-1], batch[:, 1:]
            logits = run_forward(forward, x, V)
            lp = target_log_probs(logits, y)
            b = token_bytes[y]
            nats -= (lp * (b > 0)).sum()  # BOS targets have 0 bytes and count nowhere
            nbytes += b.sum()
            check.record(first, logits, lp)
            first += size
        elapsed = time.perf_counter() - t0

        t0 = time.perf_counter()
        inputs = rows[:, :-1]
        for pb in plan:
            x = probe_input(inputs, pb, vocab_size=V, bos_id=tok.bos_id, rng=rng).to(device)
            y = rows[list(pb.rows), 1:].to(device)
            logits = run_forward(forward, x, V)
            check.compare(pb, x, y, logits, target_log_probs(logits, y))
        result.timings["probes_s"] = time.perf_counter() - t0
    result.probes.append({**check.result(), "nondeterministic_kernels": nondeterministic})
    result.timings["eval_s"] = elapsed
    failed = [p for p in result.probes if not p["passed"]]
    if failed:
        result.status = "rejected"
        result.reason = "probe_failed: " + ", ".join(p["name"] for p in failed) + " (" + \
            "; ".join(describe_failure(p) for p in failed) + ")"
        return result
    total_bytes = int(nbytes)
    if total_bytes == 0:
        raise EvalInputError("the validation rows hold no text bytes.")
    result.val_bpb = float(nats) / (math.log(2) * total_bytes)
    result.tokens_evaluated = rows.shape[0] * profile.seq_len
    result.bytes_evaluated = total_bytes
    result.timings["tokens_per_s"] = result.tokens_evaluated / max(elapsed, 1e-9)
    return result


def evaluate_module(model: Any, data_dir: str | Path, profile: str | Profile = "tiny",
                    device: str = "cpu") -> EvalResult:
    """Score an in-process model (an `nn.Module` or any callable) with the evaluator's code.

    For tests and debugging only, never a result: no seal check, no export, no static graph
    checks (Python state is invisible here; the runtime guard still runs). Its `model` field
    says so; only `evaluate_file` (the command) scores what the trainer exported.
    """
    prof = profile if isinstance(profile, Profile) else get_profile(profile)
    if hasattr(model, "eval"):
        model.eval()
    result = score(model, Path(data_dir), prof, device=device)
    result.model = IN_PROCESS
    return result


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
    try:
        forward = load_program(model_path, device)
        load_s = time.perf_counter() - t0
        result = score(forward, data_dir, prof, device=device)
    except ModelRefused as e:  # built to run code or dodge the checks: a rejection
        return EvalResult(status="rejected", reason=f"model_refused: {e}",
                          seal_hash=check.seal_hash, profile=prof.name, device=device,
                          model=str(model_path),
                          timings={"seal_s": seal_s, "total_s": time.perf_counter() - t_start})
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
