"""What `labwarden try` tells a person while it works, and how the result compares.

Stages are printed to stderr as they happen (stdout keeps the result, or the JSON): the
guards' verdict as soon as the check returns, then the sandbox's stages read from the run
folder it writes (`train.log` appears when training starts, `eval.log` when the evaluation
starts), with the elapsed time against the budget. On a terminal one line is redrawn in
place; elsewhere each stage gets one line, so a log stays short.

The closing comparison uses the keep rule's terms (`agents/keep.py`): the improvement over
the best and over the baseline of the same setup (backend and budget), in units of the
noise (the baseline's standard deviation, floored at `[agents] min_noise`), next to what a
keep needs (`keep_k` noise).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO


class StageLine:
    """One status line on `stream`: redrawn on a terminal, one line per change elsewhere."""

    def __init__(self, stream: TextIO, *, enabled: bool = True) -> None:
        self.stream = stream
        self.enabled = enabled
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self._last_stage = ""
        self._open = False
        self._lock = threading.Lock()

    def show(self, stage: str, detail: str = "") -> None:
        if not self.enabled:
            return
        with self._lock:
            line = f"{stage:<11} {detail}".rstrip()
            try:
                if self.tty:
                    self.stream.write("\r\x1b[2K" + line[:160])
                    self._open = True
                elif stage != self._last_stage:
                    self.stream.write(line + "\n")
                self.stream.flush()
            except (OSError, ValueError):  # stderr gone: the result still matters
                self.enabled = False
            self._last_stage = stage

    def done(self, stage: str, detail: str = "") -> None:
        """A stage's last word, always on its own line."""
        if not self.enabled:
            return
        with self._lock:
            try:
                if self._open:
                    self.stream.write("\r\x1b[2K")
                    self._open = False
                self.stream.write(f"{stage:<11} {detail}".rstrip() + "\n")
                self.stream.flush()
            except (OSError, ValueError):
                self.enabled = False
            self._last_stage = stage


class SandboxWatch:
    """A thread that reads the run folder's progress while the sandbox runs."""

    def __init__(self, line: StageLine, run_dir: Path, budget_s: float | None,
                 period_s: float = 0.5) -> None:
        self.line, self.run_dir, self.budget_s, self.period_s = line, run_dir, budget_s, period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="try-progress", daemon=True)
        self.started = time.monotonic()
        self.stage_started: dict[str, float] = {}

    def __enter__(self) -> SandboxWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)

    def stage(self) -> str:
        if (self.run_dir / "eval.log").exists():
            return "evaluating"
        if (self.run_dir / "train.log").exists():
            return "training"
        return "sandbox"

    def _loop(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            stage = self.stage()
            begun = self.stage_started.setdefault(stage, now)
            if stage == "training" and "sandbox" in self.stage_started:
                self.line.done("sandbox", f"started in {begun - self.started:.1f} s")
                self.stage_started.pop("sandbox")
            if stage == "evaluating" and "training" in self.stage_started:
                trained = begun - self.stage_started.pop("training")
                self.line.done("training", f"done in {trained:.1f} s (start-up and export "
                               "included)")
            elapsed = now - begun
            if stage == "sandbox":
                detail = f"starting ({elapsed:.1f} s)"
            elif not self.line.tty:  # one line per stage: say what it is, not a clock
                detail = (f"started (budget {self.budget_s:g} s)"
                          if stage == "training" and self.budget_s else "started")
            elif stage == "training" and self.budget_s:
                detail = f"{elapsed:5.1f} s elapsed of a {self.budget_s:g} s budget"
            else:
                detail = f"{elapsed:5.1f} s"
            self.line.show(stage, detail)
            self._stop.wait(self.period_s)


@dataclass(frozen=True)
class Comparison:
    label: str
    """'best' or 'baseline'."""
    value: float
    source: str
    """Where the value comes from: an experiment id, 'baseline (n runs)'."""
    improvement: float
    """Positive when this try is better (in the metric's direction)."""
    noise: float
    keep_k: float

    @property
    def in_noise(self) -> float:
        return self.improvement / self.noise if self.noise > 0 else 0.0

    def render(self, metric: str) -> str:
        better = self.improvement >= 0
        how = "better" if better else "worse"
        verdict = ("beyond the keep margin" if self.in_noise > self.keep_k
                   else "within the keep margin" if self.in_noise >= -self.keep_k
                   else "beyond the noise margin")
        return (f"vs {self.label + ':':<9} {self.value:.6f} {metric} ({self.source}): this try "
                f"is {abs(self.improvement):.6f} {how} = {abs(self.in_noise):.1f} noise "
                f"({verdict}; a keep needs > {self.keep_k:g} noise = "
                f"{self.keep_k * self.noise:.4f} better)")


def compare(config: Any, *, value: float, profile: str, backend: str,
            time_budget_s: float | None, experiment_id: str) -> tuple[list[Comparison], str]:
    """This try against the best and the baseline of the same setup, in noise units;
    (comparisons, a note when there is nothing to compare with)."""
    from agents.config import AgentsConfig
    from agents.ledger import Ledger, ledger_path
    from labwarden.experiment import setup_key

    agents = AgentsConfig.from_workspace(config)
    setup = setup_key(backend, time_budget_s)
    sign = 1.0 if config.direction == "minimize" else -1.0
    path = ledger_path(config.state_path)
    if not path.is_file():
        return [], "nothing to compare with: the ledger is empty."
    ledger = Ledger(path, readonly=True)
    try:
        floor = ledger.noise_floor(profile, setup)
        baseline, n = floor.mean, floor.n
        std = floor.std
        if baseline is None:  # no research baseline: manual baselines (try, no patch)
            vals = [r["val_bpb"] for r in ledger.experiments(kind="try", profile=profile,
                                                             setup=setup)
                    if r["id"] != experiment_id and not r.get("diff")
                    and r["val_bpb"] is not None]
            if vals:
                import statistics

                baseline, n = statistics.fmean(vals), len(vals)
                std = statistics.stdev(vals) if n > 1 else 0.0
        best, best_id = ledger.best(profile, setup)
    finally:
        ledger.close()
    noise = max(std if n >= 2 else 0.0, agents.min_noise)
    out = []
    if best is not None and best_id not in (None, "baseline"):
        out.append(Comparison("best", best, f"experiment {best_id}",
                              sign * (best - value), noise, agents.keep_k))
    if baseline is not None:
        out.append(Comparison("baseline", baseline, f"mean of {n} run(s)",
                              sign * (baseline - value), noise, agents.keep_k))
    note = "" if out else (f"nothing to compare with: no scored baseline for {profile} on "
                           f"this setup ({setup}); 'labwarden baseline' measures one.")
    if out and n < 2:
        note = (f"noise from [agents] min_noise ({agents.min_noise:g}): fewer than two "
                "baseline runs on this setup.")
    return out, note
