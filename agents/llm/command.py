"""The command agent: the user's own coding agent (Claude Code, Codex CLI, a script) as the
planner-coder, behind the same guards, review, sandbox, evaluator and ledger.

`plan` does the work: it writes a scratch copy (`agents.command.scratch`) and a brief
(`agents.command.brief`), runs the command there once (`agents.command.runner`: time
limit, clean environment, bounded output, a fresh root of its own), and takes what it
changed as a `git diff`. The description it left (or its last output line) is the
hypothesis; the diff travels in the hypothesis' meta, so a replayed `code` step after a
crash proposes the very same patch. `code` hands it on; `review` is the rule reviewer.

A command that exits non-zero, is killed at its time or output limit, or changes nothing
raises `AgentError`: the attempt is a crash row with the reason, and the run goes on.
Every run leaves a log: `.labwarden/agent/<experiment>.log` (head and tail of the output).
"""

from __future__ import annotations

import shlex
import shutil
import sys
import tempfile
from pathlib import Path

from agents.command.brief import BriefFacts, render
from agents.command.runner import check_mounts, fresh_root_available, run_command
from agents.command.scratch import Scratch, ScratchError, public_sources
from agents.command.settings import CommandSettings
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
from agents.summary import one_line
from labwarden.config import WorkspaceConfig, load_config
from labwarden.errors import InputError

ENV_CMD = "LABWARDEN_AGENT_CMD"
"""Overrides `[agents.command] argv` (what `labwarden run --agent-cmd` sets)."""
DESCRIPTION_CHARS = 2000


def argv_from(settings: CommandSettings, override: str | None) -> tuple[str, ...]:
    if override:
        try:
            argv = tuple(shlex.split(override))
        except ValueError as e:
            raise InputError(f"--agent-cmd: {e} in {override!r}.") from None
    else:
        argv = settings.argv
    if not argv:
        raise InputError("--agent command needs a command: --agent-cmd 'CMD ...' or "
                         "[agents.command] argv = [...] in labwarden.toml.")
    return argv


def budget_words(config: WorkspaceConfig) -> str:
    from eval_frozen.profiles import PROFILES

    profile = PROFILES.get(config.profile)
    budget = config.time_budget_s or (profile.time_budget_s if profile else 0)
    return f"time mode: {budget:g} s of wall-clock training on profile {config.profile}"


class CommandAgent:
    name = "command"
    audit_role = "command"
    """The role the audit trail names for this agent's proposals."""

    def __init__(self, settings: CommandSettings, *, argv: tuple[str, ...],
                 config: WorkspaceConfig, warn=lambda line: print(line, file=sys.stderr)) -> None:
        self.settings = settings
        self.argv = argv
        self.config = config
        self.extra_mounts = check_mounts(settings.mounts, config.root)
        isolation = settings.isolation
        if isolation != "none":
            ok, why = fresh_root_available()
            if not ok and isolation == "fresh-root":
                raise InputError(f"[agents.command] isolation = 'fresh-root' but it cannot be "
                                 f"built here: {why}.")
            if not ok:
                warn(f"labwarden run: the agent command runs WITHOUT isolation (no fresh root "
                     f"here: {why}); it can read what you can, the workspace included.")
                isolation = "none"
            else:
                isolation = "fresh-root"
        self.isolation = isolation

    def models(self) -> dict[str, str]:
        who = f"command:{Path(self.argv[0]).name}"
        return {"planner": who, "coder": who, "reviewer": "rules"}

    def _files(self, ctx: PlanContext) -> dict[str, str]:
        files = {**public_sources(self.config), **ctx.files}
        files["program.md"] = ctx.program
        return files

    def plan(self, ctx: PlanContext) -> Hypothesis | None:
        s = self.settings
        folder = Path(tempfile.mkdtemp(prefix=f"labwarden-agent-{ctx.experiment_id}-"))
        try:
            scratch = Scratch.create(folder, self._files(ctx))
            facts = BriefFacts(experiment_id=ctx.experiment_id, editable=self.config.editable,
                               history=ctx.history, lessons=tuple(ctx.lessons),
                               budget=budget_words(self.config),
                               description_file=s.description_file)
            brief = scratch.work / ".labwarden-agent" / "brief.md"
            brief.write_text(render(facts), encoding="utf-8")
            log = self.config.state_path / "agent" / f"{ctx.experiment_id}.log"
            out = run_command(self.argv, scratch=folder, isolation=self.isolation,
                              time_limit_s=s.time_limit_s,
                              max_output_bytes=int(s.max_output_mb * 1024 * 1024),
                              env_names=s.env, extra_mounts=self.extra_mounts, log_path=log)
            last = one_line(out.last_line(), 160)
            if out.killed == "time limit":
                raise AgentError(f"the agent command ran past its {s.time_limit_s:g} s limit "
                                 f"and was killed (log: {log})")
            if out.killed:
                raise AgentError(f"the agent command printed more than {s.max_output_mb:g} MB "
                                 f"and was killed (log: {log})")
            if out.exit_code != 0:
                raise AgentError(f"no proposal: the agent command exited {out.exit_code}"
                                 f"{f' ({last})' if last else ''} (log: {log})")
            try:
                diff = scratch.diff()
            except ScratchError as e:
                raise AgentError(str(e)) from None
            if not diff.strip():
                raise AgentError(f"no proposal: the agent command exited 0 and changed "
                                 f"nothing{f' ({last})' if last else ''}")
            desc_file = scratch.work / s.description_file
            description = ""
            if desc_file.is_file() and not desc_file.is_symlink():
                with desc_file.open("rb") as f:  # a huge file is cut, not read whole
                    description = f.read(DESCRIPTION_CHARS * 4).decode("utf-8", "replace")
            description = " ".join(description.split())[:DESCRIPTION_CHARS] or last
            return Hypothesis(
                text=description or "(the agent command gave no description)",
                meta={"diff": diff, "command": list(self.argv), "isolation": self.isolation,
                      "exit_code": out.exit_code, "seconds": round(out.seconds, 1),
                      "output_bytes": out.output_bytes, "log": str(log)})
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def code(self, ctx: CodeContext) -> PatchProposal:
        diff = ctx.hypothesis.meta.get("diff")
        if not diff or ctx.round > 0:
            # The command proposes once; a reviewer's request cannot be sent back to it.
            raise AgentError("the agent command's proposal cannot be revised")
        return PatchProposal(diff=diff, description=ctx.hypothesis.text)

    def review(self, ctx: ReviewContext) -> Verdict:
        return rule_review(ctx)


def make_command_agent(settings: CommandSettings) -> CommandAgent:
    import os

    if not settings.workspace:
        raise InputError("--agent command: the workspace is unknown (settings not loaded "
                         "from a labwarden.toml).")
    argv = argv_from(settings, os.environ.get(ENV_CMD))
    return CommandAgent(settings, argv=argv, config=load_config(settings.workspace))
