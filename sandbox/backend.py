"""The one interface every sandbox backend implements, and the step it runs.

Contract (both backends, checked by `sandbox.conformance`):

- `run(spec)` runs one whole experiment: stage a copy, apply the patch, verify the seal,
  train, verify, evaluate, verify, collect. It returns an `ExperimentResult` for every
  way an experiment can fail (patch refused, timeout, out of memory, crash, violation,
  evaluator rejection) and the caller can go on with the next experiment.
- It raises `SandboxUnavailable` (one actionable line) when a prerequisite is missing,
  `SandboxError` when the sandbox itself broke, `InputError` for a bad spec (unprepared
  data, a reused experiment id).
- Order of calls inside `run`: `setup()` once per backend before the first step,
  `run_step(train)`, `run_step(eval)`; `cleanup()` is the caller's (idempotent).

A backend implements only `run_step`: run one command with the given mounts and limits,
stop it from outside at its time limit, stream its output to the step's log, and say
how it ended. Everything else is shared (`sandbox.pipeline`), so the backends cannot
drift apart on what counts as a violation.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from sandbox.spec import ExperimentResult, ExperimentSpec


@dataclass(frozen=True)
class Mount:
    source: Path
    """Host path (file or folder)."""
    target: str
    """Relative path under the sandbox root, e.g. "data/train"."""
    read_only: bool = True


@dataclass(frozen=True)
class Limits:
    memory_mb: int = 8192
    pids: int = 512
    cpus: float | None = None
    """CPU cores (Docker); None: no cap."""
    shm_mb: int = 1024
    """Shared memory for data loaders: a private /dev/shm (Docker, the local fresh root)."""
    tmpfs_mb: int = 2048
    """Scratch /tmp, exec allowed for compiled kernels."""
    file_size_mb: int = 4096
    """Largest file a step may write (local rlimit)."""


@dataclass(frozen=True)
class StepSpec:
    """One command in a sandbox. `{root}` in argv and env is the sandbox root path."""

    name: str
    argv: tuple[str, ...]
    env: dict[str, str]
    mounts: tuple[Mount, ...]
    workdir: str
    """Mount target used as the working directory."""
    time_limit_s: float
    """Stopped (then killed) from outside after this many seconds."""
    log_path: Path
    limits: Limits = field(default_factory=Limits)
    gpus: str | list[int] | None = None
    protect: tuple[Path, ...] = ()
    """Host folders a step must not write to even by absolute path (the workspace). A
    container and the local fresh root never show them; the local backend's weaker
    levels remount them read-only."""
    hide: tuple[Path, ...] = ()
    """Host folders a step must not read even by absolute path (the validation split).
    Never shown unless inside a mount, where they are covered by an empty folder."""


@dataclass
class StepOutcome:
    exit_code: int | None
    """None when the step was killed by the sandbox at its time limit."""
    timed_out: bool
    oom: bool
    wall_seconds: float
    """From the moment the command started to its exit, measured outside the sandbox."""
    overhead_seconds: float
    """Sandbox setup and teardown around the command (create, start, remove)."""
    peak_memory_mb: float | None = None
    started_at: float = 0.0
    """`time.monotonic()` when the command started (the wall clock's zero)."""
    ended_at: float = 0.0
    """`time.monotonic()` when the command was seen to exit or was killed."""


class SandboxBackend(abc.ABC):
    """Runs experiments in isolation. See the module docstring for the contract."""

    name: ClassVar[str]
    """"docker" or "local"."""

    def setup(self) -> None:  # noqa: B027 - a do-nothing hook by design
        """Prepare once per backend (check prerequisites, build images). Idempotent."""

    def cleanup(self) -> None:  # noqa: B027 - a do-nothing hook by design
        """Release what setup or steps left behind. Idempotent; safe after a failure."""

    @abc.abstractmethod
    def run_step(self, step: StepSpec) -> StepOutcome:
        """Run one step. A non-zero exit, a kill or an OOM is an outcome, never an error."""

    @abc.abstractmethod
    def guarantees(self) -> list[tuple[str, bool, str]]:
        """(guarantee, holds here, how it was measured) for `labwarden sandbox doctor`."""

    def run(self, spec: ExperimentSpec) -> ExperimentResult:
        from sandbox.pipeline import run_experiment

        return run_experiment(self, spec)
