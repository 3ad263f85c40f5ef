"""The one experiment path: how a sandbox result becomes audit entries and a ledger status."""

from __future__ import annotations

import pytest

from labwarden.experiment import final_status, runtime_stops, setup_key


def _result(status: str, reason: str = "", violations: list[str] | None = None) -> dict:
    return {"status": status, "reason": reason, "violations": violations or [],
            "val_bpb": 2.0 if status == "ok" else None}


@pytest.mark.parametrize(("result", "expected"), [
    (_result("ok"), []),
    (_result("crash", "training exited with status 1"), []),
    (_result("apply_failed", "git apply --check: corrupt patch"), []),
    (_result("error", "the evaluator could not read its input"), []),
    (_result("violation", "training ran 61.0 s, past its budget",
             ["training ran 61.0 s, past its budget of 20 s plus 5 s export allowance"]),
     [("budget", "block")]),
    (_result("violation", "frozen file eval_frozen/evaluate.py changed",
             ["after training: frozen file eval_frozen/evaluate.py changed in the sandbox copy",
              "after training: seal: hash mismatch for val/shard_00000.parquet"]),
     [("seal", "block"), ("seal", "block")]),
    (_result("violation", "something else the sandbox saw"), [("sandbox", "block")]),
    (_result("violation", "carried", ["before training: the editable files carry validation "
                                      "text (120 excerpts, 120 in trainer/notes.py)"]),
     [("leakage", "block")]),
    (_result("timeout", "training overran its limit of 45 s and was killed"),
     [("budget", "block")]),
    (_result("timeout", "killed", ["training ran 46 s, past its budget"]),
     [("budget", "block")]),
    (_result("rejected", "probe_failed: causality (...)"), [("evaluator", "block")]),
    (_result("oom", "training was killed for memory (out of memory)"), [("oom", "note")]),
])
def test_one_mapping_from_sandbox_result_to_audit_entries(result: dict, expected: list) -> None:
    stops = runtime_stops(result)
    assert [(s.kind, s.severity) for s in stops] == expected
    assert all(s.message for s in stops)


@pytest.mark.parametrize(("status", "final"), [
    ("ok", None), ("violation", "blocked"), ("rejected", "rejected"), ("timeout", "crash"),
    ("oom", "crash"), ("crash", "crash"), ("error", "crash"), ("apply_failed", "crash"),
])
def test_ledger_status_of_a_sandbox_result(status: str, final: str | None) -> None:
    assert final_status(status) == final


def test_setup_key_is_shared_by_try_and_run() -> None:
    assert setup_key("docker", None) == "backend=docker,budget=profile"
    assert setup_key("local", 2.0) == "backend=local,budget=2.0"
