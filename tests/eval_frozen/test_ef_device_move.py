"""The loader moves an exported program to the evaluation device with torch.export's own
pass: the devices export wrote into the graph move with the weights (CPU tests, "meta" as
the other device), and the security checks run on the moved program."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn as nn
from ef_helpers import VOCAB, export_model

import eval_frozen.model_io as model_io
from eval_frozen.errors import ModelRefused
from eval_frozen.model_io import load_program


class CastsToFloat(nn.Module):
    """An embedding and a head computed in bf16 and cast back: `.float()` is what makes
    torch >= 2.8 write `_assert_tensor_metadata(device=cpu)` into the graph (the trainer's
    GPT does the same)."""

    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(VOCAB, 16)
        self.head = nn.Linear(16, VOCAB)
        self.dropout = dropout

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.emb(idx).bfloat16()
        if self.dropout:
            x = torch.nn.functional.dropout(x, self.dropout, training=True)
        return self.head(x.float())


def _devices_in_graph(gm: torch.fx.GraphModule) -> set[str]:
    found = set()
    for mod in gm.modules():
        for node in getattr(mod, "graph", torch.fx.Graph()).nodes:
            if "device" in node.kwargs:
                found.add(str(node.kwargs["device"]))
    return found


@pytest.fixture(scope="module")
def casting_model(tmp_path_factory) -> Path:
    return export_model(CastsToFloat(), tmp_path_factory.mktemp("move") / "cast.pt2", 32)


def test_export_writes_the_cpu_device_into_the_graph(casting_model):
    # The premise: `module().to(device)` would leave these behind.
    program = torch.export.load(str(casting_model))
    assert "cpu" in _devices_in_graph(program.graph_module)
    assert "cpu" in _devices_in_graph(program.module().to("meta"))


def test_loaded_on_another_device_the_graph_names_only_that_device(casting_model):
    forward = load_program(casting_model, device="meta")
    assert _devices_in_graph(forward.model) == {"meta"}
    assert {p.device.type for p in forward.model.parameters()} == {"meta"}
    out = forward(torch.zeros(3, 32, dtype=torch.long, device="meta"))
    assert out.shape == (3, 32, VOCAB) and out.device.type == "meta"


def test_a_graph_asserting_one_device_fails_on_another(casting_model):
    """What the evaluator hit on CUDA, reproduced on the CPU the other way round: a graph
    moved by the pass to "meta", its weights brought back by `.to_empty`, run on CPU."""
    from torch.export.passes import move_to_device_pass

    program = move_to_device_pass(torch.export.load(str(casting_model)), "meta")
    module = program.module().to_empty(device="cpu")
    with pytest.raises(RuntimeError, match="device mismatch"):
        module(torch.zeros(2, 32, dtype=torch.long))


def test_cpu_scores_are_unchanged_by_the_device_path(casting_model):
    ids = torch.randint(0, VOCAB - 1, (2, 32), generator=torch.Generator().manual_seed(1))
    reference = torch.export.load(str(casting_model)).module()(ids)
    assert torch.equal(load_program(casting_model)(ids), reference)


def test_checks_run_on_the_moved_program(casting_model, tmp_path, monkeypatch):
    seen: list[set[str]] = []
    original = model_io.check_graph

    def recording(gm):
        seen.append(_devices_in_graph(gm))
        return original(gm)

    monkeypatch.setattr(model_io, "check_graph", recording)
    load_program(casting_model, device="meta")
    assert seen[-1] == {"meta"}, "the operator allow-list ran on the program that runs"

    # And a refused model stays refused on another device.
    monkeypatch.setattr(model_io, "check_graph", original)
    bad = export_model(CastsToFloat(dropout=0.5), tmp_path / "dropout.pt2", 32)
    with pytest.raises(ModelRefused, match="random"):
        load_program(bad, device="meta")
