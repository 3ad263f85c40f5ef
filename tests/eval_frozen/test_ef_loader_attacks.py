"""A model file cannot run code in the evaluator: what `torch.export.load` would evaluate
(shape expressions go through `sympy.sympify`, which is Python's eval) is refused first."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import sympy
from ef_helpers import TinyAttention, data_dir_of, export_model

from eval_frozen.errors import ModelRefused
from eval_frozen.evaluate import evaluate_file
from eval_frozen.model_io import _sympify_only_shapes, check_shape_expr, load_program


def plant(model: Path, code: str, out: Path) -> Path:
    """The archive with `code` run inside its first symbolic-shape expression."""
    with zipfile.ZipFile(model) as zin, zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("models/model.json"):
                text = data.decode()
                i = text.index('"expr_str": "Symbol(') + len('"expr_str": "')
                j = text.index('"', i)
                expr = f"(exec({code!r}) or {text[i:j]})"
                text = text[:i] + json.dumps(expr)[1:-1] + text[j:]
                data = text.encode()
            zout.writestr(info, data)
    return out


@pytest.fixture(scope="module")
def honest(tmp_path_factory) -> Path:
    return export_model(TinyAttention(), tmp_path_factory.mktemp("loader") / "honest.pt2")


def test_control_a_planted_expression_runs_in_a_plain_torch_load(honest, tmp_path):
    """The attack is real: torch's own loader evaluates the string."""
    import torch

    marker = tmp_path / "ran"
    bad = plant(honest, f"open({str(marker)!r}, 'w').write('x')", tmp_path / "bad.pt2")
    torch.export.load(str(bad))
    assert marker.exists()


def test_code_in_a_shape_expression_is_refused_before_it_runs(honest, tmp_path, tiny_workspace):
    marker = tmp_path / "ran"
    bad = plant(honest, f"open({str(marker)!r}, 'w').write('x')", tmp_path / "bad.pt2")
    with pytest.raises(ModelRefused, match="shape expression that is not plain arithmetic"):
        load_program(bad)
    result = evaluate_file(bad, data_dir_of(tiny_workspace))
    assert result.status == "rejected" and result.reason.startswith("model_refused: ")
    assert result.val_bpb is None and not marker.exists()


def test_the_command_line_rejects_it_with_exit_1(honest, tmp_path, tiny_workspace):
    marker = tmp_path / "ran"
    bad = plant(honest, f"open({str(marker)!r}, 'w').write('x')", tmp_path / "bad.pt2")
    out = tmp_path / "metrics.json"
    proc = subprocess.run(
        [sys.executable, "-m", "eval_frozen.evaluate", "--model", str(bad), "--data-dir",
         str(data_dir_of(tiny_workspace)), "--out", str(out)],
        cwd=tiny_workspace, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "model_refused" in proc.stderr
    assert json.loads(out.read_text())["status"] == "rejected" and not marker.exists()


@pytest.mark.parametrize("expr", [
    "Symbol('s95', positive=True, integer=True)", "s0", "2*s0 + 1", "FloorDiv(s0, 2)",
    "Max(1, s3)", "s0**2 - 3", "Mod(s12, 4) == 0", "128",
])
def test_shape_arithmetic_passes(expr: str) -> None:
    check_shape_expr(expr)
    with _sympify_only_shapes():
        sympy.sympify(expr)


@pytest.mark.parametrize("expr", [
    "s0.__class__", "exec('1')", "__import__('os')", "(lambda: 1)()", "s0 if True else 1",
    "Symbol('s0').func", "open('x')", "eval", "[s0]", "{'a': 1}", "s0; 1", "x",
    "Symbol('s0', positive=True) + getattr", "'s0'", "s0\n", None, 7,
])
def test_anything_else_is_refused(expr: object) -> None:
    with pytest.raises(ModelRefused):
        check_shape_expr(expr)


def test_the_second_line_guards_sympify_itself_while_loading() -> None:
    with _sympify_only_shapes():
        with pytest.raises(ModelRefused):
            sympy.sympify("__import__('os').getcwd()")
    assert sympy.sympify("x + 1") is not None  # restored afterwards


def test_operators_come_from_the_tensor_algebra_only() -> None:
    import torch

    from eval_frozen.model_io import operator_refusal

    assert operator_refusal(torch.ops.aten.add.Tensor) is None
    assert operator_refusal(torch.ops.aten.scaled_dot_product_attention.default) is None
    assert operator_refusal(torch.ops.prims.convert_element_type.default) is None
    assert "outside the program" in operator_refusal(torch.ops.aten.from_file.default)
    assert "outside the program" in operator_refusal(torch.ops.aten.save.default)
    assert "not a tensor-algebra" in operator_refusal(
        torch.ops.profiler._record_function_enter.default)


def test_a_model_that_reads_a_file_while_scored_is_refused(tmp_path) -> None:
    """The evaluation step mounts the validation shards: a model may not open files."""
    import torch

    from eval_frozen.model_io import GuardedForward

    secret = tmp_path / "val.bin"
    secret.write_bytes(bytes(range(256)) * 4)

    class Reader(torch.nn.Module):
        def forward(self, idx: torch.Tensor) -> torch.Tensor:
            data = torch.from_file(str(secret), size=1024, dtype=torch.uint8)
            return idx.float().unsqueeze(-1) + data[:8].float()

    with pytest.raises(ModelRefused, match="from_file reaches outside the program"):
        GuardedForward(Reader())(torch.zeros(2, 4, dtype=torch.long))
