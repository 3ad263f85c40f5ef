"""The rule contract: `check(patch, context) -> list[Finding]`.

A rule is anything with an `id` (stable, dotted, lower-case), a default `severity`, a
one-sentence `description` of the cheat it stops, and `check`. Built-in rules subclass
`Rule`; plugins may subclass it too, or hand over a plain function decorated with
`@rule(...)` (or carrying `id`/`severity`/`description` attributes). The registry checks
all of this when a rule registers and names the offending definition when it does not fit.

`check` returns findings and raises nothing on purpose: whatever it raises is turned into
a `guards.error` finding that blocks the patch (for a security tool, a broken rule must not
be a silent pass).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from guards.findings import Finding, Severity

if TYPE_CHECKING:
    from guards.context import CheckContext
    from guards.patch import Patch

CheckFn = Callable[["Patch", "CheckContext"], list[Finding]]


class Rule(abc.ABC):
    """Base class of built-in and plugin rules. Subclasses set the three class attributes."""

    id: str = ""
    severity: Severity = "block"
    description: str = ""

    @abc.abstractmethod
    def check(self, patch: Patch, context: CheckContext) -> list[Finding]:
        """Findings for this patch; an empty list when the rule has nothing to say."""

    def finding(self, file: str, line: int, evidence: str, message: str,
                severity: Severity | None = None) -> Finding:
        return Finding(self.id, severity or self.severity, file, line, evidence[:300], message)

    def __repr__(self) -> str:
        return f"<rule {self.id} ({self.severity})>"


class FunctionRule(Rule):
    """Adapts a plain `check(patch, context)` function to the `Rule` interface."""

    def __init__(self, fn: CheckFn, *, id: str, severity: Severity, description: str) -> None:
        self.fn = fn
        self.id = id
        self.severity = severity
        self.description = description

    def check(self, patch: Patch, context: CheckContext) -> list[Finding]:
        return self.fn(patch, context)


def rule(id: str, *, severity: Severity = "block", description: str = "") -> Callable[
        [CheckFn], FunctionRule]:
    """Decorator for function plugins: `@rule("myorg.no-wandb", description=...)`."""

    def wrap(fn: CheckFn) -> FunctionRule:
        return FunctionRule(fn, id=id, severity=severity, description=description or (
            (fn.__doc__ or "").strip().splitlines() or [""])[0])

    return wrap


def describe(obj: Any) -> str:
    """A readable name of a definition for error messages."""
    mod = getattr(obj, "__module__", None) or type(obj).__module__
    name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return f"{mod}:{name}"
