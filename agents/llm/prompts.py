"""Prompts and answer schemas of the three roles.

The brief (program.md) is trusted: the guards block any patch to it. Everything an agent
or a program wrote (the trainer's current code, the ledger's hypotheses and reasons, a
diff, guard evidence) goes inside `untrusted` blocks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from agents.llm.base import AgentStop, CodeContext, PlanContext, ReviewContext
from agents.llm.untrusted import NOTICE, untrusted

SHOW_WHOLE_CHARS = 400_000
"""The most characters of files, or of one diff, a role is shown. Nothing is ever cut
from the middle: a coder editing a file it saw in part writes hunks that do not apply,
and a reviewer must read all it approves. Past this, the call is not made at all."""

LINE_NUMBERS = ("Files are shown with a line number and '| ' before each line; the numbers "
                "are not part of the file and never go into a diff.")

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
        + LINE_NUMBERS + " " + NOTICE
    ),
    "reviewer": (
        "You are the reviewer of an automated ML research loop. Read the hypothesis, the diff "
        "and the deterministic guard findings. Reject any patch that could game the metric "
        "instead of improving the model: touching timers or the budget, reading validation "
        "data, peeking at future tokens, special-casing evaluation, seed fishing. Send it back "
        "(revise) when it is a fair idea badly implemented; approve a fair, correct change. "
        + LINE_NUMBERS + " " + NOTICE
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



@dataclass(frozen=True)
class Prompt:
    """One role's prompt, split where the cache should break.

    `system` (the role and program.md) is the same for the whole run and `stable` (the
    current best files, whole) until a change is kept; both end in a cache breakpoint.
    `rest` is this call's own part (the ledger, the hypothesis, a diff)."""

    system: str
    stable: str
    rest: str


def _system(role: str, program: str) -> str:
    brief = program.strip() or "(no program.md in this workspace)"
    return f"{SYSTEM[role]}\n\n# Research brief (program.md, written by the human)\n\n{brief}"


def numbered(text: str) -> str:
    lines = text.splitlines()
    width = len(str(len(lines)))
    return "\n".join(f"{i:>{width}}| {line}" for i, line in enumerate(lines, 1))


def files_block(files: dict[str, str]) -> str:
    """Every file whole, with line numbers, each as untrusted data (agents wrote them)."""
    size = sum(len(text) for text in files.values())
    if size > SHOW_WHOLE_CHARS:
        sizes = ", ".join(f"{path} {len(text):,}" for path, text in files.items())
        raise AgentStop(f"the editable files are {size:,} characters ({sizes}), more than an "
                        f"agent is shown whole ({SHOW_WHOLE_CHARS:,}); shrink them or narrow "
                        "'editable' in labwarden.toml")
    return "\n\n".join(untrusted(f"file {path}", numbered(text), 0)
                        for path, text in files.items())


def _hypothesis(ctx: CodeContext | ReviewContext, budget: int) -> str:
    # Model-written, and the ledger it learned from is untrusted: data, never orders.
    text = ctx.hypothesis.text
    if ctx.hypothesis.rationale:
        text += f"\n\nRationale: {ctx.hypothesis.rationale}"
    return "# The hypothesis to implement\n" + untrusted("hypothesis", text, budget)


def plan_prompt(ctx: PlanContext, budget: int) -> Prompt:
    parts = ["# The ledger so far",
             untrusted("ledger", ctx.history or "(no experiments yet)", budget)]
    if ctx.lessons:
        parts += ["# Why recent attempts of this run failed",
                  untrusted("lessons", "\n".join(ctx.lessons), budget)]
    parts.append("Call propose_hypothesis with your next experiment.")
    return Prompt(_system("planner", ctx.program),
                  "# The current best training code\n\n" + files_block(ctx.files),
                  "\n\n".join(parts))


def code_prompt(ctx: CodeContext, budget: int) -> Prompt:
    stable = (f"# Editable files (globs): {', '.join(ctx.editable)}\n\n"
              f"# The files your diff applies to\n\n{files_block(ctx.files)}")
    parts = [_hypothesis(ctx, budget)]
    if ctx.feedback:
        parts += ["# The reviewer sent your last diff back",
                  untrusted("review", ctx.feedback, budget)]
    parts.append("Call submit_patch with the diff.")
    return Prompt(_system("coder", ctx.program), stable, "\n\n".join(parts))


def diff_too_large(diff: str) -> str | None:
    """Why a diff cannot be reviewed whole, or None."""
    if len(diff) > SHOW_WHOLE_CHARS:
        return (f"the diff is {len(diff):,} characters, more than a reviewer is shown whole "
                f"({SHOW_WHOLE_CHARS:,}); a reviewer approves only what it has read")
    return None


def review_prompt(ctx: ReviewContext, budget: int) -> Prompt:
    findings = json.dumps(ctx.findings, indent=1) if ctx.findings else "(none)"
    parts = [
        _hypothesis(ctx, budget),
        "# The diff (whole)", untrusted("diff", ctx.diff, 0),
        "# Guard findings", untrusted("findings", findings, budget),
    ]
    if ctx.final_round:
        parts.append("This is the last round: answer approve or reject, not revise.")
    parts.append('Answer with JSON: {"decision": "approve"|"revise"|"reject", "reasons": "..."}')
    return Prompt(_system("reviewer", ctx.program),
                  "# The files the diff applies to (before the patch)\n\n"
                  + files_block(ctx.files), "\n\n".join(parts))
