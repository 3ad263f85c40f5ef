"""`labwarden try [PATCH]`: one experiment end to end — guards, sandbox, evaluator.

With no patch it runs the unmodified trainer (the baseline). A blocked patch exits 1
without running. Runtime violations the sandbox reports (a changed frozen file, a budget
overrun, an out-of-memory kill) go to the audit trail with the step's log tail.
Exit: 0 scored, 1 blocked or not scored (rejected, crash, timeout, violation), 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

from labwarden.errors import InputError


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
    parser.add_argument("--workspace", default=None, help="workspace folder (default: nearest)")


def _read_patch(arg: str | None) -> str | None:
    if arg is None:
        return None
    if arg == "-":
        text = sys.stdin.read()
    else:
        try:
            text = Path(arg).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"cannot read patch {arg}: {e.strerror or e}.") from None
    if not text.strip():
        raise InputError(f"patch {arg} is empty; omit it to run the baseline.")
    return text


def _violation_kind(result_status: str, message: str) -> str:
    if "budget" in message:
        return "budget"
    return "seal" if result_status == "violation" else result_status


def run(args: argparse.Namespace) -> int:
    from guards import AttemptMeta, check_patch
    from guards.audit import AuditStore, default_path
    from labwarden.config import load_config
    from sandbox import ExperimentSpec, get_backend
    from sandbox.settings import SandboxSettings

    config = load_config(args.workspace)
    patch = _read_patch(args.patch)
    profile = args.profile or config.profile
    experiment_id = args.id or f"try-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    meta = AttemptMeta(experiment_id=experiment_id, agent_role="human")
    audit = AuditStore(default_path(config.state_path))
    report = None
    if patch is not None:
        report = check_patch(patch, config, meta=meta, audit=audit)
        if report.blocked:
            _print(args.json, report, None, None)
            return 1
    gpus: str | list[int] | None = args.gpus
    if gpus and gpus != "all":
        try:
            gpus = [int(g) for g in gpus.split(",")]
        except ValueError:
            raise InputError(
                f"--gpus must be 'all' or indices like 0,1, but got {args.gpus!r}."
            ) from None
    backend = get_backend(args.backend or SandboxSettings.from_config(config).backend)
    spec = ExperimentSpec(
        config=config,
        patch=patch,
        profile=profile,
        experiment_id=experiment_id,
        time_budget_s=args.time_budget,
        gpus=gpus,
    )
    try:
        result = backend.run(spec)
    finally:
        backend.cleanup()
    details = {"run_dir": str(result.run_dir), "status": result.status, "backend": backend.name}
    for message in result.violations:
        audit.record_violation(
            workspace=str(config.root),
            kind=_violation_kind(result.status, message),
            message=message,
            meta=meta,
            log_tail=result.log_tail,
            details=details,
            patch_text=patch or "",
        )
    if result.status == "oom":
        audit.record_violation(
            workspace=str(config.root),
            kind="oom",
            message=result.reason,
            meta=meta,
            log_tail=result.log_tail,
            details=details,
            patch_text=patch or "",
            severity="note",
        )
    _print(args.json, report, result, backend.name)
    return 0 if result.status == "ok" else 1


def _print(as_json: bool, report, result, backend: str | None) -> None:  # noqa: ANN001
    if as_json:
        print(
            json.dumps(
                {
                    "guards": report.to_dict() if report else None,
                    "backend": backend,
                    "result": result.to_dict() if result else None,
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
    print(f"eval_seconds:     {result.eval_seconds}")
    print(f"overhead_seconds: {result.overhead_seconds}")
    print(f"peak_memory_mb:   {result.peak_memory_mb}")
    for v in result.violations:
        print(f"violation:        {v}")
    print(f"run_dir:          {result.run_dir}")
    if result.status != "ok" and result.log_tail:
        print("log tail:")
        print("\n".join(f"  {line}" for line in result.log_tail.splitlines()[-15:]))
