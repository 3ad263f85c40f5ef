"""The audit trail: every guard check and every runtime violation, in SQLite.

One row per attempt (`attempts`) and one per finding (`findings`), so "every block by
rule X" is an indexed query. A patch larger than `EXCERPT_BYTES` is stored as its first
`EXCERPT_BYTES` (cut at a line end) with the sha256 and size of the whole, so a hostile
10 MB patch costs the trail a bounded row and `audit replay` stays cheap. WAL mode lets
`labwarden audit list` read while a run writes.
Runtime violations (a broken seal, a budget overrun) come from the sandbox through
`record_violation` and land in the same tables with `kind = 'runtime'` and the log tail.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from hashlib import sha256
from pathlib import Path
from typing import IO, Any

from guards.findings import AttemptMeta, Finding, GuardReport
from labwarden.errors import InputError
from labwarden.inputs import SQLITE_MAGIC, check_database_file

SCHEMA = """
CREATE TABLE IF NOT EXISTS attempts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at    TEXT NOT NULL,
    kind          TEXT NOT NULL DEFAULT 'patch',   -- 'patch' | 'runtime'
    workspace     TEXT NOT NULL,
    experiment_id TEXT,
    agent_role    TEXT,
    agent_model   TEXT,
    hypothesis    TEXT,
    patch         TEXT NOT NULL DEFAULT '',      -- whole, or its first EXCERPT_BYTES
    patch_sha256  TEXT NOT NULL DEFAULT '',      -- of the whole patch
    patch_bytes   INTEGER,                       -- size of the whole patch (UTF-8)
    verdict       TEXT NOT NULL,                   -- 'passed' | 'blocked'
    log_tail      TEXT,
    details       TEXT                             -- JSON, runtime violations only
);
CREATE TABLE IF NOT EXISTS findings (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    attempt_id INTEGER NOT NULL REFERENCES attempts(id) ON DELETE CASCADE,
    rule_id    TEXT NOT NULL,
    severity   TEXT NOT NULL,
    file       TEXT NOT NULL DEFAULT '',
    line       INTEGER NOT NULL DEFAULT 0,
    evidence   TEXT NOT NULL DEFAULT '',
    message    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS attempts_verdict ON attempts(verdict);
CREATE INDEX IF NOT EXISTS attempts_experiment ON attempts(experiment_id);
CREATE INDEX IF NOT EXISTS findings_attempt ON findings(attempt_id);
CREATE INDEX IF NOT EXISTS findings_rule ON findings(rule_id);
"""


EXCERPT_BYTES = 256 * 1024
"""The default `[guards] max_patch_bytes`: any patch the guards could pass is stored whole."""
__all__ = ["SQLITE_MAGIC", "AuditEntry", "AuditStore", "check_database_file", "excerpt"]


@dataclass
class AuditEntry:
    id: int
    created_at: str
    kind: str
    workspace: str
    verdict: str
    patch: str
    meta: AttemptMeta
    findings: list[Finding] = field(default_factory=list)
    log_tail: str | None = None
    details: dict[str, Any] | None = None
    patch_sha256: str = ""
    patch_bytes: int | None = None
    """Size of the whole patch; None in rows written before sizes were recorded."""

    @property
    def patch_cut(self) -> bool:
        """True when `patch` is only an excerpt of what was checked."""
        return self.patch_bytes is not None and self.patch_bytes > len(
            self.patch.encode("utf-8", "replace"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "created_at": self.created_at, "kind": self.kind,
            "workspace": self.workspace, "verdict": self.verdict, **self.meta.to_dict(),
            "patch": self.patch, "patch_sha256": self.patch_sha256,
            "patch_bytes": self.patch_bytes, "patch_cut": self.patch_cut,
            "findings": [f.to_dict() for f in self.findings],
            "log_tail": self.log_tail, "details": self.details,
        }


def default_path(state_path: Path) -> Path:
    return state_path / "audit.sqlite"


class AuditStore:
    """Append-only record of checks. Safe to open from several processes at once."""

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        """Open (a writer creates it); `readonly` opens an existing trail without ever
        writing it, and says so when the file is empty, truncated or not SQLite at all."""
        self.path = Path(path)
        self.readonly = readonly
        try:
            if readonly:
                check_database_file(self.path, "audit trail")
                self._db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                                           timeout=30.0, isolation_level=None)
                self._db.execute("SELECT id, verdict FROM attempts LIMIT 1").fetchall()
                self._db.execute("SELECT attempt_id, rule_id FROM findings LIMIT 1").fetchall()
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute("PRAGMA foreign_keys=ON")
                self._db.executescript(SCHEMA)
                columns = {r[1] for r in self._db.execute("PRAGMA table_info(attempts)")}
                if "patch_bytes" not in columns:  # a trail from before sizes were kept
                    self._db.execute("ALTER TABLE attempts ADD COLUMN patch_bytes INTEGER")
        except sqlite3.DatabaseError as e:
            raise InputError(f"{self.path}: not a usable audit database, corrupt or truncated "
                             f"({e}); move it aside to start a new trail.") from None

    @classmethod
    def for_workspace(cls, config: Any) -> AuditStore:
        return cls(default_path(config.state_path))

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> AuditStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ------------------------------------------------------------------------
    def record(self, report: GuardReport, patch_text: str, workspace: str,
               meta: AttemptMeta | None = None) -> int:
        """Store one guard check; returns its id."""
        return self._insert("patch", report.verdict, report.findings, patch_text, workspace,
                            meta, None, None)

    def record_violation(self, *, workspace: str, kind: str, message: str,
                         meta: AttemptMeta | None = None, log_tail: str = "",
                         details: dict[str, Any] | None = None, patch_text: str = "",
                         severity: str = "block") -> int:
        """Store a runtime violation seen by the sandbox (`seal`, `budget`, `oom`, ...).

        It becomes one finding with rule id `runtime.<kind>`, so `audit list --rule` finds it.
        """
        finding = Finding(f"runtime.{kind}", severity, "", 0, log_tail[-300:], message)  # type: ignore[arg-type]
        return self._insert("runtime", "blocked", [finding], patch_text, workspace, meta,
                            log_tail[-20_000:], details)

    def _insert(self, kind: str, verdict: str, findings: list[Finding], patch_text: str,
                workspace: str, meta: AttemptMeta | None, log_tail: str | None,
                details: dict[str, Any] | None) -> int:
        meta = meta or AttemptMeta()
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        whole = patch_text.encode("utf-8", "surrogateescape")
        digest = sha256(whole).hexdigest()
        stored = excerpt(whole)
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            cur = db.execute(
                "INSERT INTO attempts (created_at, kind, workspace, experiment_id, agent_role,"
                " agent_model, hypothesis, patch, patch_sha256, patch_bytes, verdict, log_tail,"
                " details) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (now, kind, workspace, meta.experiment_id, meta.agent_role, meta.agent_model,
                 meta.hypothesis, stored.decode("utf-8", "replace"), digest, len(whole),
                 verdict, log_tail, json.dumps(details) if details is not None else None),
            )
            attempt_id = int(cur.lastrowid or 0)
            db.executemany(
                "INSERT INTO findings (attempt_id, rule_id, severity, file, line, evidence,"
                " message) VALUES (?,?,?,?,?,?,?)",
                [(attempt_id, f.rule_id, f.severity, f.file, f.line, f.evidence, f.message)
                 for f in findings],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return attempt_id

    # -- reading ------------------------------------------------------------------------
    def list(self, *, verdict: str | None = None, rule: str | None = None,
             experiment_id: str | None = None, kind: str | None = None,
             limit: int | None = None) -> list[AuditEntry]:
        """Attempts, newest first, filtered by verdict, rule id (exact or `prefix.*`), etc."""
        where, args = [], []
        if verdict:
            where.append("a.verdict = ?")
            args.append(verdict)
        if kind:
            where.append("a.kind = ?")
            args.append(kind)
        if experiment_id:
            where.append("a.experiment_id = ?")
            args.append(experiment_id)
        if rule:
            if rule.endswith("*"):
                where.append("a.id IN (SELECT attempt_id FROM findings WHERE rule_id LIKE ?)")
                args.append(rule[:-1].replace("%", r"\%") + "%")
            else:
                where.append("a.id IN (SELECT attempt_id FROM findings WHERE rule_id = ?)")
                args.append(rule)
        sql = "SELECT * FROM attempts a"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY a.id DESC"
        if limit is not None and limit < 0:
            raise InputError(f"limit must be >= 0 (0: no limit), but got {limit}.")
        if limit:
            sql += f" LIMIT {int(limit)}"
        return self._entries(sql, args)

    def get(self, attempt_id: int) -> AuditEntry:
        rows = self._entries("SELECT * FROM attempts a WHERE a.id = ?", [attempt_id])
        if not rows:
            raise InputError(f"no audit entry with id {attempt_id} in {self.path}.")
        return rows[0]

    def iter_all(self) -> Iterator[AuditEntry]:
        last = 0
        while True:
            batch = self._entries("SELECT * FROM attempts a WHERE a.id > ? ORDER BY a.id"
                                  " LIMIT 500", [last])
            if not batch:
                return
            yield from batch
            last = batch[-1].id

    def rule_ids(self) -> set[str]:
        """Every rule id any recorded finding names."""
        return {r[0] for r in self._db.execute("SELECT DISTINCT rule_id FROM findings")}

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM attempts").fetchone()[0])

    def export_jsonl(self, out: IO[str]) -> int:
        n = 0
        for entry in self.iter_all():
            out.write(json.dumps(entry.to_dict(), ensure_ascii=False) + "\n")
            n += 1
        return n

    def _entries(self, sql: str, args: list[Any]) -> list[AuditEntry]:
        self._db.row_factory = sqlite3.Row
        rows = self._db.execute(sql, args).fetchall()
        if not rows:
            return []
        ids = [r["id"] for r in rows]
        marks = ",".join("?" * len(ids))
        by_attempt: dict[int, list[Finding]] = {i: [] for i in ids}
        for f in self._db.execute(
                f"SELECT * FROM findings WHERE attempt_id IN ({marks}) ORDER BY id", ids):
            by_attempt[f["attempt_id"]].append(Finding(
                f["rule_id"], f["severity"], f["file"], f["line"], f["evidence"], f["message"]))
        has_size = "patch_bytes" in rows[0].keys()
        return [
            AuditEntry(
                id=r["id"], created_at=r["created_at"], kind=r["kind"], workspace=r["workspace"],
                verdict=r["verdict"], patch=r["patch"], patch_sha256=r["patch_sha256"],
                patch_bytes=r["patch_bytes"] if has_size else None,
                meta=AttemptMeta(r["experiment_id"], r["agent_role"], r["agent_model"],
                                 r["hypothesis"]),
                findings=by_attempt[r["id"]], log_tail=r["log_tail"],
                details=json.loads(r["details"]) if r["details"] else None,
            )
            for r in rows
        ]


def excerpt(data: bytes, limit: int = EXCERPT_BYTES) -> bytes:
    """`data` whole when it fits, else its first `limit` bytes cut after the last newline
    (a diff line is never stored half)."""
    if len(data) <= limit:
        return data
    head = data[:limit]
    cut = head.rfind(b"\n")
    return head[: cut + 1] if cut > 0 else head
