"""The tuner searches around the current best: small steps, few constants at a time,
memory across sessions from the ledger, no point run twice, and a centre that follows
the best. Objectives here are synthetic functions of the constants (no training)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from agents.config import AgentsConfig
from agents.llm.base import AgentError, PlanContext
from agents.llm.tuner import TunerAgent, read_constants, rewrite

REPO = Path(__file__).resolve().parents[2]
SOURCE = (REPO / "trainer/train.py").read_text()
TRAINER = "trainer/train.py"


def _values(source: str) -> dict[str, int | float]:
    return {c.name: c.value for c in read_constants(source)}


def _plan(agent: TunerAgent, i: int, source: str = SOURCE):
    return agent.plan(PlanContext(experiment_id=f"e{i}", attempt_index=i, program="",
                                  files={TRAINER: source}, history=""))


def _row(i: int, hyp, val: float | None, status: str = "discard") -> dict:
    return {"id": f"e{i}", "agent": "tuner", "agent_meta": hyp.meta, "status": status,
            "val_bpb": val}


def test_the_first_trial_is_a_small_step_from_the_best():
    centre = _values(SOURCE)
    for seed in range(5):
        agent = TunerAgent(dataclasses.replace(AgentsConfig(), tuner_seed=seed),
                           base_source=SOURCE, history=list)
        changed = _plan(agent, 0).meta["changed"]
        assert 1 <= len(changed) <= 3
        for name, value in changed.items():
            old = centre[name]
            if isinstance(old, int):
                assert value in (old // 2, old * 2, old - 1, old + 1, max(1, old - 2), old + 2)
            elif old > 0 and 0 < value and "FRAC" not in name:
                assert 1 / 2.5 < value / old < 2.5, (name, old, value)


def test_every_trial_changes_at_most_max_changes_constants():
    rows: list[dict] = []
    agent = TunerAgent(dataclasses.replace(AgentsConfig(), tuner_max_changes=2),
                       base_source=SOURCE, history=lambda: rows)
    for i in range(25):
        hyp = _plan(agent, i)
        assert 1 <= len(hyp.meta["changed"]) <= 2
        rows.append(_row(i, hyp, 2.0 + 0.001 * i))


def test_no_point_is_proposed_twice_across_sessions():
    # Two power-of-two axes: the box around the centre holds exactly 8 other points.
    config = dataclasses.replace(AgentsConfig(), tuner_params=("DEPTH", "N_HEAD"), tuner_step=0.6)
    rows: list[dict] = []
    seen = set()
    for i in range(8):
        # A new session (a new agent on the same ledger) every few trials.
        if i % 3 == 0:
            agent = TunerAgent(config, base_source=SOURCE, history=lambda: rows)
        hyp = _plan(agent, i)
        point = tuple(sorted(hyp.meta["values"].items()))
        assert point not in seen
        seen.add(point)
        rows.append(_row(i, hyp, 2.0))
    with pytest.raises(AgentError, match="no new point"):
        _plan(agent, 8)


def test_a_new_session_replays_the_ledger_at_the_points_that_ran():
    rows: list[dict] = []
    agent = TunerAgent(AgentsConfig(), base_source=SOURCE, history=lambda: rows)
    for i in range(5):
        hyp = _plan(agent, i)
        rows.append(_row(i, hyp, 2.0 + 0.01 * i if i != 2 else None,
                         "discard" if i != 2 else "crash"))
    rows.append({"id": "other", "agent": "anthropic", "status": "discard", "val_bpb": 1.0,
                 "agent_meta": {}})
    again = TunerAgent(AgentsConfig(), base_source=SOURCE, history=lambda: rows)
    replayed = [t for t in again.study.trials if t.number > 0]
    assert [t.params for t in replayed] == [r["agent_meta"]["x"] for r in rows[:5]]
    assert [t.value for t in replayed if t.state.name == "COMPLETE"] == [2.0, 2.01, 2.03, 2.04]
    assert [t.state.name for t in replayed].count("FAIL") == 1
    assert again.state()["trials"] == 4 and again.state()["failed"] == 1


def test_the_centre_follows_the_best_even_after_a_structural_change():
    rows: list[dict] = []
    agent = TunerAgent(AgentsConfig(), base_source=SOURCE, history=lambda: rows)
    first = _plan(agent, 0)
    rows.append(_row(0, first, 2.0))
    # Another agent's kept change: a new LR and a structural edit of the model.
    moved = SOURCE.replace("LR = 0.02 ", "LR = 0.03 ").replace(
        "return F.rms_norm(x, (x.size(-1),))", "return F.rms_norm(x, (x.size(-1),), eps=1e-6)")
    assert moved != SOURCE
    hyp = _plan(agent, 1, moved)
    assert hyp.meta["centre"] != first.meta["centre"]
    assert hyp.meta["structure"] != first.meta["structure"]
    assert agent.state()["centre"]["LR"] == "0.03"
    assert [t.number for t in agent.study.trials if t.state.name == "COMPLETE"] == [0]
    if "LR" in hyp.meta["changed"]:
        assert "LR 0.03 ->" in hyp.text


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cmaes_from_the_best_improves_a_synthetic_objective(seed):
    """A keep-if-better loop of 20 trials finds a good part of a 2.4-unit improvement that
    lies a factor of two away on two learning rates and 0.2 away on the warmdown (over 40
    seeds the least found was 0.8, the median 2.1)."""
    target = {"LR": 0.04, "EMBED_LR": 0.3, "WARMDOWN_FRAC": 0.7}

    def score(source: str) -> float:
        v = _values(source)
        return 2.0 + sum(math.log2(v[k] / t) ** 2 if k.endswith("LR") else 10 * (v[k] - t) ** 2
                         for k, t in target.items())

    rows: list[dict] = []
    source = SOURCE
    best = start = score(source)
    agent = TunerAgent(dataclasses.replace(AgentsConfig(), tuner_seed=seed),
                       base_source=source, history=lambda: rows)
    for i in range(20):
        hyp = _plan(agent, i, source)
        trial = rewrite(source, read_constants(source), hyp.meta["changed"])
        value = score(trial)
        kept = value < best - 0.01
        rows.append(_row(i, hyp, value, "keep" if kept else "discard"))
        if kept:
            best, source = value, trial
    assert start - best > 0.5, (start, best)
