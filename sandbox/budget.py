"""How a training step's time is judged: the budget in force, what was measured, one verdict.

A budget mode is one function `(Budget, Measured) -> Verdict` in `JUDGES`. Only the wall
clock (`time`) exists today; a low-noise mode for shared CPUs (CPU seconds from the
step's cgroup, or tokens) plugs in as another entry, with what it needs added to
`Measured`, and the pipeline does not change.

The wall-clock rule: training starts when the step first reads a training shard (seen
from outside, see `sandbox.watch`), or at the step's start when no read was seen, and
ends when the step's processes are dead. That window may exceed the budget by the export
allowance (the last step, the export, interpreter teardown); the step is killed at the
budget plus the start-up and export allowances. A model file changed after the window's
limit is not scored either.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sandbox.spec import TrainingTiming


@dataclass(frozen=True)
class Budget:
    budget_s: float
    startup_allowance_s: float
    export_allowance_s: float
    mode: str = "time"

    @property
    def window_limit_s(self) -> float:
        """The longest training window that is still scored."""
        return self.budget_s + self.export_allowance_s

    @property
    def kill_limit_s(self) -> float:
        """The step is stopped from outside after this long."""
        return self.budget_s + self.startup_allowance_s + self.export_allowance_s


@dataclass(frozen=True)
class Measured:
    """What the sandbox saw of one training step from outside, in `time.monotonic()` stamps."""

    started_at: float
    ended_at: float
    killed: bool
    first_data_at: float | None
    """The step's first read of a training shard; None: none was seen."""
    data_seen_by: str
    """"inotify", or why reads could not be seen (then the window counts from the start)."""
    model_created_at: float | None = None
    model_written_at: float | None = None
    """The last write of model.pt2 before the step ended (watch, else the file's ctime)."""
    model_changed_at: float | None = None
    """The file's last change as the kernel stamps it (ctime), read after the step."""


@dataclass(frozen=True)
class Verdict:
    timing: TrainingTiming
    reason: str
    """Empty when the step kept to its budget; otherwise one line naming the budget."""


def judge_wall_clock(budget: Budget, seen: Measured) -> Verdict:
    step = seen.ended_at - seen.started_at
    start = seen.first_data_at if seen.first_data_at is not None else seen.started_at
    window = seen.ended_at - start
    reason = ""
    if seen.killed:
        reason = (
            f"training ran {step:.1f} s and was killed at its limit of {budget.kill_limit_s:g} s "
            f"(budget {budget.budget_s:g} s + start-up {budget.startup_allowance_s:g} s "
            f"+ export {budget.export_allowance_s:g} s)"
        )
    elif window > budget.window_limit_s:
        since = (
            "its first read of the training data"
            if seen.first_data_at is not None
            else "its start (no read of the training data was seen)"
        )
        reason = (
            f"training ran {window:.1f} s from {since} to its exit, past its budget of "
            f"{budget.budget_s:g} s plus {budget.export_allowance_s:g} s export allowance"
        )
    elif (
        seen.model_changed_at is not None
        and seen.model_changed_at > start + budget.window_limit_s
    ):
        late = seen.model_changed_at - (start + budget.window_limit_s)
        reason = (
            f"model.pt2 was written {late:.1f} s after the budget of {budget.budget_s:g} s "
            f"plus {budget.export_allowance_s:g} s export allowance had run out"
        )

    def before_end(at: float | None) -> float | None:
        return None if at is None else round(seen.ended_at - at, 3)

    startup = None if seen.first_data_at is None else seen.first_data_at - seen.started_at
    timing = TrainingTiming(
        mode=budget.mode,
        budget_s=budget.budget_s,
        startup_allowance_s=budget.startup_allowance_s,
        export_allowance_s=budget.export_allowance_s,
        window_limit_s=budget.window_limit_s,
        kill_limit_s=budget.kill_limit_s,
        step_s=round(step, 3),
        startup_s=None if startup is None else round(startup, 3),
        window_s=round(window, 3),
        over_budget_s=round(window - budget.budget_s, 3),
        model_created_before_end_s=before_end(seen.model_created_at),
        model_written_before_end_s=before_end(seen.model_written_at),
        data_seen_by=seen.data_seen_by,
        killed=seen.killed,
        within_budget=not reason,
    )
    return Verdict(timing, reason)


JUDGES: dict[str, Callable[[Budget, Measured], Verdict]] = {"time": judge_wall_clock}


def judge(budget: Budget, seen: Measured) -> Verdict:
    """The verdict of the budget's own mode on what was measured."""
    fn = JUDGES.get(budget.mode)
    if fn is None:
        raise ValueError(
            f"budget mode must be one of {', '.join(JUDGES)}, but got {budget.mode!r}."
        )
    return fn(budget, seen)
