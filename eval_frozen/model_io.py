"""Load the trainer's exported program and run it so that its output is a function of the batch.

Loading. `torch.export.load` rebuilds a graph of operators from JSON and weights from
tensors, but two paths in it can unpickle arbitrary objects: "opaque" and script-object
constants, and a `torch.load(weights_only=False)` fallback for pickled weights. So, before
loading, the archive must be a zip with no such entries; during loading `torch.load` is
forced to weights-only mode (TORCH_FORCE_WEIGHTS_ONLY_LOAD), which unpickles tensors only.
A third path evaluates Python: every symbolic shape (`expr_str` in the graph's JSON) goes
through `sympy.sympify`, which is eval. So each one must be plain arithmetic on size
symbols before loading starts, and `sympify` accepts nothing else while it runs.

Static checks on the loaded graph (and every subgraph in it):
- every call is a tensor-algebra operator (`aten`, `prims`; none that reaches outside the
  program, such as `from_file`, which could read the validation shards the evaluation
  step mounts), plain arithmetic on sizes, or one
  of the higher-order operators the runtime guard can follow (`cond`, grad-mode and
  autocast regions); never an arbitrary Python function;
- no operator draws random numbers (see "Randomness" below);
- the forward pass writes to no parameter, buffer, constant or input, and has no side
  effects: after functionalisation the program may return its user outputs and nothing
  else (an allow-list on the output kinds, so a new kind of state is refused, too).

Runtime guard. The graph names operators, but what runs is more: composite operators
(`scaled_dot_product_attention`, `linear`, `rrelu` ...) decompose at call time into
others the graph never names, and a random one can hide there (attention with a dropout
probability, for one). So every forward pass the evaluator scores or probes runs under a
dispatch mode that sees each operator as it executes, after that decomposition, and
applies the same rules to what actually runs: no random operator, no write to the model's
state or its input, no uninitialised memory (tensors from `empty*` operators are zeroed
before the model sees them, so memory left over from an earlier pass, say the scoring
batch the probe is compared with, cannot leak into a later one; `resize*` operators,
which can expose such memory in place, are refused).

Randomness, by construction rather than by a list of names: an operator is random when
torch tags it `nondeterministic_seeded` or its schema takes a `Generator` (bernoulli,
dropout, rand*, randperm, multinomial, normal, rrelu, the fused attention kernels, RNNs,
and any future one that follows either convention). Many of those are deterministic when
the call switches the randomness off, and honest models rely on it (every causal
`scaled_dot_product_attention` runs a fused kernel tagged seeded, with `dropout_p=0`):
so a random operator is accepted only when the call passes a dropout probability of
exactly 0 (argument `p`, `dropout_p` or `dropout`) or `train`/`training` False.

Together, these make the program stateless and deterministic: its output is a function of
the ids tensor alone, which is what the evaluator's causality check relies on. On CUDA,
`deterministic_algorithms` also makes torch choose deterministic kernels where it has them
(so honest run-to-run noise is as small as the hardware allows).
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval_frozen.errors import EvalInputError, ModelRefused

if TYPE_CHECKING:
    import torch

# File-name prefixes torch.export uses for constants it stores as pickles (not tensors).
_PICKLED_OBJECT_PREFIXES = ("custom_obj_", "opaque_obj_")
# Higher-order operators the runtime guard can follow into (see _Guard._higher_order).
_HIGHER_ORDER_OPS = ("cond", "wrap_with_set_grad_enabled", "wrap_with_autocast")
# Arguments through which a seeded operator's call turns its randomness off.
_PROBABILITY_ARGS = ("p", "dropout_p", "dropout")
_TRAIN_ARGS = ("train", "training")


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
    """Refuse what `torch.export.load` would run as Python before any graph check:
    pickled objects, and shape expressions that are not plain arithmetic (the loader
    hands every `expr_str` to `sympy.sympify`, which evaluates it as Python)."""
    import json

    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            for name in names:
                if os.path.basename(name).startswith(_PICKLED_OBJECT_PREFIXES):
                    raise ModelRefused(
                        f"{path} holds a pickled Python object ({name}); only tensors and "
                        f"operator graphs are accepted.")
                if name.endswith(".json"):
                    try:
                        doc = json.loads(z.read(name))
                    except ValueError:
                        raise EvalInputError(f"{path}: {name} is not JSON.") from None
                    for expr in _expr_strings(doc):
                        check_shape_expr(expr, where=f"{path}: {name}")
    except (zipfile.BadZipFile, OSError) as e:
        raise EvalInputError(f"{path} is not a torch.export archive ({e}).") from None


def _expr_strings(doc: object) -> Iterator[object]:
    stack = [doc]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key == "expr_str":
                    yield value
                else:
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)


# A shape expression is arithmetic on size symbols (s0, u3 ...), integers and the few
# functions torch's shape algebra prints; anything else (attributes, strings, calls of
# other names) is refused, since sympify would evaluate it.
_SHAPE_TOKEN = re.compile(
    r"\s*(?:(?P<symbol>Symbol\('[a-z]+[0-9]+'(?:,\s*[a-z]+=(?:True|False))*\))"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<number>[0-9]+(?:\.[0-9]+)?)"
    r"|(?P<op>\*\*|//|==|!=|<=|>=|[-+*/%(),<>&|~]))")
_SHAPE_FUNCTIONS = frozenset({
    "FloorDiv", "ModularIndexing", "Where", "PythonMod", "Mod", "CleanDiv", "CeilToInt",
    "FloorToInt", "CeilDiv", "IntTrueDiv", "FloatTrueDiv", "PowByNatural", "FloatPow",
    "TruncToFloat", "TruncToInt", "RoundToInt", "RoundDecimal", "ToFloat", "Identity",
    "IsNonOverlappingAndDenseIndicator", "LShift", "RShift", "BitwiseFn_bitwise_and",
    "BitwiseFn_bitwise_or", "Max", "Min", "Abs", "Integer", "Rational", "Eq", "Ne", "Ge",
    "Gt", "Le", "Lt", "And", "Or", "Not", "True", "False", "oo",
})
_SIZE_SYMBOL = re.compile(r"[a-z]+[0-9]+")


def check_shape_expr(expr: object, *, where: str = "the model") -> None:
    """ModelRefused unless `expr` is plain arithmetic on size symbols (see _SHAPE_TOKEN)."""
    text = expr if isinstance(expr, str) else None
    pos = 0
    while text is not None and pos < len(text):
        m = _SHAPE_TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            break
        name = m.group("name")
        if name is not None and not (name in _SHAPE_FUNCTIONS or _SIZE_SYMBOL.fullmatch(name)):
            break
        pos = m.end()
    else:
        if text is not None and len(text) <= 2000:
            return
    raise ModelRefused(f"{where} has a shape expression that is not plain arithmetic on "
                       f"sizes ({str(expr)[:80]!r}); the loader would run it as Python.")


@contextmanager
def _sympify_only_shapes() -> Iterator[None]:
    """While torch loads the program, `sympy.sympify` accepts shape arithmetic only: a
    second line behind `_check_archive`, for any string the loader evaluates."""
    import sympy

    original = sympy.sympify

    def guarded(a: object, *args: Any, **kwargs: Any) -> Any:
        if isinstance(a, str):
            check_shape_expr(a)
        return original(a, *args, **kwargs)

    sympy.sympify = guarded
    try:
        yield
    finally:
        sympy.sympify = original


# ---- randomness ----------------------------------------------------------------------------

def _is_seeded(op: Any) -> bool:
    import torch

    return (torch.Tag.nondeterministic_seeded in op.tags
            or any("Generator" in str(a.type) for a in op._schema.arguments))


def _bound_args(op: Any, args: tuple, kwargs: dict) -> dict[str, Any]:
    """The call's arguments by schema name, defaults filled in."""
    bound = {}
    for i, a in enumerate(op._schema.arguments):
        if i < len(args) and not a.kwarg_only:
            bound[a.name] = args[i]
        elif a.name in kwargs:
            bound[a.name] = kwargs[a.name]
        elif a.has_default_value():
            bound[a.name] = a.default_value
    return bound


def random_use(op: Any, args: tuple, kwargs: dict) -> str | None:
    """`op` and its randomness arguments if this call of it is random, else None.

    Arguments that are not literal values (graph nodes, symbolic numbers) count as random:
    only a literal 0 probability or a literal False training flag turns randomness off."""
    if not _is_seeded(op):
        return None
    bound = _bound_args(op, args, kwargs)
    if any(bound.get(n) is False for n in _TRAIN_ARGS):
        return None
    for n in _PROBABILITY_ARGS:
        v = bound.get(n)
        if isinstance(v, int | float) and not isinstance(v, bool) and v == 0:
            return None
    shown = {n: bound[n] for n in (*_PROBABILITY_ARGS, *_TRAIN_ARGS) if n in bound}
    detail = ", ".join(f"{k}={v}" for k, v in shown.items() if not hasattr(v, "op"))
    return f"{op}" + (f" ({detail})" if detail else "")


# ---- static checks -------------------------------------------------------------------------

# Operators run by the model come from these namespaces only: the tensor algebra. The rest
# of what is registered (collectives, profiler callbacks, JIT Python ops, debug loaders,
# backend kernels) has nothing to do in a scored forward pass.
_OPERATOR_NAMESPACES = ("aten", "prims")
# Tensor-algebra operators that reach outside the program: files (`from_file` maps any
# readable file, the validation shards of the evaluation step included), printing, saving.
_IO_OPERATORS = ("from_file", "save", "_print", "record_stream", "_pin_memory", "pin_memory")


def operator_refusal(op: Any) -> str | None:
    """Why an operator may not run in a scored model (None: it may)."""
    # "aten::add.Tensor" for an overload, "aten::add" for a packet.
    name = str(getattr(op, "_qualified_op_name", None) or op.name())
    namespace, _, rest = name.partition("::")
    base = rest.split(".")[0]
    if namespace not in _OPERATOR_NAMESPACES:
        return f"{name} is not a tensor-algebra operator (namespaces {_OPERATOR_NAMESPACES})"
    if base in _IO_OPERATORS:
        return f"{name} reaches outside the program (files, printing)"
    return None


def _allowed_target(target: object) -> bool:
    import math
    import operator

    import torch

    if isinstance(target, torch._ops.OpOverload | torch._ops.OpOverloadPacket):
        return operator_refusal(target) is None
    if isinstance(target, torch._ops.HigherOrderOperator):
        return target.name() in _HIGHER_ORDER_OPS
    module = getattr(target, "__module__", None)
    if target in vars(operator).values() or target in vars(math).values():
        return True
    # torch.sym_int, torch.sym_max ...: size arithmetic for dynamic shapes.
    name = getattr(target, "__name__", "")
    return module in ("torch", "torch.fx.experimental.sym_node") and name.startswith("sym_")


def _static_random_use(target: object, args: tuple, kwargs: dict) -> str | None:
    import torch

    if isinstance(target, torch._ops.OpOverload):
        return random_use(target, args, kwargs)
    if isinstance(target, torch._ops.OpOverloadPacket):  # no overload chosen: any may run
        if any(_is_seeded(getattr(target, ov)) for ov in target.overloads()):
            return f"{target}"
    return None


def check_graph(graph_module: torch.fx.GraphModule) -> None:
    """EvalInputError naming the first call that is not a deterministic operator."""
    for mod_name, mod in graph_module.named_modules():
        graph = getattr(mod, "graph", None)
        if graph is None:
            continue
        where = f" in {mod_name}" if mod_name else ""
        for node in graph.nodes:
            if node.op in ("call_module", "call_method"):
                raise ModelRefused(f"exported graph calls a {node.op} ({node.target}); "
                                   f"only operators are accepted.")
            if node.op != "call_function":
                continue
            if not _allowed_target(node.target):
                raise ModelRefused(f"exported graph calls {node.target!r}{where}, which is "
                                   f"not a registered operator.")
            why = _static_random_use(node.target, tuple(node.args), dict(node.kwargs))
            if why:
                raise ModelRefused(f"exported graph calls {why}{where}, which draws random "
                                   f"numbers; the evaluator scores only deterministic models.")


def check_stateless(program: torch.export.ExportedProgram) -> None:
    """EvalInputError if a forward pass writes to any state or input, or has side effects.

    A model with state could count its calls and behave (causally) only while it is probed.
    The loaded graph may keep in-place ops (`add_`) whose targets are hard to trace through
    views, so it is functionalized first: every write to state then shows in the signature
    as an extra output. Only user outputs are allowed; in-place ops on intermediate
    activations stay allowed.
    """
    import warnings

    from torch.export.graph_signature import InputKind, OutputKind

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's own deprecation noise
            sig = program.run_decompositions({}).graph_signature
    except Exception as e:
        raise EvalInputError(f"cannot analyse the exported graph ({type(e).__name__}: "
                             f"{str(e)[:200]}).") from None
    for spec in sig.output_specs:
        if spec.kind == OutputKind.USER_OUTPUT:
            continue
        if spec.kind == OutputKind.TOKEN:
            raise ModelRefused("the exported model has side effects (effect tokens); the "
                               "evaluator accepts only stateless models.")
        name = spec.target or getattr(spec.arg, "name", "?")
        raise ModelRefused(f"the exported model writes to {name!r} during forward; "
                           f"the evaluator accepts only stateless models.")
    for spec in sig.input_specs:
        if spec.kind in (InputKind.CUSTOM_OBJ, InputKind.TOKEN):
            raise ModelRefused(f"the exported model takes a {spec.kind.name.lower()} input "
                               f"({spec.target}); only tensors are accepted.")


# ---- runtime guard -------------------------------------------------------------------------

def _storage_key(t: torch.Tensor) -> int:
    try:
        return t.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):  # tensors without storage (none in practice)
        return 0


def state_storages(model: object) -> dict[int, str]:
    """data pointer -> name, for every tensor a module holds (parameters, buffers, constants)."""
    import torch

    if not isinstance(model, torch.nn.Module):
        return {}
    found: dict[int, str] = {}
    for mod_name, mod in model.named_modules():
        tensors = {**mod._parameters, **mod._buffers,
                   **{k: v for k, v in vars(mod).items() if isinstance(v, torch.Tensor)}}
        for name, t in tensors.items():
            if isinstance(t, torch.Tensor):
                key = _storage_key(t)
                if key:
                    found.setdefault(key, f"{mod_name}.{name}" if mod_name else name)
    return found


_OP_INFO: dict[Any, tuple[bool, tuple[tuple[int, str], ...], str]] = {}
_GUARD_CLASS: Any = None


def _op_info(func: Any) -> tuple[bool, tuple[tuple[int, str], ...], str]:
    """(random?, the arguments it writes to, "empty" | "resize" | ""), cached per operator."""
    info = _OP_INFO.get(func)
    if info is None:
        writes = tuple((i, a.name) for i, a in enumerate(func._schema.arguments)
                       if a.alias_info is not None and a.alias_info.is_write)
        base = func._schema.name.split("::")[-1]
        kind = "empty" if "empty" in base else "resize" if "resize" in base else ""
        info = _OP_INFO[func] = (_is_seeded(func), writes, kind)
    return info


def _guard_mode(protected: dict[int, str]) -> Any:
    """A TorchDispatchMode applying the runtime rules (see the module docstring)."""
    global _GUARD_CLASS
    if _GUARD_CLASS is None:
        _GUARD_CLASS = _make_guard_class()
    return _GUARD_CLASS(protected)


def _make_guard_class() -> type:
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    class _Guard(TorchDispatchMode):
        supports_higher_order_operators = True

        def __init__(self, protected: dict[int, str]) -> None:
            super().__init__()
            self.protected = protected

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if isinstance(func, torch._ops.HigherOrderOperator):
                return self._higher_order(func, args, kwargs)
            refused = operator_refusal(func)
            if refused:
                raise ModelRefused(f"the model ran {refused}; the evaluator refuses it.")
            seeded, writes, kind = _op_info(func)
            if seeded:
                why = random_use(func, args, kwargs)
                if why:
                    raise ModelRefused(f"the model ran {why}, which draws random numbers; "
                                       f"the evaluator scores only deterministic models.")
            for i, name in writes:
                value = args[i] if i < len(args) else kwargs.get(name)
                for t in value if isinstance(value, list | tuple) else (value,):
                    key = _storage_key(t) if isinstance(t, torch.Tensor) else 0
                    if key in self.protected:
                        raise ModelRefused(
                            f"the exported model writes to {self.protected[key]!r} during "
                            f"forward ({func}); the evaluator accepts only stateless models.")
            if kind == "resize":
                raise ModelRefused(f"the model ran {func}, which can expose uninitialised "
                                   f"memory; the evaluator refuses it.")
            out = func(*args, **kwargs)
            if kind == "empty" and isinstance(out, torch.Tensor):
                out.zero_()  # no leftovers of earlier passes
            return out

        def _higher_order(self, func, args, kwargs):
            # Run the subgraph ourselves, with this mode active, so its operators are
            # checked as they run; anything we cannot follow is refused.
            name = func.name()
            if name == "cond" and not kwargs:
                pred, true_fn, false_fn, operands = args
                with self:
                    return (true_fn if bool(pred) else false_fn)(*operands)
            if name == "wrap_with_set_grad_enabled" and not kwargs:
                enabled, body, *rest = args
                with torch.set_grad_enabled(enabled), self:
                    return body(*rest)
            if name == "wrap_with_autocast" and not kwargs:
                device_type, dtype, enabled, cache_enabled, body, *rest = args
                with torch.autocast(device_type, dtype=dtype, enabled=enabled,
                                    cache_enabled=cache_enabled), self:
                    return body(*rest)
            raise ModelRefused(f"the model ran the higher-order operator {name}; the "
                               f"evaluator follows only {', '.join(_HIGHER_ORDER_OPS)}.")

    return _Guard


class GuardedForward:
    """`ids (B, T) -> logits`, every pass run under the runtime guard."""

    def __init__(self, model: Callable[[torch.Tensor], object]) -> None:
        self.model = model
        self.state = state_storages(model)

    def __call__(self, ids: torch.Tensor) -> object:
        protected = {**self.state, _storage_key(ids): "the input ids"}
        with _guard_mode(protected):
            return self.model(ids)


@contextmanager
def deterministic_algorithms(device: str) -> Iterator[list[str]]:
    """On CUDA, torch's deterministic kernels for the evaluation. Warn-only: an operator
    without a deterministic kernel still runs (the causality tolerance absorbs its noise),
    and the list yielded names such operators once the block ends, so a rejection can be
    read against them. Nothing changes on CPU, whose kernels are deterministic at a fixed
    shape already."""
    import warnings

    import torch

    found: list[str] = []
    if not device.startswith("cuda"):
        yield found
        return
    before = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        with warnings.catch_warnings(record=True) as caught:  # stderr carries one line, ours
            warnings.simplefilter("always")
            try:
                yield found
            finally:
                found.extend(sorted({str(w.message).split(" does not have")[0][:120]
                                     for w in caught if "deterministic" in str(w.message)}))
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn_only)


def load_program(path: str | Path, device: str = "cpu") -> GuardedForward:
    """The exported model as a guarded callable `ids (B, T) -> logits`; EvalInputError if
    unusable."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise EvalInputError(f"model file {path} not found.")
    _check_archive(path)
    try:
        with _quiet_weights_only_loads(), _sympify_only_shapes():
            program = torch.export.load(str(path))
    except EvalInputError:
        raise
    except Exception as e:  # torch raises many types for a corrupt archive
        msg = (str(e).strip().splitlines() or [""])[0]
        msg = msg.replace(" Please check the warnings above for possible errors.", "")
        raise EvalInputError(f"cannot load {path} as a torch.export program "
                             f"({type(e).__name__}: {msg[:200]}).") from None
    check_graph(program.graph_module)
    if device != "cpu":
        program = move_program(program, device, path)
        check_graph(program.graph_module)  # the program that runs is the moved one
    check_stateless(program)
    try:
        if device.startswith("cuda"):
            # cuBLAS is deterministic only with a fixed workspace; read when its handle is made.
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        module = program.module()
    except Exception as e:
        raise EvalInputError(f"cannot run {path} on {device} ({type(e).__name__}: {e}).") from None
    return GuardedForward(module)


def move_program(program: torch.export.ExportedProgram, device: str,
                 path: str | Path = "the model") -> torch.export.ExportedProgram:
    """The program with its weights, constants and the devices written into its graph
    moved to `device`, by torch.export's own pass.

    `module().to(device)` moves the weights only: the graph keeps what export wrote into
    it, such as `_assert_tensor_metadata(device=cpu)` (torch >= 2.8), so every pass of a
    CPU-exported model on CUDA failed with "Tensor device mismatch"."""
    from torch.export.passes import move_to_device_pass

    try:
        return move_to_device_pass(program, device)
    except Exception as e:
        msg = (str(e).strip().splitlines() or [""])[0]
        raise EvalInputError(f"cannot move {path} to {device} ({type(e).__name__}: "
                             f"{msg[:200]}).") from None
