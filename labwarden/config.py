"""The workspace config, `labwarden.toml` at the workspace root.

Only the sections every package needs are typed here (`[workspace]`, `[run]`). Other
sections (`[guards]`, `[sandbox]`, `[agents]`) stay in `raw` and are parsed by the package
that owns them, so this module never learns about them.
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from labwarden.errors import ConfigError

CONFIG_NAME = "labwarden.toml"


@dataclass(frozen=True)
class WorkspaceConfig:
    """A research workspace: which files agents may edit, which are frozen or hidden."""

    root: Path
    """Absolute path of the workspace (the folder holding `labwarden.toml`)."""
    name: str = "workspace"
    editable: tuple[str, ...] = ()
    """Globs (relative, `/`-separated, `**` for any depth) agents may change by patch."""
    frozen: tuple[str, ...] = ()
    """Globs nobody may change at research time; covered by the seal where it exists."""
    hidden: tuple[str, ...] = ()
    """Globs never shown to agents nor mounted in the training step (the validation split)."""
    data_dir: str = ".labwarden/data"
    """Where `labwarden prepare` writes data, tokenizer and seal, one folder per profile."""
    state_dir: str = ".labwarden"
    """Where the audit trail, the ledger and run folders live."""
    train_command: tuple[str, ...] = ("python", "-m", "trainer.train")
    eval_command: tuple[str, ...] = ("python", "-m", "eval_frozen.evaluate")
    metric: str = "val_bpb"
    direction: Literal["minimize", "maximize"] = "minimize"
    profile: str = "tiny"
    time_budget_s: float | None = None
    """Training wall-clock budget; None means the profile's own default."""
    raw: dict[str, Any] = field(default_factory=dict)
    """The whole parsed TOML, for sections owned by other packages."""

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def state_path(self) -> Path:
        return self.root / self.state_dir

    def data_path(self, profile: str | None = None) -> Path:
        return self.root / self.data_dir / (profile or self.profile)

    def section(self, name: str) -> dict[str, Any]:
        """A raw top-level table, `{}` when absent."""
        value = self.raw.get(name, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{self.config_path}: [{name}] must be a table, but got {value!r}.")
        return value

    def is_editable(self, rel: str) -> bool:
        return matches_any(rel, self.editable)

    def is_frozen(self, rel: str) -> bool:
        return matches_any(rel, self.frozen)

    def is_hidden(self, rel: str) -> bool:
        return matches_any(rel, self.hidden)


def matches_any(rel: str, globs: tuple[str, ...] | list[str]) -> bool:
    """Match a workspace-relative POSIX path against globs where `**` spans folders."""
    return any(glob_match(rel, g) for g in globs)


def glob_match(rel: str, pattern: str) -> bool:
    """`fnmatch` on whole paths, except that `*` stops at `/` and `**` does not.

    `trainer/**` matches `trainer/train.py` and `trainer/a/b.py`; `*.py` matches only
    top-level files; `**/x.py` matches `x.py` at any depth, the top included.
    """
    path_parts = PurePosixPath(rel).parts
    pat_parts = PurePosixPath(pattern).parts
    return _match_parts(path_parts, pat_parts)


def _match_parts(path: tuple[str, ...], pat: tuple[str, ...]) -> bool:
    if not pat:
        return not path
    head, rest = pat[0], pat[1:]
    if head == "**":
        return any(_match_parts(path[i:], rest) for i in range(len(path) + 1))
    if not path:
        return False
    return fnmatch.fnmatchcase(path[0], head) and _match_parts(path[1:], rest)


def _strings(
    table: dict[str, Any], key: str, where: Path, default: tuple[str, ...]
) -> tuple[str, ...]:
    value = table.get(key, default)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: '{key}' must be a list of strings, but got {value!r}.")
    return tuple(value)


def find_root(start: Path) -> Path | None:
    """The nearest folder at or above `start` holding a `labwarden.toml`."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / CONFIG_NAME).is_file():
            return folder
    return None


def load_config(workspace: str | Path | None = None) -> WorkspaceConfig:
    """Load `labwarden.toml` from `workspace` (or the nearest one above the current folder).

    Raises `ConfigError` with a one-line reason when it is missing or malformed.
    """
    if workspace is None:
        root = find_root(Path.cwd())
        if root is None:
            raise ConfigError(
                f"no {CONFIG_NAME} here or in any parent folder; pass --workspace DIR."
            )
    else:
        root = Path(workspace).resolve()
        if not root.is_dir():
            raise ConfigError(f"workspace {root} is not a folder.")
    path = root / CONFIG_NAME
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} not found; is {root} a labwarden workspace?") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid TOML ({e}).") from None

    ws = raw.get("workspace", {})
    run = raw.get("run", {})
    for name, table in (("workspace", ws), ("run", run)):
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [{name}] must be a table.")

    direction = run.get("direction", "minimize")
    if direction not in ("minimize", "maximize"):
        raise ConfigError(
            f"{path}: run.direction must be 'minimize' or 'maximize', but got {direction!r}."
        )
    budget = run.get("time_budget_s")
    if budget is not None and (not isinstance(budget, int | float) or budget <= 0):
        raise ConfigError(
            f"{path}: run.time_budget_s must be a positive number, but got {budget!r}."
        )

    def command(key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = run.get(key, default)
        if isinstance(value, str):
            value = value.split()
        if not value or not all(isinstance(v, str) for v in value):
            raise ConfigError(
                f"{path}: run.{key} must be a command (list of strings), but got {value!r}."
            )
        return tuple(value)

    return WorkspaceConfig(
        root=root,
        name=str(ws.get("name", root.name)),
        editable=_strings(ws, "editable", path, ()),
        frozen=_strings(ws, "frozen", path, ()),
        hidden=_strings(ws, "hidden", path, ()),
        data_dir=str(ws.get("data_dir", ".labwarden/data")),
        state_dir=str(ws.get("state_dir", ".labwarden")),
        train_command=command("train_command", ("python", "-m", "trainer.train")),
        eval_command=command("eval_command", ("python", "-m", "eval_frozen.evaluate")),
        metric=str(run.get("metric", "val_bpb")),
        direction=direction,
        profile=str(run.get("profile", "tiny")),
        time_budget_s=float(budget) if budget is not None else None,
        raw=raw,
    )
