"""Checks on the model's behaviour, not its score: the output contract and causality.

`check_logits`: logits are a float tensor of shape (B, T, V) with V the frozen vocabulary,
all finite. A violation is bad input (EvalInputError, exit 2). `run_forward` hands every
pass a fresh contiguous copy of its ids, so the batch's values and shape are all a model
can see: a view into the evaluator's rows would let it read their storage (the next row,
the targets) through `as_strided`.

The causality check, on what is scored. A model may use, at position p of a row, the
tokens 0..p of that row and nothing else: not later tokens, not other rows of the batch,
not the batch size or its place in the batch. The exported program is stateless and
deterministic (model_io), so its output is a function of the batch alone, and one
comparison shows any such dependence:

1. Scoring runs first, on every validation row; for the rows and cuts drawn below it keeps
   the log-probabilities it produced (those summed into the score).
2. The plan is drawn in this process, at evaluation time, from the OS's randomness
   (`secrets`), never from the profile or a seed a trainer could read: N checks (row r,
   cut c), every position c in 0..T-1 cut equally often, each on a scored row drawn
   uniformly, grouped into probe batches of exactly the scoring batch sizes (the partial
   last batch too: its rows are probed in batches of its size), distinct rows in each
   batch, in a random order, so a row's neighbours and index differ from its scoring batch.
3. In each probe row the tokens after c are replaced, each by a token drawn uniformly from
   the ordinary ones (not BOS) other than the original. Random, not a fixed map: a model
   could invert a fixed map and recover the text it must not see.
4. At positions <= c the probe row's input equals the scored row's, so an honest model's
   log-probabilities there are the same. Compared, in nats: the target's log-probability
   at every position <= c, and the whole distribution at c. A check fails when either
   moves by more than `profile.probe_tolerance`; one failed check rejects the model.
5. At positions >= c the next input token is one the evaluator drew at random: a model
   that ranks those first more often than chance allows reads its future (random-token
   test, see CausalityCheck; an honest model fails it with probability < 1e-9, whatever
   its numerics). Tens of thousands of positions per run, at every position of the row.

A model that reads token c+1 (or any later one), another row, or the batch layout, at a
checked (row, c), shows it unless its output at c comes out the same for the probe's
random replacement and neighbours, that is, unless what it read did not change its output
there. Given the cuts, the checks' rows are independent and uniform (see _draw_class), so
a model whose output moves at a fraction f of scored (row, position) pairs evades all N
checks with probability at most (1 - f)^N (with a partial last batch each batch size gets
at least its share of the checks, which keeps the bound). And because every position is
cut N / T times, one that moves at a single position c in a fraction g of the rows evades
with probability at most (1 - g)^(N / T): never, if it cheats there in every row. Per
profile (`probe_checks`):
    tiny, small  N = 512:  f = 1% -> 5.8e-3;  2% -> 3.3e-5;  5% -> 3.9e-12;  10% -> 3.8e-24
    gpu          N = 2048: f = 0.1% -> 0.13;  0.5% -> 3.5e-5;  1% -> 1.2e-9
The random-token test adds many more checks for cheats active in the probes' random text:
one that copies the next token at a single position p meets about N (p + 1) / T random
tokens there (tiny, p = 100: ~400, where chance allows ~0.4).
Cost: N rows more through the model, on top of the profile's eval rows (tiny: 256 rows
scored, 512 probed; gpu: 10240 scored, 2048 probed, +20%).

Why log-probabilities and an absolute tolerance: the score is a sum of target
log-probabilities, so that is what is compared, in nats, after log_softmax (float32
log-sum-exp, accurate to ~1e-6 nats; the distribution at c in float64). A tolerance
relative to the logits' scale could be inflated by one extreme logit; an absolute one
cannot, and log_softmax is invariant to adding a constant to all logits. If at a checked
position the target's log-probability moves by at most delta nats when the future is
replaced, the score there is within delta of the same network fed random text after c,
which is a causal predictor: a peek below the tolerance gains at most delta nats per token,
delta / (ln 2 * bytes per token) bits per byte (tiny: 1e-3 / (0.69 * 2.6) ~ 5.5e-4).

Tolerance and honest noise. Probe batches have the scoring batches' shapes and run on the
same device, so the same kernels run on the same row data: kernel choice depends on
shapes, dtypes and alignment (all equal here), never on values, and GEMM, attention,
normalisation and softmax kernels compute each row the same way whatever its index or its
neighbours. On CPU an honest pass agrees bit for bit (measured: 0.0 nats for the trainer's
GPT at three sizes and seeds, and for variants that compute in bfloat16 inside the graph,
by autocast or by casts); 1e-3 nats leaves room for any reordered fp32 reduction (~1e-5).
The `gpu` profile (CUDA) allows 1e-2 nats. There the evaluator turns on torch's
deterministic algorithms (model_io), which replace the atomics-based kernels a language
model's forward might use (scatter_add, index_add, index_put with accumulate) by
deterministic ones, and leaves TF32 off (a TF32 matmul would still be deterministic at
equal shapes); cuBLAS and the fused attention kernels are deterministic at a fixed shape
and workspace. So equal-shape honest passes agree bit for bit there too, bfloat16 graphs
included, unless an operator without a deterministic kernel runs: the probe then lists it
(`nondeterministic_kernels`). Such a kernel reorders fp32 sums (~1e-5 nats); one flipped
bfloat16 rounding in an activation moves a logit by ~2^-8 of that element's contribution,
far below 1e-2. The gain the tolerance allows is at most 0.01 nats per token (~0.003 bits
per byte at ~4.5 bytes per token).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eval_frozen.errors import EvalInputError

if TYPE_CHECKING:
    import numpy as np
    import torch

Forward = Callable[["torch.Tensor"], Any]
# The random-token test fails below this ln-probability (1e-9) of an honest model's count.
RANDOM_TOKEN_LOG_P = math.log(1e-9)


def check_logits(out: object, batch: int, seq_len: int, vocab_size: int) -> torch.Tensor:
    import torch

    if isinstance(out, tuple | list) and len(out) == 1:
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise EvalInputError(f"model returned {type(out).__name__}, expected a logits tensor.")
    if tuple(out.shape) != (batch, seq_len, vocab_size):
        raise EvalInputError(
            f"model returned logits of shape {tuple(out.shape)}, expected "
            f"({batch}, {seq_len}, {vocab_size}) = (B, T, vocabulary size)."
        )
    if not out.is_floating_point():
        raise EvalInputError(f"model returned {out.dtype} logits, expected floating point.")
    out = out.float()
    # A finite sum proves every entry finite, at a tenth of isfinite's cost on big logits.
    if not math.isfinite(float(out.sum())) and not torch.isfinite(out).all():
        bad = int((~torch.isfinite(out)).sum())
        raise EvalInputError(f"model returned non-finite logits (NaN or inf) at {bad} entries.")
    return out


def run_forward(forward: Forward, x: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """One forward pass with the output contract checked; model errors become EvalInputError.

    The model gets a fresh contiguous copy of `x`: its own storage, offset 0."""
    import torch

    x = x.clone(memory_format=torch.contiguous_format)
    try:
        out = forward(x)
    except EvalInputError:
        raise
    except Exception as e:
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise EvalInputError(f"model forward failed on ids of shape {tuple(x.shape)} "
                             f"({type(e).__name__}: {first}).") from None
    return check_logits(out, x.shape[0], x.shape[1], vocab_size)


def target_log_probs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) at every position, float64 (B, T): the numbers the score sums."""
    lp = logits.log_softmax(-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return lp.double()


# ---- the plan ------------------------------------------------------------------------------

@dataclass(frozen=True)
class ProbeBatch:
    """One probe pass: scored rows in the order they sit in the batch, and each row's cut."""

    rows: tuple[int, ...]
    cuts: tuple[int, ...]


def draw_plan(batch_sizes: list[int], seq_len: int, checks: int,
              rng: np.random.Generator) -> list[ProbeBatch]:
    """At least `checks` (row, cut) checks, in probe batches shaped like the scoring batches.

    `batch_sizes`: the scoring batches in order (rows are numbered consecutively). Each
    distinct size gets its share of the checks, rounded up to whole batches, at least one.
    """
    import numpy as np

    by_size: dict[int, list[int]] = {}
    start = 0
    for size in batch_sizes:
        by_size.setdefault(size, []).extend(range(start, start + size))
        start += size
    plan = []
    for size, rows in sorted(by_size.items(), reverse=True):
        n_batches = max(1, math.ceil(checks * len(rows) / start / size))
        plan += _draw_class(np.asarray(rows), size, n_batches, seq_len, rng)
    return plan


def _draw_class(rows: np.ndarray, size: int, n_batches: int, seq_len: int,
                rng: np.random.Generator) -> list[ProbeBatch]:
    """The probe batches for the scored rows of one batch size.

    Cuts are stratified: each position 0..T-1 is cut equally often (the remainder on
    positions drawn without replacement), in a random order; rows are drawn uniformly and
    independently of the cuts (drawn again in the rare case one comes up more often than
    there are batches), then dealt into batches so that none holds a row twice.
    Given the cuts, the checks' rows are independent, so P(no check hits) is the product
    of (1 - f_c) over the cuts, at most (1 - f)^N by concavity; and a cheat confined to
    one position c still meets its N / T checks. Where the class is a single batch (its
    rows all fit in one), each probe batch is those rows in a random order and the cuts
    are independent and uniform instead: given the rows, the checks are independent, and
    sampling rows without replacement only lowers P(no check hits) (Hoeffding), so the
    same bound holds.
    """
    import numpy as np

    k = size * n_batches
    for _ in range(64 if len(rows) > size else 0):
        drawn = rng.choice(rows, size=k, replace=True)
        if np.unique(drawn, return_counts=True)[1].max() <= n_batches:
            break  # else a row was drawn more often than there are batches: draw again
    else:  # a single-batch class (or, in odd settings, rows too few for the batches)
        return [ProbeBatch(tuple(int(r) for r in rng.choice(rows, size=size, replace=False)),
                           tuple(int(c) for c in rng.integers(0, seq_len, size=size)))
                for _ in range(n_batches)]
    cuts = np.concatenate([np.tile(np.arange(seq_len), k // seq_len),
                           rng.choice(seq_len, size=k % seq_len, replace=False)])
    rng.shuffle(cuts)
    # Dealing the checks, grouped by row (in a random row order), round robin puts a row's
    # checks into distinct batches.
    key = rng.permutation(int(rows.max()) + 1)[drawn]
    order = np.lexsort((rng.random(k), key))
    batches = []
    for b in range(n_batches):
        mine = rng.permutation(order[b::n_batches])  # a random place in the batch
        batches.append(ProbeBatch(tuple(int(r) for r in drawn[mine]),
                                  tuple(int(c) for c in cuts[mine])))
    return batches


def probe_input(inputs: torch.Tensor, batch: ProbeBatch, *, vocab_size: int, bos_id: int,
                rng: np.random.Generator) -> torch.Tensor:
    """The probe batch's ids: each row's tokens up to its cut, then fresh random ones.

    `inputs`: the scored rows' inputs (rows, T). Every replaced token is ordinary (not
    BOS) and differs from the one it replaces."""
    import numpy as np
    import torch

    x = inputs[list(batch.rows)].cpu().numpy().copy()
    after = np.arange(x.shape[1])[None, :] > np.asarray(batch.cuts)[:, None]
    original = x[after]
    new = rng.integers(0, vocab_size, size=original.shape)
    bad = (new == bos_id) | (new == original)
    while bad.any():
        new[bad] = rng.integers(0, vocab_size, size=int(bad.sum()))
        bad = (new == bos_id) | (new == original)
    x[after] = new
    return torch.from_numpy(x)


# ---- the comparison ------------------------------------------------------------------------

class CausalityCheck:
    """What the scoring passes produced for a plan's checks; probe passes are compared with it.

    `record` each scoring batch (in order), then `compare` each probe batch, then `result`.
    Keeps, per checked row, its target log-probabilities (T floats) and, per check, the
    float64 distribution at the cut (V floats): small next to a batch of logits.

    Two tests on each probe batch: the comparison with scoring (module docstring), and the
    random-token test: at every position p >= c of a probe row the next input token is one
    the evaluator drew at random, uniformly from the allowed set A (ordinary tokens but the
    original). A model that does not read its row's future cannot know it, so the chance
    that it ranks that token strictly first among A is at most 1/|A| <= 1/(V - 2), given
    everything it has seen; the count over all M such positions is dominated by
    Binomial(M, 1/(V - 2)), whatever the model. The test fails when that count's Chernoff
    bound P(Binomial >= count) falls below 1e-9, so an honest model fails it with
    probability below 1e-9, tolerance-free. It makes every random token a check, tens of
    thousands per run: a model that copies the next token at any fixed position, or in any
    context the probes' random text also shows, ranks those tokens first far more often.
    """

    def __init__(self, plan: list[ProbeBatch], tolerance: float, *, vocab_size: int,
                 bos_id: int) -> None:
        self.plan = plan
        self.tolerance = tolerance
        self.bos_id = bos_id
        self.chance = 1.0 / (vocab_size - 2)
        self.cuts_of: dict[int, set[int]] = {}
        for pb in plan:
            for r, c in zip(pb.rows, pb.cuts, strict=True):
                self.cuts_of.setdefault(r, set()).add(c)
        self.ref_targets: dict[int, torch.Tensor] = {}
        self.ref_at_cut: dict[tuple[int, int], torch.Tensor] = {}
        self.checks = 0
        self.max_deviation = 0.0
        self.failures: list[dict] = []
        self.sizes: set[int] = set()
        self.random_tokens = 0
        self.random_first = 0

    def record(self, first_row: int, logits: torch.Tensor, target_lp: torch.Tensor) -> None:
        """A scoring batch holding rows first_row .. first_row + B - 1."""
        for i in range(logits.shape[0]):
            cuts = self.cuts_of.get(first_row + i)
            if not cuts:
                continue
            self.ref_targets[first_row + i] = target_lp[i].cpu()
            for c in cuts:
                self.ref_at_cut[first_row + i, c] = _dist(logits[i, c])

    def compare(self, batch: ProbeBatch, ids: torch.Tensor, targets: torch.Tensor,
                logits: torch.Tensor, target_lp: torch.Tensor) -> None:
        """A probe pass: `ids` its input, `targets` the rows' original next tokens."""
        self.sizes.add(len(batch.rows))
        target_lp = target_lp.cpu()
        for i, (r, c) in enumerate(zip(batch.rows, batch.cuts, strict=True)):
            prefix = float((target_lp[i, : c + 1] - self.ref_targets[r][: c + 1]).abs().max())
            at_cut = float((_dist(logits[i, c]) - self.ref_at_cut[r, c]).abs().max())
            deviation = max(prefix, at_cut)
            self.checks += 1
            self.max_deviation = max(self.max_deviation, deviation)
            if not deviation <= self.tolerance:
                self.failures.append({"row": r, "cut": c, "deviation_nats": deviation})
        self._random_tokens(batch, ids, targets, logits)

    def _random_tokens(self, batch: ProbeBatch, ids: torch.Tensor, targets: torch.Tensor,
                       logits: torch.Tensor) -> None:
        import torch

        drawn, original, lg = ids[:, 1:], targets[:, :-1], logits[:, :-1]  # p = 0 .. T-2
        own = lg.gather(-1, drawn.unsqueeze(-1)).squeeze(-1)
        # The best rival in A: among the top 4, the first that is neither the drawn token,
        # BOS nor the original (at most 3 are excluded).
        top = lg.topk(4, dim=-1)
        excluded = ((top.indices == drawn.unsqueeze(-1)) | (top.indices == self.bos_id)
                    | (top.indices == original.unsqueeze(-1)))
        rival = top.values.masked_fill(excluded, float("-inf")).max(-1).values
        cuts = torch.tensor(batch.cuts, device=lg.device).unsqueeze(1)
        tested = torch.arange(lg.shape[1], device=lg.device).unsqueeze(0) >= cuts
        self.random_tokens += int(tested.sum())
        self.random_first += int(((own > rival) & tested).sum())

    def random_token_log_p(self) -> float:
        """ln of the Chernoff bound on P(Binomial(M, 1/(V-2)) >= count); 0 when at chance."""
        m, k, p = self.random_tokens, self.random_first, self.chance
        if m == 0 or k <= m * p:
            return 0.0
        a = k / m
        kl = a * math.log(a / p) + ((1 - a) * math.log((1 - a) / (1 - p)) if a < 1 else
                                    math.log(1 / (1 - p)))
        return -m * kl

    def result(self) -> dict:
        """The probe's entry in metrics.json (written when the run is over)."""
        worst = sorted(self.failures, key=lambda f: -f["deviation_nats"])[:5]
        log_p = self.random_token_log_p()
        return {"name": "causality",
                "passed": self.checks > 0 and not self.failures and log_p > RANDOM_TOKEN_LOG_P,
                "checks": self.checks, "failed": len(self.failures),
                "max_deviation_nats": self.max_deviation, "tolerance_nats": self.tolerance,
                "batch_sizes": sorted(self.sizes), "rows": len(self.ref_targets),
                "worst_failures": worst, "random_tokens": self.random_tokens,
                "random_tokens_ranked_first": self.random_first,
                "random_tokens_chance": self.random_tokens * self.chance,
                "random_tokens_log10_p": log_p / math.log(10)}


def _dist(logits_row: torch.Tensor) -> torch.Tensor:
    return logits_row.double().log_softmax(-1).cpu()


def describe_failure(probe: dict) -> str:
    """One line for the rejection reason."""
    parts = []
    if probe["failed"]:
        parts.append(f"{probe['failed']} of {probe['checks']} checks moved scored "
                     f"log-probabilities by up to {probe['max_deviation_nats']:.3g} nats > "
                     f"{probe['tolerance_nats']:.3g}: the output at a position depends on "
                     f"later tokens or on other rows")
    if probe["random_tokens_log10_p"] <= RANDOM_TOKEN_LOG_P / math.log(10):
        parts.append(f"ranked first {probe['random_tokens_ranked_first']} of "
                     f"{probe['random_tokens']} random tokens it could not see (chance: at "
                     f"most {probe['random_tokens_chance']:.0f}, "
                     f"p < 1e{probe['random_tokens_log10_p']:.0f})")
    return "; ".join(parts) or "no checks ran"
