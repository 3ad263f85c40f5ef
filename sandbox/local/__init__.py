"""The local backend: subprocesses with rlimits and namespaces, for machines without Docker."""

from sandbox.local.backend import LocalBackend

__all__ = ["LocalBackend"]
