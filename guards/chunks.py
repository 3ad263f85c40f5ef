"""Split a Python file into top-level chunks, so a check costs what the patch changes.

A chunk is one top-level statement (with its decorators and the comments above it). A
chunk parses on its own, so an unchanged chunk's parse tree and facts are reused from the
cache, and only the chunks a patch touches are parsed and scanned again. Splitting is a
cheap line heuristic; if it ever cuts through a string or a bracket, that piece fails to
parse and the whole file is analysed as one chunk instead, so the heuristic can cost
time but never correctness.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from guards.pyast import ChunkTree, FileMaps, PyModule

_CONTINUATIONS = ("else", "elif", "except", "finally", "case")
_CLOSERS = (")", "]", "}")

_TREES: OrderedDict[tuple[str, str], ChunkTree | None] = OrderedDict()
_MODULES: OrderedDict[tuple[object, ...], PyModule] = OrderedDict()
_MAX = 2048


def split_chunks(source: str) -> list[tuple[int, str]]:
    """(0-based first line, text) of each top-level chunk, in order."""
    lines = source.splitlines(keepends=True)
    starts = [0]
    pending_decorator = False
    seen_code = False
    in_string: str | None = None  # the triple quote we are inside, if any
    for i, line in enumerate(lines):
        at_col0 = in_string is None
        for quote in ('"""', "'''"):
            if (in_string in (None, quote)) and line.count(quote) % 2 == 1:
                in_string = None if in_string == quote else quote
        if not at_col0 or not line[:1] or line[0] in " \t\r\n#":
            continue
        word = line.split(None, 1)[0].rstrip(":")
        is_start = not (word in _CONTINUATIONS or line.startswith(_CLOSERS) or pending_decorator)
        if is_start and seen_code:
            # comments directly above a statement belong to it
            j = i
            while j > starts[-1] and lines[j - 1].lstrip().startswith("#"):
                j -= 1
            if j > starts[-1]:
                starts.append(j)
        seen_code = True
        pending_decorator = line.startswith("@")
    starts.append(len(lines))
    return [(a, "".join(lines[a:b])) for a, b in zip(starts, starts[1:], strict=False) if b > a]


def _tree(text: str, path: str) -> ChunkTree | None:
    key = (path, text)
    if key in _TREES:
        _TREES.move_to_end(key)
        return _TREES[key]
    try:
        tree: ChunkTree | None = ChunkTree(text, path)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        tree = None
    _TREES[key] = tree
    if len(_TREES) > _MAX:
        _TREES.popitem(last=False)
    return tree


@dataclass
class FileAnalysis:
    """One file version as chunks: `modules` is [(line offset, PyModule)]."""

    source: str
    path: str
    modules: list[tuple[int, PyModule]]
    maps: FileMaps


def analyse(source: str, path: str) -> FileAnalysis:
    """Chunked analysis of a file; raises SyntaxError (from a whole-file parse) when it
    does not parse."""
    pieces = split_chunks(source)
    trees = [_tree(text, path) for _, text in pieces]
    if any(t is None for t in trees):
        whole = _tree(source, path)
        if whole is None:
            ChunkTree(source, path)  # raises the real SyntaxError with its message
        pieces, trees = [(0, source)], [whole]
    chunk_trees = [t for t in trees if t is not None]
    maps = FileMaps.build(chunk_trees, path)
    modules = []
    for (offset, text), tree in zip(pieces, chunk_trees, strict=True):
        key = (path, text, maps.fingerprint(tree.names))
        mod = _MODULES.get(key)
        if mod is None:
            mod = _MODULES[key] = PyModule(chunk=tree, maps=maps)
            if len(_MODULES) > _MAX:
                _MODULES.popitem(last=False)
        else:
            _MODULES.move_to_end(key)
        modules.append((offset, mod))
    return FileAnalysis(source, path, modules, maps)
