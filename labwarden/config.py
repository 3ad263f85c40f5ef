"""The workspace config, `labwarden.toml` at the workspace root.

Only the tables every package needs are typed here (`[workspace]`, `[run]`). Other
tables (`[guards]`, `[sandbox]`, `[agents]`, `[plugins.NAME]`) stay in `raw` and are parsed
by the package that owns them with the same loader (`labwarden.settings.load_table`), so
this module never learns about them.
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
            raise ConfigError(f"{CONFIG_NAME} [{name}]: must be a table, but got {value!r}.")
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


def find_root(start: Path) -> Path | None:
    """The nearest folder at or above `start` holding a `labwarden.toml`."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / CONFIG_NAME).is_file():
            return folder
    return None


@dataclass(frozen=True)
class WorkspaceTable:
    """`[workspace]`: what agents may change and what nobody may. Required."""

    name: str | None = None
    """Shown in reports; default: the folder's name."""
    editable: tuple[str, ...] = ()
    """Globs agents may change, by guarded patch only (`**` spans folders)."""
    frozen: tuple[str, ...] = ()
    """Globs nobody may change at research time (the guards block patches touching them)."""
    hidden: tuple[str, ...] = ()
    """Globs never shown to agents nor mounted in the training step."""
    data_dir: str = ".labwarden/data"
    """Where `labwarden prepare` writes data, tokenizer and seal, one folder per profile."""
    state_dir: str = ".labwarden"
    """Where the audit trail, the ledger and the run folders live."""


@dataclass(frozen=True)
class RunTable:
    """`[run]`: how an experiment trains and is scored."""

    train_command: tuple[str, ...] = ("python", "-m", "trainer.train")
    """The training step, run in the sandbox."""
    eval_command: tuple[str, ...] = ("python", "-m", "eval_frozen.evaluate")
    """The evaluation step, run in the sandbox on the exported model."""
    metric: str = "val_bpb"
    """The score's name in the evaluator's metrics.json."""
    direction: Literal["minimize", "maximize"] = "minimize"
    """Whether a lower or a higher score is better."""
    profile: str = "tiny"
    """The data profile (`tiny`, `small`, `gpu`) used when a command gets no --profile."""
    time_budget_s: float | None = None
    """Training wall-clock budget in seconds; none: the profile's."""

    def validate(self, where: str) -> None:
        for key in ("train_command", "eval_command"):
            if not getattr(self, key):
                raise ConfigError(f"{where}: {key} must be a command (a non-empty list of "
                                  "strings).")
        if self.time_budget_s is not None and not self.time_budget_s > 0:
            raise ConfigError(f"{where}: time_budget_s must be a positive number, "
                              f"but got {self.time_budget_s!r}.")


def load_config(workspace: str | Path | None = None) -> WorkspaceConfig:
    """Load `labwarden.toml` from `workspace` (or the nearest one above the current folder).

    Every table goes through the one settings loader (`labwarden.settings`): unknown
    tables and keys, and values of the wrong type, are `ConfigError`s with a one-line
    reason, as are a missing file, bytes that are not UTF-8, and a missing `[workspace]`.
    The tables other packages own (`[guards]`, `[agents]`, `[sandbox]`, plugins') stay in
    `raw` and are parsed by their owners with the same loader.
    """
    from labwarden.settings import check_tables, load_table

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
    if path.is_dir():
        raise ConfigError(f"{path} is a folder, not a config file.")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path} not found; is {root} a labwarden workspace?") from None
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror or type(e).__name__}.") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}, line {line}); "
                          "save it as UTF-8.") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e}).") from None

    check_tables(raw)
    run = load_table(raw, "run", RunTable)
    if "workspace" not in raw:
        raise ConfigError(f"{CONFIG_NAME}: no [workspace] table; it says which files agents "
                          "may edit (editable = [...]) and which are frozen.")
    ws = load_table(raw, "workspace", WorkspaceTable)
    return WorkspaceConfig(
        root=root,
        name=ws.name if ws.name is not None else root.name,
        editable=ws.editable,
        frozen=ws.frozen,
        hidden=ws.hidden,
        data_dir=ws.data_dir,
        state_dir=ws.state_dir,
        train_command=run.train_command,
        eval_command=run.eval_command,
        metric=run.metric,
        direction=run.direction,
        profile=run.profile,
        time_budget_s=run.time_budget_s,
        raw=raw,
    )
