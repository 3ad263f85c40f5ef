"""One experiment, the same on every backend: stage, apply, guard, train, guard, evaluate.

Only `SandboxBackend.run_step` differs between backends; every decision about what a
step's ending means (timeout, OOM, crash, violation, rejection) is made here, once.

The training budget is enforced from outside: the step reads the train split through a
per-run folder of links that the sandbox watches (`sandbox.watch`), so it knows when
training really started, and it ends when the step's processes are dead; `sandbox.budget`
judges that window. The model is scored only if it was not changed after the window's
limit or after the step ended.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import replace
from pathlib import Path

from labwarden.errors import InputError
from sandbox.backend import Mount, SandboxBackend, StepOutcome, StepSpec
from sandbox.budget import Budget, Measured, Verdict, judge
from sandbox.carried import carried_val_text
from sandbox.datalinks import link_split, remove_links
from sandbox.runtime_guards import FrozenGuard
from sandbox.settings import SandboxSettings
from sandbox.spec import ExperimentResult, ExperimentSpec, Status, TrainingTiming
from sandbox.staging import apply_patch, code_files, stage
from sandbox.watch import READS, WRITES, FolderWatch, Watch

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
LOG_TAIL_LINES = 40


def _profile(name: str):  # noqa: ANN202 - eval_frozen's Profile, imported lazily
    from eval_frozen.profiles import get_profile

    try:
        return get_profile(name)
    except (KeyError, ValueError) as e:
        raise InputError(f"unknown profile {name!r} ({e}).") from None


def resolve_budget(spec: ExperimentSpec) -> float:
    if spec.time_budget_s is not None:
        budget = float(spec.time_budget_s)
    elif spec.config.time_budget_s is not None:
        budget = spec.config.time_budget_s
    else:
        budget = float(_profile(spec.profile).time_budget_s)
    if budget <= 0:
        raise InputError(f"time budget must be positive, but got {budget}.")
    return budget


def resolve_allowances(spec: ExperimentSpec, settings: SandboxSettings, budget_s: float) -> Budget:
    """The budget in force: the profile's allowances unless `[sandbox]` overrides them."""
    profile = _profile(spec.profile)
    startup = settings.startup_allowance_s
    export = settings.export_allowance_s
    return Budget(
        budget_s=budget_s,
        startup_allowance_s=float(profile.startup_allowance_s if startup is None else startup),
        export_allowance_s=float(profile.export_allowance_s if export is None else export),
    )


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
        self.timing: TrainingTiming | None = None

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
            timing=self.timing,
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
    carried = carried_val_text(staged.work, code_files(cfg, staged.work)[0], data / "val")
    if carried:
        problems.append(carried)
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
    allowed = resolve_allowances(spec, settings, budget)
    links = link_split(data / "train", run_dir / "train-data")
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
            Mount(links, "data/train"),
            Mount(data / "tokenizer", "data/tokenizer"),
            Mount(data / "seal.json", "data/seal.json"),
            Mount(train_out, "out", read_only=False),
        ),
        workdir="ws",
        time_limit_s=allowed.kill_limit_s,
        log_path=run_dir / "train.log",
        limits=settings.limits,
        gpus=spec.gpus,
        protect=(cfg.root, data),
        # The shared shards too, and other profiles' splits (the same text, tokenized
        # otherwise): the step's only way to training text is the watched links.
        hide=(data / "val", data / "train", *_other_splits(data)),
    )
    try:
        outcome, seen, model_stamp = _watched_train(run, backend, train, links, allowed)
    finally:
        remove_links(links)
    run.timing = seen.timing
    if seen.reason:
        run.violations.append(seen.reason)
    problems = guard.check("after training", staged.work)
    if problems:
        run.violations += problems
        return run.finish("violation", problems[0])
    bad = _ended_badly(outcome, "training", allowed.kill_limit_s)
    if bad:
        return run.finish(*bad)
    if seen.reason:
        return run.finish("violation", seen.reason)
    model = train_out / "model.pt2"
    if model.is_symlink() or not model.is_file():
        return run.finish("crash", "training exited 0 but wrote no model.pt2 (a regular file)")

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
    if _stamp(model) != model_stamp:
        problems.append("model.pt2 changed after the training step ended, outside its budget")
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


def _other_splits(data: Path) -> list[Path]:
    """The train and val folders of every other prepared profile beside `data`."""
    try:
        profiles = sorted(p for p in data.parent.iterdir() if p.is_dir() and p != data)
    except OSError:
        return []
    return [p / split for p in profiles for split in ("train", "val") if (p / split).is_dir()]


def _watched_train(
    run: _Run, backend: SandboxBackend, train: StepSpec, links: Path, allowed: Budget
) -> tuple[StepOutcome, Verdict, tuple[int, int, int, int] | None]:
    """Run the training step with its data and output folders watched from outside, and
    judge its timing. Also returns the model's stamp as the step left it."""
    out = next(m.source for m in train.mounts if m.target == "out")
    watch = FolderWatch(
        [Watch("data", links, READS, first_only=True), Watch("out", out, WRITES)]
    ).start()
    called = time.monotonic()
    try:
        outcome = run.step(backend, train)
        # The step's processes are dead: every event they caused is queued now. Writes
        # from here on are late: the watch sees them until the model's stamp is taken,
        # and the stamp changes with any write after that.
        watch.mark_end()
        model_stamp = _stamp(out / "model.pt2")
    finally:
        seen = watch.stop()
    # The ctime on the monotonic clock (a realtime jump during the step skews it).
    changed = None if model_stamp is None else model_stamp[3] / 1e9 - time.time() + time.monotonic()
    returned = time.monotonic()
    # A backend that does not stamp its command: the call's own span (longer, so stricter).
    started = outcome.started_at if outcome.ended_at > 0 else called
    ended = outcome.ended_at if outcome.ended_at > 0 else returned
    data, written = seen["data"], seen["out"]
    stamps = written.files.get("model.pt2")
    if watch.available:
        by = "inotify"
        first = data.first_at
        if watch.overflowed and first is None:
            by, first = "step start: the watch's event queue overflowed", None
    else:
        by, first = f"step start: {watch.why_unavailable}", None
    verdict = judge(
        allowed,
        Measured(
            started_at=started,
            ended_at=ended,
            killed=outcome.timed_out,
            first_data_at=first,
            data_seen_by=by,
            model_created_at=stamps[0] if stamps else None,
            model_written_at=stamps[1] if stamps else changed,
            model_changed_at=changed,
        ),
    )
    if not verdict.reason and written.late:
        verdict = Verdict(
            replace(verdict.timing, within_budget=False),
            f"{', '.join(sorted(written.late))} written after the training step ended, "
            f"outside its budget (a process outlived the step)",
        )
    return outcome, verdict, model_stamp


def _stamp(path: Path) -> tuple[int, int, int, int] | None:
    """(inode, size, mtime, ctime) of a file. The kernel sets ctime on every write and a
    step cannot set it back (utime moves it to now)."""
    try:
        st = path.lstat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _read_metrics(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
