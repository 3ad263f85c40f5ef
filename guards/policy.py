"""The allow-lists and protected sets the reach rules apply (extended by `[guards]`).

Rules built on these are complete by construction where a deny-list cannot be: code a
patch adds may import only what a training script needs; protected objects (clocks,
the environment, builtins that reach code or attributes dynamically, frames, process and
exit hooks, code-running serialisation, the export) may only be called or read in place,
never bound, passed, stored or reached through another object; dunder attributes and
private attributes of other objects are off limits except a short list an honest model
needs. Anything not listed is blocked, so a new disguise fails by default.
"""

from __future__ import annotations

# Modules a patch may import (a module matches its entry or a `prefix.*` entry).
ALLOWED_IMPORTS: tuple[str, ...] = (
    "__future__", "math", "cmath", "dataclasses", "functools", "typing", "typing_extensions",
    "itertools", "collections", "collections.abc", "contextlib", "numpy", "numpy.random",
    "numpy.linalg", "random", "statistics", "copy", "enum", "abc", "warnings", "json", "re",
    "string", "bisect", "heapq", "fractions", "decimal", "numbers", "pathlib", "time", "os",
    "sys", "gc", "resource", "datetime", "logging",
    "torch", "torch.nn", "torch.nn.functional", "torch.nn.init", "torch.nn.utils",
    "torch.nn.utils.*", "torch.nn.attention", "torch.nn.attention.*", "torch.nn.parameter",
    "torch.optim", "torch.optim.*", "torch.cuda", "torch.cuda.amp", "torch.amp", "torch.backends",
    "torch.backends.*", "torch.linalg", "torch.fft", "torch.special", "torch.distributions",
    "torch.distributions.*", "torch.utils.checkpoint", "torch.func", "torch.autograd",
    "torch.random", "torch.types", "torch._inductor", "torch._inductor.config", "torch._dynamo",
    "torch._dynamo.config", "torch._functorch.config",
)

# torch submodules attribute chains may go through; the rest (export, jit, fx, hub,
# package, multiprocessing, cpp_extension, serialization, compiler, library, ...) is off
# limits to added code.
ALLOWED_TORCH_MODULES: tuple[str, ...] = (
    "torch", "torch.nn", "torch.nn.functional", "torch.nn.init", "torch.nn.utils",
    "torch.nn.utils.*", "torch.nn.attention", "torch.nn.attention.*", "torch.nn.parameter",
    "torch.optim", "torch.optim.*", "torch.cuda", "torch.cuda.amp", "torch.amp", "torch.amp.*",
    "torch.backends", "torch.backends.*", "torch.linalg", "torch.fft", "torch.special",
    "torch.distributions", "torch.distributions.*", "torch.utils", "torch.utils.checkpoint",
    "torch.func", "torch.autograd", "torch.random", "torch.types", "torch.version",
    "torch._inductor.config", "torch._dynamo.config", "torch._functorch.config",
)

# Private names reachable anyway: compiler settings and fused optimizer kernels.
ALLOWED_PRIVATE: tuple[str, ...] = (
    "torch._inductor.config", "torch._inductor.config.*", "torch._dynamo.config",
    "torch._dynamo.config.*", "torch._functorch.config", "torch._functorch.config.*",
    "torch._foreach_*", "torch._inductor", "torch._dynamo", "torch._functorch",
)
ALLOWED_PRIVATE_ATTRS = frozenset({"_orig_mod"})
"""Private attributes of other objects an honest patch reads (torch.compile's wrapper)."""

# Modules whose attributes are usable only from these lists (calls and reads in place).
MODULE_ATTRS: dict[str, frozenset[str] | None] = {
    "time": None,  # every public clock may be called; none may be replaced or passed
    "datetime": None,
    "math": None,
    "os": frozenset({"environ", "getenv", "cpu_count", "getpid", "sched_getaffinity",
                     "makedirs", "path"}),
    "os.path": frozenset({"join", "exists", "isfile", "isdir", "basename", "splitext"}),
    "sys": frozenset({"exit", "stderr", "stdout", "argv", "platform", "version",
                      "version_info", "maxsize", "float_info", "byteorder", "hexversion",
                      "getsizeof"}),
    "gc": frozenset({"collect", "disable", "enable", "freeze", "unfreeze", "isenabled",
                     "set_threshold", "get_threshold", "get_count", "get_freeze_count"}),
    "resource": frozenset({"getrusage"}),
    # logging.config builds objects from dotted names (code by configuration): not listed
    "logging": frozenset({"getLogger", "basicConfig", "Logger", "StreamHandler", "Formatter",
                          "info", "warning", "debug", "error", "log"}),
}

# numpy: array construction and math. Its file and URL readers (fromregex, genfromtxt,
# loadtxt, fromfile, load, DataSource, memmap), numpy.lib, numpy.ctypeslib and the
# introspection helpers are not listed, so they are refused (extend with
# `[guards] allowed_attributes = ["numpy.name"]`).
NUMPY_MODULES: tuple[str, ...] = ("numpy", "numpy.random", "numpy.linalg", "numpy.fft")
NUMPY_ATTRS = frozenset({
    "array", "asarray", "ascontiguousarray", "frombuffer", "zeros", "ones", "empty", "full",
    "zeros_like", "ones_like", "empty_like", "full_like", "arange", "linspace", "logspace",
    "geomspace", "eye", "identity", "diag", "tri", "triu", "tril", "meshgrid", "concatenate",
    "stack", "vstack", "hstack", "dstack", "column_stack", "split", "array_split", "reshape",
    "ravel", "transpose", "swapaxes", "moveaxis", "expand_dims", "squeeze", "broadcast_to",
    "atleast_1d", "atleast_2d", "pad", "repeat", "tile", "roll", "flip", "where", "clip",
    "sum", "prod", "mean", "average", "std", "var", "median", "percentile", "quantile", "min",
    "max", "amin", "amax", "argmin", "argmax", "minimum", "maximum", "cumsum", "cumprod",
    "diff", "sort", "argsort", "unique", "bincount", "histogram", "searchsorted", "interp",
    "dot", "matmul", "outer", "inner", "einsum", "tensordot", "trace", "exp", "expm1", "log",
    "log1p", "log2", "log10", "sqrt", "square", "power", "abs", "absolute", "sign", "floor",
    "ceil", "round", "rint", "trunc", "sin", "cos", "tan", "tanh", "arctan", "arctan2",
    "arcsin", "arccos", "sinh", "cosh", "hypot", "isfinite", "isnan", "isinf", "nan_to_num",
    "nanmean", "nansum", "nanmax", "nanmin", "allclose", "isclose", "array_equal", "any",
    "all", "count_nonzero", "nonzero", "argwhere", "logical_and", "logical_or", "logical_not",
    "polyfit", "polyval", "convolve", "nan", "inf", "pi", "e", "newaxis", "ndarray", "dtype",
    "float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16",
    "uint32", "uint64", "bool_", "intp", "finfo", "iinfo", "errstate", "seterr",
    "set_printoptions", "random", "linalg", "fft", "integer", "floating", "number",
    # writers: io.files judges where they write (the run's own folders only)
    "save", "savez", "savez_compressed",
})
# torch's file-backed constructors and storages (a file mapped as a tensor): refused.
TORCH_FILE_ATTRS = frozenset({"from_file"})
TORCH_UTILS_ATTRS = frozenset({"checkpoint"})
"""torch.utils names training code may use (cmake_prefix_path and the like lead to the
interpreter's files; data, cpp_extension and hooks are modules of their own)."""
FILE_METHODS = frozenset({"tofile", "fromfile", "from_file", "fromregex", "genfromtxt",
                          "loadtxt", "savetxt", "load_library", "memmap", "DataSource",
                          "cmake_prefix_path", "ctypeslib"})
"""Methods and attributes that read or write files by name on whatever object has them
(`ndarray.tofile`, `UntypedStorage.from_file`): refused on any receiver, since the guards
cannot know its type."""

# Protected objects: usable only called (or read as a mapping, for the environment), never
# bound, passed, stored, returned, put in containers or used as defaults and decorators.
PROTECTED: tuple[str, ...] = (
    "time", "time.*", "datetime", "datetime.*", "timeit", "timeit.*", "os", "os.*", "sys",
    "sys.*", "gc", "gc.*", "resource", "resource.*", "signal", "signal.*", "atexit", "atexit.*",
    "weakref", "weakref.*", "inspect", "inspect.*", "ctypes", "ctypes.*", "subprocess",
    "subprocess.*", "multiprocessing", "multiprocessing.*", "threading", "threading.*",
    "_thread", "_thread.*", "pickle", "pickle.*", "marshal", "marshal.*", "importlib",
    "importlib.*", "operator", "operator.*", "types", "types.*", "traceback", "traceback.*",
    "faulthandler", "faulthandler.*", "io", "io.*", "shutil", "shutil.*", "tempfile",
    "tempfile.*", "socket", "socket.*", "builtins.exec", "builtins.eval",
    "builtins.compile", "builtins.__import__", "builtins.__build_class__", "builtins.getattr",
    "builtins.setattr", "builtins.delattr", "builtins.hasattr", "builtins.vars",
    "builtins.globals", "builtins.locals", "builtins.open", "builtins.breakpoint",
    "builtins.help", "builtins.input", "builtins.exit", "builtins.quit", "builtins.type",
    "builtins.memoryview", "builtins.id", "builtins.copyright", "builtins.credits",
    "builtins.license", "pathlib.Path.home", "pathlib.Path.cwd", "torch.export", "torch.export.*",
    "torch.load", "torch.save", "torch.compiler", "torch.compiler.*", "torch.jit", "torch.jit.*",
    "torch._*", "torch.hub", "torch.hub.*", "torch.utils.cpp_extension",
    "torch.utils.cpp_extension.*", "torch.multiprocessing", "torch.multiprocessing.*",
    "torch.package", "torch.package.*", "torch.serialization", "torch.serialization.*",
    "torch.library", "torch.library.*", "torch.autograd.grad", "torch.autograd.backward",
    "torch.func.grad", "torch.func.grad_and_value", "torch.func.vjp",
)
MAPPINGS = frozenset({"os.environ", "os.environb", "sys.argv"})
"""Protected objects that may also be subscripted or tested with `in` (reads)."""
VALUE_OK = frozenset({"sys.stderr", "sys.stdout", "sys.argv", "sys.platform", "sys.version",
                      "sys.version_info", "sys.maxsize", "sys.float_info", "sys.byteorder",
                      "sys.hexversion"})
"""Protected-module attributes that are plain data and may be passed (`file=sys.stderr`)."""

# Builtin names no code may rebind, and names no module-level code may rebind at all.
SHADOW_PROTECTED = frozenset({
    "float", "int", "bool", "str", "bytes", "print", "open", "next", "iter", "range", "len",
    "min", "max", "round", "abs", "sum", "getattr", "setattr", "hasattr", "delattr",
    "isinstance", "issubclass", "super", "globals", "locals", "vars", "exec", "eval", "compile",
    "__import__", "__build_class__", "type", "object", "dict", "list", "tuple", "set",
    "frozenset", "zip", "map", "enumerate", "sorted", "reversed", "filter", "any", "all", "repr",
    "callable", "divmod", "pow", "hash", "chr", "ord", "slice", "property", "staticmethod",
    "classmethod", "Exception", "BaseException", "SystemExit", "KeyboardInterrupt",
    "StopIteration", "RuntimeError", "ValueError", "TypeError", "AssertionError",
    "__builtins__", "__name__", "__file__", "__spec__", "__loader__", "__dict__",
})

ALLOWED_DUNDER_ATTRS = frozenset({"__init__", "__name__", "__qualname__", "__class__",
                                  "__version__", "__len__", "__repr__", "__str__"})
ALLOWED_DUNDER_NAMES = frozenset({"__name__", "__debug__"})
ALLOWED_DUNDER_DEFS = frozenset({"__init__", "__repr__", "__str__", "__len__", "__iter__",
                                 "__next__", "__getitem__", "__contains__", "__enter__",
                                 "__exit__", "__post_init__", "__call__", "__eq__", "__hash__"})
ALLOWED_DUNDER_STRINGS = frozenset({"__main__", "__init__", "__name__", "__call__"})

# nn.Module internals that install hooks or bypass forward, even on self.
MODULE_INTERNALS = frozenset({"_call_impl", "_wrapped_call_impl", "_apply", "_parameters",
                              "_buffers", "_modules", "_version", "_forward_pre_hooks",
                              "_forward_hooks", "_backward_hooks", "_backward_pre_hooks",
                              "_state_dict_hooks", "_load_state_dict_pre_hooks",
                              "_global_forward_hooks", "_non_persistent_buffers_set"})
