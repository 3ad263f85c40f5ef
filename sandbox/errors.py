"""Errors the sandbox raises. A failed experiment is a result; these are for a broken sandbox."""

from labwarden.errors import InputError, LabwardenError


class SandboxError(LabwardenError):
    """The sandbox itself broke (engine died mid-run, a container could not be created)."""


class SandboxUnavailable(SandboxError, InputError):
    """A prerequisite is missing. The message is one line that says what to install or run."""
