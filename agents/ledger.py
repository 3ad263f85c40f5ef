"""The ledger: every experiment of every run on a workspace, in one SQLite file.

`<state_dir>/ledger.sqlite`, WAL mode so `labwarden results` or a report can read while a
run writes. One row per experiment id; nodes of the graph upsert their part of the row,
so a node that runs again after a crash (LangGraph replays the step that had not been
checkpointed) overwrites its own fields instead of adding a row. The sandbox result is
written once per row (`store_result`); the run node reads it back instead of training
again.

Statuses: `planned` and `running` while an experiment is under way; then one of
`keep`, `discard`, `crash`, `blocked` (a deterministic guard or runtime violation),
`rejected` (the reviewer or an evaluator probe) as its final word. Manual experiments
(`labwarden try`, `labwarden baseline`) are rows of kind `try` in run `manual`: `tried`
when scored, else `blocked`, `rejected` or `crash`. They never count as baselines or
research results (`best`, `noise_floor` and `counts` read other kinds only).
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FINAL = ("keep", "discard", "crash", "blocked", "rejected", "tried")
"""Final statuses; anything else means the experiment has not finished."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id      TEXT PRIMARY KEY,
    thread_id   TEXT NOT NULL,
    started_at  REAL NOT NULL,
    settings    TEXT NOT NULL,
    finished_at REAL,
    stop_reason TEXT
);
CREATE TABLE IF NOT EXISTS experiments (
    id              TEXT PRIMARY KEY,
    seq             INTEGER NOT NULL,
    run_id          TEXT NOT NULL,
    kind            TEXT NOT NULL DEFAULT 'experiment',   -- experiment | baseline | try
    parent          TEXT,            -- research-branch commit the patch applies to
    profile         TEXT NOT NULL,
    setup           TEXT,            -- what makes metrics comparable: backend and budget
    agent           TEXT NOT NULL,
    agent_model     TEXT,
    hypothesis      TEXT,
    agent_meta      TEXT,            -- JSON: e.g. the tuner's parameters
    diff            TEXT,
    guard_verdict   TEXT,
    guard_findings  TEXT,            -- JSON list
    review_decision TEXT,
    review_reasons  TEXT,
    review_rounds   INTEGER NOT NULL DEFAULT 0,
    run_attempts    INTEGER NOT NULL DEFAULT 0,
    result          TEXT,            -- JSON: the sandbox's ExperimentResult
    sandbox_status  TEXT,
    val_bpb         REAL,
    memory_mb       REAL,
    status          TEXT NOT NULL,
    reason          TEXT,
    best_before     REAL,
    margin          REAL,            -- improvement over best_before (positive = better)
    threshold       REAL,            -- keep_k x noise at decision time
    noise           REAL,
    commit_sha      TEXT,
    train_s         REAL,            -- the training step, start to exit (outside clock)
    startup_s       REAL,            -- step start to its first read of training data
    window_s        REAL,            -- first read of training data to exit: what the budget judges
    export_s        REAL,            -- model.pt2 created to the step's exit (the export as seen)
    eval_s          REAL,
    overhead_s      REAL,
    tokens_in       INTEGER NOT NULL DEFAULT 0,
    tokens_out      INTEGER NOT NULL DEFAULT 0,
    cache_read      INTEGER NOT NULL DEFAULT 0,
    cache_write     INTEGER NOT NULL DEFAULT 0,
    cost_usd        REAL,
    created_at      REAL NOT NULL,
    finished_at     REAL
);
CREATE INDEX IF NOT EXISTS experiments_by_run ON experiments(run_id, seq);
CREATE TABLE IF NOT EXISTS llm_calls (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment_id TEXT,
    role          TEXT NOT NULL,
    model         TEXT NOT NULL,
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cache_read    INTEGER NOT NULL,
    cache_write   INTEGER NOT NULL,
    cost_usd      REAL,
    ok            INTEGER NOT NULL,
    note          TEXT,
    created_at    REAL NOT NULL
);
"""

_JSON_FIELDS = ("agent_meta", "guard_findings", "result")
# Columns added after the first release, in order; older ledgers get them on open.
_ADDED_COLUMNS = (("setup", "TEXT"), ("startup_s", "REAL"), ("window_s", "REAL"),
                  ("export_s", "REAL"))


@dataclass(frozen=True)
class NoiseFloor:
    """What the baseline measurements say about the metric."""

    mean: float | None
    std: float
    n: int


class Ledger:
    """One SQLite connection on `<state_dir>/ledger.sqlite`, used by one thread at a time."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        if readonly:
            if not self.path.is_file():
                raise FileNotFoundError(self.path)
            self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True,
                                       check_same_thread=False)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Used by one thread at a time, but LangGraph may run a node off the main thread.
            self._db = sqlite3.connect(self.path, check_same_thread=False)
            # WAL: readers never block the writer; FULL sync: a row written is a row kept
            # across kill -9 and power loss (we write a handful of rows per minute).
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            cols = {r[1] for r in self._db.execute("PRAGMA table_info(experiments)")}
            for col, kind in _ADDED_COLUMNS:  # a ledger written before the column existed
                if col not in cols:
                    self._db.execute(f"ALTER TABLE experiments ADD COLUMN {col} {kind}")
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA busy_timeout=5000")

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._db:
            yield self._db

    # ----------------------------------------------------------------------------- runs
    def start_run(self, run_id: str, thread_id: str, settings: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO runs(run_id, thread_id, started_at, settings) VALUES (?,?,?,?)"
                " ON CONFLICT(run_id) DO NOTHING",
                (run_id, thread_id, time.time(), json.dumps(settings, sort_keys=True)),
            )

    def finish_run(self, run_id: str, stop_reason: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE runs SET finished_at=?, stop_reason=? WHERE run_id=?",
                       (time.time(), stop_reason, run_id))

    def reopen_run(self, run_id: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE runs SET finished_at=NULL, stop_reason=NULL WHERE run_id=?",
                       (run_id,))

    def last_run(self) -> dict[str, Any] | None:
        row = self._db.execute("SELECT * FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()
        if row is None:
            return None
        out = dict(row)
        out["settings"] = json.loads(out["settings"])
        return out

    def next_run_number(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]) + 1

    def abandon_unfinished(self, reason: str) -> int:
        """Close experiments left half-way by a run that will not be resumed."""
        # Manual tries are left alone: one may be running in another process right now.
        with self._tx() as db:
            cur = db.execute(
                f"UPDATE experiments SET status='crash', reason=?, finished_at=? "
                f"WHERE kind != 'try' AND status NOT IN ({','.join('?' * len(FINAL))})",
                (reason, time.time(), *FINAL),
            )
            return cur.rowcount

    # ---------------------------------------------------------------------- experiments
    def open_experiment(self, exp_id: str, *, run_id: str, kind: str, profile: str,
                        agent: str, parent: str | None, setup: str | None = None) -> None:
        """Create the row if it is new; a replayed step finds it and leaves it alone."""
        with self._tx() as db:
            seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM experiments").fetchone()[0]
            db.execute(
                "INSERT INTO experiments(id, seq, run_id, kind, parent, profile, setup, agent,"
                " status, created_at) VALUES (?,?,?,?,?,?,?,?,'planned',?)"
                " ON CONFLICT(id) DO NOTHING",
                (exp_id, seq, run_id, kind, parent, profile, setup, agent, time.time()),
            )

    def drop_unstarted(self, exp_id: str) -> None:
        """Remove a row opened for an experiment that never got a hypothesis."""
        with self._tx() as db:
            db.execute("DELETE FROM experiments WHERE id=? AND status='planned'"
                       " AND hypothesis IS NULL AND tokens_in=0", (exp_id,))

    def update(self, exp_id: str, **fields: Any) -> None:
        """Set columns of one row (JSON columns take Python objects)."""
        if not fields:
            return
        values = []
        for key, value in fields.items():
            if key in _JSON_FIELDS and value is not None:
                value = json.dumps(value, sort_keys=True, default=str)
            values.append(value)
        cols = ", ".join(f"{k}=?" for k in fields)
        with self._tx() as db:
            cur = db.execute(f"UPDATE experiments SET {cols} WHERE id=?", (*values, exp_id))
            if cur.rowcount != 1:
                raise KeyError(f"no experiment {exp_id!r} in {self.path}")

    def mark_run_started(self, exp_id: str) -> int:
        """Count one more sandbox attempt; returns the attempt number (1 for the first)."""
        with self._tx() as db:
            db.execute("UPDATE experiments SET run_attempts=run_attempts+1, status='running'"
                       " WHERE id=?", (exp_id,))
            return int(db.execute("SELECT run_attempts FROM experiments WHERE id=?",
                                  (exp_id,)).fetchone()[0])

    def store_result(self, exp_id: str, result: dict[str, Any]) -> None:
        """Write the sandbox result once; a second call for the same row is ignored."""
        mem = result.get("peak_memory_mb")
        timing = result.get("timing") or {}
        with self._tx() as db:
            db.execute(
                "UPDATE experiments SET result=?, sandbox_status=?, val_bpb=?, memory_mb=?,"
                " train_s=?, startup_s=?, window_s=?, export_s=?, eval_s=?, overhead_s=?"
                " WHERE id=? AND result IS NULL",
                (json.dumps(result, sort_keys=True, default=str), result.get("status"),
                 result.get("val_bpb"), mem, result.get("train_seconds"),
                 timing.get("startup_s"), timing.get("window_s"),
                 timing.get("model_created_before_end_s"),
                 result.get("eval_seconds"), result.get("overhead_seconds"), exp_id),
            )

    def finish(self, exp_id: str, status: str, reason: str = "", **fields: Any) -> None:
        if status not in FINAL:
            raise ValueError(f"status must be one of {FINAL}, but got {status!r}.")
        self.update(exp_id, status=status, reason=reason, finished_at=time.time(), **fields)

    def record_llm_call(self, exp_id: str | None, *, role: str, model: str, input_tokens: int,
                        output_tokens: int, cache_read: int, cache_write: int,
                        cost_usd: float | None, ok: bool, note: str = "") -> None:
        """One API call (the fields of `agents.llm.base.Usage`); its tokens and cost are
        added to the experiment's totals."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO llm_calls(experiment_id, role, model, input_tokens, output_tokens,"
                " cache_read, cache_write, cost_usd, ok, note, created_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (exp_id, role, model, input_tokens, output_tokens, cache_read, cache_write,
                 cost_usd, int(ok), note, time.time()),
            )
            if exp_id is not None:
                db.execute(
                    "UPDATE experiments SET tokens_in=tokens_in+?, tokens_out=tokens_out+?,"
                    " cache_read=cache_read+?, cache_write=cache_write+?,"
                    " cost_usd=CASE WHEN ? IS NULL THEN cost_usd ELSE COALESCE(cost_usd,0)+? END"
                    " WHERE id=?",
                    (input_tokens, output_tokens, cache_read, cache_write, cost_usd, cost_usd,
                     exp_id),
                )

    def llm_calls(self, exp_id: str | None = None) -> list[dict[str, Any]]:
        if exp_id is None:
            rows = self._db.execute("SELECT * FROM llm_calls ORDER BY id")
        else:
            rows = self._db.execute("SELECT * FROM llm_calls WHERE experiment_id=? ORDER BY id",
                                    (exp_id,))
        return [dict(r) for r in rows]

    def get(self, exp_id: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT * FROM experiments WHERE id=?", (exp_id,)).fetchone()
        return _decode(row) if row is not None else None

    def experiments(self, *, run_id: str | None = None, kind: str | None = None,
                    profile: str | None = None, setup: str | None = None) -> list[dict[str, Any]]:
        where, args = [], []
        for col, value in (("run_id", run_id), ("kind", kind), ("profile", profile),
                           ("setup", setup)):
            if value is not None:
                where.append(f"{col}=?")
                args.append(value)
        sql = "SELECT * FROM experiments"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [_decode(r) for r in self._db.execute(sql + " ORDER BY seq", args)]

    # ------------------------------------------------------------------ what we know
    def noise_floor(self, profile: str, setup: str | None = None) -> NoiseFloor:
        """Mean and sample standard deviation of the scored baseline runs of a profile
        (and setup: a metric measured with another budget or backend is not comparable)."""
        vals = [r["val_bpb"] for r in self.experiments(kind="baseline", profile=profile,
                                                        setup=setup)
                if r["status"] == "keep" and r["val_bpb"] is not None]
        if not vals:
            return NoiseFloor(None, 0.0, 0)
        std = statistics.stdev(vals) if len(vals) > 1 else 0.0
        return NoiseFloor(statistics.fmean(vals), std, len(vals))

    def best(self, profile: str, setup: str | None = None) -> tuple[float | None, str | None]:
        """The metric of the current best tree and the row that set it.

        The last kept experiment if any (each keep beat the one before it), else the mean
        of the baseline measurements.
        """
        sql = ("SELECT id, val_bpb FROM experiments WHERE kind='experiment' AND status='keep'"
               " AND profile=?")
        args: tuple[Any, ...] = (profile,)
        if setup is not None:
            sql += " AND setup=?"
            args += (setup,)
        row = self._db.execute(sql + " ORDER BY seq DESC LIMIT 1", args).fetchone()
        if row is not None:
            return float(row["val_bpb"]), str(row["id"])
        floor = self.noise_floor(profile, setup)
        return floor.mean, ("baseline" if floor.mean is not None else None)

    def counts(self, run_id: str | None = None) -> dict[str, int]:
        sql = "SELECT status, COUNT(*) FROM experiments WHERE kind='experiment'"
        args: tuple[Any, ...] = ()
        if run_id is not None:
            sql += " AND run_id=?"
            args = (run_id,)
        return {s: int(n) for s, n in self._db.execute(sql + " GROUP BY status", args)}


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    for key in _JSON_FIELDS:
        if out.get(key) is not None:
            out[key] = json.loads(out[key])
    return out


def ledger_path(state_path: Path) -> Path:
    return Path(state_path) / "ledger.sqlite"
