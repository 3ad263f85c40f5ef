"""The offline agent: a classical optimizer over the trainer's numeric constants.

Optuna proposes values for the UPPER_CASE numeric constants at the top of the editable
trainer; each trial becomes a real unified diff that goes through the same guards,
sandbox and evaluator as an LLM's patch. It needs no network, makes the Quick start do
real research, and is the baseline an LLM agent has to beat.

It searches around the current best, not across a box: every constant becomes an axis
whose midpoint is its current value (log space for scales such as learning rates and
widths), so CMA-ES (the default) starts at the best with a small step, and each trial
changes at most `max_changes` constants. When the best moves (a kept change by any
agent, structural ones included) the search re-centres on the new best.

The study lives in memory and is rebuilt from the ledger (`history`) whenever the centre
changes or a session starts: the tuner's earlier trials around the same centre are
replayed in order, so a resumed or a new run continues the search, and no point that
any earlier experiment already ran is proposed again.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import math
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


@dataclass(frozen=True)
class Axis:
    """One constant as a search axis centred on its current value (x = 0 is the centre)."""

    name: str
    centre: int | float
    kind: str
    """`log` (scales, x in log2 units), `pow2` (ints kept on powers of two, x = exponent
    step), `int` (x = offset), `beta` (decays in (0, 1): x = log2 of the change of 1 - v),
    `linear` (fractions and zero-valued floats: x = offset)."""
    half: float
    """Half-width of the axis: x ranges over [-half, half]."""

    def distribution(self) -> Any:
        import optuna.distributions as d

        if self.kind in ("pow2", "int"):
            return d.IntDistribution(-int(self.half), int(self.half))
        return d.FloatDistribution(-self.half, self.half)

    def value(self, x: float) -> int | float:
        c = self.centre
        if self.kind == "pow2":
            return max(1, int(round(c * 2.0 ** int(x))))
        if self.kind == "int":
            return max(1, int(c) + int(x))
        if self.kind == "log":
            return c * 2.0 ** x
        if self.kind == "beta":
            return min(0.999, max(0.0, 1.0 - (1.0 - c) * 2.0 ** x))
        return max(0.0, c + x) if c >= 0 else c + x


def make_axis(c: Constant) -> Axis:
    """The axis searched for one constant. Midpoints are the current values, so a sampler
    whose first point is the middle of its box (CMA-ES) starts at the current best."""
    name, v = c.name, c.value
    if isinstance(v, int):
        if _is_pow2(v) and v >= 2:
            # Widths, heads, batch sizes: stay on powers of two so shapes stay divisible.
            return Axis(name, v, "pow2", 1)
        return Axis(name, v, "int", max(1, abs(v) // 2))
    if ("BETA" in name or "MOMENTUM" in name) and 0.0 < v < 1.0:
        return Axis(name, v, "beta", 2.0)
    if "FRAC" in name:
        return Axis(name, v, "linear", 0.3)
    if v != 0:
        return Axis(name, v, "log", 2.0)
    return Axis(name, v, "linear", 0.1)


def distribution(c: Constant) -> Any:
    """The Optuna distribution of one constant's axis (centred coordinates)."""
    return make_axis(c).distribution()


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


def centre_key(source: str) -> str:
    """Names the tree a search is centred on: any change to the trainer moves the centre."""
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def structure_key(source: str, constants: list[Constant]) -> str:
    """The trainer with its tuned literals blanked: two points are the same experiment
    only on the same structure."""
    lines = source.splitlines(keepends=True)
    for c in constants:
        text = lines[c.line - 1]
        lines[c.line - 1] = text[: c.start] + "_" + text[c.end:]
    return hashlib.sha256("".join(lines).encode()).hexdigest()[:16]


_SCORED = ("keep", "discard")


class TunerAgent:
    """Planner and coder from Optuna; the deterministic rule reviewer."""

    name = "tuner"

    def __init__(self, config: AgentsConfig, *, base_source: str,
                 history: Callable[[], list[dict[str, Any]]], path: str = TRAINER) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.config = config
        self.path = path
        self._history = history
        constants = read_constants(base_source)
        exclude = set(config.tuner_exclude)
        wanted = set(config.tuner_params) or {c.name for c in constants}
        self.names = [c.name for c in constants if c.name in wanted and c.name not in exclude]
        if not self.names:
            raise AgentError(f"the tuner found no numeric UPPER_CASE constants to tune in {path}")
        if config.tuner_sampler == "cmaes":
            try:
                import cmaes  # noqa: F401  (Optuna's CMA-ES sampler needs it)
            except ImportError:
                raise InputError("[agents.tuner] sampler = 'cmaes' needs the cmaes package "
                                 "(pip install cmaes); or use sampler = 'tpe'.") from None
        self._optuna = optuna
        self._centre = ""
        self._build(base_source)

    def models(self) -> dict[str, str]:
        return {"planner": "optuna", "coder": "optuna", "reviewer": "rules"}

    # ------------------------------------------------------------------ the study
    def _build(self, source: str) -> None:
        """A fresh study centred on `source`, taught the earlier trials around it."""
        optuna = self._optuna
        constants = read_constants(source)
        by_name = {c.name: c for c in constants}
        self.axes = {n: make_axis(by_name[n]) for n in self.names if n in by_name}
        if not self.axes:
            raise AgentError(f"none of the tuned constants is left in {self.path}")
        self.space = {n: a.distribution() for n, a in self.axes.items()}
        self._centre = centre_key(source)
        self._structure = structure_key(source, constants)
        seed = self.config.tuner_seed + int(self._centre[:8], 16)
        if self.config.tuner_sampler == "cmaes":
            # No startup trials and no x0: the first point is the middle of the centred
            # box, i.e. the current best, and the step is small.
            import warnings

            with warnings.catch_warnings():
                # sigma0 is deprecated since Optuna 4.9 (removal in 6.0, hence the pin
                # below 6): it is the one way to set CMA-ES's first step.
                warnings.simplefilter("ignore", FutureWarning)
                sampler: Any = optuna.samplers.CmaEsSampler(
                    sigma0=self.config.tuner_step, seed=seed, n_startup_trials=0,
                    warn_independent_sampling=False)
        else:
            sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=5)
        self.study = optuna.create_study(direction="minimize", sampler=sampler)
        if self.config.tuner_sampler == "cmaes":
            # The centre as a finished trial, so that CMA-ES knows its search space from
            # the first draw (it learns only from its own generations, so the value is
            # never used as a score).
            self.study.add_trial(optuna.trial.create_trial(
                params=dict.fromkeys(self.space, 0), distributions=self.space, value=math.inf))
        self._told: set[str] = set()
        self._pending: dict[str, Any] = {}
        self._sync()

    def _mine(self, row: dict[str, Any]) -> dict[str, Any] | None:
        meta = row.get("agent_meta") or {}
        # By the trial's own marks, not the row's agent: the hybrid agent's numeric turns
        # are the tuner's trials too.
        if meta.get("centre") != self._centre:
            return None
        x = meta.get("x")
        return meta if isinstance(x, dict) and set(x) == set(self.space) else None

    def _sync(self) -> None:
        """Teach the study every finished trial around this centre that it has not seen,
        in ledger order: this session's by their pending trial, earlier ones replayed at
        the very point they ran."""
        from optuna.trial import TrialState

        for row in self._history():
            exp_id, meta = row["id"], self._mine(row)
            if meta is None or exp_id in self._told or row.get("status") is None:
                continue
            self._told.add(exp_id)
            trial = self._pending.pop(exp_id, None)
            if trial is None:
                self.study.enqueue_trial(meta["x"], skip_if_exists=False)
                trial = self.study.ask(self.space)
            if row["status"] in _SCORED and row.get("val_bpb") is not None:
                self.study.tell(trial, float(row["val_bpb"]))
            else:
                self.study.tell(trial, state=TrialState.FAIL)

    def _ran(self) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
        out = set()
        for row in self._history():
            meta = row.get("agent_meta") or {}
            values = meta.get("values")
            if isinstance(values, dict) and meta.get("structure"):
                out.add((meta["structure"], tuple(sorted(values.items()))))
        return out

    # ------------------------------------------------------------------ one proposal
    def _point(self, x: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """`x` cut to the `max_changes` axes that moved most (by their share of the box)
        and whose value still reads differently; returns (x, changed values)."""
        moved = []
        for name, axis in self.axes.items():
            value = axis.value(x[name])
            if format_value(value, axis.centre) != format_value(axis.centre, axis.centre):
                moved.append((abs(x[name]) / axis.half, name, value))
        moved.sort(reverse=True)
        keep = moved[: max(1, self.config.tuner_max_changes)]
        kept = {name for _, name, _ in keep}
        cut = {n: (x[n] if n in kept else 0) for n in self.axes}
        return cut, {name: value for _, name, value in keep}

    def plan(self, ctx: PlanContext) -> Hypothesis:
        from optuna.trial import TrialState

        current = ctx.files.get(self.path)
        if current is None:
            raise AgentError(f"the tuner needs {self.path} among the editable files")
        self._follow(current)
        ran = self._ran()
        for _ in range(50):
            trial = self.study.ask(self.space)
            x, changed = self._point(dict(trial.params))
            values = {n: format_value(a.value(x[n]), a.centre) for n, a in self.axes.items()}
            if not changed or (self._structure, tuple(sorted(values.items()))) in ran:
                self.study.tell(trial, state=TrialState.PRUNED)
                continue
            if x != trial.params:
                # Teach the sampler the point that really runs, not the one it drew.
                self.study.tell(trial, state=TrialState.PRUNED)
                self.study.enqueue_trial(x, skip_if_exists=False)
                trial = self.study.ask(self.space)
            break
        else:
            raise AgentError("the tuner found no new point near the current best in 50 draws")
        self._pending[ctx.experiment_id] = trial
        words = ", ".join(f"{k} {format_value(self.axes[k].centre, self.axes[k].centre)} -> "
                          f"{format_value(v, self.axes[k].centre)}" for k, v in changed.items())
        return Hypothesis(
            text=f"tuner trial {trial.number}: {words}",
            rationale=f"Optuna {type(self.study.sampler).__name__} around the current best",
            meta={"params": changed, "changed": changed, "x": x, "values": values,
                  "centre": self._centre, "structure": self._structure})

    def _own_trials(self) -> list[Any]:
        return [t for t in self.study.trials if t.number > 0 or t.value != math.inf]

    def _follow(self, current: str) -> None:
        if centre_key(current) != self._centre:
            self._build(current)  # the best moved: search around the new one
        else:
            self._sync()

    def state(self, current: str | None = None) -> dict[str, Any]:
        """The optimizer's state in words a planner can read: centre, step, trials
        (around `current`, the trainer of the current best, when given)."""
        from optuna.trial import TrialState

        self._follow(current) if current is not None else self._sync()

        done = [t for t in self._own_trials() if t.state == TrialState.COMPLETE]
        failed = [t for t in self._own_trials() if t.state == TrialState.FAIL]
        best = sorted(done, key=lambda t: t.value)[:3]

        def words(t: Any) -> dict[str, str]:
            return {n: format_value(self.axes[n].value(v), self.axes[n].centre)
                    for n, v in t.params.items() if v != 0}

        return {
            "sampler": self.config.tuner_sampler, "step": self.config.tuner_step,
            "max_changes": self.config.tuner_max_changes,
            "centre": {n: format_value(a.centre, a.centre) for n, a in self.axes.items()},
            "trials": len(done), "failed": len(failed),
            "best": [{"changes": words(t), "val_bpb": t.value} for t in best],
            "recent_failures": [words(t) for t in failed[-3:]],
        }

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
