"""What a backend is asked to run (`ExperimentSpec`) and what it hands back (`ExperimentResult`)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from labwarden.config import WorkspaceConfig

Status = Literal["ok", "apply_failed", "timeout", "oom", "crash", "violation", "rejected", "error"]
"""How an experiment ended.

`ok`: trained and scored. `apply_failed`: the patch did not apply (or touched a
non-editable file). `timeout`: a step ran to its kill limit and was killed (training:
budget + start-up + export allowances). `oom`: a step was killed for memory. `crash`: a
step exited non-zero (process limit, exceptions). `violation`: a frozen file changed, or
training ran past its budget plus the export allowance, or the model was written late,
or the sandbox saw another rule broken; the metric is void.
`rejected`: the evaluator refused the model (a probe failed). `error`: the evaluator
could not read its input (exit 2) or wrote no metrics.
"""

STATUSES: tuple[str, ...] = Status.__args__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ExperimentSpec:
    """One experiment: a patch against the current best editable files, on one profile."""

    config: WorkspaceConfig
    patch: str | None
    """A unified diff against `base_dir` (relative paths, `a/` `b/` prefixes); None: baseline."""
    profile: str
    experiment_id: str
    """Names the run folder `<state_dir>/runs/<experiment_id>/`; must be new."""
    time_budget_s: float | None = None
    """Training budget; None: the workspace's, else the profile's."""
    base_dir: Path | None = None
    """A tree holding the current best editable files; None: the workspace root. Frozen
    code and data always come from the workspace."""
    gpus: str | list[int] | None = None
    """None: no GPU requested (Docker: none; local: whatever the host shows); "all": every
    GPU; [0, 2]: those indices (Docker: device requests; local: CUDA_VISIBLE_DEVICES, a
    selection but not isolation)."""


@dataclass(frozen=True)
class TrainingTiming:
    """How long the training step really trained, measured from outside, and the limits
    in force. Every `*_s` field is seconds; stamps are the sandbox's own clock, so nothing
    the trainer does with its clocks changes them."""

    mode: str
    """The budget mode that judged the step: "time" (wall clock)."""
    budget_s: float
    """The training budget the step was given (LABWARDEN_TIME_BUDGET)."""
    startup_allowance_s: float
    """Allowed before the first read of training data (interpreter, imports, model build)."""
    export_allowance_s: float
    """Allowed past the budget within the training window (last step, export, teardown)."""
    window_limit_s: float
    """budget + export allowance: the longest training window that is scored."""
    kill_limit_s: float
    """budget + start-up + export allowances: the step is killed from outside after this."""
    step_s: float
    """The step's command, start to exit (or kill)."""
    startup_s: float | None
    """Step start to its first read of a training shard; None: no read was seen."""
    window_s: float
    """The training window: first read of a training shard (else the step's start) to the
    step's exit, when every process that could touch the model is dead."""
    over_budget_s: float
    """window - budget: how far training ran past its budget (negative: inside it)."""
    model_created_before_end_s: float | None
    """How long before the step's exit model.pt2 was created (the export's start as seen
    from outside); None where the output folder could not be watched."""
    model_written_before_end_s: float | None
    """How long before the step's exit model.pt2 was last written."""
    data_seen_by: str
    """"inotify" (reads of the step's own folder of links to the shards, watched from
    outside), or "step start: <why>" where reads cannot be seen (the window then counts
    from the step's start: conservative)."""
    killed: bool
    """The step was stopped at its kill limit."""
    within_budget: bool
    """False: the step broke its budget and the experiment is not scored."""


@dataclass
class ExperimentResult:
    """How one experiment ended. A failed training or evaluation is a result, not an error.

    `timing` is the budget record of the training step (see `TrainingTiming`): start-up
    seconds, the training window, when the model was written relative to the step's end,
    the allowances and the kill limit in force. None when training never ran.
    """

    status: Status
    val_bpb: float | None
    metrics: dict[str, Any] | None
    """The evaluator's metrics.json from the evaluation step, and nothing else."""
    reason: str
    """One line: why this status (empty for ok)."""
    train_seconds: float
    """Wall time of the training step, measured by the sandbox from outside."""
    eval_seconds: float
    overhead_seconds: float
    """Everything else: copy, apply, seal checks, container start and stop, collection."""
    peak_memory_mb: float | None
    violations: list[str] = field(default_factory=list)
    log_tail: str = ""
    run_dir: Path = Path()
    timing: TrainingTiming | None = None
    """The training step's budget record; None when it never ran (patch refused, seal)."""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["run_dir"] = str(self.run_dir)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)
