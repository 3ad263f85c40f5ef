"""Files: persistence across runs, the interpreter's own text, anything but the run's data.

A run may read its prepared data (through the frozen dataloader API, or under the data
folder's `train/` and `tokenizer/`) and write into its own output folder. Everything
else on disk is a way to carry state between runs (an earlier run's checkpoint, a file in
`/dev/shm`) or to rebuild the validation text (the built-in corpus is CPython's own
documentation and docstrings). So in added code:

- absolute paths, `~` and `..` in strings are refused (the run's folders come from the
  sandbox's environment variables, never from literals);
- navigating the file system (`.parent`, `.resolve()`, `Path.home()`, globbing, listing,
  `os.walk`) is refused;
- opening, reading or memory-mapping files is refused unless the path is built from the
  data folder (`train`/`tokenizer` under it) or, for writing, the output folder;
- reading environment variables that carry paths, or by computed names, is refused.
"""

from __future__ import annotations

import ast
import fnmatch
import re

from guards.context import CheckContext, Hit
from guards.pyast import PyModule
from guards.rules._match import first_match
from guards.rules.astrule import AstRule, hit

_ABSOLUTE = re.compile(r"^(/[\w.~$-]|/$|~|[A-Za-z]:[\\/])")
_DOTDOT = re.compile(r"(^|[/\\])\.\.([/\\]|$)")
NAVIGATION = frozenset({"parent", "parents", "resolve", "absolute", "home", "cwd", "expanduser",
                        "readlink", "iterdir", "glob", "rglob", "walk", "read_text",
                        "read_bytes", "open", "symlink_to", "hardlink_to", "unlink", "rmdir",
                        "samefile", "lstat", "chmod", "with_name", "with_stem", "with_segments"})
WRITERS = frozenset({"write_text", "write_bytes"})
READERS = ("builtins.open", "torch.load", "numpy.load", "numpy.fromfile", "numpy.memmap",
           "numpy.loadtxt", "numpy.genfromtxt", "numpy.info", "numpy.source", "numpy.lookfor",
           "torch.from_file",
           "pathlib.Path.home", "pathlib.Path.cwd", "os.path.expanduser", "os.path.abspath",
           "os.path.realpath", "os.path.dirname", "os.listdir", "os.scandir", "os.walk",
           "os.getcwd", "os.chdir", "os.open", "io.open", "builtins.help")
SAVERS = ("numpy.save", "numpy.savez", "torch.save", "builtins.open")
PATH_ENV = ("HOME", "TMPDIR", "TMP", "TEMP", "PWD", "OLDPWD", "XDG_*", "PATH", "PYTHON*",
            "VIRTUAL_ENV", "CONDA_*", "*_DIR", "*_PATH", "*_HOME", "*_FILE", "*_ROOT", "*CACHE*",
            "USER", "LOGNAME", "SHELL", "?")


def _root(expr: ast.AST) -> tuple[str | None, list[str | None]]:
    """(root name, later components) of a path expression: `data_dir / "train"`,
    `Path(data_dir, "x")`, `os.path.join(a, "b")`, `str(a) + "/b"`, f"{a}/b"."""
    if isinstance(expr, ast.Name):
        return expr.id, []
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Div | ast.Add):
        root, rest = _root(expr.left)
        right = expr.right.value if isinstance(expr.right, ast.Constant) and isinstance(
            expr.right.value, str) else None
        return root, [*rest, right]
    if isinstance(expr, ast.Call) and expr.args:
        f = expr.func
        name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
        if name in ("Path", "PurePath", "PosixPath", "str", "join", "fspath"):
            root, rest = _root(expr.args[0])
            more = [a.value if isinstance(a, ast.Constant) and isinstance(a.value, str) else None
                    for a in expr.args[1:]]
            return root, [*rest, *more]
    if isinstance(expr, ast.JoinedStr) and expr.values and isinstance(
            expr.values[0], ast.FormattedValue):
        root, rest = _root(expr.values[0].value)
        return root, [*rest, *(v.value if isinstance(v, ast.Constant) else None
                               for v in expr.values[1:])]
    return None, []


class FilesRule(AstRule):
    id = "io.files"
    description = ("Files outside the run's own data and output folders: absolute paths, '..', "
                   "navigating or listing the file system, opening or reading other files, "
                   "path-carrying environment variables (persistence, the interpreter's text).")

    def scan(self, mod: PyModule, ctx: CheckContext) -> list[Hit]:
        out: list[Hit] = []
        data_names, out_names = _folders(mod, ctx)
        for sv in mod.strings:
            v = sv.value.strip()
            if len(v) > 4096:
                continue
            if _ABSOLUTE.match(v) or _DOTDOT.search(v):
                out.append(hit(mod, sv.node, f"the string {v[:60]!r} is a path outside the run's "
                               "folders (absolute, home or '..').", "path", v))
        for node in mod.nodes:
            if isinstance(node, ast.Attribute) and node.attr in NAVIGATION and not (
                    node.attr == "open" and mod.qual(node) is not None
                    and not (mod.qual(node) or "").startswith(("pathlib", "os"))):
                out.append(hit(mod, node, f"uses .{node.attr}: training code may not navigate, "
                               "list or read the file system.", "nav", node.attr))
            elif isinstance(node, ast.Call):
                out.extend(self._call(mod, node, data_names, out_names))
        roots = data_names | out_names
        for node in mod.nodes:
            out.extend(_folder_tricks(mod, node, roots))
        for q, call in mod.calls:
            if q in ("os.getenv", "os.environ.get", "os.getenvb", "os.environb.get") and call.args:
                out.extend(_env_read(mod, call, call.args[0]))
        for node in mod.nodes:
            if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and (
                    mod.qual(node.value) in ("os.environ", "os.environb")):
                out.extend(_env_read(mod, node, node.slice))
        return out

    def _call(self, mod: PyModule, node: ast.Call, data_names: set[str],
              out_names: set[str]) -> list[Hit]:
        q = mod.qual(node.func)
        attr = node.func.attr if isinstance(node.func, ast.Attribute) else None
        writing = attr in WRITERS or (q is not None and first_match(q, SAVERS) is not None)
        if q == "builtins.open":
            mode = node.args[1] if len(node.args) > 1 else next(
                (k.value for k in node.keywords if k.arg == "mode"), None)
            m = mod.fold_str(mode) if mode is not None else "r"
            writing = m is not None and any(c in m for c in "wax") and "+" not in m
        if not (writing or (q is not None and first_match(q, READERS))):
            return []
        target = None
        if attr in WRITERS and isinstance(node.func, ast.Attribute):
            target = node.func.value
        elif q == "torch.save":  # torch.save(obj, f); numpy's savers take the file first
            target = node.args[1] if len(node.args) > 1 else next(
                (k.value for k in node.keywords if k.arg in ("f", "file")), None)
        elif node.args:
            target = node.args[0]
        root, rest = _root(target) if target is not None else (None, [])
        if root in out_names:
            return []  # the run's own, fresh output folder
        if not writing and root in data_names and rest and all(rest) and str(rest[0]).strip(
                "/").split("/")[0] in ("train", "tokenizer"):
            return []
        what = f"{q or attr}" + ("" if target is None else f" of {ast.unparse(target)[:60]}")
        return [hit(mod, node, f"{what}: a run reads only its data folder's train/ and "
                    "tokenizer/ and writes only into its output folder.", "file",
                    q or attr)]


def _folder_tricks(mod: PyModule, node: ast.AST, roots: set[str]) -> list[Hit]:
    """Rebinding the run's folder names, or deriving other folders from them as text."""
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and node.id in roots:
        stmt = mod.stmt_of(node)
        if "LABWARDEN_" not in ast.dump(stmt) and not (
                isinstance(stmt, ast.Assign) and _root(stmt.value)[0] in roots - {node.id}):
            return [hit(mod, node, f"rebinds {node.id}: the run's folders come from the "
                        "sandbox and may not point anywhere else.", "rebind", node.id)]
    if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Name) and (
            node.args[0].id in roots):
        f = node.func
        name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
        parent = mod.parents.get(node)
        if name in ("str", "fspath", "abspath") and isinstance(parent, ast.Attribute
                                                                | ast.Subscript):
            return [hit(mod, node, f"edits the path of {node.args[0].id} as text: other runs' "
                        "folders are out of reach.", "text", node.args[0].id)]
    if isinstance(node, ast.JoinedStr | ast.BinOp):
        root, rest = _root(node)
        if root in roots and rest and isinstance(rest[0], str) and not rest[0].startswith("/") \
                and isinstance(node, ast.JoinedStr | ast.BinOp) and (
                isinstance(node, ast.JoinedStr) or isinstance(node.op, ast.Add)):
            return [hit(mod, node, f"builds a sibling of {root} ({rest[0]!r}): other runs' "
                        "folders are out of reach.", "sibling", root)]
    return []


def _env_read(mod: PyModule, node: ast.AST, key_node: ast.AST) -> list[Hit]:
    key = mod.fold_str(key_node)
    if key is None:
        return [hit(mod, node, "reads an environment variable by a computed name.", "env", "?")]
    if key.startswith("LABWARDEN_"):
        return []
    if any(fnmatch.fnmatchcase(key, g) for g in PATH_ENV):
        return [hit(mod, node, f"reads ${key}: environment variables that carry paths lead "
                    "outside the run's folders.", "env", key)]
    return []


def _folders(mod: PyModule, ctx: CheckContext) -> tuple[set[str], set[str]]:
    """Names bound from the sandbox's data and output folder variables (and derived)."""
    data, out = {"data_dir"}, {"out_dir", "model_path"}
    for node in mod.nodes:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(
                node.targets[0], ast.Name):
            text = ast.dump(node.value)
            name = node.targets[0].id
            if "LABWARDEN_DATA_DIR" in text:
                data.add(name)
            elif "LABWARDEN_OUT_DIR" in text:
                out.add(name)
            else:
                root, _ = _root(node.value)
                if root in out:
                    out.add(name)
    return data, out
