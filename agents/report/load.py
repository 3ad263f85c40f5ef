"""Read a workspace's ledger and audit trail into a `ReportData`, without writing anything.

Both SQLite files are opened read-only (`file:...?mode=ro`), so a report can be made while
`labwarden run` is still writing them from another process (both use WAL; a reader sees
the last committed state). Neither database file is ever written; the one trace a reader
can leave is SQLite's own pair of sidecars (an empty `-wal`, the `-shm` index) beside a WAL
database no process had open, which the next writer simply reuses.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from agents.report.model import Attempt, Experiment, Finding, ReportData, Rule
from labwarden.config import WorkspaceConfig
from labwarden.errors import InputError
from labwarden.inputs import check_database_file

LEDGER = "ledger.sqlite"
AUDIT = "audit.sqlite"


def load_report(config: WorkspaceConfig, *, profile: str | None = None) -> ReportData:
    """Everything the page and the plot show for one workspace and one profile.

    Raises `InputError` when neither a ledger nor an audit trail exists (wrong workspace,
    or nothing ever ran) or when one of them is not a readable SQLite file.
    """
    state = config.state_path
    ledger_file, audit_file = state / LEDGER, state / AUDIT
    for path, what in ((ledger_file, "ledger"), (audit_file, "audit trail")):
        if path.exists():
            check_database_file(path, what)
    if not ledger_file.is_file() and not audit_file.is_file():
        raise InputError(
            f"nothing to report: no {LEDGER} or {AUDIT} in {state}; "
            "run 'labwarden run' (or pass --workspace DIR) first."
        )
    data = ReportData(
        workspace=config.name,
        metric=config.metric,
        direction=config.direction,
        generated_at=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    )
    rows: list[dict[str, Any]] = []
    if ledger_file.is_file():
        rows, running = _ledger_rows(ledger_file)
        if running:
            data.notes.append(
                f"Run {running} has not finished (it is still going, or it stopped early and "
                f"'labwarden run --resume' continues it): this page shows what was recorded "
                f"up to {data.generated_at}.")
    else:
        data.notes.append(f"No ledger at {ledger_file}: only the audit trail is shown.")

    profiles = [r["profile"] for r in rows]
    chosen = profile or (profiles[-1] if profiles else config.profile)
    if len(set(profiles)) > 1:
        others = sorted(set(profiles) - {chosen})
        data.notes.append(
            f"Showing profile {chosen!r}; the ledger also holds {', '.join(others)} "
            "(metrics of different profiles do not compare; use --profile)."
        )
    mine = [r for r in rows if r["profile"] == chosen]
    _fill_experiments(data, mine)

    ledger_ids = {r["id"] for r in rows}
    shown_ids = {r["id"] for r in mine}
    audit_attempts: list[Attempt] = []
    if audit_file.is_file():
        audit_attempts, recorded_rules = _audit(audit_file)
        # Attempts of experiments on another profile belong to that profile's report;
        # checks outside the ledger (`labwarden guards check`, `try`) are kept.
        audit_attempts = [
            a for a in audit_attempts
            if a.experiment_id is None or a.experiment_id in shown_ids
            or a.experiment_id not in ledger_ids
        ]
        data.rules = recorded_rules
        data.rules_source = "Rules named in the audit trail (the guards could not be listed)."
    else:
        data.notes.append(f"No audit trail at {audit_file}: blocked attempts come from the ledger.")
    data.attempts = _merge_attempts(audit_attempts, mine)

    live, problem = _active_rules(config)
    if live:
        data.rules, data.rules_source = live, "Active today (what labwarden guards list shows)."
    if problem:
        data.notes.append(problem)
    used = {f.rule for a in data.attempts for f in a.findings}
    data.other_stops = [r for r in LEDGER_RULES if r.id in used]
    explained = {r.id for r in [*data.other_stops, *data.rules] if r.description}
    data.other_stops += [Rule(rid, "block", RUNTIME[1], RUNTIME[2]) for rid in sorted(used)
                         if rid.startswith(RUNTIME[0]) and rid not in explained]
    data.seal_hash = _seal_on_disk(config, chosen)
    data.seal_verified = _seal_verified(mine)
    return data


# ------------------------------------------------------------------------------ ledger
def _connect(path: Path) -> sqlite3.Connection:
    # mode=ro: never create, never write; a run in another process keeps its lock to itself.
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA busy_timeout=5000")
        db.execute("SELECT name FROM sqlite_master LIMIT 1").fetchall()
    except sqlite3.Error as e:
        raise InputError(f"{path} is not a readable SQLite database ({e}).") from None
    return db


def _ledger_rows(path: Path) -> tuple[list[dict[str, Any]], str | None]:
    """The experiments in order, and the id of a run that has not finished (if any).

    A run killed without `--resume` also looks unfinished; the note on the page says
    "still going" either way, which is what the ledger can tell.
    """
    db = _connect(path)
    try:
        rows = db.execute("SELECT * FROM experiments ORDER BY seq").fetchall()
        last = db.execute(
            "SELECT run_id, finished_at FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()
    except sqlite3.Error as e:
        raise InputError(f"{path}: no experiments table ({e}); is it a labwarden ledger?") from None
    finally:
        db.close()
    out = []
    for r in rows:
        d = dict(r)
        for key in ("guard_findings", "result", "agent_meta"):
            d[key] = _json(d.get(key))
        out.append(d)
    running = str(last["run_id"]) if last is not None and last["finished_at"] is None else None
    return out, running


def _json(text: Any) -> Any:
    if text is None or not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return None


def _num(v: Any) -> float | None:
    if isinstance(v, int | float) and math.isfinite(float(v)):
        return float(v)
    return None


def _fill_experiments(data: ReportData, rows: list[dict[str, Any]]) -> None:
    baselines: list[float] = []
    threshold: float | None = None
    for r in rows:
        is_base = r.get("kind") == "baseline"
        status = r["status"]
        if is_base and status == "keep":
            status = "baseline"
        value = _num(r.get("val_bpb"))
        if is_base and value is not None and status == "baseline":
            baselines.append(value)
        if _num(r.get("threshold")) is not None:
            threshold = float(r["threshold"])
        parts = [_num(r.get(k)) for k in ("train_s", "eval_s", "overhead_s")]
        known = [p for p in parts if p is not None]
        seconds = sum(known) if known else None
        if seconds is None and _num(r.get("finished_at")) and _num(r.get("created_at")):
            seconds = float(r["finished_at"]) - float(r["created_at"])
        tokens = int(r.get("tokens_in") or 0) + int(r.get("tokens_out") or 0)
        hyp = r.get("hypothesis") or ("baseline measurement" if is_base else "")
        data.experiments.append(Experiment(
            id=str(r["id"]),
            status=status,
            hypothesis=str(hyp),
            value=value,
            margin=_num(r.get("margin")),
            seconds=seconds,
            trained_s=_num(r.get("window_s")),
            export_s=_num(r.get("export_s")),
            tokens=tokens or None,
            cost_usd=_num(r.get("cost_usd")),
            agent=str(r.get("agent") or ""),
            model=str(r.get("agent_model") or ""),
            reason=str(r.get("reason") or ""),
            created_at=_when(r.get("created_at")),
            kind=str(r.get("kind") or "experiment"),
        ))
    if baselines:
        data.baseline = sum(baselines) / len(baselines)
    data.noise = threshold


def _when(t: Any) -> str:
    """Epoch seconds (ledger) and ISO strings (audit trail) shown the same way, local time."""
    if isinstance(t, str):
        try:
            t = datetime.fromisoformat(t).timestamp()
        except ValueError:
            return t
    if isinstance(t, int | float):
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))
    return ""


def _merge_attempts(audit: list[Attempt], rows: list[dict[str, Any]]) -> list[Attempt]:
    """Audit records first; ledger rows the audit trail does not explain are added.

    The guards record their own blocks; a reviewer rejection, an evaluator probe failure
    or a runtime violation may exist only in the ledger, and the page must show it too.
    """
    covered = {a.experiment_id for a in audit if a.experiment_id}
    out = list(audit)
    for r in rows:
        if r["status"] not in ("blocked", "rejected") or r["id"] in covered:
            continue
        findings = [_finding(f) for f in (r.get("guard_findings") or []) if isinstance(f, dict)]
        findings = [f for f in findings if f.severity == "block"] or findings
        if not findings:
            rule = _ledger_rule(r)
            text = r.get("review_reasons") if rule == "reviewer" else None
            findings = [Finding(rule, "block" if r["status"] == "blocked" else "review", None, None,
                                "", str(text or r.get("reason") or ""))]
        out.append(Attempt(
            id=f"ledger:{r['id']}",
            verdict=r["status"],
            experiment_id=str(r["id"]),
            created_at=_when(r.get("created_at")),
            role="reviewer" if r.get("review_decision") == "reject" else str(r.get("agent") or ""),
            model=str(r.get("agent_model") or ""),
            hypothesis=str(r.get("hypothesis") or ""),
            patch=str(r.get("diff") or ""),
            findings=tuple(findings),
        ))
    return out


# Stops that are not guard rules, explained for the page's rule groups. The research loop
# records them in the audit trail as `runtime.<kind>`; rows only the ledger knows get the
# short names.
_REVIEW = ("The reviewer agent read the diff and the guard findings and rejected it. An LLM "
           "can add a rejection but never overrule a deterministic block.")
_PROBE = ("The frozen evaluator refused to score the model: a probe failed (causality, logits "
          "shape or vocabulary, finite values).")
_SANDBOX = ("The sandbox saw a rule broken at run time (a frozen file changed, the budget "
            "overrun); the metric is void.")
_BUDGET = ("The sandbox measured the training step from outside (first read of training data "
           "to exit) and it ran past its budget plus the stated export allowance, or it was "
           "killed at its time limit; the metric is void.")
_SEAL = ("A frozen file or the sealed data changed during the experiment (hash check before "
         "and after each step); the metric is void.")
_OOM = "A step was killed for memory: a crash, not a cheat."
LEDGER_RULES = (
    Rule("runtime.review", "review", "reviewer agent", _REVIEW),
    Rule("runtime.evaluator", "block", "eval_frozen", _PROBE),
    Rule("runtime.sandbox", "block", "sandbox", _SANDBOX),
    Rule("runtime.budget", "block", "sandbox", _BUDGET),
    Rule("runtime.seal", "block", "sandbox", _SEAL),
    Rule("runtime.oom", "note", "sandbox", _OOM),
    Rule("runtime.leakage", "block", "sandbox", "The patched editable files carried excerpts "
         "of the validation text into the training step; the metric is void."),
    Rule("reviewer", "review", "reviewer agent", _REVIEW),
    Rule("evaluator-probe", "block", "eval_frozen", _PROBE),
    Rule("sandbox-violation", "block", "sandbox", _SANDBOX),
)
RUNTIME = ("runtime.", "sandbox",
           "Seen at run time by the sandbox or the evaluator, not in the patch text; the "
           "metric of that experiment is void.")


def _ledger_rule(r: dict[str, Any]) -> str:
    """A group name for a stop the guards did not record as findings."""
    if r.get("review_decision") == "reject":
        return "reviewer"
    sandbox = r.get("sandbox_status")
    if sandbox == "rejected":
        return "evaluator-probe"
    if sandbox == "violation":
        return "sandbox-violation"
    return r["status"]


def _finding(d: dict[str, Any]) -> Finding:
    line = d.get("line")
    return Finding(
        rule=str(d.get("rule_id") or d.get("rule") or "unknown"),
        severity=str(d.get("severity") or ""),
        file=str(d["file"]) if d.get("file") else None,
        line=int(line) if isinstance(line, int) and line > 0 else None,
        evidence=str(d.get("evidence") or ""),
        message=str(d.get("message") or ""),
    )


# ------------------------------------------------------------------------------- audit
def _audit(path: Path) -> tuple[list[Attempt], list[Rule]]:
    """Blocked attempts (guard checks and runtime violations), oldest first, and the rules
    their findings name (what the trail itself can say about the guards)."""
    db = _connect(path)
    try:
        attempts = db.execute(
            "SELECT * FROM attempts WHERE verdict != 'passed' ORDER BY id").fetchall()
        findings: dict[int, list[Finding]] = {}
        for f in db.execute(
                "SELECT f.* FROM findings f JOIN attempts a ON a.id = f.attempt_id"
                " WHERE a.verdict != 'passed' ORDER BY f.id"):
            findings.setdefault(f["attempt_id"], []).append(_finding(dict(f)))
    except sqlite3.Error as e:
        raise InputError(f"{path}: no attempts table ({e}); is it a labwarden audit trail?"
                         ) from None
    finally:
        db.close()
    out: list[Attempt] = []
    seen: dict[str, Rule] = {}
    for a in attempts:
        fs = findings.get(a["id"], [])
        # The blocking findings are the story; notes stay visible in the list below them.
        fs.sort(key=lambda f: f.severity != "block")
        out.append(Attempt(
            id=str(a["id"]),
            verdict=str(a["verdict"]),
            experiment_id=a["experiment_id"],
            created_at=_when(a["created_at"]),
            role=str(a["agent_role"] or ("sandbox" if a["kind"] == "runtime" else "")),
            model=str(a["agent_model"] or ""),
            hypothesis=str(a["hypothesis"] or ""),
            patch=str(a["patch"] or ""),
            findings=tuple(fs),
            patch_bytes=a["patch_bytes"] if "patch_bytes" in a.keys() else None,
        ))
        for f in fs:
            seen.setdefault(f.rule, Rule(f.rule, f.severity, "seen in the audit trail", ""))
    return out, sorted(seen.values(), key=lambda r: r.id)


def _active_rules(config: WorkspaceConfig) -> tuple[list[Rule], str | None]:
    """What `labwarden guards list` shows for this workspace today, or why it could not."""
    try:
        from guards.engine import CORE_RULES, build_registry

        registry = build_registry(config)
    except Exception as e:  # a broken guard config must not hide the report; say so on it
        return [], f"The active guards could not be listed ({type(e).__name__}: {e})."
    rules = [Rule(r.rule.id, r.rule.severity, r.source, r.rule.description)
             for r in registry.rules.values()]
    rules += [Rule(rid, "block", "core", text) for rid, text in CORE_RULES.items()]
    note = None
    if registry.errors:
        names = "; ".join(f"{e.source} {e.spec}: {e.message}" for e in registry.errors)
        note = f"Guard plugins that failed to load (every patch is blocked until fixed): {names}"
    return sorted(rules, key=lambda r: r.id), note


# -------------------------------------------------------------------------------- seal
def _seal_on_disk(config: WorkspaceConfig, profile: str) -> str | None:
    """`seal_hash` of `<data>/<profile>/seal.json`, None when absent or unreadable."""
    try:
        seal = json.loads((config.data_path(profile) / "seal.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = seal.get("seal_hash") if isinstance(seal, dict) else None
    return str(value) if value else None


def _seal_verified(rows: list[dict[str, Any]]) -> tuple[str, str] | None:
    """The seal the evaluator verified in the latest experiment it scored."""
    for r in reversed(rows):
        result = r.get("result")
        metrics = result.get("metrics") if isinstance(result, dict) else None
        if isinstance(metrics, dict) and metrics.get("seal_hash"):
            return str(metrics["seal_hash"]), str(r["id"])
    return None
