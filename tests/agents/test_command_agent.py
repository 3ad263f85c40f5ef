"""The command agent's parts with real processes, without the loop: what the scratch copy
holds, what the brief says, the settings' errors, and what cannot become a proposal."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from loopkit import labwarden

from agents.command.runner import fresh_root_available
from agents.config import AgentsConfig
from agents.llm.base import AgentError, PlanContext
from agents.llm.command import CommandAgent
from labwarden.config import load_config
from labwarden.errors import ConfigError

FIXTURES = Path(__file__).parent / "fixtures" / "command"


@pytest.fixture()
def ws(tiny_workspace: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "ws"
    shutil.copytree(tiny_workspace, dest)
    (dest / ".labwarden" / "runs" / "r1-001").mkdir(parents=True)
    (dest / ".labwarden" / "runs" / "r1-001" / "train.log").write_text("an earlier run\n")
    return dest


def agent(ws: Path, argv: tuple[str, ...], **table: object) -> CommandAgent:
    lines = [f"{k} = {v!r}".replace("'", '"') if not isinstance(v, list | tuple)
             else f"{k} = [{', '.join(repr(str(x)).replace(chr(39), chr(34)) for x in v)}]"
             for k, v in table.items()]
    with (ws / "labwarden.toml").open("a") as f:
        f.write("\n[agents.command]\n" + "\n".join(lines) + "\n")
    config = load_config(ws)
    settings = AgentsConfig.from_workspace(config).command
    return CommandAgent(settings, argv=argv, config=config, warn=lambda line: None)


def plan_ctx(ws: Path, exp_id: str = "r9-001", lessons: list[str] | None = None) -> PlanContext:
    return PlanContext(experiment_id=exp_id, attempt_index=0,
                       program=(ws / "program.md").read_text(),
                       files={"trainer/train.py": (ws / "trainer/train.py").read_text(),
                              "trainer/__init__.py": (ws / "trainer/__init__.py").read_text()},
                       history="Experiments so far on profile tiny: 3 (blocked 1, keep 2).",
                       lessons=lessons or [])


def log_of(ws: Path, exp_id: str = "r9-001") -> str:
    return (ws / ".labwarden" / "agent" / f"{exp_id}.log").read_text()


def test_the_scratch_copy_holds_only_what_agents_may_see(ws: Path):
    (ws / ".labwarden" / "audit.sqlite").write_text("not for agents\n")
    script = ("find . -path ./.labwarden-agent -prune -o -type f -print | sort; "
              "ls -a ..; exit 1")
    a = agent(ws, ("sh", "-c", script), time_limit_s=60)
    with pytest.raises(AgentError, match="no proposal: the agent command exited 1"):
        a.plan(plan_ctx(ws))
    listed = [ln[2:] for ln in log_of(ws).splitlines() if ln.startswith("./")]
    assert sorted(listed) == sorted([
        "trainer/train.py", "trainer/__init__.py", "program.md", "eval_frozen/__init__.py",
        "eval_frozen/dataloader.py", "eval_frozen/errors.py", "eval_frozen/packing.py",
        "eval_frozen/profiles.py", "eval_frozen/shards.py", "eval_frozen/tokenizer.py"])
    # Not the evaluator, its probes or the seal code; no data, state or history at all.
    assert not any(p.startswith((".labwarden/", ".git")) for p in listed)
    if a.isolation == "fresh-root":  # the git folder beside the copy is not mounted
        assert "base.git" not in log_of(ws)


def test_the_brief_says_goal_history_lessons_budget_and_that_there_is_no_data(ws: Path):
    a = agent(ws, ("sh", "-c", "cat .labwarden-agent/brief.md; exit 1"))
    lesson = "r9-000 blocked: [paths.protected] the evaluator is frozen"
    with pytest.raises(AgentError):
        a.plan(plan_ctx(ws, lessons=[lesson]))
    brief = log_of(ws)
    assert "# labwarden brief: experiment r9-001" in brief
    assert "program.md" in brief and "`trainer/**`" in brief
    assert "Experiments so far on profile tiny: 3 (blocked 1, keep 2)." in brief
    assert f"- {lesson}" in brief
    assert "time mode: 20 s of wall-clock training on profile tiny" in brief
    assert "There is no data in this folder" in brief
    assert ".labwarden-agent/description.txt" in brief


def test_a_clean_environment_passes_only_the_listed_variables(ws: Path, monkeypatch):
    monkeypatch.setenv("LW_LISTED", "yes-listed")
    monkeypatch.setenv("LW_SECRET", "not-listed")
    a = agent(ws, ("sh", "-c", "env | sort; exit 1"), env=["LW_LISTED"])
    with pytest.raises(AgentError):
        a.plan(plan_ctx(ws))
    out = log_of(ws)
    assert "LW_LISTED=yes-listed" in out
    assert "LW_SECRET" not in out and "not-listed" not in out


def test_the_description_file_is_the_hypothesis_and_the_diff_the_proposal(ws: Path):
    a = agent(ws, ("sh", str(FIXTURES / "lr.sh")), mounts=[str(FIXTURES)])
    hyp = a.plan(plan_ctx(ws))
    assert hyp is not None and hyp.text.startswith("Raise the Muon learning rate from 0.02")
    diff = hyp.meta["diff"]
    assert diff.startswith("diff --git a/trainer/train.py b/trainer/train.py")
    assert "-LR = 0.02 " in diff and "+LR = 0.025" in diff
    assert ".labwarden-agent" not in diff  # the brief and the description are not proposed
    assert hyp.meta["exit_code"] == 0 and hyp.meta["isolation"] == a.isolation


def test_without_a_description_the_last_output_line_is_the_hypothesis(ws: Path):
    a = agent(ws, ("sh", "-c", "sed -i 's/^LR = 0.02 /LR = 0.03 /' trainer/train.py; "
                              "echo thinking; echo 'Try a higher learning rate'"))
    hyp = a.plan(plan_ctx(ws))
    assert hyp is not None and hyp.text == "Try a higher learning rate"


def test_a_symbolic_link_cannot_be_a_proposal(ws: Path):
    a = agent(ws, ("sh", "-c", "ln -s /etc/passwd trainer/data.txt"))
    with pytest.raises(AgentError, match="symbolic link or a repository at trainer/data.txt"):
        a.plan(plan_ctx(ws))


def test_exit_0_without_a_change_is_no_proposal(ws: Path):
    a = agent(ws, ("sh", "-c", "echo 'nothing to improve'"))
    with pytest.raises(AgentError, match=r"changed nothing \(nothing to improve\)"):
        a.plan(plan_ctx(ws))


def test_a_missing_program_is_a_clean_row(ws: Path):
    a = agent(ws, ("/no/such/agent",))
    with pytest.raises(AgentError, match="exited 127"):
        a.plan(plan_ctx(ws))


def test_settings_errors_name_the_table(ws: Path):
    with (ws / "labwarden.toml").open("a") as f:
        f.write('\n[agents.command]\nargv = "sh agent.sh"\n')
    with pytest.raises(ConfigError, match=r"\[agents.command\]: argv must be a list"):
        AgentsConfig.from_workspace(load_config(ws))


def test_a_mount_that_holds_the_workspace_is_refused(ws: Path):
    with pytest.raises(ConfigError, match="holds or is inside the workspace"):
        agent(ws, ("sh",), mounts=[str(ws.parent)])


def test_run_without_a_command_is_a_one_line_input_error(ws: Path):
    proc = labwarden(ws, "run", "--agent", "command", "--max-experiments", "1",
                     "--backend", "local")
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.endswith("--agent command needs a command: --agent-cmd 'CMD ...' or "
                         "[agents.command] argv = [...] in labwarden.toml."), line


@pytest.mark.skipif(not fresh_root_available()[0], reason="no fresh root on this machine")
def test_the_fresh_root_shows_no_workspace_and_no_home(ws: Path):
    a = agent(ws, ("sh", "-c", f"ls {ws}; ls {Path.home()}; pwd; echo HOME=$HOME; exit 1"))
    with pytest.raises(AgentError):
        a.plan(plan_ctx(ws))
    out = log_of(ws)
    assert f"ls: cannot access '{ws}': No such file or directory" in out
    assert "/sandbox/work" in out and "HOME=/tmp" in out


def test_a_huge_file_left_behind_is_refused_before_git_reads_it(ws: Path):
    a = agent(ws, ("sh", "-c", "head -c 70000000 /dev/zero > trainer/weights.bin"))
    with pytest.raises(AgentError, match="more than 67108864: not a reviewable proposal"):
        a.plan(plan_ctx(ws))


def test_isolation_none_runs_on_the_host_with_a_private_home(ws: Path):
    a = agent(ws, ("sh", "-c", "echo HOME=$HOME; pwd; exit 1"), isolation="none")
    assert a.isolation == "none"
    with pytest.raises(AgentError):
        a.plan(plan_ctx(ws))
    out = log_of(ws)
    assert "isolation: none" in out
    home = next(ln for ln in out.splitlines() if ln.startswith("HOME="))
    assert home.endswith("/home") and "labwarden-agent-r9-001-" in home


@pytest.mark.parametrize("isolation", ["none", "auto"])
def test_work_in_an_argument_is_the_copy_as_the_command_sees_it(ws: Path, isolation: str):
    a = agent(ws, ("sh", "-c", "echo WORK={work}; test -f {work}/program.md || exit 5; exit 1"),
              isolation=isolation)
    with pytest.raises(AgentError, match="exited 1"):  # 5 if {work} held no copy
        a.plan(plan_ctx(ws))
    (line,) = [ln for ln in log_of(ws).splitlines() if ln.startswith("WORK=")]
    if a.isolation == "fresh-root":
        assert line == "WORK=/sandbox/work"
    else:
        assert line.endswith("/ws") and "labwarden-agent-r9-001-" in line
