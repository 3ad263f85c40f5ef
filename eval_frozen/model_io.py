"""Load the trainer's exported program without running any of the trainer's Python.

`torch.export.load` rebuilds a graph of operators from JSON and weights from tensors, but
two paths in it can unpickle arbitrary objects: "opaque" and script-object constants,
and a `torch.load(weights_only=False)` fallback for pickled weights. So, before loading:
the archive must be a zip with no such entries; during loading `torch.load` is forced
to weights-only mode (TORCH_FORCE_WEIGHTS_ONLY_LOAD), which unpickles tensors only; after
loading every call in the graph must be a registered operator (aten and friends) or
plain arithmetic on sizes, never an arbitrary Python function, and the forward pass must
not write to any buffer (no hidden state that could change behaviour between calls).
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from eval_frozen.errors import EvalInputError

if TYPE_CHECKING:
    import torch

# File-name prefixes torch.export uses for constants it stores as pickles (not tensors).
_PICKLED_OBJECT_PREFIXES = ("custom_obj_", "opaque_obj_")


@contextmanager
def _quiet_weights_only_loads():
    """torch.load forced to weights-only; torch's loader logs and warnings silenced, since a
    bad file must end in one line on stderr (ours), not a logged traceback."""
    import logging
    import warnings

    key = "TORCH_FORCE_WEIGHTS_ONLY_LOAD"
    old = os.environ.get(key)
    os.environ[key] = "1"
    loggers = [logging.getLogger(n) for n in ("torch.export", "torch._export")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


def _check_archive(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError) as e:
        raise EvalInputError(f"{path} is not a torch.export archive ({e}).") from None
    for name in names:
        if os.path.basename(name).startswith(_PICKLED_OBJECT_PREFIXES):
            raise EvalInputError(
                f"{path} holds a pickled Python object ({name}); only tensors and operator "
                f"graphs are accepted."
            )


def _allowed_target(target: object) -> bool:
    import math
    import operator

    import torch

    if isinstance(target, torch._ops.OpOverload | torch._ops.OpOverloadPacket
                  | torch._ops.HigherOrderOperator):
        return True
    module = getattr(target, "__module__", None)
    if target in vars(operator).values() or target in vars(math).values():
        return True
    # torch.sym_int, torch.sym_max ...: size arithmetic for dynamic shapes.
    name = getattr(target, "__name__", "")
    return module in ("torch", "torch.fx.experimental.sym_node") and name.startswith("sym_")


def check_graph(graph_module: torch.fx.GraphModule) -> None:
    """EvalInputError naming the first call that is not an operator."""
    for mod_name, mod in graph_module.named_modules():
        graph = getattr(mod, "graph", None)
        if graph is None:
            continue
        for node in graph.nodes:
            if node.op in ("call_module", "call_method"):
                raise EvalInputError(f"exported graph calls a {node.op} ({node.target}); "
                                     f"only operators are accepted.")
            if node.op == "call_function" and not _allowed_target(node.target):
                where = f" in {mod_name}" if mod_name else ""
                raise EvalInputError(f"exported graph calls {node.target!r}{where}, which is "
                                     f"not a registered operator.")


def check_stateless(program: torch.export.ExportedProgram) -> None:
    """EvalInputError if a forward pass writes to a buffer or its input.

    A model with state could count its calls and behave (causally) only while it is probed.
    The loaded graph may keep in-place ops (`add_`) whose targets are hard to trace through
    views, so it is functionalized first: every write to state then shows in the signature.
    In-place ops on intermediate activations stay allowed.
    """
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's own deprecation noise
            sig = program.run_decompositions({}).graph_signature
    except Exception as e:
        raise EvalInputError(f"cannot analyse the exported graph ({type(e).__name__}: "
                             f"{str(e)[:200]}).") from None
    mutated = {**sig.buffers_to_mutate, **getattr(sig, "user_inputs_to_mutate", {})}
    if mutated:
        name = next(iter(mutated.values()))
        raise EvalInputError(f"the exported model writes to {name!r} during forward; "
                             f"the evaluator accepts only stateless models.")


def load_program(path: str | Path, device: str = "cpu") -> Callable[[torch.Tensor], object]:
    """The exported model as a callable `ids (B, T) -> logits`; EvalInputError if unusable."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise EvalInputError(f"model file {path} not found.")
    _check_archive(path)
    try:
        with _quiet_weights_only_loads():
            program = torch.export.load(str(path))
    except EvalInputError:
        raise
    except Exception as e:  # torch raises many types for a corrupt archive
        msg = (str(e).strip().splitlines() or [""])[0]
        msg = msg.replace(" Please check the warnings above for possible errors.", "")
        raise EvalInputError(f"cannot load {path} as a torch.export program "
                             f"({type(e).__name__}: {msg[:200]}).") from None
    check_graph(program.graph_module)
    check_stateless(program)
    try:
        module = program.module()
        if device != "cpu":
            module = module.to(device)
    except Exception as e:
        raise EvalInputError(f"cannot run {path} on {device} ({type(e).__name__}: {e}).") from None
    return module
