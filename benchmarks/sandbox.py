"""Sandbox overhead per experiment, outside training and evaluation compute.

Overhead = an experiment's wall time minus the wall time of its two steps' commands:
copying the workspace, applying the patch, seal checks, container (or namespace) start
and stop, collecting logs and metrics. Training and evaluation are stand-ins that return
at once (the trainer writes a placeholder model, the evaluator a metrics.json), so what
remains is the sandbox's own cost. Target with Docker: under 2 s, i.e. under 1% of a
300 s budget.

    python benchmarks/sandbox.py [--runs 7] [--backend docker|local ...] [--workspace DIR]

--workspace: a workspace with `labwarden prepare --profile tiny` done (default: a
temporary copy of this repository's workspace files, prepared here, ~15 s).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# Stand-ins that return at once; `python -c` receives the evaluator's usual arguments.
TRAINER = """import os
LR = 0.02
open(os.path.join(os.environ["LABWARDEN_OUT_DIR"], "model.pt2"), "wb").write(b"placeholder")
"""
EVALUATOR = (
    "import json, sys; a = sys.argv; "
    "json.dump({'status': 'scored', 'val_bpb': 1.0}, open(a[a.index('--out') + 1], 'w'))"
)
PATCH = """--- a/trainer/train.py
+++ b/trainer/train.py
@@ -1,3 +1,3 @@
 import os
-LR = 0.02
+LR = 0.03
 open(os.path.join(os.environ["LABWARDEN_OUT_DIR"], "model.pt2"), "wb").write(b"placeholder")
"""


def prepared_workspace(dest: Path, source: Path | None) -> Path:
    if source is not None:
        shutil.copytree(source, dest, ignore=shutil.ignore_patterns("runs", "*.sqlite*"))
    else:
        dest.mkdir(parents=True)
        for item in ("eval_frozen", "trainer", "program.md", "labwarden.toml"):
            src = REPO / item
            if src.is_dir():
                shutil.copytree(src, dest / item, ignore=shutil.ignore_patterns("__pycache__"))
            elif src.is_file():
                shutil.copy2(src, dest / item)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "eval_frozen.prepare",
                "--profile",
                "tiny",
                "--workspace",
                str(dest),
            ],
            cwd=dest,
            check=True,
            capture_output=True,
        )
    (dest / "trainer" / "train.py").write_text(TRAINER)
    toml = dest / "labwarden.toml"
    text = re.sub(r"(?m)^eval_command\s*=.*$", "", toml.read_text())
    text = text.replace(
        "[run]", "[run]\neval_command = " + json.dumps(["python", "-c", EVALUATOR]), 1
    )
    toml.write_text(text)
    return dest


def measure(backend_name: str, workspace: Path, runs: int) -> dict:
    from labwarden.config import load_config
    from sandbox import ExperimentSpec, get_backend

    config = load_config(workspace)
    backend = get_backend(backend_name)
    backend.setup()  # a one-time image check, not per experiment
    rows = []
    try:
        for i in range(runs + 1):
            spec = ExperimentSpec(
                config=config,
                patch=PATCH,
                profile="tiny",
                time_budget_s=5,
                experiment_id=f"bench-{backend_name}-{time.time_ns()}",
            )
            started = time.monotonic()
            result = backend.run(spec)
            total = time.monotonic() - started
            if result.status != "ok":
                raise SystemExit(
                    f"{backend_name}: run {i} ended {result.status}: {result.reason}\n"
                    f"{result.log_tail}"
                )
            if i:  # the first run warms caches (page cache, engine); it is not counted
                rows.append(
                    (total, result.overhead_seconds, result.train_seconds + result.eval_seconds)
                )
    finally:
        backend.cleanup()
    return {
        "backend": backend_name,
        "runs": runs,
        "median_total_s": round(statistics.median(r[0] for r in rows), 3),
        "median_overhead_s": round(statistics.median(r[1] for r in rows), 3),
        "median_steps_s": round(statistics.median(r[2] for r in rows), 3),
        "max_overhead_s": round(max(r[1] for r in rows), 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--backend", action="append", choices=("docker", "local"))
    parser.add_argument("--workspace", type=Path, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    backends = args.backend or ["local", "docker"]
    with tempfile.TemporaryDirectory() as tmp:
        ws = prepared_workspace(Path(tmp) / "ws", args.workspace)
        results = [measure(b, ws, args.runs) for b in backends]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(
            f"{'backend':<8} {'runs':>4} {'overhead (median)':>18} {'max':>7} "
            f"{'steps (median)':>15} {'total (median)':>15}"
        )
        for r in results:
            print(
                f"{r['backend']:<8} {r['runs']:>4} {r['median_overhead_s']:>16.3f} s "
                f"{r['max_overhead_s']:>5.2f} s {r['median_steps_s']:>13.3f} s "
                f"{r['median_total_s']:>13.3f} s"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
