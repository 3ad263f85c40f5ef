"""The `[sandbox]` table of `labwarden.toml`: limits, budget allowances, the image name."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Literal

from labwarden.config import WorkspaceConfig
from labwarden.errors import ConfigError
from sandbox.backend import Limits

_POSITIVE = ("startup_allowance_s", "export_allowance_s", "eval_timeout_s")
_POS = {"positive": True}


@dataclass(frozen=True)
class SandboxSettings:
    limits: Limits = Limits()
    startup_allowance_s: float | None = None
    """Overrides the profile's `startup_allowance_s` (seconds before the first read of
    training data; counts towards the kill limit only). None: the profile's."""
    export_allowance_s: float | None = None
    """Overrides the profile's `export_allowance_s` (seconds the training window may run
    past the budget before the run is a budget violation). None: the profile's."""
    eval_timeout_s: float = 900.0
    """The evaluation step is killed after this long."""
    image: str = "labwarden-sandbox:offline"
    """Docker image the steps run in (`labwarden sandbox build` makes it)."""
    backend: str | None = None
    """"docker", "local", or None: Docker when an engine answers."""

    @classmethod
    def from_config(cls, config: WorkspaceConfig) -> SandboxSettings:
        """`[sandbox]` through the one settings loader (`labwarden.settings`)."""
        from labwarden.settings import load_table

        table = load_table(config, "sandbox", SandboxTable)
        limits = Limits(**{f.name: getattr(table, f.name) for f in fields(Limits)
                           if getattr(table, f.name) is not None})
        kwargs = {k: getattr(table, k) for k in (*_POSITIVE, "image", "backend")
                  if getattr(table, k) is not None}
        return cls(limits=limits, **kwargs)


@dataclass(frozen=True)
class SandboxTable:
    """The `[sandbox]` table as written; None: the default (of `Limits`, the profile)."""

    memory_mb: int | None = field(default=None, metadata=_POS)
    """Memory cap of a step in MiB; none: 8192."""
    pids: int | None = field(default=None, metadata=_POS)
    """Process cap of a step; none: 512."""
    cpus: float | None = field(default=None, metadata=_POS)
    """CPU cores (Docker); none: no cap."""
    shm_mb: int | None = field(default=None, metadata=_POS)
    """Private /dev/shm in MiB; none: 1024."""
    tmpfs_mb: int | None = field(default=None, metadata=_POS)
    """Scratch /tmp in MiB; none: 2048."""
    file_size_mb: int | None = field(default=None, metadata=_POS)
    """Largest file a step may write, MiB (local rlimit); none: 4096."""
    startup_allowance_s: float | None = field(default=None, metadata=_POS)
    """Seconds before the first read of training data (kill limit only); none: the
    profile's."""
    export_allowance_s: float | None = field(default=None, metadata=_POS)
    """Seconds the training window may run past the budget; none: the profile's."""
    eval_timeout_s: float | None = field(default=None, metadata=_POS)
    """The evaluation step is killed after this long; none: 900."""
    image: str | None = None
    """Docker image the steps run in; none: labwarden-sandbox:offline."""
    backend: Literal["docker", "local"] | None = None
    """The sandbox; none: Docker when an engine answers, else local."""
    grace_s: float | None = None
    """Gone: kept as a key only to say what replaced it."""

    def validate(self, where: str) -> None:
        if self.grace_s is not None:
            raise ConfigError(
                f"{where}: grace_s was replaced by startup_allowance_s and "
                f"export_allowance_s (the kill limit is budget + both)."
            )
