"""`[agents.command]` of `labwarden.toml`: the user's own coding agent, as a command."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from labwarden.errors import ConfigError

DESCRIPTION_FILE = ".labwarden-agent/description.txt"
"""Where the command may leave a one-paragraph description of its change (relative to its
working folder); without it, the last line it printed is the description."""
BRIEF_FILE = ".labwarden-agent/brief.md"
"""Where labwarden writes the brief, relative to the command's working folder."""

Isolation = Literal["auto", "fresh-root", "none"]


@dataclass(frozen=True)
class CommandSettings:
    """How `--agent command` runs the user's command, once per experiment."""

    argv: tuple[str, ...] = ()
    """The command and its arguments, as a list (no shell unless you name one); `--agent-cmd
    'CMD ...'` overrides it (split like a shell would). `{work}` in an argument becomes the
    scratch copy's path as the command sees it (`/sandbox/work` in the fresh root)."""
    time_limit_s: float = 900.0
    """The command is killed (its whole process tree) after this many seconds; the attempt
    is then a crash."""
    max_output_mb: float = 16.0
    """Output (stdout and stderr together) beyond this is not kept: the command is killed
    and the attempt is a crash. The log keeps the first and last 64 KiB."""
    env: tuple[str, ...] = ()
    """Names of environment variables passed through (an API key, e.g.
    `ANTHROPIC_API_KEY`); nothing else of labwarden's environment reaches the command
    beyond PATH, HOME (the scratch copy), LANG and TERM=dumb."""
    description_file: str = DESCRIPTION_FILE
    """Where the command leaves its description, relative to its working folder."""
    isolation: Isolation = "auto"
    """`fresh-root`: run in a fresh root of its own (mount, pid and user namespaces, network
    on) that shows the scratch copy, the system's programs and libraries, the interpreter,
    DNS and TLS certificates, and nothing else; `none`: with your rights on the host (for
    agents that need your home folder; the command could then read the workspace);
    `auto`: fresh-root where it works, else none with a warning line."""
    mounts: tuple[str, ...] = ()
    """Extra host folders shown read-only inside the fresh root at their own path (the
    agent's own installation, e.g. `/usr/local/lib/node_modules`, `~/.local`). Never a
    folder that holds or is inside the workspace."""
    workspace: str = field(default="", metadata={"internal": True})
    """The workspace root, set by the loader (not a key): the frozen source is read there."""

    def validate(self, where: str) -> None:
        if self.time_limit_s <= 0:
            raise ConfigError(f"{where}: time_limit_s must be > 0, but got {self.time_limit_s}.")
        if self.max_output_mb <= 0:
            raise ConfigError(f"{where}: max_output_mb must be > 0, "
                              f"but got {self.max_output_mb}.")
        if self.description_file.startswith("/") or ".." in self.description_file.split("/"):
            raise ConfigError(f"{where}: description_file must be a relative path inside the "
                              f"scratch copy, but got {self.description_file!r}.")
