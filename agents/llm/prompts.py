"""Prompts and answer schemas of the three roles.

The brief (program.md) is trusted: the guards block any patch to it. Everything an agent
or a program wrote (the trainer's current code, the ledger's hypotheses and reasons, a
diff, guard evidence) goes inside `untrusted` blocks.
"""

from __future__ import annotations

import json
from typing import Any

from agents.llm.base import CodeContext, PlanContext, ReviewContext
from agents.llm.untrusted import NOTICE, untrusted

SYSTEM = {
    "planner": (
        "You are the planner of an automated ML research loop. You propose ONE concrete, "
        "testable change to the training code that should lower val_bpb (validation bits "
        "per byte, scored by a frozen evaluator you cannot touch) within the fixed time "
        "budget. Learn from the ledger: do not repeat what did not help or was blocked. "
        "Changing only the random seed is never an improvement. " + NOTICE
    ),
    "coder": (
        "You are the coder of an automated ML research loop. You turn a hypothesis into a "
        "minimal unified diff (git style, paths a/... and b/..., correct hunk line counts, "
        "three lines of context) against the files shown. Touch only editable files. Never "
        "touch timing, the time budget, the evaluator, the data split, or the model export. "
        + NOTICE
    ),
    "reviewer": (
        "You are the reviewer of an automated ML research loop. Read the hypothesis, the diff "
        "and the deterministic guard findings. Reject any patch that could game the metric "
        "instead of improving the model: touching timers or the budget, reading validation "
        "data, peeking at future tokens, special-casing evaluation, seed fishing. Send it back "
        "(revise) when it is a fair idea badly implemented; approve a fair, correct change. "
        + NOTICE
    ),
}

HYPOTHESIS_TOOL: dict[str, Any] = {
    "name": "propose_hypothesis",
    "description": "Propose the next experiment.",
    "input_schema": {
        "type": "object",
        "properties": {
            "hypothesis": {"type": "string", "description": "One sentence: the change to try."},
            "rationale": {"type": "string", "description": "Why it should lower val_bpb."},
        },
        "required": ["hypothesis", "rationale"],
    },
}

PATCH_TOOL: dict[str, Any] = {
    "name": "submit_patch",
    "description": "Submit the unified diff that implements the hypothesis.",
    "input_schema": {
        "type": "object",
        "properties": {
            "diff": {"type": "string", "description": "A unified diff (git style)."},
            "description": {"type": "string", "description": "One line: what the diff does."},
        },
        "required": ["diff", "description"],
    },
}

VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "decision": {"type": "string", "enum": ["approve", "revise", "reject"]},
        "reasons": {"type": "string"},
    },
    "required": ["decision", "reasons"],
    "additionalProperties": False,
}


def _files_block(files: dict[str, str], budget: int) -> str:
    return "\n\n".join(untrusted(f"file {path}", text, budget) for path, text in files.items())


def plan_prompt(ctx: PlanContext, budget: int) -> tuple[str, str]:
    system = SYSTEM["planner"] + "\n\n# Research brief (program.md)\n\n" + ctx.program
    parts = [
        "# The ledger so far",
        untrusted("ledger", ctx.history or "(no experiments yet)", budget),
        "# The current best training code",
        _files_block(ctx.files, budget * 4),
    ]
    if ctx.lessons:
        parts += ["# Why recent attempts of this run failed",
                  untrusted("lessons", "\n".join(ctx.lessons), budget)]
    parts.append("Call propose_hypothesis with your next experiment.")
    return system, "\n\n".join(parts)


def code_prompt(ctx: CodeContext, budget: int) -> str:
    parts = [
        f"# Hypothesis\n{ctx.hypothesis.text}\n\nRationale: {ctx.hypothesis.rationale}",
        f"# Editable files (globs): {', '.join(ctx.editable)}",
        _files_block(ctx.files, budget * 4),
    ]
    if ctx.feedback:
        parts += ["# The reviewer sent your last diff back", untrusted("review", ctx.feedback,
                                                                        budget)]
    parts.append("Call submit_patch with the diff.")
    return "\n\n".join(parts)


def review_prompt(ctx: ReviewContext, budget: int) -> str:
    findings = json.dumps(ctx.findings, indent=1) if ctx.findings else "(none)"
    parts = [
        f"# Hypothesis\n{ctx.hypothesis.text}",
        "# Diff", untrusted("diff", ctx.diff, budget),
        "# Guard findings", untrusted("findings", findings, budget),
        "# The files the diff applies to (before the patch)", _files_block(ctx.files, budget * 4),
    ]
    if ctx.final_round:
        parts.append("This is the last round: answer approve or reject, not revise.")
    parts.append('Answer with JSON: {"decision": "approve"|"revise"|"reject", "reasons": "..."}')
    return "\n\n".join(parts)
