"""Escapes from the sandbox's picture of a run: processes, network, environment, imports.

`escape.pickle` also covers loading objects or weights this run did not write: a pickle
runs code on load, and pretrained weights are a different experiment.
"""

from __future__ import annotations

import ast
import fnmatch

from guards.context import CheckContext, Hit
from guards.pyast import PyModule
from guards.rules._match import first_match
from guards.rules.astrule import AstRule, hit

PROCESS = (
    "subprocess", "os.system", "os.popen", "os.spawn*", "os.exec*", "os.fork", "os.forkpty",
    "os.posix_spawn", "os.posix_spawnp", "os.kill", "os.killpg", "os.setuid", "os.setgid",
    "os.chroot", "os.startfile", "pty", "ctypes", "_ctypes", "asyncio.create_subprocess_exec",
    "asyncio.create_subprocess_shell", "platform.popen", "commands", "pexpect", "sh", "plumbum",
    "shutil.rmtree", "os.removedirs",
)
PROCESS_REVIEW = ("multiprocessing", "concurrent.futures.ProcessPoolExecutor",
                  "torch.multiprocessing")
NETWORK = (
    "socket", "ssl", "urllib.request", "urllib.urlopen", "urllib2", "urllib3", "http.client",
    "http.server", "http.cookiejar", "requests", "httpx", "aiohttp", "ftplib", "smtplib",
    "poplib", "imaplib", "telnetlib", "xmlrpc", "websocket", "websockets", "paramiko",
    "torch.hub", "huggingface_hub", "datasets", "wget", "pycurl", "grpc", "zmq",
    "asyncio.open_connection", "asyncio.start_server", "socketserver", "webbrowser", "kaggle",
    "boto3", "botocore", "gcsfs", "s3fs", "fsspec", "tensorflow_datasets", "torchvision.datasets",
    "torchtext.datasets", "nltk.download",
)
LOADERS = (
    "pickle.load", "pickle.loads", "pickle.Unpickler", "_pickle", "cPickle", "dill",
    "cloudpickle", "joblib.load", "shelve", "marshal.load", "marshal.loads", "torch.load",
    "torch.serialization.load", "torch.jit.load", "torch.export.load", "torch.package",
    "numpy.load", "safetensors", "transformers", "timm",
    "torchvision.models", "open_clip", "sentence_transformers", "pandas.read_pickle",
)
SAVERS = ("torch.save", "pickle.dump", "numpy.save", "joblib.dump", "safetensors",
          "torch.export.save")
IMPORT_STATE = ("sys.path", "sys.modules", "sys.meta_path", "sys.path_hooks",
                "sys.path_importer_cache", "builtins", "site", "sys.stdout", "sys.stderr",
                "sys.excepthook", "sys.displayhook", "sys.flags", "sys.argv")
SENSITIVE_ENV = ("LABWARDEN_*", "PYTHON*", "LD_*", "PATH", "HOME", "*_PROXY", "*_proxy",
                 "TORCH_HOME", "HF_*", "XDG_*", "CUDA_VISIBLE_DEVICES", "?")


class ProcessRule(AstRule):
    id = "escape.process"
    description = ("Starting processes or native code: subprocess, os.system/popen/fork/exec*, "
                   "pty, ctypes (multiprocessing goes to review).")

    def scan(self, mod: PyModule, ctx: CheckContext) -> list[Hit]:
        out = []
        for ref in mod.refs:
            if first_match(ref.qual, PROCESS):
                out.append(hit(mod, ref.node, f"uses {ref.qual}: training code may not start "
                               "processes or load native code.", "ref", ref.qual))
            elif first_match(ref.qual, PROCESS_REVIEW):
                out.append(hit(mod, ref.node, f"uses {ref.qual}: worker processes escape the "
                               "guards' view of the run.", "ref", ref.qual, severity="review"))
        return out


class NetworkRule(AstRule):
    id = "escape.network"
    description = ("Network access: sockets, urllib/requests/http.client, hubs and dataset "
                   "downloaders (outside data or models, leaks, exfiltration).")

    def scan(self, mod: PyModule, ctx: CheckContext) -> list[Hit]:
        return [hit(mod, ref.node, f"uses {ref.qual}: there is no network in a run.", "ref",
                    ref.qual)
                for ref in mod.refs if first_match(ref.qual, NETWORK)]


class LoadRule(AstRule):
    id = "escape.pickle"
    description = ("pickle/torch.load/np.load of files this run did not write, and pretrained "
                   "weights: code execution on load, or a model trained elsewhere.")

    def scan(self, mod: PyModule, ctx: CheckContext) -> list[Hit]:
        saved: set[str] = set()
        for q, call in mod.calls:
            if first_match(q, SAVERS):
                for a in call.args[1:2] or call.args[:1]:
                    saved.add(ast.unparse(a))
                for k in call.keywords:
                    if k.arg in ("f", "file", "filename", "path"):
                        saved.add(ast.unparse(k.value))
        out = []
        for ref in mod.refs:
            if not first_match(ref.qual, LOADERS):
                continue
            parent = mod.parents.get(ref.node)
            if isinstance(parent, ast.Call) and parent.func is ref.node and parent.args:
                if ast.unparse(parent.args[0]) in saved:
                    continue  # reading back what this run saved
            out.append(hit(mod, ref.node, f"uses {ref.qual}: loading objects or weights this "
                           "run did not write is not allowed.", "ref", ref.qual))
        return out


# Builtins whose rebinding silently changes what unchanged code does (`float = ...` turns
# the budget line into anything).
SHADOWABLE = frozenset({
    "float", "int", "bool", "str", "print", "open", "next", "iter", "range", "len", "min",
    "max", "round", "abs", "sum", "getattr", "setattr", "hasattr", "isinstance", "super",
    "globals", "locals", "vars", "exec", "eval", "compile", "__import__", "__build_class__",
})
STAR_PROTECTED = ("time", "datetime", "os", "sys", "builtins", "signal", "subprocess",
                  "importlib", "inspect", "gc", "ctypes", "socket", "pickle")


class EnvRule(AstRule):
    id = "escape.env"
    description = ("Writes to os.environ (budget and sandbox variables blocked, others sent to "
                   "review), sys.path, sys.modules, import hooks, builtins, std streams.")

    def scan(self, mod: PyModule, ctx: CheckContext) -> list[Hit]:
        protected = (*SENSITIVE_ENV, *ctx.settings.protected_env, *ctx.settings.budget_env)
        out = []
        for st in mod.stores:
            if st.qual in ("os.environ", "os.environb"):
                key = st.key or "?"
                sensitive = st.key is None or any(fnmatch.fnmatchcase(key, g) for g in protected)
                out.append(hit(mod, st.node, f"writes os.environ[{key!r}].", "env", key,
                               severity=None if sensitive else "review"))
            elif first_match(st.qual, IMPORT_STATE):
                target = st.qual + (f"[{st.key!r}]" if st.key else "")
                out.append(hit(mod, st.node, f"{st.how} of {target}: interpreter and import "
                               "state may not be changed.", "state", target))
        for node in mod.nodes:
            name = None
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                name = node.id
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = node.name
            elif isinstance(node, ast.alias) and node.asname:
                name = node.asname
            elif isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names):
                base = mod.import_base(node)
                if first_match(base, (*STAR_PROTECTED, *ctx.settings.frozen_modules)):
                    out.append(hit(mod, node, f"star import from {base}: it hides which names "
                                   "are rebound.", "star", base))
            if name in SHADOWABLE:
                out.append(hit(mod, node, f"rebinds the builtin {name}(): unchanged code that "
                               "calls it would run something else.", "shadow", name))
        for ref in mod.refs:
            if ref.qual in ("sys.modules", "builtins") or ref.qual.startswith(
                    ("sys.modules.", "sys.meta_path", "sys.path_hooks")):
                out.append(hit(mod, ref.node, f"reads {ref.qual}: module tables reach the "
                               "frozen code and the interpreter.", "ref", ref.qual))
        return out
