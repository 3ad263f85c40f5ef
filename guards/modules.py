"""Which dotted names are modules, and which names are taken by importable modules.

Answered from the file system (the guard's `sys.path` plus the workspace), never by
importing anything: `torch.nn` is a module because `torch/nn/__init__.py` exists, and
`torch.sys` is not one of torch's submodules, so reaching `sys` through it is a
re-export. Results are cached for the life of the process.
"""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from pathlib import Path

_SUFFIXES = (".py", ".pyc", ".pyw", ".so", ".pyd")


@lru_cache(maxsize=4096)
def _listing(folder: str) -> dict[str, bool]:
    """Entries of a folder and whether each is a folder (one scandir, no stat per name)."""
    try:
        with os.scandir(folder) as it:
            return {e.name: e.is_dir() for e in it}
    except OSError:
        return {}


def _search_path(extra: tuple[str, ...]) -> tuple[str, ...]:
    # '' (the current folder) is left out: the answer must not depend on where the
    # guard happens to be started; the workspace root is passed in explicitly.
    return tuple(dict.fromkeys([*extra, *(p for p in sys.path if p)]))


def _child(folder: str, name: str) -> tuple[str, bool] | None:
    """(path, is_package) when `name` is importable from `folder`."""
    entries = _listing(folder)
    if entries.get(name):
        return os.path.join(folder, name), True
    for entry in entries:
        if entry.startswith(name + ".") and entry.endswith(_SUFFIXES):
            stem = entry[len(name):]
            if stem in (".py", ".pyc", ".pyw") or stem.endswith((".so", ".pyd")):
                return os.path.join(folder, entry), False
    return None


@lru_cache(maxsize=8192)
def _locate(qual: str, extra: tuple[str, ...]) -> tuple[str, bool] | None:
    parts = qual.split(".")
    if len(parts) == 1:
        if qual in sys.builtin_module_names:
            return "<builtin>", False
        for folder in _search_path(extra):
            found = _child(folder, qual)
            if found:
                return found
        return None
    parent = _locate(".".join(parts[:-1]), extra)
    if parent is None or not parent[1]:
        return None
    return _child(parent[0], parts[-1])


def is_module(qual: str, root: Path | None = None) -> bool:
    """Is `qual` (dotted) an importable module or package?"""
    if not qual or not all(p.isidentifier() for p in qual.split(".")):
        return False
    return _locate(qual, (str(root),) if root else ()) is not None


@lru_cache(maxsize=4)
def top_level_names(root: str | None = None) -> frozenset[str]:
    """Every name `import NAME` could find: stdlib, builtin, installed, workspace."""
    names = set(sys.stdlib_module_names) | set(sys.builtin_module_names)
    folders = _search_path((root,) if root else ())
    for folder in folders:
        for name, is_dir in _listing(folder).items():
            if name.endswith((".dist-info", ".egg-info", ".pth")) or name.startswith("."):
                continue
            stem = name.split(".", 1)[0]
            if stem.isidentifier() and (name.endswith(_SUFFIXES) or ("." not in name and is_dir)):
                names.add(stem)
    names.discard("__pycache__")
    return frozenset(names)
