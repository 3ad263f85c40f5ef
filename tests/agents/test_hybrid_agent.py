"""The hybrid agent: structural turns from a planner that sees the optimizer's state,
numeric turns from the tuner around the current best, both through the same loop."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from loopkit import BUDGET, labwarden
from patchkit import replace_line

from agents.config import AgentsConfig
from agents.ledger import Ledger
from agents.llm.base import Hypothesis, PatchProposal, PlanContext, rule_review
from agents.llm.hybrid import NUMERIC, STRUCTURAL, HybridAgent, turn_of
from agents.llm.tuner import TunerAgent

REPO = Path(__file__).resolve().parents[2]
SOURCE = (REPO / "trainer/train.py").read_text()


def test_turns_are_spread_by_share_and_depend_only_on_the_index():
    turns = [turn_of(i, 0.25) for i in range(8)]
    assert [t for t, _ in turns].count(STRUCTURAL) == 2
    assert turns[3] == (STRUCTURAL, 0) and turns[7] == (STRUCTURAL, 1)
    assert [n for t, n in turns if t == NUMERIC] == [0, 1, 2, 3, 4, 5]
    assert all(turn_of(i, 1.0)[0] == STRUCTURAL for i in range(5))


class RecordingPlanner:
    """A structural planner that proposes one fixed change and keeps what it was shown."""

    name = "recording"

    def __init__(self, proposals: int) -> None:
        self.seen: list[PlanContext] = []
        self.left = proposals

    def models(self) -> dict[str, str]:
        return {"planner": "rec", "coder": "rec", "reviewer": "rules"}

    def plan(self, ctx: PlanContext) -> Hypothesis | None:
        self.seen.append(ctx)
        if self.left == 0:
            return None
        self.left -= 1
        return Hypothesis(text="structural idea", meta={"idea": ctx.attempt_index})

    def code(self, ctx):  # noqa: ANN001
        return PatchProposal(diff="structural diff", description="structural idea")

    def review(self, ctx):  # noqa: ANN001
        return rule_review(ctx)


def test_the_planner_sees_the_optimizers_state_and_owns_its_turns():
    rows: list[dict] = []
    planner = RecordingPlanner(proposals=1)
    agent = HybridAgent(planner, TunerAgent(AgentsConfig(), base_source=SOURCE,
                                            history=lambda: rows), share=0.5)
    hyps = []
    for i in range(4):
        ctx = PlanContext(experiment_id=f"e{i}", attempt_index=i, program="",
                          files={"trainer/train.py": SOURCE}, history="HISTORY")
        hyp = agent.plan(ctx)
        hyps.append(hyp)
        rows.append({"id": f"e{i}", "agent": "hybrid", "agent_meta": hyp.meta,
                     "status": "discard", "val_bpb": 2.0 + i})
    assert [h.meta["hybrid_turn"] for h in hyps] == [NUMERIC, STRUCTURAL, NUMERIC, NUMERIC]
    # The planner ran dry on its second turn (index 3): the optimizer took it.
    assert [c.attempt_index for c in planner.seen] == [0, 1]
    first = planner.seen[0].history
    assert first.startswith("HISTORY") and '"centre"' in first and '"LR": "0.02"' in first
    assert '"trials": 1' in first  # the numeric turn before it, read from the ledger
    assert hyps[0].text.startswith("tuner trial") and hyps[1].text == "structural idea"
    code_ctx = dataclasses.make_dataclass("C", ["hypothesis"])(hyps[1])
    assert agent.code(code_ctx).diff == "structural diff"  # type: ignore[arg-type]


def test_hybrid_without_a_planner_is_an_input_error(baselined: Path):
    proc = labwarden(baselined, "run", "--agent", "hybrid", "--max-experiments", "1",
                     "--backend", "local", "--time-budget", BUDGET)
    assert proc.returncode == 2 and "structural planner" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_hybrid_loop_runs_both_sides_through_the_sandbox(workspace: Path, tmp_path: Path):
    script = tmp_path / "ideas"
    script.mkdir()
    diff = replace_line(workspace, "trainer/train.py", "return F.rms_norm(x, (x.size(-1),))",
                        "return F.rms_norm(x, (x.size(-1),), eps=1e-6)")
    (script / "01-eps.patch").write_text(f"Subject: a smaller RMSNorm epsilon\n\n{diff}")
    with (workspace / "labwarden.toml").open("a") as f:
        f.write("\n[agents.hybrid]\nshare = 0.5\n")
    proc = labwarden(workspace, "run", "--agent", "hybrid", "--script", str(script),
                     "--max-experiments", "3", "--backend", "local", "--time-budget", BUDGET)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ledger = Ledger(workspace / ".labwarden" / "ledger.sqlite", readonly=True)
    rows = ledger.experiments(run_id="r2")
    assert [r["agent"] for r in rows] == ["hybrid"] * 3
    assert [r["agent_meta"]["hybrid_turn"] for r in rows] == [NUMERIC, STRUCTURAL, NUMERIC]
    assert rows[1]["hypothesis"] == "a smaller RMSNorm epsilon"
    assert rows[0]["hypothesis"].startswith("tuner trial")
    for row in rows:
        assert row["status"] in ("keep", "discard"), row
        assert row["val_bpb"] is not None
