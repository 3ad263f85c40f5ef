"""The brief written into the scratch copy for the command, one per experiment."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BriefFacts:
    experiment_id: str
    editable: tuple[str, ...]
    history: str
    """The ledger's planner summary: tried, kept, discarded, crashed, blocked and why."""
    lessons: tuple[str, ...]
    """Why this run's recent attempts were blocked, rejected or crashed."""
    budget: str
    """The budget mode and the training time, in words."""
    description_file: str


def render(facts: BriefFacts) -> str:
    lessons = "\n".join(f"- {line}" for line in facts.lessons) or "- (none yet in this run)"
    editable = ", ".join(f"`{g}`" for g in facts.editable)
    return f"""# labwarden brief: experiment {facts.experiment_id}

You are the planner and coder of one experiment. The research goal and the rules are in
`program.md` (read it first). Make ONE change that you expect to lower the metric.

## What to do
- Edit only the files matching {editable}. Anything else you change or leave behind
  (new files, `program.md`, the frozen code) is part of your proposal and gets it blocked.
- Write one short paragraph describing the change and why in `{facts.description_file}`
  (else the last line you print is taken as the description).
- Then exit 0. Exit non-zero, or change nothing, and no experiment is run.

## What you cannot do here
There is no data in this folder or anywhere you can reach: training and evaluation are
labwarden's job. After you exit, your change (a `git diff` of this folder) goes through
deterministic guards, a review, a sandboxed training run of {facts.budget}, and the frozen
evaluator; it is kept only if it beats the best by more than the measured noise. Running
`python -m trainer.train` here fails for want of data; that says nothing about your change.

## Budget
{facts.budget}. Results under other budgets are never compared.

## What was tried (the ledger)
{facts.history}

## Lessons from this run (blocked, rejected or crashed attempts: do not repeat them)
{lessons}
"""
