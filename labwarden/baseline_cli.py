"""`labwarden baseline`: train the unmodified trainer and score it, in the sandbox.

The same path as `labwarden try` with no patch (the experiment service: sandbox, audit
trail, ledger), with a summary made for a person: the evaluator's val_bpb first, then the
trainer's own `key: value` block, which is informational only (only the evaluator's
metrics.json, written in its own step, holds the score).

Run folder: `<state_dir>/runs/baseline-<UTC timestamp>/` (the sandbox's layout: `train.log`,
`train/model.pt2`, `eval.log`, `eval/metrics.json`, `result.json`).
Exit: 0 scored, 1 not scored (the reason on stderr), 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

from labwarden.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile", default=None, help="profile to train (default: the workspace's [run] profile)"
    )
    parser.add_argument("--backend", choices=("docker", "local"), default=None,
                        help="default: [sandbox] backend, else Docker when an engine answers")
    parser.add_argument(
        "--time-budget", type=float, default=None, metavar="S",
        help="training seconds (default: the workspace's, else the profile's)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--workspace", default=None,
                        help="workspace folder (default: nearest folder with labwarden.toml)")


def check_budget(value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise InputError(f"--time-budget must be a positive number of seconds, but got {value}.")


def run(args: argparse.Namespace) -> int:
    from labwarden.config import load_config
    from labwarden.try_cli import check_profile, run_manual
    from labwarden.try_progress import StageLine

    config = load_config(args.workspace)
    profile = args.profile or config.profile
    check_profile(profile)
    check_budget(args.time_budget)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    runs = config.state_path / "runs"
    exp_id, n = f"baseline-{stamp}", 1
    while (runs / exp_id).exists():  # two baselines in the same second
        n += 1
        exp_id = f"baseline-{stamp}-{n}"
    outcome, backend = run_manual(
        config, patch=None, backend_name=args.backend, profile=profile, experiment_id=exp_id,
        time_budget_s=args.time_budget, gpus=None,
        hypothesis="baseline: the workspace's trainer, unchanged",
        narrate=StageLine(sys.stderr))
    result = outcome.result
    assert result is not None  # no patch: nothing for the guards to block
    print(f"baseline: trained and scored {profile} on {backend} in {result.run_dir}",
          file=sys.stderr)
    train_log = result.run_dir / "train.log"
    summary = parse_summary(train_log.read_text(encoding="utf-8", errors="replace")
                            if train_log.is_file() else "")
    if result.status != "ok":
        print(f"labwarden baseline: not scored ({result.status}): {result.reason}; see "
              f"{result.run_dir}", file=sys.stderr)
        return 2 if result.status == "error" else 1
    metrics = result.metrics or {}
    if args.json:
        print(json.dumps({"profile": profile, "backend": backend, "val_bpb": result.val_bpb,
                          "metrics": metrics, "trainer": summary, "result": result.to_dict(),
                          "run_dir": str(result.run_dir)}, indent=2))
        return 0
    print(f"val_bpb: {result.val_bpb:.6f}")
    print(f"tokens_evaluated: {metrics.get('tokens_evaluated')}")
    print(f"backend: {backend}")
    print("--- trainer summary (informational)")
    for key, value in summary.items():
        print(f"{key}: {value}")
    print(f"run_dir: {result.run_dir}")
    return 0


def parse_summary(text: str) -> dict[str, str]:
    """The `key: value` block the trainer prints after its last `---` line."""
    _, sep, tail = text.rpartition("\n---\n")
    if not sep:
        return {}
    out = {}
    for line in tail.splitlines():
        key, colon, value = line.partition(":")
        if colon and key.strip() and " " not in key.strip():
            out[key.strip()] = value.strip()
    return out
