"""Workspace copies, patch application, the Docker and local backends, images.

Public names load lazily: `import sandbox` pulls in neither the docker SDK nor torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "ExperimentResult",
    "ExperimentSpec",
    "SandboxBackend",
    "SandboxError",
    "SandboxUnavailable",
    "get_backend",
]

_WHERE = {
    "ExperimentResult": "sandbox.spec",
    "ExperimentSpec": "sandbox.spec",
    "SandboxBackend": "sandbox.backend",
    "SandboxError": "sandbox.errors",
    "SandboxUnavailable": "sandbox.errors",
    "get_backend": "sandbox.select",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'sandbox' has no attribute {name!r}")
