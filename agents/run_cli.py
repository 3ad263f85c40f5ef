"""`labwarden run`: research unattended until a limit, Ctrl-C, or the agent runs dry.

Every step is checkpointed (SQLite, synchronous), so `labwarden run --resume` after a
crash or a `kill -9` continues the same run: no experiment lost, none recorded twice.
The first Ctrl-C lets the current experiment finish and be recorded, then stops; a
second one stops at once (and `--resume` picks up from the last checkpoint).
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from labwarden.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--agent", choices=("anthropic", "tuner", "hybrid", "scripted",
                                            "command"),
                        help="who proposes patches (default: [agents].agent, else anthropic "
                             "with ANTHROPIC_API_KEY set, else tuner)")
    parser.add_argument("--script", metavar="DIR", help="patch folder for --agent scripted "
                        "(and the structural side of --agent hybrid)")
    parser.add_argument("--agent-cmd", metavar="'CMD ...'",
                        help="your own coding agent for --agent command, run once per "
                             "experiment in a scratch copy (default: [agents.command] argv)")
    parser.add_argument("--max-experiments", type=int, metavar="N",
                        help="stop after N experiments (baselines not counted)")
    parser.add_argument("--hours", type=float, metavar="H",
                        help="start no new experiment after H hours")
    parser.add_argument("--profile", help="data profile (default: the workspace's)")
    parser.add_argument("--backend", choices=("docker", "local"),
                        help="sandbox (default: [sandbox] backend, else docker when an engine "
                             "answers, else local)")
    parser.add_argument("--gpus", metavar="SPEC",
                        help="GPUs for the Docker sandbox: 'all' or indices like 0,2 "
                             "(default: none)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the last run from its last checkpoint")
    parser.add_argument("--time-budget", type=float, metavar="S",
                        help="training seconds per experiment (default: workspace, profile)")
    parser.add_argument("--workspace", metavar="DIR", help="workspace root (default: nearest "
                        "folder with labwarden.toml)")
    parser.add_argument("--quiet", action="store_true", help="no progress line")


def _settings(args: argparse.Namespace, previous: dict[str, Any] | None) -> dict[str, Any]:
    """This session's settings: the resumed run's, overridden by options given now."""
    keys = ("agent", "script", "agent_cmd", "max_experiments", "hours", "profile", "backend",
            "time_budget", "gpus")
    out = dict(previous or {})
    for key in keys:
        value = getattr(args, key)
        if value is not None or key not in out:
            out[key] = value
    return out


def _with_sandbox(s: dict[str, Any], config: Any) -> dict[str, Any]:
    """No --backend (now or in the resumed run): the workspace's `[sandbox] backend`."""
    if s.get("backend") is None:
        from sandbox.settings import SandboxSettings

        s["backend"] = SandboxSettings.from_config(config).backend
    return s


def _check(s: dict[str, Any]) -> None:
    if s["max_experiments"] is not None and s["max_experiments"] < 0:
        raise InputError(f"--max-experiments must be >= 0, but got {s['max_experiments']}.")
    if s["hours"] is not None and s["hours"] <= 0:
        raise InputError(f"--hours must be > 0, but got {s['hours']}.")
    if s["time_budget"] is not None and s["time_budget"] <= 0:
        raise InputError(f"--time-budget must be > 0, but got {s['time_budget']}.")
    gpus = s.get("gpus")
    if gpus is not None and gpus != "all" and not all(
            part.strip().isdigit() for part in gpus.split(",")):
        raise InputError(f"--gpus must be 'all' or indices like 0,2, but got {gpus!r}.")
    if s.get("profile") is not None:
        from labwarden.profiles import check_profile

        check_profile(s["profile"])
    if s.get("agent_cmd"):
        # The agent is built from the workspace's settings; this (also a resumed run's
        # --agent-cmd) overrides [agents.command] argv. See agents.llm.command.ENV_CMD.
        import os

        os.environ["LABWARDEN_AGENT_CMD"] = s["agent_cmd"]
    if s["agent"] == "scripted" and not s["script"]:
        raise InputError("--agent scripted needs --script DIR (a folder of .patch files).")


def run(args: argparse.Namespace) -> int:
    from agents.session import ResearchSession
    from labwarden.config import load_config

    config = load_config(args.workspace)
    program = config.root / "program.md"
    if program.exists():  # the planner reads it mid-run: refuse bad bytes before anything
        from labwarden.inputs import read_text

        read_text(program, "program")
    from labwarden.inputs import check_stores

    check_stores(config.state_path)
    session = ResearchSession.open(config, resume=args.resume,
                                   settings_for=lambda prev: _with_sandbox(
                                       _settings(args, prev), config),
                                   check=_check, quiet=args.quiet)
    try:
        previous = signal.getsignal(signal.SIGINT)

        def on_sigint(signum: int, frame: Any) -> None:
            session.ctx.progress.message(
                "labwarden run: stopping after the current experiment is recorded "
                "(Ctrl-C again to stop now; 'labwarden run --resume' continues)")
            session.ctx.stop.set()
            signal.signal(signal.SIGINT, previous)

        signal.signal(signal.SIGINT, on_sigint)
        try:
            reason = session.run()
        finally:
            signal.signal(signal.SIGINT, previous)
        print(session.report(reason), file=sys.stdout)
        return 130 if reason == "interrupted" else 0
    finally:
        session.close()
