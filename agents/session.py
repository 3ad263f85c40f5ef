"""One `labwarden run` session: everything the graph needs, opened and closed in order.

Kept apart from the CLI so tests drive the same wiring as users do.
"""

from __future__ import annotations

import dataclasses
import fcntl
import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agents.config import AgentsConfig, default_agent
from agents.context import ResearchContext
from agents.ledger import Ledger, ledger_path
from agents.progress import Progress
from agents.research_tree import ResearchTree
from labwarden.config import WorkspaceConfig
from labwarden.errors import InputError


class ResearchSession:
    def __init__(self, *, ctx: ResearchContext, run_id: str, thread_id: str, resume: bool,
                 lock: Any, checkpoints: sqlite3.Connection) -> None:
        from langgraph.checkpoint.sqlite import SqliteSaver

        from agents.graph import build_graph

        self.ctx = ctx
        self.run_id = run_id
        self.thread_id = thread_id
        self.resume = resume
        self._lock = lock
        self._checkpoints = checkpoints
        self.graph = build_graph(SqliteSaver(checkpoints))
        self.graph_config = {"configurable": {"thread_id": thread_id},
                             "recursion_limit": 1_000_000}

    @classmethod
    def open(cls, config: WorkspaceConfig, *, resume: bool,
             settings_for: Callable[[dict[str, Any] | None], dict[str, Any]],
             check: Callable[[dict[str, Any]], None] = lambda s: None, quiet: bool = False,
             progress: Progress | None = None) -> ResearchSession:
        """Lock the workspace, open the ledger and the run, build agent, sandbox and tree."""
        config.state_path.mkdir(parents=True, exist_ok=True)
        lock = open(config.state_path / "run.lock", "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise InputError(f"another 'labwarden run' is using {config.root}; wait for it or "
                             "stop it first.") from None
        ledger = Ledger(ledger_path(config.state_path))
        try:
            return cls._open(config, ledger, lock, resume=resume, settings_for=settings_for,
                             check=check, quiet=quiet, progress=progress)
        except BaseException:
            ledger.close()
            lock.close()
            raise

    @classmethod
    def _open(cls, config: WorkspaceConfig, ledger: Ledger, lock: Any, *, resume: bool,
              settings_for: Callable[[dict[str, Any] | None], dict[str, Any]],
              check: Callable[[dict[str, Any]], None], quiet: bool,
              progress: Progress | None) -> ResearchSession:
        agents_cfg = AgentsConfig.from_workspace(config)
        if resume:
            last = ledger.last_run()
            if last is None:
                raise InputError(f"nothing to resume: no run in {ledger.path}.")
            s = settings_for(last["settings"])
            run_id, thread_id = last["run_id"], last["thread_id"]
        else:
            s = settings_for(None)
            run_id = f"r{ledger.next_run_number()}"
            thread_id = f"{run_id}-{uuid.uuid4().hex[:8]}"
        s["agent"] = s.get("agent") or agents_cfg.agent or default_agent()
        check(s)
        profile = s.get("profile") or config.profile
        if not config.data_path(profile).is_dir():
            raise InputError(f"no prepared data for profile {profile!r} at "
                             f"{config.data_path(profile)}; run 'labwarden prepare --profile "
                             f"{profile}' first.")
        from agents.llm import make_agent
        from guards.audit import AuditStore
        from labwarden.experiment import ExperimentService, setup_key
        from sandbox.select import backend_for

        backend = backend_for(config, s.get("backend"))
        tree = ResearchTree.open(config, agents_cfg.research_branch)
        script = Path(s["script"]).resolve() if s.get("script") else None
        agent = make_agent(
            s["agent"], agents_cfg,
            on_usage=lambda exp, usage: ledger.record_llm_call(exp, **dataclasses.asdict(usage)),
            files=tree.files(config.editable),
            history=lambda: ledger.experiments(kind="experiment", profile=profile),
            script_dir=script,
        )
        if script is not None:
            s["script"] = str(script)
        if resume:
            ledger.reopen_run(run_id)
        else:
            closed = ledger.abandon_unfinished("left unfinished by a run that was not resumed")
            if closed and not quiet:
                print(f"labwarden run: {closed} unfinished experiment(s) of an earlier run "
                      "marked crash (use --resume to continue a run instead)")
            ledger.start_run(run_id, thread_id, s)
        hours = s.get("hours")
        gpus = s.get("gpus")
        budget = s.get("time_budget") or config.time_budget_s
        backend_name = getattr(backend, "name", type(backend).__name__)
        audit = AuditStore(config.state_path / "audit.sqlite")
        ctx = ResearchContext(
            config=config, settings=agents_cfg, agent=agent, ledger=ledger, backend=backend,
            tree=tree, audit=audit,
            service=ExperimentService(config, backend=backend, audit=audit),
            profile=profile, setup=setup_key(backend_name, budget), time_budget_s=budget,
            max_experiments=s.get("max_experiments"),
            deadline=time.time() + hours * 3600 if hours else None,
            gpus=gpus if gpus in (None, "all") else [int(i) for i in gpus.split(",")],
            progress=progress or Progress(enabled=not quiet),
        )
        checkpoints = sqlite3.connect(config.state_path / "checkpoints.sqlite",
                                      check_same_thread=False)
        return cls(ctx=ctx, run_id=run_id, thread_id=thread_id, resume=resume, lock=lock,
                   checkpoints=checkpoints)

    def run(self) -> str:
        """Run the graph until it ends; returns why it stopped."""
        inp: dict[str, Any] | None
        if self.resume:
            snapshot = self.graph.get_state(self.graph_config)
            # A run that ended (limit, Ctrl-C) starts a new pass from START with its state;
            # one that died mid-step continues from its last checkpoint.
            inp = None if snapshot.next else {"stop_reason": None}
        else:
            inp = {"run_id": self.run_id, "attempt_index": 0, "baseline_index": 0,
                   "lessons": [], "stop_reason": None, "experiment_id": None}
        for _ in self.graph.stream(inp, self.graph_config, context=self.ctx,
                                   durability="sync", stream_mode="updates"):
            pass
        values = self.graph.get_state(self.graph_config).values
        reason = values.get("stop_reason") or "finished"
        self.ctx.ledger.finish_run(self.run_id, reason)
        return reason

    def report(self, reason: str) -> str:
        ledger = self.ctx.ledger
        counts = ledger.counts(self.run_id)
        best, best_id = ledger.best(self.ctx.profile, self.ctx.setup)
        floor = ledger.noise_floor(self.ctx.profile, self.ctx.setup)
        parts = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
        best_text = "-" if best is None else f"{best:.4f} ({best_id})"
        return (f"run {self.run_id} stopped: {reason}. experiments: {parts}. "
                f"best val_bpb {best_text}; noise {floor.std:.4f} over {floor.n} baseline(s). "
                f"branch: {self.ctx.tree.branch or self.ctx.tree.path}")

    def close(self) -> None:
        if self.ctx.progress.tty:
            self.ctx.progress.message("")  # leave the redrawn line behind
        self.ctx.ledger.close()
        self._checkpoints.close()
        self._lock.close()
