"""The offline agent: a classical optimizer over the trainer's numeric constants.

Optuna (TPE or CMA-ES) proposes values for the UPPER_CASE numeric constants at the top
of the editable trainer; each trial becomes a real unified diff that goes through the
same guards, sandbox and evaluator as an LLM's patch. It needs no network, makes the
Quick start do real research, and is the baseline an LLM agent has to beat.

The study lives in memory and is rebuilt from the ledger (`history`) before every
proposal, so a resumed or a new run on the same workspace continues the search instead
of starting over.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agents.config import AgentsConfig
from agents.llm.base import (
    AgentError,
    CodeContext,
    Hypothesis,
    PatchProposal,
    PlanContext,
    ReviewContext,
    Verdict,
    rule_review,
)
from labwarden.errors import InputError

TRAINER = "trainer/train.py"


@dataclass(frozen=True)
class Constant:
    """`NAME = <number>` at module level: where its literal sits on its line."""

    name: str
    value: int | float
    line: int
    """1-based line number."""
    start: int
    end: int
    """Column span of the literal (end exclusive)."""


def read_constants(source: str) -> list[Constant]:
    """Module-level UPPER_CASE names assigned one plain number (bools excluded)."""
    out = []
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
            continue
        target, value = node.targets[0], node.value
        if not (isinstance(target, ast.Name) and target.id.isupper()):
            continue
        sign = 1
        literal = value
        if isinstance(value, ast.UnaryOp) and isinstance(value.op, ast.USub):
            sign, literal = -1, value.operand
        if not (isinstance(literal, ast.Constant) and type(literal.value) in (int, float)):
            continue
        if value.lineno != value.end_lineno:
            continue
        out.append(Constant(target.id, sign * literal.value, value.lineno, value.col_offset,
                            value.end_col_offset or value.col_offset))
    return out


def _is_pow2(v: int) -> bool:
    return v > 0 and v & (v - 1) == 0


def distribution(c: Constant) -> Any:
    """The range searched for one constant, centred on its current value."""
    import optuna.distributions as d

    name, v = c.name, c.value
    if isinstance(v, int):
        if _is_pow2(v) and v >= 2:
            # Widths, heads, batch sizes: stay on powers of two so shapes stay divisible.
            return d.CategoricalDistribution([v // 2, v, v * 2])
        return d.IntDistribution(max(1, v // 2), max(2, v * 2))
    if "BETA" in name or "MOMENTUM" in name:
        return d.FloatDistribution(0.5, 0.99)
    if "FRAC" in name:
        return d.FloatDistribution(0.0, 0.9)
    if v > 0:
        return d.FloatDistribution(v / 4, v * 4, log=True)
    return d.FloatDistribution(0.0, 0.1) if v == 0 else d.FloatDistribution(v * 4, v / 4)


def format_value(v: Any, like: int | float) -> str:
    if isinstance(like, int):
        return str(int(v))
    text = f"{float(v):.3g}"
    return text if any(ch in text for ch in ".en") else text + ".0"


def rewrite(source: str, constants: list[Constant], values: dict[str, Any]) -> str:
    """`source` with each named constant's literal replaced (comments kept)."""
    lines = source.splitlines(keepends=True)
    for c in constants:
        if c.name in values:
            text = lines[c.line - 1]
            lines[c.line - 1] = text[: c.start] + format_value(values[c.name], c.value) + \
                text[c.end:]
    return "".join(lines)


def unified_diff(path: str, before: str, after: str) -> str:
    return "".join(difflib.unified_diff(before.splitlines(keepends=True),
                                        after.splitlines(keepends=True),
                                        fromfile=f"a/{path}", tofile=f"b/{path}", n=3))


class TunerAgent:
    """Planner and coder from Optuna; the deterministic rule reviewer."""

    name = "tuner"

    def __init__(self, config: AgentsConfig, *, base_source: str,
                 history: Callable[[], list[dict[str, Any]]], path: str = TRAINER) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.path = path
        self._history = history
        constants = read_constants(base_source)
        exclude = set(config.tuner_exclude)
        wanted = set(config.tuner_params) or {c.name for c in constants}
        self.space = {c.name: distribution(c) for c in constants
                      if c.name in wanted and c.name not in exclude}
        if not self.space:
            raise AgentError(f"the tuner found no numeric UPPER_CASE constants to tune in {path}")
        # Offset the seed by what the ledger already holds: a new session must not replay
        # the random draws of the last one (it would repeat experiments already done).
        seed = config.tuner_seed + len(history())
        if config.tuner_sampler == "cmaes":
            try:
                import cmaes  # noqa: F401  (Optuna's CMA-ES sampler needs it)
            except ImportError:
                raise InputError("[agents.tuner] sampler = 'cmaes' needs the cmaes package "
                                 "(pip install cmaes); or use sampler = 'tpe'.") from None
            # Categorical constants fall back to random sampling under CMA-ES: expected.
            sampler: Any = optuna.samplers.CmaEsSampler(seed=seed,
                                                        warn_independent_sampling=False)
        else:
            sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=5)
        self._optuna = optuna
        self.study = optuna.create_study(direction="minimize", sampler=sampler)
        self._told: set[str] = set()
        self._pending: dict[str, Any] = {}

    def models(self) -> dict[str, str]:
        return {"planner": "optuna", "coder": "optuna", "reviewer": "rules"}

    def _sync(self) -> None:
        """Teach the study every finished tuner experiment it has not seen."""
        from optuna.trial import TrialState, create_trial

        for row in self._history():
            exp_id = row["id"]
            params = (row.get("agent_meta") or {}).get("params")
            if exp_id in self._told or not params or row["agent"] != self.name:
                continue
            self._told.add(exp_id)
            scored = row["status"] in ("keep", "discard") and row["val_bpb"] is not None
            trial = self._pending.pop(exp_id, None)
            if trial is not None:
                if scored:
                    self.study.tell(trial, float(row["val_bpb"]))
                else:
                    self.study.tell(trial, state=TrialState.FAIL)
                continue
            known = {k: v for k, v in params.items() if k in self.space}
            try:
                self.study.add_trial(create_trial(
                    params=known, distributions={k: self.space[k] for k in known},
                    value=float(row["val_bpb"]) if scored else None,
                    state=TrialState.COMPLETE if scored else TrialState.FAIL))
            except ValueError:
                pass  # outside today's search space (the base moved on): not informative

    def plan(self, ctx: PlanContext) -> Hypothesis:
        self._sync()
        current = ctx.files.get(self.path)
        if current is None:
            raise AgentError(f"the tuner needs {self.path} among the editable files")
        constants = {c.name: c for c in read_constants(current)}
        for _ in range(50):
            trial = self.study.ask(self.space)
            params = dict(trial.params)
            changed = {k: v for k, v in params.items() if k in constants and
                       format_value(v, constants[k].value) != format_value(constants[k].value,
                                                                            constants[k].value)}
            if changed:
                break
            self.study.tell(trial, state=self._optuna.trial.TrialState.PRUNED)
        else:
            raise AgentError("the tuner proposed the current values 50 times in a row")
        self._pending[ctx.experiment_id] = trial
        words = ", ".join(f"{k} {format_value(constants[k].value, constants[k].value)} -> "
                          f"{format_value(v, constants[k].value)}" for k, v in changed.items())
        return Hypothesis(text=f"tuner trial {trial.number}: {words}",
                          rationale=f"Optuna {type(self.study.sampler).__name__}",
                          meta={"params": params, "changed": changed})

    def code(self, ctx: CodeContext) -> PatchProposal:
        before = ctx.files[self.path]
        values = ctx.hypothesis.meta.get("changed") or {}
        after = rewrite(before, read_constants(before), values)
        diff = unified_diff(self.path, before, after)
        if not diff:
            raise AgentError("the tuner's values equal the current ones: empty diff")
        return PatchProposal(diff=diff, description=ctx.hypothesis.text)

    def review(self, ctx: ReviewContext) -> Verdict:
        return rule_review(ctx)
