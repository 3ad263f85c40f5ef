"""`labwarden baseline`: train the unmodified trainer, then score it with the frozen evaluator.

Both steps run as plain subprocesses from the workspace root, each in its own process
group so a timeout or Ctrl-C kills the whole tree. (The sandbox backends replace these
plain subprocesses later; the run folder layout and the environment contract stay.)

Run folder: `<state_dir>/runs/baseline-<UTC timestamp>/` with `train.log`, `model.pt2`,
`eval.log` and `metrics.json`. Only `metrics.json`, written by the evaluator, holds the
score; the trainer's summary is shown for information.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from labwarden.errors import InputError

# Training may run this long past its budget (interpreter start-up, data loading, export).
GRACE_S = 120.0
EVAL_TIMEOUT_S = 900.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile", default=None, help="profile to train (default: the workspace's [run] profile)"
    )
    parser.add_argument(
        "--workspace",
        default=None,
        help="workspace folder (default: nearest folder with labwarden.toml)",
    )
    parser.add_argument(
        "--time-budget",
        type=float,
        default=None,
        metavar="S",
        help="training seconds (default: the workspace's, else the profile's)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def run(args: argparse.Namespace) -> int:
    from labwarden.config import load_config

    config = load_config(args.workspace)
    profile = args.profile or config.profile
    profile_budget = _profile_budget(profile)  # also rejects an unknown profile name
    data_dir = config.data_path(profile)
    if not (data_dir / "train").is_dir() or not (data_dir / "val").is_dir():
        raise InputError(
            f"no prepared data for profile {profile!r} in {data_dir}; "
            f"run 'labwarden prepare --profile {profile}'."
        )
    budget = args.time_budget if args.time_budget is not None else (
        config.time_budget_s or profile_budget)
    if not (budget > 0 and math.isfinite(budget)):
        raise InputError(f"--time-budget must be a positive number of seconds, but got {budget}.")

    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    run_dir = config.state_path / "runs" / f"baseline-{stamp}"
    suffix = 1
    while run_dir.exists():  # two baselines in the same second
        suffix += 1
        run_dir = config.state_path / "runs" / f"baseline-{stamp}-{suffix}"
    run_dir.mkdir(parents=True)
    log = sys.stderr  # progress goes to stderr so --json keeps stdout clean

    env = dict(os.environ)
    env.update(
        LABWARDEN_PROFILE=profile,
        LABWARDEN_DATA_DIR=str(data_dir),
        LABWARDEN_TIME_BUDGET=f"{budget:g}",
        LABWARDEN_OUT_DIR=str(run_dir),
        PYTHONUNBUFFERED="1",
    )
    # OpenMP threads spin while they wait by default; on a busy machine (CI, parallel runs)
    # that makes torch several times slower. Sleeping waiters cost little when idle.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    print(f"baseline: training {profile} for {budget:g}s -> {run_dir}", file=log)
    train_rc = _run_logged(
        _python(config.train_command),
        config.root,
        env,
        run_dir / "train.log",
        budget + GRACE_S,
        log,
    )
    summary = _parse_summary((run_dir / "train.log").read_text(encoding="utf-8", errors="replace"))
    model = run_dir / "model.pt2"
    if train_rc != 0 or not model.is_file():
        why = "timed out" if train_rc is None else f"exited with {train_rc}"
        print(f"labwarden baseline: training {why}; see {run_dir / 'train.log'}", file=sys.stderr)
        return 1

    metrics_path = run_dir / "metrics.json"
    eval_cmd = [
        *_python(config.eval_command),
        "--model",
        str(model),
        "--data-dir",
        str(data_dir),
        "--out",
        str(metrics_path),
        "--profile",
        profile,
    ]
    print("baseline: evaluating with the frozen evaluator", file=log)
    eval_rc = _run_logged(eval_cmd, config.root, env, run_dir / "eval.log", EVAL_TIMEOUT_S, log)
    metrics = _read_metrics(metrics_path)
    if eval_rc != 0 or metrics.get("status") != "scored":
        reason = metrics.get("reason") or f"evaluator exited with {eval_rc}"
        print(
            f"labwarden baseline: not scored: {reason}; see {run_dir / 'eval.log'}", file=sys.stderr
        )
        return 2 if eval_rc == 2 else 1

    if args.json:
        print(
            json.dumps(
                {
                    "profile": profile,
                    "val_bpb": metrics.get("val_bpb"),
                    "metrics": metrics,
                    "trainer": summary,
                    "run_dir": str(run_dir),
                },
                indent=2,
            )
        )
    else:
        print(f"val_bpb: {metrics['val_bpb']:.6f}")
        print(f"tokens_evaluated: {metrics.get('tokens_evaluated')}")
        print("--- trainer summary (informational)")
        for key, value in summary.items():
            print(f"{key}: {value}")
        print(f"run_dir: {run_dir}")
    return 0


def _profile_budget(profile: str) -> float:
    from eval_frozen.dataloader import load_profile

    try:
        return float(load_profile(profile).time_budget_s)
    except (KeyError, ValueError) as e:
        raise InputError(str(e).strip("'\"")) from None


def _python(command: tuple[str, ...]) -> list[str]:
    """Run `python ...` commands with this interpreter, so a venv's packages are the ones used."""
    if command and command[0] in ("python", "python3"):
        return [sys.executable, *command[1:]]
    return list(command)


def _run_logged(
    cmd: list[str], cwd: Path, env: dict[str, str], log_path: Path, timeout_s: float, echo: IO[str]
) -> int | None:
    """Run `cmd` in its own process group, teeing its output to `log_path` and `echo`.

    Returns the exit code, or None when it ran past `timeout_s` and was killed.
    """
    with open(log_path, "w", encoding="utf-8") as log_file:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        assert proc.stdout is not None

        def pump() -> None:
            for line in proc.stdout:  # type: ignore[union-attr]
                log_file.write(line)
                echo.write(line)
                echo.flush()

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            rc: int | None = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            rc = None
        finally:
            if proc.poll() is None:  # timeout or Ctrl-C: take the whole group down
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
            reader.join(timeout=5)
    return rc


def _parse_summary(text: str) -> dict[str, str]:
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


def _read_metrics(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}
