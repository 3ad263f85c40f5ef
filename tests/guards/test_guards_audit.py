"""The audit trail: every check recorded, filterable, exportable, readable while written."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from guards_helpers import edit

from guards.audit import AuditStore
from guards.engine import check_patch
from guards.findings import AttemptMeta


def test_record_list_filter_show_export(config, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = AuditStore(tmp_path / "audit.sqlite")
    ok = edit(config.root, "trainer/train.py", "LR = 0.02 ", "LR = 0.03 ")
    bad = edit(config.root, "trainer/train.py", "import math\n", "import math\nimport inspect\n")
    meta = AttemptMeta("exp-7", "coder", "model-x", "try inspect")
    r1 = check_patch(ok, config, audit=store)
    r2 = check_patch(bad, config, meta=meta, audit=store)
    store.record_violation(workspace=str(config.root), kind="seal", message="seal broken",
                           log_tail="... hash mismatch for val/shard_0.bin", meta=meta,
                           details={"file": "val/shard_0.bin"})
    assert store.count() == 3
    assert [e.id for e in store.list()] == [3, r2.audit_id, r1.audit_id]
    blocked = store.list(verdict="blocked", kind="patch")
    assert [e.id for e in blocked] == [r2.audit_id]
    assert [e.id for e in store.list(rule="introspection.frames")] == [r2.audit_id]
    assert [e.id for e in store.list(rule="runtime.*")] == [3]
    e = store.get(r2.audit_id)
    assert e.patch == bad and e.meta == meta and e.findings == r2.findings
    runtime = store.get(3)
    assert runtime.kind == "runtime" and runtime.details == {"file": "val/shard_0.bin"}
    assert "hash mismatch" in (runtime.log_tail or "")
    buf = io.StringIO()
    assert store.export_jsonl(buf) == 3
    rows = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert rows[1]["hypothesis"] == "try inspect" and rows[1]["verdict"] == "blocked"


def test_reader_in_another_process_while_writer_is_open(config, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "audit.sqlite"
    writer = AuditStore(path)
    for _ in range(3):
        check_patch(edit(config.root, "trainer/train.py", "LR = 0.02 ", "LR = 0.04 "), config,
                    audit=writer)
    writer._db.execute("BEGIN IMMEDIATE")  # a write in progress holds the write lock
    code = ("import sys; from guards.audit import AuditStore; "
            f"print(AuditStore({str(path)!r}).count())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=Path(__file__).resolve().parents[2])
    writer._db.execute("ROLLBACK")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "3"
    assert writer._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
