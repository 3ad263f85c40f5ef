"""eval_frozen's own error: it imports nothing of labwarden, so it cannot use labwarden.errors.

Commands catch `EvalInputError`, print its one-line message and exit 2.
"""

from __future__ import annotations


class EvalInputError(Exception):
    """Bad input (missing data, malformed model, wrong vocabulary): a one-line reason."""


class ModelRefused(EvalInputError):
    """A model file built to run code or to escape the checks (pickled objects, code in its
    shape expressions, calls that are not operators, random operators, writes to state):
    a rejection (exit 1, recorded as such), not a mistake in the input."""
