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
non-editable file). `timeout`: training overran its budget and was killed. `oom`: a step
was killed for memory. `crash`: a step exited non-zero (process limit, exceptions).
`violation`: a frozen file changed or the sandbox saw a rule broken; the metric is void.
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


@dataclass
class ExperimentResult:
    """How one experiment ended. A failed training or evaluation is a result, not an error."""

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

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["run_dir"] = str(self.run_dir)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)
