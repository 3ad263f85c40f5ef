"""Shared, dependency-free pieces of labwarden: the workspace config and the error hierarchy.

Kept import-light on purpose: `guards` and the CLI entry import it, and `labwarden guards
check` must answer in well under 100 ms.
"""

from labwarden.config import WorkspaceConfig, load_config
from labwarden.errors import ConfigError, InputError, LabwardenError

__all__ = ["ConfigError", "InputError", "LabwardenError", "WorkspaceConfig", "load_config"]
