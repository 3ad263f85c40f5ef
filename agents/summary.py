"""What the ledger tells a planner, and what `labwarden results --tsv` exports.

The planner summary is compact on purpose: every past experiment in one short line at
most, grouped by what happened, so a new run on the same workspace starts from what the
last one learned instead of from zero, without flooding the prompt.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from agents.ledger import Ledger

TSV_COLUMNS = ("commit", "val_bpb", "memory_gb", "status", "description")
"""karpathy/autoresearch's results.tsv header."""


def one_line(text: str | None, limit: int = 120) -> str:
    """Text on one line, cut to `limit` characters (tabs and newlines become spaces)."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def planner_summary(ledger: Ledger, profile: str, setup: str | None = None, *,
                    recent: int = 12) -> str:
    """Best so far, what helped, what did not, what crashed, what was blocked and why."""
    rows = ledger.experiments(kind="experiment", profile=profile)
    floor = ledger.noise_floor(profile, setup)
    best, best_id = ledger.best(profile, setup)
    by_status: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_status[r["status"]].append(r)
    counts = ", ".join(f"{s} {len(v)}" for s, v in sorted(by_status.items()))
    lines = [f"Experiments so far on profile {profile}: {len(rows)} ({counts or 'none'})."]
    if floor.n:
        lines.append(f"Baseline val_bpb {_fmt(floor.mean)} (noise std {floor.std:.4f} over "
                     f"{floor.n} runs). Best so far {_fmt(best)} ({best_id}). Lower is better.")
    if by_status["keep"]:
        lines.append("Kept, in order (each beat the best before it by more than the noise):")
        lines += [f"  {r['id']} {_fmt(r['val_bpb'])} (+{r['margin'] or 0:.4f}): "
                  f"{one_line(r['hypothesis'])}" for r in by_status["keep"]]
    if by_status["discard"]:
        lines.append(f"Did not help (last {recent}; margin < 0 means worse than the best):")
        lines += [f"  {r['id']} {_fmt(r['val_bpb'])} (margin {r['margin'] or 0:+.4f}): "
                  f"{one_line(r['hypothesis'])}" for r in by_status["discard"][-recent:]]
    if by_status["crash"]:
        lines.append(f"Crashed (last {recent}):")
        lines += [f"  {r['id']}: {one_line(r['hypothesis'], 80)} -- {one_line(r['reason'], 100)}"
                  for r in by_status["crash"][-recent:]]
    stopped = by_status["blocked"] + by_status["rejected"]
    if stopped:
        lines.append("Blocked by the guards or rejected (never try these again):")
        by_rule: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in stopped:
            by_rule[_stop_key(r)].append(r)
        for key, group in sorted(by_rule.items(), key=lambda kv: -len(kv[1])):
            last = group[-1]
            lines.append(f"  {key} x{len(group)}, last {last['id']}: "
                         f"{one_line(last['reason'], 140)}")
    return "\n".join(lines)


def _stop_key(row: dict[str, Any]) -> str:
    findings = row.get("guard_findings") or []
    rules = sorted({f.get("rule_id", "?") for f in findings if f.get("severity") == "block"})
    if row["status"] == "blocked" and rules:
        return "blocked by " + ",".join(rules)
    return f"{row['status']} ({row.get('sandbox_status') or row.get('review_decision') or '?'})"


def tsv_rows(ledger: Ledger, profile: str | None = None) -> list[tuple[str, ...]]:
    """results.tsv rows: baselines and finished experiments, in order.

    `commit` is the research-branch commit for kept experiments (7 characters, as
    autoresearch writes it); experiments that made no commit show their ledger id.
    """
    out = []
    for r in ledger.experiments(profile=profile):
        if r["status"] not in ("keep", "discard", "crash", "blocked", "rejected"):
            continue
        commit = (r["commit_sha"] or "")[:7] or r["id"]
        scored = r["val_bpb"] is not None and r["status"] in ("keep", "discard")
        val = f"{r['val_bpb']:.6f}" if scored else "0.000000"
        mem = f"{(r['memory_mb'] or 0.0) / 1024:.1f}" if scored else "0.0"
        desc = "baseline" if r["kind"] == "baseline" else one_line(r["hypothesis"], 200)
        out.append((commit, val, mem, r["status"], desc))
    return out


def to_tsv(rows: list[tuple[str, ...]]) -> str:
    lines = ["\t".join(TSV_COLUMNS)] + ["\t".join(row) for row in rows]
    return "\n".join(lines) + "\n"
