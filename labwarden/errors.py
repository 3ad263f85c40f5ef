"""One error hierarchy for the whole project.

The CLI maps `InputError` (and its subclasses) to exit code 2 with a one-line reason;
anything else escaping a command is a bug and gets a traceback.
"""


class LabwardenError(Exception):
    """Root of every error labwarden raises on purpose."""


class InputError(LabwardenError):
    """Bad input from the user: a missing file, a malformed patch, an unknown option.

    The message must fit on one line and say what to do about it.
    """


class ConfigError(InputError):
    """`labwarden.toml` is missing, unreadable or inconsistent."""
