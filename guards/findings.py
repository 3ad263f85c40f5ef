"""What a guard check produces: findings, the report that gathers them, attempt metadata.

Plain dataclasses with `to_dict`/`from_dict`, so the audit store, the CLI's `--json` and
the agents' ledger all carry the same shape.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Severity = Literal["block", "review", "note"]
SEVERITIES: tuple[Severity, ...] = ("block", "review", "note")
Verdict = Literal["passed", "blocked"]


@dataclass(frozen=True)
class Finding:
    """One thing a rule saw in a patch.

    `block` stops the patch; `review` and `note` let it pass but are shown to the reviewer
    agent and recorded in the audit trail. `line` is a line number in the file *after* the
    patch (0 when the finding is about the file or the patch as a whole).
    """

    rule_id: str
    severity: Severity
    file: str
    line: int
    evidence: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Finding:
        return cls(
            rule_id=str(d["rule_id"]),
            severity=d["severity"],
            file=str(d.get("file", "")),
            line=int(d.get("line", 0)),
            evidence=str(d.get("evidence", "")),
            message=str(d.get("message", "")),
        )

    def render(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else (self.file or "<patch>")
        text = f"[{self.severity}] {self.rule_id} {where}: {self.message}"
        if self.evidence:
            text += f"\n    > {self.evidence}"
        return text


@dataclass(frozen=True)
class AttemptMeta:
    """Who sent a patch and why; every field optional (a person at the CLI has none)."""

    experiment_id: str | None = None
    agent_role: str | None = None
    agent_model: str | None = None
    hypothesis: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GuardReport:
    """The verdict on one patch: blocked as soon as one finding has severity `block`."""

    findings: list[Finding] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    """Workspace-relative paths the patch touches (target paths; source paths for deletions)."""
    audit_id: int | None = None
    """Row id in the audit trail when the check was recorded."""

    @property
    def blocked(self) -> bool:
        return any(f.severity == "block" for f in self.findings)

    @property
    def verdict(self) -> Verdict:
        return "blocked" if self.blocked else "passed"

    def by_severity(self, severity: Severity) -> list[Finding]:
        return [f for f in self.findings if f.severity == severity]

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "files": list(self.files),
            "audit_id": self.audit_id,
            "findings": [f.to_dict() for f in self.findings],
        }

    def render(self) -> str:
        head = f"{self.verdict}: {len(self.findings)} finding(s)"
        return "\n".join([head, *(f.render() for f in self.findings)])
