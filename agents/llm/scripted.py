"""The scripted agent: replays a folder of patch files in name order.

For demos, audits and tests (a script may hold cheat patches on purpose: the guards must
stop them and the loop must go on). The text above the first diff header of a file is
its hypothesis; a file without one is named by its file name. Patches are passed on as
they are, malformed ones included: judging them is the guards' job.
"""

from __future__ import annotations

from pathlib import Path

from agents.llm.base import (
    CodeContext,
    Hypothesis,
    PatchProposal,
    PlanContext,
    ReviewContext,
    Verdict,
    rule_review,
)
from labwarden.errors import InputError

SUFFIXES = (".patch", ".diff")


def split_patch_file(text: str) -> tuple[str, str]:
    """(description, diff): the lines before the first `diff --git` or `--- ` header."""
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith(("diff --git ", "--- ")):
            head = "".join(lines[:i])
            return " ".join(w for w in head.replace("Subject:", "").replace("#", "").split()), \
                "".join(lines[i:])
    return "", text


class ScriptedAgent:
    name = "scripted"

    def __init__(self, folder: Path) -> None:
        folder = Path(folder)
        if not folder.is_dir():
            raise InputError(f"script folder {folder} not found; pass --script DIR with "
                             f"{'/'.join(SUFFIXES)} files.")
        self.files = sorted(p for p in folder.iterdir() if p.suffix in SUFFIXES)
        if not self.files:
            raise InputError(f"script folder {folder} holds no {'/'.join(SUFFIXES)} files.")

    def models(self) -> dict[str, str]:
        return {"planner": "script", "coder": "script", "reviewer": "rules"}

    def plan(self, ctx: PlanContext) -> Hypothesis | None:
        if ctx.attempt_index >= len(self.files):
            return None
        path = self.files[ctx.attempt_index]
        description, _ = split_patch_file(path.read_text(encoding="utf-8", errors="replace"))
        return Hypothesis(text=description or path.stem, meta={"script": path.name})

    def code(self, ctx: CodeContext) -> PatchProposal:
        name = ctx.hypothesis.meta["script"]
        path = next(p for p in self.files if p.name == name)
        _, diff = split_patch_file(path.read_text(encoding="utf-8", errors="replace"))
        return PatchProposal(diff=diff, description=ctx.hypothesis.text)

    def review(self, ctx: ReviewContext) -> Verdict:
        return rule_review(ctx)
