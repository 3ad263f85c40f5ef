"""Deterministic diff guards, the rule registry and plugins, and the audit trail."""
