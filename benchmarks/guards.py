"""Guard check latency and audit writer throughput.

    python benchmarks/guards.py [--iterations N] [--json]

1. In-process time to check a typical patch (three edits: a hyperparameter, a schedule
   line, a new helper) against a 600-line trainer with every built-in rule active:
   median and p99 over N checks, each of a *different* patch against the same base (the
   agent loop's shape: the base file's analysis is reused, the patch's side is not).
   Also the cold figure (first check in a fresh process, imports excluded).
2. Audit writer: patches recorded per second into a fresh WAL SQLite file.
3. Whole process: `labwarden guards check PATCH --no-audit` as a user runs it, for a
   hyperparameter patch and a patch that adds a helper (the usability target: <= 80 ms,
   and <= 2.5x `python -c pass` measured in the same runs), wall time and the child's CPU
   time, against this repository's trainer. Bytecode is compiled first, as an installed
   copy has it.
4. The corpus: every cheat and honest edit of tests/guards/corpus (the red team's second
   round included), checked in one process: how many are blocked, the time per patch.

Wall times and CPU times are both reported: on a shared machine wall time includes waiting
for a core, CPU time does not.

The 600-line file is our trainer padded with ordinary helper functions, so every rule
sees realistic code. Target: median under 10 ms.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def make_workspace(root: Path, lines: int = 600) -> str:
    shutil.copy(REPO / "labwarden.toml", root / "labwarden.toml")
    (root / "trainer").mkdir()
    text = (REPO / "trainer" / "train.py").read_text()
    pad, i, n = [], 0, len(text.splitlines())
    while n < lines - 6:
        pad.append(f"\n\ndef helper_{i}(x: torch.Tensor, scale: float = {i}.0) -> torch.Tensor:\n"
                   f'    """Ordinary model code, {i}."""\n'
                   f"    y = F.rms_norm(x, (x.size(-1),)) * scale\n"
                   f"    return y + torch.tanh(y) / (1 + {i})\n")
        i += 1
        n += 6
    anchor = "\n# " + "-" * 75 + "\n# Setup"
    text = text.replace(anchor, "".join(pad) + anchor, 1)
    (root / "trainer" / "train.py").write_text(text)
    return text


def typical_patch(base: str, k: int) -> str:
    after = base.replace("LR = 0.02 ", f"LR = 0.0{k % 9 + 1} ")
    after = after.replace("WARMDOWN_FRAC = 0.5 ", f"WARMDOWN_FRAC = 0.{k % 7 + 2} ")
    after = after.replace(
        "def lr_multiplier(progress: float) -> float:",
        f"def ema(a: float, b: float, beta: float = 0.9{k}) -> float:\n"
        '    """Exponential moving average step."""\n'
        "    return beta * a + (1 - beta) * b\n\n\n"
        "def lr_multiplier(progress: float) -> float:")
    return "diff --git a/trainer/train.py b/trainer/train.py\n" + "".join(
        difflib.unified_diff(base.splitlines(True), after.splitlines(True),
                             "a/trainer/train.py", "b/trainer/train.py"))


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def whole_process(name: str, runs: int) -> dict[str, float]:
    """Median and p90 wall time, and median child CPU time, of the CLI checking a patch."""
    import resource
    import subprocess

    patch = REPO / "tests" / "guards" / "corpus" / "legit" / f"{name}.patch"
    # what the `labwarden` console script runs; `pass` is the interpreter's own start-up,
    # measured in the same runs so that load on a shared machine shows in both
    cmd = [sys.executable, "-c", "pass"] if name == "pass" else [
        sys.executable, "-m", "labwarden.cli", "guards", "check", str(patch), "--no-audit"]
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, stdout=subprocess.DEVNULL, check=False)
        walls.append(1000 * (time.perf_counter() - t))
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(1000 * (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime))
    return {"wall_median_ms": round(statistics.median(walls), 1),
            "wall_p90_ms": round(pct(walls, 0.9), 1),
            "cpu_median_ms": round(statistics.median(cpus), 1)}


def corpus_figures() -> dict[str, object]:
    """Blocked counts and per-patch time over the stored corpus (one process, warm)."""
    from guards.engine import check_patch
    from labwarden.config import load_config

    config = load_config(REPO)
    out: dict[str, object] = {}
    corpus = REPO / "tests" / "guards" / "corpus"
    redteam2 = sorted((corpus / "redteam2").glob("redteam2_*.patch"))
    honest2 = [f for f in redteam2 if f.stem.startswith(("redteam2_h_", "redteam2_honest"))]
    for kind, files in (("cheat", sorted((corpus / "cheat").glob("*.patch"))),
                        ("legit", sorted((corpus / "legit").glob("*.patch"))),
                        ("redteam2_cheat", [f for f in redteam2 if f not in honest2]),
                        ("redteam2_honest", honest2)):
        times, blocked = [], 0
        for f in files:
            t = time.process_time()
            report = check_patch(f.read_text(), config)
            times.append(1000 * (time.process_time() - t))
            blocked += report.blocked
        out[f"corpus_{kind}_blocked"] = f"{blocked}/{len(files)}"
        out[f"corpus_{kind}_cpu_median_ms"] = round(statistics.median(times), 2)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--audit-records", type=int, default=500)
    ap.add_argument("--processes", type=int, default=15, help="whole-process runs per patch")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from guards.audit import AuditStore
    from guards.engine import build_registry, check_patch
    from labwarden.config import load_config

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base = make_workspace(root)
        config = load_config(root)
        registry = build_registry(config)
        patches = [typical_patch(base, k) for k in range(args.iterations + 1)]
        t = time.perf_counter()
        first = check_patch(patches[0], config, registry=registry)
        cold_ms = 1000 * (time.perf_counter() - t)
        assert first.verdict == "passed", first.render()
        times, cpu = [], []
        for p in patches[1:]:
            t, c = time.perf_counter(), time.process_time()
            check_patch(p, config, registry=registry)
            times.append(1000 * (time.perf_counter() - t))
            cpu.append(1000 * (time.process_time() - c))

        store = AuditStore(root / "audit.sqlite")
        t = time.perf_counter()
        for k in range(args.audit_records):
            store.record(first, patches[k % len(patches)], str(root))
        audit_rate = args.audit_records / (time.perf_counter() - t)
        store.close()

    # Stale bytecode (PYTHONDONTWRITEBYTECODE=1 in agent shells, files just edited) makes
    # every process recompile the changed modules: compile once, as an installed copy has.
    import compileall

    for folder in ("guards", "labwarden", "agents"):
        compileall.compile_dir(str(REPO / folder), quiet=1)
    process = {name: whole_process(patch, args.processes)
               for name, patch in (("python_pass", "pass"), ("hyperparameter", "lr_increase"),
                                   ("helper", "helper_refactor"))}
    baseline = process["python_pass"]["wall_median_ms"] or 1.0
    ratios = {f"process_{k}_ratio_to_python": round(process[k]["wall_median_ms"] / baseline, 2)
              for k in ("hyperparameter", "helper")}
    corpus = corpus_figures()

    result = {
        "file_lines": len(base.splitlines()),
        "rules": len(registry.rules),
        "iterations": len(times),
        "cold_first_check_ms": round(cold_ms, 2),
        "median_ms": round(statistics.median(times), 2),
        "p99_ms": round(pct(times, 0.99), 2),
        # CPU time of this process: what the check costs on an idle core, even when the
        # machine is shared and wall time includes waiting for a CPU.
        "cpu_median_ms": round(statistics.median(cpu), 2),
        "cpu_p99_ms": round(pct(cpu, 0.99), 2),
        "audit_patches_per_s": round(audit_rate, 1),
        **{f"process_{k}_{m}": v for k, fig in process.items() for m, v in fig.items()},
        **ratios,
        **corpus,
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, python {platform.python_version()}",
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for k, v in result.items():
            print(f"{k:>22}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
