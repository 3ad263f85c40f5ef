"""The offline agents: the tuner's trials are real diffs that apply and pass the guards;
the scripted agent replays a folder in order."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import pytest

from agents.config import AgentsConfig
from agents.llm.base import CodeContext, Hypothesis, PlanContext, ReviewContext
from agents.llm.scripted import ScriptedAgent
from agents.llm.tuner import TunerAgent, format_value, read_constants
from labwarden.config import load_config
from labwarden.errors import InputError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def workspace(tmp_path: Path) -> Path:
    for item in ("eval_frozen", "trainer", "program.md", "labwarden.toml"):
        src = REPO / item
        if src.is_dir():
            shutil.copytree(src, tmp_path / item, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.is_file():
            shutil.copy2(src, tmp_path / item)
    return tmp_path


def test_reads_the_trainers_constants():
    consts = {c.name: c.value for c in read_constants((REPO / "trainer/train.py").read_text())}
    assert consts["SEED"] == 1337 and isinstance(consts["LR"], float)
    assert {"DEPTH", "WIDTH", "BATCH_SIZE", "WEIGHT_DECAY"} <= set(consts)
    assert format_value(0.0003, 0.1) == "0.0003" and format_value(1e4, 1.0) == "1e+04"
    assert format_value(2.0, 1.0) == "2.0" and format_value(3.7, 4) == "3"


def test_cmaes_without_its_package_is_a_clear_input_error(workspace, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "cmaes", None)  # as if not installed
    with pytest.raises(InputError, match="pip install cmaes"):
        TunerAgent(dataclasses.replace(AgentsConfig(), tuner_sampler="cmaes"),
                   base_source="LR = 0.1\n", history=list)


@pytest.mark.parametrize("sampler", ["cmaes", "tpe"])
def test_tuner_trials_apply_and_pass_the_guards(workspace, sampler):
    from guards import check_patch

    config = load_config(workspace)
    source = (workspace / "trainer/train.py").read_text()
    history: list[dict] = []
    agent = TunerAgent(dataclasses.replace(AgentsConfig(), tuner_sampler=sampler),
                       base_source=source, history=lambda: history)
    assert "SEED" not in agent.space  # seed fishing is not research
    seen = set()
    for i in range(6):
        ctx = PlanContext(experiment_id=f"e{i}", attempt_index=i, program="",
                          files={"trainer/train.py": source}, history="")
        hyp = agent.plan(ctx)
        assert hyp.text.startswith("tuner trial") and hyp.meta["changed"]
        patch = agent.code(CodeContext(experiment_id=f"e{i}", hypothesis=hyp,
                                       files={"trainer/train.py": source}, base_dir=workspace,
                                       editable=config.editable)).diff
        assert patch.startswith("--- a/trainer/train.py\n+++ b/trainer/train.py\n")
        check = subprocess.run(["git", "apply", "--check", "-"], input=patch, text=True,
                               cwd=workspace, capture_output=True)
        assert check.returncode == 0, check.stderr
        report = check_patch(patch, config)
        assert report.verdict == "passed", report.render()
        assert agent.review(ReviewContext(
            experiment_id=f"e{i}", hypothesis=hyp, diff=patch,
            findings=[f.to_dict() for f in report.findings], files={})).decision == "approve"
        seen.add(patch)
        # The ledger tells the tuner how each trial went (some crashed).
        history.append({"id": f"e{i}", "agent": "tuner", "agent_meta": hyp.meta,
                        "status": "discard" if i % 3 else "crash",
                        "val_bpb": 2.0 + 0.01 * i if i % 3 else None})
    assert len(seen) == 6
    agent.plan(PlanContext(experiment_id="e6", attempt_index=6, program="",
                           files={"trainer/train.py": source}, history=""))
    states = [t.state.name for t in agent.study.trials if t.number > 0]  # 0: the centre
    assert states.count("COMPLETE") == 4 and states.count("FAIL") == 2


def test_scripted_agent_replays_in_order(tmp_path):
    (tmp_path / "02-second.patch").write_text("Subject: raise LR\n\n--- a/x.py\n+++ b/x.py\n")
    (tmp_path / "01-first.diff").write_text("--- a/y.py\n+++ b/y.py\n@@ -1 +1 @@\n-a\n+b\n")
    (tmp_path / "notes.txt").write_text("ignored")
    agent = ScriptedAgent(tmp_path)
    hyps = [agent.plan(PlanContext(experiment_id=f"e{i}", attempt_index=i, program="",
                                   files={}, history="")) for i in range(3)]
    assert [h.text if h else None for h in hyps] == ["01-first", "raise LR", None]
    proposal = agent.code(CodeContext(experiment_id="e1", hypothesis=hyps[1], files={},
                                      base_dir=tmp_path, editable=()))
    assert proposal.diff == "--- a/x.py\n+++ b/x.py\n"
    with pytest.raises(InputError, match="not found"):
        ScriptedAgent(tmp_path / "missing")


def test_rule_reviewer_rejects_review_findings():
    agent_review = ScriptedAgent.review
    verdict = agent_review(None, ReviewContext(  # type: ignore[arg-type]
        experiment_id="e", hypothesis=Hypothesis("h"), diff="", files={},
        findings=[{"rule_id": "seed.fishing", "severity": "review"}]))
    assert verdict.decision == "reject" and "seed.fishing" in verdict.reasons
