"""The frozen evaluator's cost, before and after the secret causality checks: a script, not a test.

    python benchmarks/evaluator.py [--old REV] [--new REV] [--repeat 3]

For the tiny profile, runs a whole evaluation step (`python -m eval_frozen.evaluate`, as
the sandbox runs it: interpreter, seal, load, scoring, probes) on the trainer's GPT at the
tiny size, with the evaluator of commit --old (default: the last one with the fixed probe
set) and that of commit --new (default HEAD), alternating, each on its own prepared and
sealed copy of the tiny data. Both trees are the --old tree (read with `git archive`: no
worktree, no checkout, uncommitted changes do not count); the new one has the evaluator's
own files of --new laid over it, so both score the same validation rows and must agree on
val_bpb. Prints each part (load, scoring, probes, the whole step) as the fastest and the
median of the repeats. Numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # run from a checkout without installing

OLD_REV = "eb24d93"  # the evaluator with probes at fixed positions on 2 and 4 rows
WORKSPACE_ITEMS = ("eval_frozen", "labwarden.toml")
# The evaluator proper; data preparation and sources stay those of --old in both trees.
EVALUATOR_FILES = ("evaluate.py", "probes.py", "model_io.py", "profiles.py")


def tree_at(rev: str, dest: Path) -> Path:
    """`eval_frozen/` and the config of commit `rev`, unpacked into `dest`."""
    data = subprocess.run(["git", "archive", rev, *WORKSPACE_ITEMS], cwd=REPO_ROOT,
                          capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def overlay_evaluator(rev: str, tree: Path) -> Path:
    for name in EVALUATOR_FILES:
        text = subprocess.run(["git", "show", f"{rev}:eval_frozen/{name}"], cwd=REPO_ROOT,
                              capture_output=True, check=True).stdout
        (tree / "eval_frozen" / name).write_bytes(text)
    return tree


def prepare(ws: Path) -> Path:
    """Tiny data sealed against this workspace's own evaluator code."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    subprocess.run([sys.executable, "-m", "eval_frozen.prepare", "--profile", "tiny",
                    "--workspace", str(ws)], cwd=ws, env=env, check=True,
                   capture_output=True, timeout=600)
    return ws / ".labwarden" / "data" / "tiny"


def export_gpt(path: Path) -> Path:
    """The trainer's GPT at the tiny size, its zero-initialised projections filled so every
    part computes (the cost is that of a trained model)."""
    import torch

    from eval_frozen.profiles import get_profile
    from trainer import train

    profile = get_profile("tiny")
    depth, width, _ = train.model_size("tiny")
    torch.manual_seed(0)
    model = train.GPT(profile.vocab_size, profile.seq_len, depth, width, train.N_HEAD,
                      train.MLP_RATIO)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    train.export_model(model, profile.seq_len, path)
    return path


def one_step(ws: Path, data_dir: Path, model: Path) -> dict[str, float]:
    out = ws / "metrics.json"
    # As the sandbox runs the step: passive OpenMP waits (spinning threads crawl on a busy CPU).
    env = {"OMP_WAIT_POLICY": "PASSIVE", **os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "eval_frozen.evaluate", "--model", str(model),
                           "--data-dir", str(data_dir), "--out", str(out)],
                          cwd=ws, env=env, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t0
    metrics = json.loads(out.read_text())
    if proc.returncode != 0 or metrics["status"] != "scored":
        raise SystemExit(f"evaluation in {ws} failed ({proc.returncode}): {metrics['reason']}")
    t = metrics["timings"]
    checks = sum(p.get("checks", len(p.get("positions", [])) * p.get("rows", 0))
                 for p in metrics["probes"])
    return {"load_s": t["load_s"], "scoring_s": t["eval_s"], "probes_s": t["probes_s"],
            "in_process_s": t["total_s"], "step_s": wall, "checks": checks,
            "val_bpb": metrics["val_bpb"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", default=OLD_REV, help=f"commit of the old evaluator "
                                                       f"(default {OLD_REV})")
    parser.add_argument("--new", default="HEAD", help="commit of the new evaluator (HEAD)")
    parser.add_argument("--repeat", type=int, default=3, help="steps per evaluator (default 3)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, but got {args.repeat}.")

    with tempfile.TemporaryDirectory(prefix="lw-bench-eval-") as tmp:
        tmp = Path(tmp)
        trees = {"before": tree_at(args.old, tmp / "old"),
                 "after": overlay_evaluator(args.new, tree_at(args.old, tmp / "new"))}
        data = {name: prepare(ws) for name, ws in trees.items()}
        model = export_gpt(tmp / "model.pt2")
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
        for _ in range(args.repeat):  # alternating, so both see the same background load
            for name, ws in trees.items():
                runs[name].append(one_step(ws, data[name], model))

    print(f"evaluator, tiny profile, trainer GPT at the tiny size, {os.cpu_count()} CPUs, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'PASSIVE')}, "
          f"{args.repeat} steps each (fastest / median, seconds)")
    keys = ("load_s", "scoring_s", "probes_s", "in_process_s", "step_s")
    print(f"{'':8}" + "".join(f"{k:>16}" for k in keys) + f"{'checks':>8}{'val_bpb':>10}")
    for name, rs in runs.items():
        cells = "".join(f"{min(r[k] for r in rs):7.2f} /{statistics.median(r[k] for r in rs):6.2f}"
                        .rjust(16) for k in keys)
        print(f"{name:8}{cells}{int(rs[0]['checks']):8d}{rs[0]['val_bpb']:10.4f}")
    before, after = runs["before"], runs["after"]
    added = statistics.median(r["step_s"] for r in after) - \
        statistics.median(r["step_s"] for r in before)
    print(f"whole step added (median): {added:+.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
