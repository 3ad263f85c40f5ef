"""The `[guards]` table of `labwarden.toml`, typed.

Everything workspace-specific the built-in rules need lives here, so the same rules guard
our trainer and an unmodified autoresearch checkout: which modules are frozen and which of
their names are public, the calls that feed the evaluator, where the time budget comes from,
the names of the validation split, the metric's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from labwarden.config import WorkspaceConfig
from labwarden.errors import ConfigError

_SEVERITIES = ("block", "review", "note")
_POSITIVE = {"positive": True}


@dataclass(frozen=True)
class GuardSettings:
    frozen_modules: tuple[str, ...] = ()
    """Importable modules of the frozen tree (`eval_frozen`, autoresearch's `prepare`);
    when the config does not say, derived from the frozen globs (`prepare.py`, `x/**`)."""
    public_api: tuple[str, ...] = ()
    """Modules or names of the frozen tree agents' code may import and call."""
    protected_symbols: tuple[str, ...] = ("_*",)
    """Name globs that stay off-limits even under the public API (`_*`, `*val*`)."""
    protected_calls: tuple[str, ...] = ()
    """Calls that feed the evaluator (the export, `evaluate_bpb`): they must stay as they are."""
    protected_functions: tuple[str, ...] = ()
    """Functions in editable files whose bodies must not change (our `export_model`)."""
    budget_env: tuple[str, ...] = ("LABWARDEN_TIME_BUDGET",)
    """Environment variables that carry the time budget."""
    budget_names: tuple[str, ...] = ("TIME_BUDGET", "time_budget_s")
    """Names (constants, attributes) that hold the budget."""
    protected_env: tuple[str, ...] = ("LABWARDEN_*",)
    """Environment variable globs the sandbox sets; never written, their reads never changed."""
    val_splits: tuple[str, ...] = ("val", "validation")
    forbidden_strings: tuple[str, ...] = ()
    """Globs matched against every string in added code (hidden file names, cache paths)."""
    metric_names: tuple[str, ...] = ()
    metric_files: tuple[str, ...] = ("metrics.json",)
    new_files: tuple[str, ...] | None = None
    """Globs where patches may create files; None means anywhere editable."""
    allowed_imports: tuple[str, ...] = ()
    """Modules (or `prefix.*` globs) patches may import beyond the built-in allow-list."""
    allowed_attributes: tuple[str, ...] = ()
    """Dotted names (globs) usable beyond the built-in lists: `os.listdir`, `torch._foo`.
    They count as ordinary names, never as protected objects."""
    data_calls: tuple[str, ...] = ("*.train_batches", "*.make_dataloader")
    """Calls that create the training data iterator (consumed only inside the budget loop)."""
    max_patch_bytes: int = field(default=256 * 1024, metadata=_POSITIVE)
    max_files: int = field(default=20, metadata=_POSITIVE)
    max_changed_lines: int = field(default=3000, metadata=_POSITIVE)
    plugins: tuple[str, ...] = ()
    """`module:attr` specs of Python rule plugins, beside the entry-point group."""
    autoload_plugins: bool = True
    """Load plugins from the `labwarden.guards` entry-point group (off: only config plugins)."""
    rules_file: str | None = None
    """A TOML file of declarative rules, relative to the workspace."""
    rules: tuple[dict[str, Any], ...] = ()
    """Inline declarative rules (`[[guards.rules]]`)."""
    disable: tuple[str, ...] = ()
    severity: dict[str, str] = field(default_factory=dict)
    """Per-rule severity overrides, e.g. `{"seed.fishing" = "block"}`."""

    def validate(self, where: str) -> None:
        bad = {k: v for k, v in self.severity.items() if v not in _SEVERITIES}
        if bad:
            raise ConfigError(f"{where}: severity must map rule ids to block|review|note, "
                              f"but got {bad!r}.")


def modules_of(globs: tuple[str, ...]) -> tuple[str, ...]:
    """Python modules a set of frozen globs names: `prepare.py` -> prepare, `pkg/**` -> pkg."""
    out = []
    for g in globs:
        g = g.strip("/")
        if g.endswith("/**") or g.endswith("/*"):
            g = g.rsplit("/", 1)[0]
        elif g.endswith(".py"):
            g = g[:-3]
        else:
            continue
        if g and not any(c in g for c in "*?[") and not g.startswith("."):
            out.append(g.replace("/", "."))
    return tuple(dict.fromkeys(out))


def load_settings(config: WorkspaceConfig) -> GuardSettings:
    """`[guards]` through the one settings loader (`labwarden.settings`): keys and types
    from `GuardSettings`, `validate` for the rest; two defaults come from the workspace."""
    from labwarden.settings import load_table

    settings = load_table(config, "guards", GuardSettings)
    table = config.section("guards")
    derived = {}
    if "frozen_modules" not in table:
        derived["frozen_modules"] = modules_of(config.frozen)
    if "metric_names" not in table:
        derived["metric_names"] = (config.metric,)
    return replace(settings, **derived) if derived else settings
