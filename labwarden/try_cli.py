"""`labwarden try [PATCH]`: one experiment end to end — guards, sandbox, evaluator.

With no patch it runs the unmodified trainer (the baseline). A blocked patch exits 1
without running. It goes through the experiment service (`labwarden.experiment`), like
the research graph: runtime violations the sandbox reports (a changed frozen file, a
budget overrun, an out-of-memory kill, an evaluator refusal) go to the audit trail with
the step's log tail, and the try is recorded in the ledger as a manual try (`labwarden
results`, `labwarden report`), never on the research branch.
Exit: 0 scored, 1 blocked or not scored (rejected, crash, timeout, violation), 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from labwarden.errors import InputError

if TYPE_CHECKING:
    from labwarden.config import WorkspaceConfig
    from labwarden.experiment import ManualOutcome
    from labwarden.try_progress import Comparison, StageLine
    from sandbox.backend import SandboxBackend


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "patch",
        nargs="?",
        default=None,
        help="unified diff against the editable files ('-' reads stdin); none: the baseline",
    )
    parser.add_argument(
        "--profile", default=None, help="tiny | small | gpu (default: the workspace's)"
    )
    parser.add_argument(
        "--backend",
        choices=("docker", "local"),
        default=None,
        help="default: [sandbox] backend, else Docker when an engine answers",
    )
    parser.add_argument(
        "--time-budget",
        type=float,
        default=None,
        metavar="S",
        help="training seconds (default: the workspace's, else the profile's)",
    )
    parser.add_argument("--gpus", default=None, help="'all' or indices like 0,1 (Docker)")
    parser.add_argument("--id", default=None, help="experiment id (default: try-<time>-<random>)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quiet", action="store_true",
                        help="no stage lines on stderr (guards, sandbox, training, evaluation)")
    parser.add_argument("--workspace", default=None, help="workspace folder (default: nearest)")


def _read_patch(arg: str | None) -> str | None:
    if arg is None:
        return None
    from labwarden.inputs import read_text

    text = read_text(arg, "patch", stdin_dash=True)
    if not text.strip():
        raise InputError(f"patch {arg} is empty; omit it to run the baseline.")
    return text


def backend_for(config: WorkspaceConfig, name: str | None) -> SandboxBackend:
    """The sandbox a command asked for, else the workspace's `[sandbox] backend` (Docker
    with its `image`), else Docker when an engine answers (see `sandbox.select`)."""
    from sandbox.select import backend_for as select

    return select(config, name)


def parse_gpus(spec: str | None) -> str | list[int] | None:
    if not spec or spec == "all":
        return spec or None
    try:
        return [int(g) for g in spec.split(",")]
    except ValueError:
        raise InputError(f"--gpus must be 'all' or indices like 0,1, but got {spec!r}.") from None


def run_manual(config: WorkspaceConfig, *, patch: str | None, backend_name: str | None,
               profile: str, experiment_id: str, time_budget_s: float | None,
               gpus: str | list[int] | None, hypothesis: str,
               narrate: StageLine | None = None) -> tuple[ManualOutcome, str]:
    """One manual experiment through the experiment service; (outcome, backend name).
    `narrate`: where each stage is told as it happens."""
    from agents.ledger import Ledger, ledger_path
    from guards.audit import AuditStore, default_path
    from labwarden.experiment import ExperimentService
    from labwarden.inputs import check_stores
    from sandbox import ExperimentSpec
    from sandbox.pipeline import check_prepared

    check_prepared(config.data_path(profile), profile)  # before anything is written
    check_stores(config.state_path)
    backend = backend_for(config, backend_name)
    audit = AuditStore(default_path(config.state_path))
    ledger = Ledger(ledger_path(config.state_path))
    cls = ExperimentService
    if narrate is not None:
        from eval_frozen.profiles import get_profile

        budget = time_budget_s or config.time_budget_s or get_profile(profile).time_budget_s
        cls = _narrated(ExperimentService, narrate,
                        config.state_path / "runs" / experiment_id, budget)
    service = cls(config, backend=backend, audit=audit, ledger=ledger)
    spec = ExperimentSpec(config=config, patch=patch, profile=profile,
                          experiment_id=experiment_id, time_budget_s=time_budget_s, gpus=gpus)
    try:
        return service.manual(spec, hypothesis=hypothesis), service.backend_name
    finally:
        backend.cleanup()
        ledger.close()
        audit.close()


def _narrated(base: type, line: StageLine, run_dir: Path, budget_s: float) -> type:
    """The experiment service, telling each stage as it happens (same work, same records)."""
    from labwarden.try_progress import SandboxWatch

    class Narrated(base):  # type: ignore[misc, valid-type]
        def check(self, patch, meta, *, against=None):  # noqa: ANN001, ANN202
            line.show("guards", "checking the patch")
            started = time.monotonic()
            report = super().check(patch, meta, against=against)
            ms = (time.monotonic() - started) * 1000
            rules = sorted({f.rule_id for f in report.findings if f.severity == "block"})
            line.done("guards", f"{report.verdict} in {ms:.0f} ms"
                      + (f": {', '.join(rules)}" if rules else
                         f" ({len(report.findings)} note(s))" if report.findings else ""))
            return report

        def run(self, spec, meta):  # noqa: ANN001, ANN202
            line.show("sandbox", f"starting ({self.backend_name})")
            started = time.monotonic()
            with SandboxWatch(line, run_dir, budget_s):
                result = super().run(spec, meta)
            score = f", {result.val_bpb:.6f} val_bpb" if result.val_bpb is not None else ""
            line.done("evaluation", f"{result.status}{score} "
                      f"({time.monotonic() - started:.1f} s in the sandbox)")
            return result

    return Narrated


def check_profile(profile: str) -> None:
    from labwarden.profiles import check_profile as check

    check(profile)


def run(args: argparse.Namespace) -> int:
    from labwarden.config import load_config

    config = load_config(args.workspace)
    patch = _read_patch(args.patch)
    profile = args.profile or config.profile
    check_profile(profile)
    from labwarden.baseline_cli import check_budget

    check_budget(args.time_budget)
    experiment_id = args.id or f"try-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    from labwarden.try_progress import StageLine

    line = StageLine(sys.stderr, enabled=not args.quiet)
    outcome, backend = run_manual(
        config, patch=patch, backend_name=args.backend, profile=profile,
        experiment_id=experiment_id, time_budget_s=args.time_budget,
        gpus=parse_gpus(args.gpus),
        hypothesis=f"manual try of {args.patch}" if args.patch else "manual try: the baseline",
        narrate=line)
    result = outcome.result
    comparisons, note = [], ""
    if result is not None and result.status == "ok" and result.val_bpb is not None:
        from labwarden.try_progress import compare

        comparisons, note = compare(config, value=result.val_bpb, profile=profile,
                                    backend=backend, time_budget_s=args.time_budget,
                                    experiment_id=experiment_id)
    _print(args.json, outcome.report, result, backend, comparisons, note, config.metric)
    return 0 if result is not None and result.status == "ok" else 1


def _print(as_json: bool, report, result, backend: str | None,  # noqa: ANN001
           comparisons: list[Comparison] | None = None, note: str = "",
           metric: str = "val_bpb") -> None:
    comparisons = comparisons or []
    if as_json:
        print(
            json.dumps(
                {
                    "guards": report.to_dict() if report else None,
                    "backend": backend,
                    "result": result.to_dict() if result else None,
                    "comparison": [
                        {"against": c.label, "value": c.value, "source": c.source,
                         "improvement": c.improvement, "noise": c.noise,
                         "in_noise": c.in_noise, "keep_k": c.keep_k} for c in comparisons],
                },
                indent=2,
                sort_keys=True,
            )
        )
        return
    if report is not None:
        print(f"guards:           {report.verdict}")
        for f in report.findings:
            print(f"  {f.severity:<6} {f.rule_id}  {f.file}:{f.line}  {f.message}")
    if result is None:
        return
    print(f"backend:          {backend}")
    print(f"verdict:          {result.status}")
    if result.reason:
        print(f"reason:           {result.reason}")
    print(f"val_bpb:          {result.val_bpb if result.val_bpb is not None else '-'}")
    print(f"train_seconds:    {result.train_seconds}")
    timing = result.timing
    if timing is not None:
        startup = "-" if timing.startup_s is None else f"{timing.startup_s:.1f}"
        export = ("-" if timing.model_created_before_end_s is None
                  else f"{timing.model_created_before_end_s:.1f}")
        print(f"trained_seconds:  {timing.window_s:.1f} (first data read to exit; limit "
              f"{timing.window_limit_s:g} = budget {timing.budget_s:g} + export allowance "
              f"{timing.export_allowance_s:g})")
        print(f"startup_seconds:  {startup}  export_seconds: {export}  "
              f"(reads seen by {timing.data_seen_by})")
    print(f"eval_seconds:     {result.eval_seconds}")
    print(f"overhead_seconds: {result.overhead_seconds}")
    print(f"peak_memory_mb:   {result.peak_memory_mb}")
    for v in result.violations:
        print(f"violation:        {v}")
    print(f"run_dir:          {result.run_dir}")
    for c in comparisons:
        print(c.render(metric))
    if note:
        print(f"note:             {note}")
    if result.status != "ok" and result.log_tail:
        print("log tail:")
        print("\n".join(f"  {line}" for line in result.log_tail.splitlines()[-15:]))
