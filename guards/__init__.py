"""Deterministic diff guards, the rule registry and plugins, and the audit trail.

Re-exports are lazy (PEP 562): `import guards` costs nothing, so command modules and
other packages can import it freely.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from guards.audit import AuditStore
    from guards.engine import build_registry, check_patch
    from guards.findings import AttemptMeta, Finding, GuardReport
    from guards.patch import Patch, PatchError, parse_patch
    from guards.rules.base import Rule, rule

__all__ = [
    "AttemptMeta", "AuditStore", "Finding", "GuardReport", "Patch", "PatchError", "Rule",
    "build_registry", "check_patch", "parse_patch", "rule",
]

_WHERE = {
    "AttemptMeta": "guards.findings", "Finding": "guards.findings",
    "GuardReport": "guards.findings", "AuditStore": "guards.audit",
    "check_patch": "guards.engine", "build_registry": "guards.engine",
    "Patch": "guards.patch", "PatchError": "guards.patch", "parse_patch": "guards.patch",
    "Rule": "guards.rules.base", "rule": "guards.rules.base",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'guards' has no attribute {name!r}")
