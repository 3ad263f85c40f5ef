"""The `[guards]` table of `labwarden.toml`, typed.

Everything workspace-specific the built-in rules need lives here, so the same rules guard
our trainer and an unmodified autoresearch checkout: which modules are frozen and which of
their names are public, the calls that feed the evaluator, where the time budget comes from,
the names of the validation split, the metric's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from labwarden.config import WorkspaceConfig
from labwarden.errors import ConfigError

_SEVERITIES = ("block", "review", "note")


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
    max_patch_bytes: int = 256 * 1024
    max_files: int = 20
    max_changed_lines: int = 3000
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


def _strs(table: dict[str, Any], key: str, where: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = table.get(key, default)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: guards.{key} must be a list of strings, but got {value!r}.")
    return tuple(value)


def _int(table: dict[str, Any], key: str, where: str, default: int) -> int:
    value = table.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{where}: guards.{key} must be a positive integer, but got {value!r}.")
    return value


_KNOWN = {
    "frozen_modules", "public_api", "protected_symbols", "protected_calls",
    "protected_functions", "budget_env", "budget_names", "protected_env", "val_splits",
    "forbidden_strings", "metric_names", "metric_files", "new_files", "max_patch_bytes",
    "max_files", "max_changed_lines", "plugins", "autoload_plugins", "rules_file", "rules",
    "disable", "severity", "allowed_imports", "allowed_attributes", "data_calls",
}


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
    table = config.section("guards")
    where = str(config.config_path)
    unknown = sorted(set(table) - _KNOWN)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) in [guards]: {', '.join(unknown)}.")
    d = GuardSettings()
    rules = table.get("rules", [])
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise ConfigError(f"{where}: guards.rules must be an array of tables ([[guards.rules]]).")
    severity = table.get("severity", {})
    if not isinstance(severity, dict) or not all(v in _SEVERITIES for v in severity.values()):
        raise ConfigError(
            f"{where}: guards.severity must map rule ids to block|review|note, "
            f"but got {severity!r}."
        )
    autoload = table.get("autoload_plugins", True)
    if not isinstance(autoload, bool):
        raise ConfigError(f"{where}: guards.autoload_plugins must be true or false.")
    rules_file = table.get("rules_file")
    if rules_file is not None and not isinstance(rules_file, str):
        raise ConfigError(f"{where}: guards.rules_file must be a path string.")
    new_files = table.get("new_files")
    return GuardSettings(
        frozen_modules=_strs(table, "frozen_modules", where, modules_of(config.frozen)),
        public_api=_strs(table, "public_api", where, d.public_api),
        protected_symbols=_strs(table, "protected_symbols", where, d.protected_symbols),
        protected_calls=_strs(table, "protected_calls", where, d.protected_calls),
        protected_functions=_strs(table, "protected_functions", where, d.protected_functions),
        budget_env=_strs(table, "budget_env", where, d.budget_env),
        budget_names=_strs(table, "budget_names", where, d.budget_names),
        protected_env=_strs(table, "protected_env", where, d.protected_env),
        val_splits=_strs(table, "val_splits", where, d.val_splits),
        forbidden_strings=_strs(table, "forbidden_strings", where, d.forbidden_strings),
        metric_names=_strs(table, "metric_names", where, (config.metric,)),
        metric_files=_strs(table, "metric_files", where, d.metric_files),
        new_files=None if new_files is None else _strs(table, "new_files", where, ()),
        allowed_imports=_strs(table, "allowed_imports", where, ()),
        allowed_attributes=_strs(table, "allowed_attributes", where, ()),
        data_calls=_strs(table, "data_calls", where, d.data_calls),
        max_patch_bytes=_int(table, "max_patch_bytes", where, d.max_patch_bytes),
        max_files=_int(table, "max_files", where, d.max_files),
        max_changed_lines=_int(table, "max_changed_lines", where, d.max_changed_lines),
        plugins=_strs(table, "plugins", where, ()),
        autoload_plugins=autoload,
        rules_file=rules_file,
        rules=tuple(rules),
        disable=_strs(table, "disable", where, ()),
        severity=dict(severity),
    )
