"""Settings of the research loop: the `[agents]` table of `labwarden.toml`, with defaults.

Every field has a default, so a workspace without an `[agents]` table runs. Models per
role fall back to `LABWARDEN_<ROLE>_MODEL` in the environment, then to the defaults here
(current, non-deprecated Claude ids as of late 2026).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

from agents.command.settings import CommandSettings
from labwarden.config import WorkspaceConfig
from labwarden.errors import ConfigError

ROLES = ("planner", "coder", "reviewer")

DEFAULT_MODELS: dict[str, str] = {
    # Opus plans (the hard, open-ended part); Sonnet writes and checks diffs.
    "planner": "claude-opus-5-5",
    "coder": "claude-sonnet-5-5",
    "reviewer": "claude-sonnet-5-5",
}


@dataclass(frozen=True)
class AgentsConfig:
    """The loop's knobs. Read with `AgentsConfig.from_workspace(config)`."""

    agent: str | None = None
    """`anthropic`, `tuner`, `hybrid`, `scripted` or `command`; None: anthropic when
    ANTHROPIC_API_KEY is set, else tuner."""
    models: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_MODELS))
    """Model id per role (planner, coder, reviewer)."""
    base_url: str | None = None
    """An Anthropic-compatible endpoint; None: `ANTHROPIC_BASE_URL` or the SDK's default."""
    max_tokens: int = 16000
    """Output cap per LLM call (thinking included on models that always think)."""
    request_timeout_s: float = 600.0
    """Per-request timeout; a timed-out request is retried by the SDK."""
    max_retries: int = 4
    """SDK retries with exponential backoff on 408/409/429/5xx (529 included) and timeouts."""
    max_consecutive_failures: int = 3
    """The run stops after this many API failures of one kind in a row (after the SDK's
    own retries; a rejected key or an unknown model stops it at once)."""
    failure_backoff_s: float = 30.0
    """Wait before trying again after a transient failure, doubled for each one in a row."""
    max_format_retries: int = 2
    """How many times a malformed answer (no tool call, bad JSON, a diff that does not
    parse) is asked for again before the attempt counts as a crash."""
    max_review_rounds: int = 2
    """How many times the reviewer may send a patch back to the coder."""
    untrusted_budget_chars: int = 6000
    """Logs, tracebacks, the ledger and lessons shown to an LLM are cut to this many
    characters (head and tail kept). Files and diffs are always shown whole."""
    baseline_runs: int = 3
    """Measurements of the unmodified trainer before the first experiment (noise floor)."""
    keep_k: float = 2.0
    """Keep only when the improvement over the best exceeds keep_k x noise."""
    min_noise: float = 1e-3
    """Noise floor used when fewer than two baseline measurements exist (in val_bpb)."""
    research_branch: str = "labwarden/research"
    """Branch of the workspace's git repository that receives one commit per kept change."""
    tuner_sampler: str = field(default="cmaes", metadata={"toml": "tuner.sampler"})
    """`cmaes` (CMA-ES from the current best, the default) or `tpe` (Optuna samplers)."""
    tuner_step: float = field(default=0.1, metadata={"toml": "tuner.step"})
    """CMA-ES's first step size, as a share of each constant's search axis (scales span
    1/4x to 4x in log space, so 0.1 moves a learning rate by about a third)."""
    tuner_max_changes: int = field(default=3, metadata={"toml": "tuner.max_changes"})
    """At most this many constants change in one trial."""
    hybrid_share: float = field(default=0.25, metadata={"toml": "hybrid.share"})
    """Share of the hybrid agent's turns given to its structural planner (the LLM); the
    optimizer tunes the current best in the others."""
    tuner_seed: int = field(default=0, metadata={"toml": "tuner.seed"})
    tuner_exclude: tuple[str, ...] = field(default=("SEED", "LOG_EVERY"),
                                           metadata={"toml": "tuner.exclude"})
    """Constants the tuner never touches (the seed would be seed fishing)."""
    tuner_params: tuple[str, ...] = field(default=(), metadata={"toml": "tuner.params"})
    """If set, only these constants are tuned; else every numeric constant at the top."""
    command: CommandSettings = field(default_factory=CommandSettings)
    """`[agents.command]`: the user's own coding agent for `--agent command` (argv, time
    and output limits, environment passed through, isolation; see CommandSettings)."""

    @classmethod
    def from_workspace(cls, config: WorkspaceConfig) -> AgentsConfig:
        """`[agents]` and its sub-tables through the one settings loader (types and
        unknown keys checked from this dataclass; `validate` runs on the result)."""
        from labwarden.settings import load_table

        parsed = load_table(config, "agents", cls)
        models = dict(DEFAULT_MODELS)
        for role in ROLES:
            env = os.environ.get(f"LABWARDEN_{role.upper()}_MODEL")
            if env:
                models[role] = env
        models.update(config.section("agents").get("models", {}))
        base_url = parsed.base_url or os.environ.get("ANTHROPIC_BASE_URL") or None
        return replace(parsed, models=models, base_url=base_url,
                       command=replace(parsed.command, workspace=str(config.root)))

    def validate(self, where: str = "labwarden.toml [agents]") -> None:
        if set(self.models) - set(ROLES):
            raise ConfigError(f"{where}: 'models' maps roles {list(ROLES)} to model ids, "
                              f"but got {self.models!r}.")
        if self.agent not in (None, "anthropic", "tuner", "hybrid", "scripted", "command"):
            raise ConfigError(f"{where}: agent must be anthropic, tuner, hybrid, scripted or "
                              f"command, "
                              f"but got {self.agent!r}.")
        if not isinstance(self.hybrid_share, int | float) or not 0 < self.hybrid_share <= 1:
            raise ConfigError(f"{where}: hybrid.share must be a number in (0, 1], "
                              f"but got {self.hybrid_share!r}.")
        if self.tuner_sampler not in ("tpe", "cmaes"):
            raise ConfigError(f"{where}: tuner.sampler must be tpe or cmaes, "
                              f"but got {self.tuner_sampler!r}.")
        for name in ("baseline_runs", "max_review_rounds", "max_format_retries", "max_retries"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"{where}: {name} must be a non-negative integer, "
                                  f"but got {value!r}.")
        if self.baseline_runs < 1:
            raise ConfigError(f"{where}: baseline_runs must be at least 1, "
                              f"but got {self.baseline_runs}.")
        if not isinstance(self.tuner_step, int | float) or not 0 < self.tuner_step <= 1:
            raise ConfigError(f"{where}: tuner.step must be a number in (0, 1], "
                              f"but got {self.tuner_step!r}.")
        if not isinstance(self.tuner_max_changes, int) or self.tuner_max_changes < 1:
            raise ConfigError(f"{where}: tuner.max_changes must be an integer >= 1, "
                              f"but got {self.tuner_max_changes!r}.")
        if not isinstance(self.max_consecutive_failures, int) or self.max_consecutive_failures < 1:
            raise ConfigError(f"{where}: max_consecutive_failures must be an integer >= 1, "
                              f"but got {self.max_consecutive_failures!r}.")
        for name in ("keep_k", "min_noise", "request_timeout_s", "failure_backoff_s"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"{where}: {name} must be a non-negative number, "
                                  f"but got {value!r}.")


def default_agent() -> str:
    """The agent used when none is named: the API when a key is set, else the tuner."""
    return "anthropic" if os.environ.get("ANTHROPIC_API_KEY") else "tuner"
