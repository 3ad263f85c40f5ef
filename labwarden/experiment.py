"""One experiment, one path: guard, sandbox, audit trail, ledger.

`labwarden try`, `labwarden baseline` and the research graph all go through this service,
so an experiment is judged, run and recorded the same way whoever asked for it:

- `check`: the deterministic diff guards, recorded in the audit trail;
- `run`: one sandboxed experiment (apply, train, evaluate), and whatever the sandbox or
  the evaluator stopped, recorded in the audit trail through `runtime_stops`, the one
  mapping from a sandbox result to audit entries;
- `manual`: a whole experiment asked for by a person (`try`, `baseline`), recorded in the
  ledger as a manual try (kind `try`, run `manual`), never on the research branch and never
  compared with research results.

The ledger is the agents' store (`agents.ledger.Ledger`); the service takes an open one
and never reads its tables itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from labwarden.config import WorkspaceConfig

if TYPE_CHECKING:
    from agents.ledger import Ledger
    from guards.audit import AuditStore
    from guards.findings import AttemptMeta, GuardReport
    from sandbox.backend import SandboxBackend
    from sandbox.spec import ExperimentResult, ExperimentSpec

MANUAL_RUN = "manual"
"""The ledger's run id for experiments a person asked for."""
TRIED = "tried"
"""The final ledger status of a manual try that was scored: neither kept nor discarded."""


def setup_key(backend: str, budget: float | None) -> str:
    """What makes two metrics comparable: the sandbox backend and the training budget."""
    return f"backend={backend},budget={budget or 'profile'}"


@dataclass(frozen=True)
class RuntimeStop:
    """One audit entry for something the sandbox or the evaluator stopped."""

    kind: str
    """Becomes the audit rule id `runtime.<kind>`: budget, seal, leakage, evaluator, oom,
    sandbox."""
    severity: str
    message: str


def final_status(sandbox_status: str | None) -> str | None:
    """The ledger's final word for an unscored sandbox result (None: it was scored).

    A void run (a frozen file changed, the budget overrun) is `blocked` like a guard
    block; an evaluator refusal is `rejected`; anything else that ended without a score
    (a kill at the time limit, out of memory, an exception, a patch that did not apply)
    is a `crash`.
    """
    if sandbox_status == "ok":
        return None
    return {"violation": "blocked", "rejected": "rejected"}.get(str(sandbox_status), "crash")


def _violation_kind(message: str) -> str:
    text = message.lower()
    if "budget" in text or "overran" in text:
        return "budget"
    if "seal" in text or "frozen file" in text:
        return "seal"
    if "validation text" in text:
        return "leakage"
    return "sandbox"


def runtime_stops(result: dict[str, Any]) -> list[RuntimeStop]:
    """What the audit trail records for one sandbox result (as `ExperimentResult.to_dict`).

    Every violation the sandbox named is a block; a kill at the time limit is a budget
    block even where the sandbox named no violation; an evaluator refusal is a block of
    its own kind; an out-of-memory kill is a note (a crash, not a cheat). A scored result,
    a patch that did not apply and an ordinary crash record nothing here.
    """
    status = result.get("status")
    reason = str(result.get("reason") or "")
    stops = [RuntimeStop(_violation_kind(v), "block", str(v))
             for v in result.get("violations") or []]
    if status == "timeout" and not any(s.kind == "budget" for s in stops):
        stops.append(RuntimeStop("budget", "block", reason or "training overran its limit"))
    elif status == "violation" and not stops:
        stops.append(RuntimeStop("sandbox", "block", reason or "sandbox violation"))
    elif status == "rejected":
        stops.append(RuntimeStop("evaluator", "block", reason or "rejected by the evaluator"))
    elif status == "oom":
        stops.append(RuntimeStop("oom", "note", reason or "killed for memory"))
    return stops


@dataclass
class ManualOutcome:
    """What `ExperimentService.manual` did: the guards' report (None without a patch) and
    the sandbox result (None when the guards blocked the patch)."""

    report: GuardReport | None
    result: ExperimentResult | None
    ledger_id: str


class ExperimentService:
    """Guard, run and record experiments of one workspace.

    `backend` runs sandboxed experiments; `audit` is the guards' AuditStore; `ledger` is
    optional (the research graph writes its own rows through its nodes, and passes one
    here only for manual experiments).
    """

    def __init__(self, config: WorkspaceConfig, *, backend: SandboxBackend, audit: AuditStore,
                 ledger: Ledger | None = None) -> None:
        self.config = config
        self.backend = backend
        self.audit = audit
        self.ledger = ledger

    @property
    def backend_name(self) -> str:
        return str(getattr(self.backend, "name", type(self.backend).__name__))

    def check(self, patch: str, meta: AttemptMeta, *,
              against: WorkspaceConfig | None = None) -> GuardReport:
        """The diff guards on `patch`, recorded in the audit trail under this workspace.

        `against`: the config whose root holds the files the patch applies to (the
        research tree's best files); default this workspace.
        """
        from guards import check_patch

        report = check_patch(patch, against or self.config, meta=meta)
        report.audit_id = self.audit.record(report, patch, str(self.config.root), meta)
        return report

    def run(self, spec: ExperimentSpec, meta: AttemptMeta) -> ExperimentResult:
        """One sandboxed experiment; what it stopped goes to the audit trail."""
        result = self.backend.run(spec)
        self.record_runtime(result.to_dict(), meta, spec.patch or "")
        return result

    def record_runtime(self, result: dict[str, Any], meta: AttemptMeta, patch: str) -> list[int]:
        details = {"run_dir": str(result.get("run_dir") or ""),
                   "sandbox_status": result.get("status"), "backend": self.backend_name,
                   "violations": list(result.get("violations") or [])}
        return [
            self.audit.record_violation(
                workspace=str(self.config.root), kind=stop.kind, message=stop.message,
                meta=meta, log_tail=str(result.get("log_tail") or ""), details=details,
                patch_text=patch, severity=stop.severity)
            for stop in runtime_stops(result)
        ]

    def manual(self, spec: ExperimentSpec, *, hypothesis: str) -> ManualOutcome:
        """A person's experiment (`try`, `baseline`): guard the patch, run it, and record
        it in the ledger as a manual try, whatever happens. Requires a ledger."""
        from guards import AttemptMeta

        assert self.ledger is not None, "manual experiments are recorded in the ledger"
        exp_id = spec.experiment_id
        meta = AttemptMeta(experiment_id=exp_id, agent_role="human", hypothesis=hypothesis)
        self.ledger.open_experiment(
            exp_id, run_id=MANUAL_RUN, kind="try", profile=spec.profile, agent="human",
            parent=None, setup=setup_key(self.backend_name, spec.time_budget_s))
        self.ledger.update(exp_id, hypothesis=hypothesis, diff=spec.patch)
        report = None
        try:
            if spec.patch is not None:
                report = self.check(spec.patch, meta)
                findings = [f.to_dict() for f in report.findings]
                self.ledger.update(exp_id, guard_verdict=report.verdict,
                                   guard_findings=findings)
                if report.blocked:
                    rules = sorted({f.rule_id for f in report.findings if f.severity == "block"})
                    self.ledger.finish(exp_id, "blocked", "[" + ", ".join(rules) + "]")
                    return ManualOutcome(report, None, exp_id)
            self.ledger.mark_run_started(exp_id)
            result = self.run(spec, meta)
        except BaseException as e:
            # Bad input, a broken sandbox or Ctrl-C: the row says so instead of "running".
            self.ledger.finish(exp_id, "crash", f"{type(e).__name__}: {e}"[:500])
            raise
        self.ledger.store_result(exp_id, result.to_dict())
        status = final_status(result.status) or TRIED
        self.ledger.finish(exp_id, status, "" if status == TRIED
                           else f"sandbox {result.status}: {result.reason}")
        return ManualOutcome(report, result, exp_id)
