"""What every node may use but the checkpoint must not hold: live objects and limits."""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from agents.config import AgentsConfig
from agents.ledger import Ledger
from agents.llm.base import ResearchAgent
from agents.progress import Progress
from agents.research_tree import ResearchTree
from labwarden.config import WorkspaceConfig


@dataclass
class ResearchContext:
    config: WorkspaceConfig
    settings: AgentsConfig
    agent: ResearchAgent
    ledger: Ledger
    backend: Any
    """A sandbox backend (`sandbox.get_backend(...)`): `run(ExperimentSpec) -> ExperimentResult`."""
    tree: ResearchTree
    audit: Any
    """The guards' AuditStore, for guard checks and runtime violations."""
    service: Any
    """The experiment service (`labwarden.experiment.ExperimentService`) over `backend` and
    `audit`: every guard check and sandbox run of the graph goes through it."""
    profile: str
    setup: str | None = None
    """Backend and budget: only metrics measured with the same setup are compared."""
    time_budget_s: float | None = None
    max_experiments: int | None = None
    deadline: float | None = None
    """time.time() after which no new experiment starts."""
    gpus: str | list[int] | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    """Set on the first Ctrl-C: finish and record the current experiment, then stop."""
    progress: Progress = field(default_factory=Progress)

    def guard_config(self) -> WorkspaceConfig:
        """The workspace seen from the research tree: guards compare against the best files."""
        return dataclasses.replace(self.config, root=self.tree.path)

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.time() >= self.deadline
