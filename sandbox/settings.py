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
    pids: int | None = field(default=None, metadata=_POS)
    cpus: float | None = field(default=None, metadata=_POS)
    shm_mb: int | None = field(default=None, metadata=_POS)
    tmpfs_mb: int | None = field(default=None, metadata=_POS)
    file_size_mb: int | None = field(default=None, metadata=_POS)
    startup_allowance_s: float | None = field(default=None, metadata=_POS)
    export_allowance_s: float | None = field(default=None, metadata=_POS)
    eval_timeout_s: float | None = field(default=None, metadata=_POS)
    image: str | None = None
    backend: Literal["docker", "local"] | None = None
    grace_s: float | None = None
    """Gone: kept as a key only to say what replaced it."""

    def validate(self, where: str) -> None:
        if self.grace_s is not None:
            raise ConfigError(
                f"{where}: grace_s was replaced by startup_allowance_s and "
                f"export_allowance_s (the kill limit is budget + both)."
            )
