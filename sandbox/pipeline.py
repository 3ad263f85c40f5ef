"""One experiment, the same on every backend: stage, apply, guard, train, guard, evaluate.

Only `SandboxBackend.run_step` differs between backends; every decision about what a
step's ending means (timeout, OOM, crash, violation, rejection) is made here, once.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from labwarden.errors import InputError
from sandbox.backend import Mount, SandboxBackend, StepOutcome, StepSpec
from sandbox.runtime_guards import FrozenGuard
from sandbox.settings import SandboxSettings
from sandbox.spec import ExperimentResult, ExperimentSpec, Status
from sandbox.staging import apply_patch, stage

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
LOG_TAIL_LINES = 40


def resolve_budget(spec: ExperimentSpec) -> float:
    if spec.time_budget_s is not None:
        budget = float(spec.time_budget_s)
    elif spec.config.time_budget_s is not None:
        budget = spec.config.time_budget_s
    else:
        from eval_frozen.profiles import get_profile

        try:
            budget = float(get_profile(spec.profile).time_budget_s)
        except (KeyError, ValueError) as e:
            raise InputError(f"unknown profile {spec.profile!r} ({e}).") from None
    if budget <= 0:
        raise InputError(f"time budget must be positive, but got {budget}.")
    return budget


def check_prepared(data: Path, profile: str) -> None:
    missing = [n for n in ("train", "val", "tokenizer", "seal.json") if not (data / n).exists()]
    if missing:
        raise InputError(
            f"no prepared data for profile {profile!r} in {data} (missing "
            f"{', '.join(missing)}); run 'labwarden prepare --profile {profile}'."
        )


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class _Run:
    """Collects timings and writes result.json however the experiment ends."""

    def __init__(self, spec: ExperimentSpec, run_dir: Path) -> None:
        self.spec = spec
        self.run_dir = run_dir
        self.started = time.monotonic()
        self.train_s = 0.0
        self.eval_s = 0.0
        self.peak_mb: float | None = None
        self.violations: list[str] = []
        self.last_log: Path | None = None

    def step(self, backend: SandboxBackend, step: StepSpec) -> StepOutcome:
        self.last_log = step.log_path
        outcome = backend.run_step(step)
        if step.name == "train":
            self.train_s += outcome.wall_seconds
        else:
            self.eval_s += outcome.wall_seconds
        if outcome.peak_memory_mb is not None:
            self.peak_mb = max(self.peak_mb or 0.0, outcome.peak_memory_mb)
        return outcome

    def finish(
        self, status: Status, reason: str = "", metrics: dict | None = None
    ) -> ExperimentResult:
        val = metrics.get("val_bpb") if metrics and status == "ok" else None
        total = time.monotonic() - self.started
        result = ExperimentResult(
            status=status,
            val_bpb=float(val) if isinstance(val, int | float) else None,
            metrics=metrics,
            reason=reason,
            train_seconds=round(self.train_s, 3),
            eval_seconds=round(self.eval_s, 3),
            overhead_seconds=round(max(0.0, total - self.train_s - self.eval_s), 3),
            peak_memory_mb=None if self.peak_mb is None else round(self.peak_mb, 1),
            violations=list(self.violations),
            log_tail=log_tail(self.last_log) if self.last_log else "",
            run_dir=self.run_dir,
        )
        (self.run_dir / "result.json").write_text(result.to_json() + "\n", encoding="utf-8")
        return result


def _writable_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    # Steps run as an unprivileged user (65534 in Docker): the folder must admit it.
    path.chmod(0o777)
    return path


def _ended_badly(outcome: StepOutcome, what: str, limit_s: float) -> tuple[Status, str] | None:
    if outcome.oom:
        return "oom", f"{what} was killed for memory (out of memory)"
    if outcome.timed_out:
        return "timeout", f"{what} overran its limit of {limit_s:.0f} s and was killed"
    if outcome.exit_code not in (0, None):
        return "crash", f"{what} exited with status {outcome.exit_code}"
    return None


def run_experiment(backend: SandboxBackend, spec: ExperimentSpec) -> ExperimentResult:
    cfg = spec.config
    settings = SandboxSettings.from_config(cfg)
    data = cfg.data_path(spec.profile)
    check_prepared(data, spec.profile)
    budget = resolve_budget(spec)
    if not _ID.match(spec.experiment_id):
        raise InputError(
            f"experiment id must be letters, digits, '.', '_' or '-', "
            f"but got {spec.experiment_id!r}."
        )
    run_dir = cfg.state_path / "runs" / spec.experiment_id
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        run_dir.mkdir()
    except FileExistsError:
        raise InputError(f"run folder {run_dir} already exists; use a new experiment id.") from None
    run = _Run(spec, run_dir)

    staged = stage(cfg, spec.base_dir, run_dir)
    if spec.patch:
        patch_file = run_dir / "patch.diff"
        patch_file.write_text(
            spec.patch if spec.patch.endswith("\n") else spec.patch + "\n", encoding="utf-8"
        )
        reason = apply_patch(cfg, staged.work, patch_file)
        if reason:
            return run.finish("apply_failed", reason)

    guard = FrozenGuard(cfg.root, data, staged.frozen_files)
    problems = guard.check("before training", staged.work)
    if problems:
        run.violations += problems
        return run.finish("violation", problems[0])

    backend.setup()
    common_env = {
        "LABWARDEN_PROFILE": spec.profile,
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        # Spinning OpenMP workers made each CPU step ~6x slower on a shared 2-core machine.
        "OMP_WAIT_POLICY": "PASSIVE",
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
    }
    train_out = _writable_dir(run_dir / "train")
    train_limit = budget + settings.grace_s
    train = StepSpec(
        name="train",
        argv=tuple(cfg.train_command),
        env={
            **common_env,
            "LABWARDEN_DATA_DIR": "{root}/data",
            "LABWARDEN_TIME_BUDGET": f"{budget:g}",
            "LABWARDEN_OUT_DIR": "{root}/out",
        },
        mounts=(
            Mount(staged.work, "ws"),
            Mount(data / "train", "data/train"),
            Mount(data / "tokenizer", "data/tokenizer"),
            Mount(data / "seal.json", "data/seal.json"),
            Mount(train_out, "out", read_only=False),
        ),
        workdir="ws",
        time_limit_s=train_limit,
        log_path=run_dir / "train.log",
        limits=settings.limits,
        gpus=spec.gpus,
        protect=(cfg.root, data),
        hide=(data / "val",),
    )
    outcome = run.step(backend, train)
    if outcome.timed_out:
        run.violations.append(
            f"training ran {outcome.wall_seconds:.1f} s, past its budget of "
            f"{budget:g} s plus {settings.grace_s:g} s grace"
        )
    problems = guard.check("after training", staged.work)
    if problems:
        run.violations += problems
        return run.finish("violation", problems[0])
    bad = _ended_badly(outcome, "training", train_limit)
    if bad:
        return run.finish(*bad)
    model = train_out / "model.pt2"
    if not model.is_file():
        return run.finish("crash", "training exited 0 but wrote no model.pt2")

    problems = guard.check("before evaluation", staged.frozen)
    if problems:
        run.violations += problems
        return run.finish("violation", problems[0])
    eval_out = _writable_dir(run_dir / "eval")
    device = ["--device", "cuda"] if spec.gpus else []
    evaluate = StepSpec(
        name="eval",
        argv=(
            *cfg.eval_command,
            "--model",
            "{root}/model/model.pt2",
            "--data-dir",
            "{root}/data",
            "--out",
            "{root}/out/metrics.json",
            "--profile",
            spec.profile,
            *device,
        ),
        env=dict(common_env),
        mounts=(
            Mount(staged.frozen, "ws"),
            Mount(data / "val", "data/val"),
            Mount(data / "tokenizer", "data/tokenizer"),
            Mount(data / "seal.json", "data/seal.json"),
            Mount(model, "model/model.pt2"),
            Mount(eval_out, "out", read_only=False),
        ),
        workdir="ws",
        time_limit_s=settings.eval_timeout_s,
        log_path=run_dir / "eval.log",
        limits=settings.limits,
        gpus=spec.gpus,
        protect=(cfg.root, data),
        hide=(data / "train",),
    )
    outcome = run.step(backend, evaluate)
    problems = guard.check("after evaluation", staged.frozen)
    if problems:
        run.violations += problems
        return run.finish("violation", problems[0])
    metrics = _read_metrics(eval_out / "metrics.json")
    if outcome.oom or outcome.timed_out:
        return run.finish(*_ended_badly(outcome, "evaluation", settings.eval_timeout_s))  # type: ignore[misc]
    if outcome.exit_code == 0 and metrics and metrics.get("status") == "scored":
        return run.finish("ok", "", metrics)
    if outcome.exit_code == 1 and metrics:
        return run.finish(
            "rejected", str(metrics.get("reason") or "rejected by the evaluator"), metrics
        )
    if outcome.exit_code == 2:
        why = (metrics or {}).get("reason") or "the evaluator could not read its input"
        return run.finish("error", str(why), metrics)
    why = f"evaluation exited with status {outcome.exit_code}"
    if metrics is None:
        why += " and wrote no metrics.json"
    return run.finish("crash" if metrics is None else "error", why, metrics)


def _read_metrics(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
