"""Research agents behind one Protocol (`ResearchAgent`): anthropic, tuner, hybrid, scripted,
command (the user's own coding agent, run as a command).

Only `base` is imported here; each implementation (and its SDK) loads when chosen.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agents.config import AgentsConfig
from agents.llm.base import ResearchAgent, UsageSink
from labwarden.errors import InputError

AGENTS = ("anthropic", "tuner", "hybrid", "scripted", "command")

__all__ = ["AGENTS", "ResearchAgent", "make_agent"]


def make_agent(name: str, settings: AgentsConfig, *, on_usage: UsageSink,
               files: dict[str, str], history: Callable[[], list[dict[str, Any]]],
               script_dir: Path | None = None) -> ResearchAgent:
    """Build the named agent. `files` are the editable files of the current best tree."""
    if name == "anthropic":
        from agents.llm.claude import AnthropicAgent

        return AnthropicAgent(settings, on_usage=on_usage)
    if name == "tuner":
        from agents.llm.tuner import TRAINER, TunerAgent

        if TRAINER not in files:
            raise InputError(f"the tuner edits {TRAINER}, which is not among the editable files.")
        return TunerAgent(settings, base_source=files[TRAINER], history=history)
    if name == "hybrid":
        from agents.llm.hybrid import HybridAgent
        from agents.llm.tuner import TRAINER, TunerAgent

        if TRAINER not in files:
            raise InputError(f"the hybrid agent tunes {TRAINER}, which is not among the "
                             "editable files.")
        if script_dir is not None:
            from agents.llm.scripted import ScriptedAgent

            structural: ResearchAgent = ScriptedAgent(script_dir)
        elif os.environ.get("ANTHROPIC_API_KEY"):
            from agents.llm.claude import AnthropicAgent

            structural = AnthropicAgent(settings, on_usage=on_usage)
        else:
            raise InputError("--agent hybrid needs a structural planner: set "
                             "ANTHROPIC_API_KEY, or give --script DIR (patch files).")
        return HybridAgent(structural, TunerAgent(settings, base_source=files[TRAINER],
                                                  history=history),
                           share=settings.hybrid_share)
    if name == "scripted":
        from agents.llm.scripted import ScriptedAgent

        if script_dir is None:
            raise InputError("--agent scripted needs --script DIR (a folder of .patch files).")
        return ScriptedAgent(script_dir)
    if name == "command":
        from agents.llm.command import make_command_agent

        return make_command_agent(settings.command)
    raise InputError(f"unknown agent {name!r}; choose one of {', '.join(AGENTS)}.")
