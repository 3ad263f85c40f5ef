"""Profiles: the frozen constants of one research setting (vocabulary, context, budget, eval size).

The evaluator reads `eval_tokens`, `seq_len` and the probe settings from here and nowhere
else, so a trainer patch cannot weaken the metric. `tiny` is for tests and CI (CPU,
seconds), `small` for a laptop or one small GPU (minutes), `gpu` is autoresearch scale.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    """One research setting. Every field is fixed for the life of a prepared data folder."""

    name: str
    vocab_size: int
    """Total vocabulary, the BOS special token included (BPE merges = vocab_size - 257)."""
    seq_len: int
    """Context length T of training and evaluation rows."""
    time_budget_s: float
    """Default training wall-clock budget; the sandbox enforces it from outside."""
    eval_tokens: int
    """Exactly this many validation target positions are scored (a multiple of seq_len)."""
    eval_batch_size: int
    """Rows per evaluator forward pass (memory only; the metric does not depend on it)."""
    device: str
    """Where the trainer and evaluator run by default: "cpu" or "cuda"."""
    default_source: str
    """Data source when `prepare` gets no --source: "builtin", "local:PATH" or "climbmix"."""
    startup_allowance_s: float = 6.0
    """Seconds the training step may spend before it first reads training data (interpreter
    and torch start, model build). Counts towards the sandbox's kill limit only (budget +
    both allowances), which also bounds what a step can do before its window opens (train
    on text it carries, such as the interpreter's docstrings), so it is kept tight.
    Measured from outside (`benchmarks/sandbox.py --timing`, the real trainer, a 2-core CPU
    machine shared with other jobs, both backends, with and without extra load): tiny
    1.6-3.2 s, small 1.8-1.9 s; set to about 2x the worst."""
    export_allowance_s: float = 5.0
    """Seconds the training step may run past its budget, counted from its first read of
    training data to its exit: the last step, the export, interpreter teardown. A step that
    takes longer is a budget violation and is not scored. Measured like the start-up: tiny
    ran 1.3-2.6 s past its budget (model.pt2 created 0.7-1.5 s before the exit), small
    1.8-3.2 s; tiny's is about 2x the worst, small's (below) about 3x."""
    val_fraction: float = 0.1
    """Share of documents (by name hash) that go to validation, for `local:DIR` sources. The
    built-in source splits by kind instead: every help() topic is validation (text the
    sandbox does not carry), the standard library's docstrings are training."""
    climbmix_train_shards: int = 1
    """How many climbmix training shards `prepare` downloads (validation shard pinned apart)."""
    tokenizer_max_chars: int = 1_000_000_000
    """Cap on training text fed to BPE training (whole documents, in order)."""
    probe_checks: int = 512
    """Causality checks N per evaluation: (row, cut) pairs drawn at evaluation time from the
    OS's randomness; a model that peeks at a fraction f of scored positions evades all of
    them with probability at most (1 - f)^N (see eval_frozen.probes)."""
    probe_tolerance: float = 1e-3
    """Largest allowed move, in nats, of a scored log-probability at or before the cut: an
    absolute bound, so also the most a peek below it can gain per token."""

    def __post_init__(self) -> None:
        if self.eval_tokens % self.seq_len:
            raise ValueError(
                f"eval_tokens must be a multiple of seq_len, but got {self.eval_tokens} "
                f"and {self.seq_len}."
            )
        if self.vocab_size < 258:
            raise ValueError(f"vocab_size must be at least 258 (256 bytes, 1 merge, BOS), "
                             f"but got {self.vocab_size}.")

    @property
    def eval_rows(self) -> int:
        return self.eval_tokens // self.seq_len


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="tiny",
            vocab_size=1024,
            seq_len=128,
            time_budget_s=20.0,
            eval_tokens=32 * 1024,  # 256 rows: a second or two on 2 CPU cores
            eval_batch_size=32,
            device="cpu",
            default_source="builtin",
        ),
        Profile(
            name="small",
            vocab_size=4096,
            seq_len=256,
            time_budget_s=120.0,
            eval_tokens=64 * 1024,
            eval_batch_size=32,
            device="cpu",
            default_source="builtin",
            export_allowance_s=10.0,
            val_fraction=0.2,  # local:DIR sources: val must hold eval_tokens
        ),
        Profile(
            name="gpu",
            vocab_size=8192,
            seq_len=2048,
            time_budget_s=300.0,
            eval_tokens=40 * 524288,  # ~21M tokens, as autoresearch
            eval_batch_size=32,
            device="cuda",
            default_source="climbmix",
            startup_allowance_s=120.0,  # CUDA context, cuDNN and Triton warm-up
            export_allowance_s=60.0,
            climbmix_train_shards=10,
            probe_checks=2048,  # 20% of the 10240 scored rows
            probe_tolerance=1e-2,  # CUDA kernels without a deterministic version (probes.py)
        ),
    )
}


def get_profile(name: str) -> Profile:
    """The profile called `name`; ValueError naming the choices otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        choices = ", ".join(sorted(PROFILES))
        raise ValueError(f"unknown profile {name!r}; choose one of: {choices}.") from None
