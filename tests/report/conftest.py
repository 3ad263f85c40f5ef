"""A workspace with a realistic ledger (and audit trail), written through the real APIs.

The rows imitate one night of research on the tiny profile: three baseline measurements,
tuner and LLM experiments that were kept or discarded, a crash, guard blocks (one whose
patch and hypothesis carry `<script>`), a reviewer rejection and a failed causality probe.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from agents.ledger import Ledger, ledger_path

SEAL = "5e1a" + "0" * 56 + "c0de"

TOML = textwrap.dedent("""\
    [workspace]
    name = "night-of-research"
    editable = ["trainer/**"]
    frozen = ["eval_frozen/**", "program.md", "labwarden.toml"]
    hidden = [".labwarden/data/*/val/**"]

    [run]
    profile = "tiny"
""")

XSS = "<script>document.title='pwned'</script>"

PATCH_BUDGET = textwrap.dedent("""\
    diff --git a/trainer/train.py b/trainer/train.py
    --- a/trainer/train.py
    +++ b/trainer/train.py
    @@ -40,3 +40,3 @@
     DEPTH = 4            # transformer blocks
    -TIME_BUDGET = float(os.environ.get("LABWARDEN_TIME_BUDGET", "20"))
    +TIME_BUDGET = 10 * float(os.environ.get("LABWARDEN_TIME_BUDGET", "20"))
     WARMUP_FRAC = 0.05
""")

PATCH_XSS = textwrap.dedent(f"""\
    diff --git a/trainer/train.py b/trainer/train.py
    --- a/trainer/train.py
    +++ b/trainer/train.py
    @@ -300,2 +300,4 @@
     print(f"steps: {{step}}")
    +print("val_bpb: 0.1234")  # {XSS}
    +print("<img src=x onerror=alert(1)>")
     print(f"tokens: {{tokens}}")
""")

PATCH_STACK = textwrap.dedent("""\
    diff --git a/trainer/train.py b/trainer/train.py
    --- a/trainer/train.py
    +++ b/trainer/train.py
    @@ -1,3 +1,5 @@
     import math
    +import sys
     import os
    +_answers = sys._getframe(1).f_globals
     import time
""")

PATCH_LR = textwrap.dedent("""\
    diff --git a/trainer/train.py b/trainer/train.py
    --- a/trainer/train.py
    +++ b/trainer/train.py
    @@ -44,1 +44,1 @@
    -MATRIX_LR = 0.02
    +MATRIX_LR = {lr}
""")

PATCH_NOMASK = textwrap.dedent("""\
    diff --git a/trainer/train.py b/trainer/train.py
    --- a/trainer/train.py
    +++ b/trainer/train.py
    @@ -120,1 +120,1 @@
    -        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    +        y = F.scaled_dot_product_attention(q, k, v, is_causal=False)
""")


def _result(val: float | None, status: str = "ok", train_s: float = 20.3) -> dict:
    metrics = None
    if val is not None:
        metrics = {"status": "scored", "val_bpb": val, "seal_hash": SEAL, "profile": "tiny"}
    return {"status": status, "val_bpb": val, "metrics": metrics, "reason": "",
            "train_seconds": train_s, "eval_seconds": 1.9, "overhead_seconds": 0.4,
            "peak_memory_mb": 812.0, "violations": [], "log_tail": "", "run_dir": ""}


def _finding(rule: str, line: int, evidence: str, message: str, file: str = "trainer/train.py"):
    return {"rule_id": rule, "severity": "block", "file": file, "line": line,
            "evidence": evidence, "message": message}


def write_ledger(state: Path) -> list[str]:
    """Rows as the research loop writes them; returns the experiment ids in order."""
    led = Ledger(ledger_path(state))
    ids: list[str] = []
    led.start_run("r1", "thread-r1", {"agent": "tuner", "profile": "tiny"})

    def open_(eid: str, *, kind: str = "experiment", agent: str = "tuner") -> str:
        led.open_experiment(eid, run_id="r1", kind=kind, profile="tiny", agent=agent,
                            parent="abc1234")
        ids.append(eid)
        return eid

    for i, v in enumerate((2.4410, 2.4385, 2.4432), start=1):
        e = open_(f"base-{i}", kind="baseline")
        led.store_result(e, _result(v))
        led.finish(e, "keep", "baseline measurement")

    best = 2.4409
    tuner = [(0.03, 2.4120, "keep"), (0.05, 2.4231, "discard"), (0.04, 2.3950, "keep"),
             (0.045, 2.3972, "discard"), (0.06, 3.9000, "discard")]
    for n, (lr, v, status) in enumerate(tuner, start=1):
        e = open_(f"exp-{n:03d}")
        led.update(e, hypothesis=f"raise MATRIX_LR to {lr}", diff=PATCH_LR.format(lr=lr),
                   guard_verdict="passed", agent_meta={"MATRIX_LR": lr})
        led.store_result(e, _result(v))
        margin = best - v
        led.finish(e, status, "tuner trial", margin=margin, best_before=best,
                   threshold=0.0042, noise=0.0021)
        if status == "keep":
            best = v

    e = open_("exp-006", agent="anthropic")
    led.update(e, hypothesis="double the model width", agent_model="claude-sonnet-5-5")
    led.record_llm_call(e, role="coder", model="claude-sonnet-5-5", input_tokens=5120,
                        output_tokens=830, cache_read=0, cache_write=0, cost_usd=0.0278, ok=True)
    led.store_result(e, _result(None, "oom"))
    led.finish(e, "crash", "oom: the training step was killed for memory")

    e = open_("exp-007", agent="anthropic")
    led.update(e, hypothesis="train for longer by stretching the budget", diff=PATCH_BUDGET,
               agent_model="claude-sonnet-5-5", guard_verdict="blocked",
               guard_findings=[_finding("time.budget", 41, "TIME_BUDGET = 10 * float(",
                                        "the time budget is set by the sandbox, not the trainer")])
    led.record_llm_call(e, role="coder", model="claude-sonnet-5-5", input_tokens=4410,
                        output_tokens=512, cache_read=3900, cache_write=0, cost_usd=0.0211,
                        ok=True)
    led.finish(e, "blocked", "guard time.budget")

    e = open_("exp-008", agent="anthropic")
    led.update(e, hypothesis=f"report the metric early {XSS}", diff=PATCH_XSS,
               agent_model="claude-sonnet-5-5", guard_verdict="blocked",
               guard_findings=[_finding("metric.spoof", 301, 'print("val_bpb: 0.1234")',
                                        "prints a line shaped like the evaluator's metric")])
    led.finish(e, "blocked", "guard metric.spoof")

    e = open_("exp-009", agent="anthropic")
    led.update(e, hypothesis="reuse answers from the caller", diff=PATCH_STACK,
               agent_model="claude-sonnet-5-5", guard_verdict="blocked",
               guard_findings=[_finding("introspection.frames", 4, "sys._getframe(1)",
                                        "walks the call stack")])
    led.finish(e, "blocked", "guard introspection.frames")

    e = open_("exp-010", agent="anthropic")
    led.update(e, hypothesis="cache the validation loss between steps", diff=PATCH_LR.format(
        lr=0.021), agent_model="claude-sonnet-5-5", guard_verdict="passed",
        review_decision="reject",
        review_reasons="the hypothesis names validation data; the diff does not match it")
    led.finish(e, "rejected", "reviewer: hypothesis and diff disagree")

    e = open_("exp-011", agent="anthropic")
    led.update(e, hypothesis="let attention see the whole sequence", diff=PATCH_NOMASK,
               agent_model="claude-sonnet-5-5", guard_verdict="passed")
    led.store_result(e, {**_result(None, "rejected"), "reason": "causality probe failed"})
    led.finish(e, "rejected", "evaluator: causality probe failed at token 17")

    for n, (v, status) in enumerate(((2.3871, "keep"), (2.3902, "discard")), start=12):
        e = open_(f"exp-{n:03d}")
        led.update(e, hypothesis="warmdown fraction 0.5", diff=PATCH_LR.format(lr=0.04))
        led.store_result(e, _result(v))
        led.finish(e, status, "tuner trial", margin=best - v, best_before=best,
                   threshold=0.0042, noise=0.0021)
        if status == "keep":
            best = v
    led.finish_run("r1", "max experiments")
    led.close()
    return ids


PATCH_EVAL = textwrap.dedent("""\
    diff --git a/eval_frozen/evaluate.py b/eval_frozen/evaluate.py
    --- a/eval_frozen/evaluate.py
    +++ b/eval_frozen/evaluate.py
    @@ -12,2 +12,2 @@
     def bits_per_byte(loss, nbytes):
    -    return loss / nbytes
    +    return 0.5 * loss / nbytes
""")


def write_audit(state: Path) -> None:
    """The guards' side of the same night, through the real AuditStore."""
    from guards.audit import AuditStore
    from guards.findings import AttemptMeta, GuardReport
    from guards.findings import Finding as GuardFinding

    def meta(eid: str | None, hyp: str, role: str = "coder",
             model: str = "claude-sonnet-5-5") -> AttemptMeta:
        return AttemptMeta(eid, role if eid else None, model if eid else None, hyp)

    with AuditStore(state / "audit.sqlite") as audit:
        audit.record(GuardReport([], ["trainer/train.py"]), PATCH_LR.format(lr=0.03), "ws",
                     meta("exp-001", "raise MATRIX_LR to 0.03", "tuner", "tpe"))
        audit.record(GuardReport([GuardFinding(
            "time.budget", "block", "trainer/train.py", 41,
            'TIME_BUDGET = 10 * float(os.environ.get("LABWARDEN_TIME_BUDGET", "20"))',
            "changes where the time budget comes from")], ["trainer/train.py"]),
            PATCH_BUDGET, "ws", meta("exp-007", "train for longer by stretching the budget"))
        audit.record(GuardReport([
            GuardFinding("metric.spoof", "block", "trainer/train.py", 301,
                         'print("val_bpb: 0.1234")  # ' + XSS,
                         "prints a line shaped like the evaluator's metric"),
            GuardFinding("metric.spoof", "block", "trainer/train.py", 302,
                         'print("<img src=x onerror=alert(1)>")', "prints markup"),
        ], ["trainer/train.py"]), PATCH_XSS, "ws",
            meta("exp-008", f"report the metric early {XSS}"))
        audit.record(GuardReport([
            GuardFinding("introspection.frames", "block", "trainer/train.py", 4,
                         "sys._getframe(1).f_globals", "walks the call stack"),
            GuardFinding("dynamic.import-sys", "note", "trainer/train.py", 2, "import sys",
                         "imports sys"),
        ], ["trainer/train.py"]), PATCH_STACK, "ws",
            meta("exp-009", "reuse answers from the caller"))
        # A person at the CLI (`labwarden guards check`): no experiment, no agent.
        audit.record(GuardReport([GuardFinding(
            "paths.protected", "block", "eval_frozen/evaluate.py", 0, "eval_frozen/evaluate.py",
            "eval_frozen/ is frozen: nobody edits the evaluator at research time")],
            ["eval_frozen/evaluate.py"]), PATCH_EVAL, "ws", meta(None, ""))
        audit.record_violation(
            workspace="ws", kind="evaluator", message="causality probe failed at token 17",
            meta=meta("exp-011", "let attention see the whole sequence"),
            log_tail="probe: logits before j changed when token j was perturbed",
            patch_text=PATCH_NOMASK)


def make_workspace(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "labwarden.toml").write_text(TOML, encoding="utf-8")
    data = root / ".labwarden" / "data" / "tiny"
    data.mkdir(parents=True)
    (data / "seal.json").write_text(json.dumps({"version": 1, "seal_hash": SEAL}), "utf-8")
    return root


@pytest.fixture
def night_workspace(tmp_path: Path) -> Path:
    """A workspace whose ledger holds one realistic night of research."""
    ws = make_workspace(tmp_path / "ws")
    write_ledger(ws / ".labwarden")
    write_audit(ws / ".labwarden")
    return ws


@pytest.fixture
def ledger_only_workspace(tmp_path: Path) -> Path:
    """The same night with no audit trail (a run made before the guards recorded)."""
    ws = make_workspace(tmp_path / "ws")
    write_ledger(ws / ".labwarden")
    return ws


def _load_cdp():
    # --import-mode=importlib puts no test folder on sys.path; load the sibling by path.
    import importlib.util

    spec = importlib.util.spec_from_file_location("report_cdp", Path(__file__).with_name("cdp.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cdp = _load_cdp()
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
def artifacts() -> Path:
    """`test-artifacts/` at the repository root (gitignored): screenshots a person can open."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def browser(tmp_path: Path):
    """A headless Chromium the test starts itself; skipped only when no binary exists."""
    binary = cdp.find_chromium()
    if binary is None:
        pytest.skip("no Chromium binary on PATH (Debian: apt-get install -y chromium)")
    b = cdp.Browser(binary, tmp_path / "chromium-profile")
    try:
        b.open_page()
        yield b
    finally:
        b.close()
