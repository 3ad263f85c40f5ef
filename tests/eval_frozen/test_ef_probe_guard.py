"""The premise of the causality check: the program's output is a function of the batch alone.

Random operators are refused (statically, in the exported graph and every subgraph, and at
run time, on the operators that actually execute), a forward pass may not write to the
model's state, and uninitialised memory reaches no model as leftovers of an earlier pass.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from ef_helpers import VOCAB, data_dir_of

from eval_frozen import evaluate
from eval_frozen.errors import EvalInputError
from eval_frozen.model_io import (
    GuardedForward,
    check_graph,
    deterministic_algorithms,
    load_program,
    random_use,
)
from trainer.train import export_model

T = 128


class Base(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(VOCAB, 16)
        self.head = nn.Linear(16, VOCAB)

    def forward(self, idx):
        return self.head(self.noise(self.emb(idx), idx))

    def noise(self, h, idx):
        return h


class Dropout(Base):
    def noise(self, h, idx):
        return F.dropout(h, 0.1, training=True)


class RandLike(Base):
    def noise(self, h, idx):
        return h + 1e-3 * torch.rand_like(h)


class Bernoulli(Base):
    def noise(self, h, idx):
        return h * torch.bernoulli(torch.full_like(h, 0.5))


class Randperm(Base):
    def noise(self, h, idx):
        return h[:, torch.randperm(h.shape[1])]


class Multinomial(Base):
    def noise(self, h, idx):
        pick = torch.multinomial(torch.ones(h.shape[-1]), 1)
        return h + h[..., pick]


class AttentionDropout(Base):
    def noise(self, h, idx):
        y = F.scaled_dot_product_attention(h[:, None], h[:, None], h[:, None], dropout_p=0.1,
                                           is_causal=True)
        return y[:, 0]


class RandomBranch(Base):
    """The random operator sits in one branch of a data-dependent `cond`."""

    def noise(self, h, idx):
        return torch.cond(idx.sum() > 0, lambda h: F.rrelu(h, training=True),
                          lambda h: h * 1.0, (h,))


RANDOM = [Dropout, RandLike, Bernoulli, Randperm, Multinomial, AttentionDropout, RandomBranch]


@pytest.mark.parametrize("make", RANDOM, ids=lambda m: m.__name__)
def test_exported_model_with_a_random_operator_is_refused(tiny_workspace, tmp_path, make):
    path = tmp_path / "random.pt2"
    export_model(make(), T, path)
    out = tmp_path / "metrics.json"
    rc = evaluate.main(["--model", str(path), "--data-dir", str(data_dir_of(tiny_workspace)),
                        "--out", str(out)])
    assert rc == 1  # a rejection of a model built to dodge the checks, not an input error
    metrics = json.loads(out.read_text())
    assert metrics["status"] == "rejected" and metrics["reason"].startswith("model_refused: ")
    assert metrics.get("val_bpb") is None
    with pytest.raises(EvalInputError, match="draws random numbers.*only deterministic"):
        load_program(path)


def test_random_operator_that_only_shows_at_run_time_is_refused():
    # In process there is no graph to inspect: the runtime guard sees what executes, here
    # what `scaled_dot_product_attention(dropout_p=0.1)` decomposes into (bernoulli_).
    guarded = GuardedForward(AttentionDropout().eval())
    with pytest.raises(EvalInputError, match=r"the model ran aten\.bernoulli.*random numbers"):
        with torch.no_grad():
            guarded(torch.randint(0, VOCAB - 1, (2, T)))
    with pytest.raises(EvalInputError, match="bernoulli"):
        with torch.no_grad():
            GuardedForward(Bernoulli())(torch.randint(0, VOCAB - 1, (2, T)))


def test_randomness_rule_reads_the_schema_not_a_list_of_names():
    aten = torch.ops.aten
    q = torch.randn(1, 1, 4, 8)
    flash = aten._scaled_dot_product_flash_attention_for_cpu.default
    assert random_use(flash, (q, q, q), {"dropout_p": 0.0}) is None  # every causal GPT runs it
    assert random_use(flash, (q, q, q, 0.5), {}) is not None
    assert random_use(aten.dropout.default, (q, 0.2, False), {}) is None
    assert random_use(aten.dropout.default, (q, 0.2, True), {}) is not None
    assert random_use(aten.mm.default, (q[0, 0], q[0, 0].T), {}) is None
    for op in (aten.rand.default, aten.randn_like.default, aten.normal_.default,
               aten.exponential_.default, aten.randint.low, aten.poisson.default):
        assert random_use(op, (), {}) is not None, op


def test_graph_with_an_unfollowable_higher_order_operator_is_refused():
    graph = torch.fx.Graph()
    x = graph.placeholder("x")
    graph.output(graph.call_function(torch.ops.higher_order.while_loop, (x, x, (x,), ())))
    with pytest.raises(EvalInputError, match="while_loop.*not a registered operator"):
        check_graph(torch.fx.GraphModule(torch.nn.Module(), graph))


class WritesAParameter(Base):
    def forward(self, idx):
        self.head.bias.add_(1.0)  # a counter in disguise: each call changes the next one
        return super().forward(idx)


def test_runtime_guard_refuses_writes_to_the_model_state():
    with pytest.raises(EvalInputError, match=r"writes to 'head\.bias'.*stateless"):
        with torch.no_grad():
            GuardedForward(WritesAParameter())(torch.randint(0, VOCAB - 1, (2, T)))


class ReadsUninitialisedMemory(Base):
    def forward(self, idx):
        logits = super().forward(idx)
        return logits + torch.empty_like(logits)  # leftovers of earlier passes, unguarded


def test_uninitialised_memory_is_zeroed_so_it_carries_nothing(tiny_workspace, tmp_path):
    data = data_dir_of(tiny_workspace)
    paths = {}
    for name, model in (("empty", ReadsUninitialisedMemory()), ("twin", Base())):
        paths[name] = tmp_path / f"{name}.pt2"
        export_model(model, T, paths[name])
    results = {name: evaluate.evaluate_file(p, data) for name, p in paths.items()}
    assert results["empty"].status == results["twin"].status == "scored"
    assert math.isclose(results["empty"].val_bpb, results["twin"].val_bpb, rel_tol=0, abs_tol=0)


class Resizes(Base):
    def forward(self, idx):
        h = self.emb(idx)
        grown = h.new_zeros(1).resize_(h.numel())  # the tail would be whatever was there
        return self.head(h) + grown.sum()


def test_resize_is_refused_at_run_time():
    with pytest.raises(EvalInputError, match="resize_.*uninitialised memory"):
        with torch.no_grad():
            GuardedForward(Resizes())(torch.randint(0, VOCAB - 1, (2, T)))


def test_exported_stateful_or_random_models_never_reach_scoring(tiny_workspace, tmp_path):
    # The same refusals through the command line: one line on stderr, exit 1, no score.
    import subprocess
    import sys

    path = tmp_path / "dropout.pt2"
    export_model(Dropout(), T, path)
    out = tmp_path / "metrics.json"
    proc = subprocess.run(
        [sys.executable, "-m", "eval_frozen.evaluate", "--model", str(path), "--data-dir",
         str(data_dir_of(tiny_workspace)), "--out", str(out)],
        cwd=tiny_workspace, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "aten.dropout.default (p=0.1, train=True), which draws random numbers" in proc.stderr
    assert Path(out).exists()


def test_cuda_runs_use_deterministic_kernels_and_name_the_ones_without():
    import warnings

    # Only flags and warnings: this runs without a GPU. CPU evaluation changes nothing.
    with deterministic_algorithms("cpu") as found:
        assert not torch.are_deterministic_algorithms_enabled()
    assert found == []
    with deterministic_algorithms("cuda") as found:
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        message = ("index_add_cuda_ does not have a deterministic implementation, but you set "
                   "'torch.use_deterministic_algorithms(True, warn_only=True)'")
        warnings.warn(message, stacklevel=1)
    assert found == ["index_add_cuda_"]
    assert not torch.are_deterministic_algorithms_enabled()  # restored afterwards


class HonestBranches(Base):
    """Data-dependent `cond`, a no-grad region and an autocast region: all followed."""

    def noise(self, h, idx):
        with torch.no_grad():
            h = h * 1.5
        with torch.autocast("cpu", dtype=torch.bfloat16):
            h = F.linear(h, torch.eye(h.shape[-1])).float()
        return torch.cond(idx.sum() > 0, lambda h: h * 2.0, lambda h: h * 3.0, (h,))


def test_honest_higher_order_operators_run_under_the_guard(tmp_path):
    path = tmp_path / "branches.pt2"
    model = HonestBranches()
    export_model(model, T, path)
    graph_ops = {str(n.target) for n in torch.export.load(str(path)).graph.nodes}
    assert {"cond", "wrap_with_autocast"} <= {op.split(".")[-1] for op in graph_ops}
    guarded = load_program(path)
    x = torch.randint(0, VOCAB - 1, (3, T))
    with torch.no_grad():
        assert torch.equal(guarded(x), model(x))
        assert torch.equal(guarded(torch.zeros_like(x)), model(torch.zeros_like(x)))
