"""The `[sandbox]` table of `labwarden.toml`: limits, budget allowances, the image name."""

from __future__ import annotations

from dataclasses import dataclass, fields

from labwarden.config import WorkspaceConfig
from labwarden.errors import ConfigError
from sandbox.backend import Limits

_POSITIVE = ("startup_allowance_s", "export_allowance_s", "eval_timeout_s")


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
        table = dict(config.section("sandbox"))
        where = f"{config.config_path} [sandbox]"
        if "grace_s" in table:
            raise ConfigError(
                f"{where}: grace_s was replaced by startup_allowance_s and "
                f"export_allowance_s (the kill limit is budget + both)."
            )
        limit_names = {f.name for f in fields(Limits)}
        limit_values = {k: table.pop(k) for k in list(table) if k in limit_names}
        for key, value in limit_values.items():
            if value is not None and (not isinstance(value, int | float) or value <= 0):
                raise ConfigError(f"{where}: {key} must be a positive number, but got {value!r}.")
        kwargs = {}
        for key in _POSITIVE:
            if key in table:
                value = table.pop(key)
                if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                    raise ConfigError(
                        f"{where}: {key} must be a positive number, but got {value!r}."
                    )
                kwargs[key] = float(value)
        for key in ("image", "backend"):
            if key in table:
                kwargs[key] = str(table.pop(key))
        if kwargs.get("backend") not in (None, "docker", "local"):
            raise ConfigError(
                f"{where}: backend must be 'docker' or 'local', but got {kwargs['backend']!r}."
            )
        if table:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(table))}.")
        limits = Limits(
            **{k: (float(v) if k == "cpus" else int(v)) for k, v in limit_values.items()}
        )
        return cls(limits=limits, **kwargs)
