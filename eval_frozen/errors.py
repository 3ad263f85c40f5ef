"""eval_frozen's own error: it imports nothing of labwarden, so it cannot use labwarden.errors.

Commands catch `EvalInputError`, print its one-line message and exit 2.
"""

from __future__ import annotations


class EvalInputError(Exception):
    """Bad input (missing data, malformed model, wrong vocabulary): a one-line reason."""
