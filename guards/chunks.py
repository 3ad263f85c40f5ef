"""Split a Python file into top-level chunks, so a check costs what the patch changes.

A chunk is one top-level statement (with its decorators and the comments above it). A
chunk parses on its own, so an unchanged chunk's parse tree and facts are reused from the
cache, and only the chunks a patch touches are parsed and scanned again. Splitting is a
cheap line heuristic; if it ever cuts through a string or a bracket, that piece fails to
parse and the whole file is analysed as one chunk instead, so the heuristic can cost
time but never correctness.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import OrderedDict
from dataclasses import dataclass
from itertools import accumulate

from guards.pyast import ChunkTree, FileMaps, PyModule

_CONTINUATIONS = ("else", "elif", "except", "finally", "case")

_TREES: OrderedDict[tuple[str, str], ChunkTree | None] = OrderedDict()
_MODULES: OrderedDict[tuple[object, ...], PyModule] = OrderedDict()
_MAX = 2048


_STARTS = re.compile(r"^(?=[^\s#)\]}])", re.MULTILINE)
_TRIPLE = re.compile(r'"""|\'\'\'')


def split_chunks(source: str) -> list[tuple[int, str]]:
    """(0-based first line, text) of each top-level chunk, in order.

    A chunk starts at a line that begins in column 0 with code, unless that line continues
    a statement (`else:`, `except`, a closing bracket), follows a decorator, or sits
    inside a triple-quoted string. Comments directly above a start belong to its chunk.
    """
    strings = []  # spans of triple-quoted strings, paired naively (a miss only costs time)
    open_at, quote = -1, ""
    for m in _TRIPLE.finditer(source):
        if open_at < 0:
            open_at, quote = m.start(), m.group()
        elif m.group() == quote:
            strings.append((open_at, m.end()))
            open_at = -1
    if open_at >= 0:
        strings.append((open_at, len(source)))
    lines = source.splitlines(keepends=True)
    line_starts = [0, *accumulate(map(len, lines))]
    starts = [0]
    span = 0
    prev_decorator = False
    for m in _STARTS.finditer(source):
        pos = m.start()
        if pos >= len(source):
            break
        while span < len(strings) and strings[span][1] <= pos:
            span += 1
        if span < len(strings) and strings[span][0] < pos:
            continue  # inside a string
        i = bisect_right(line_starts, pos) - 1
        line = lines[i] if i < len(lines) else ""
        word = line.split(None, 1)[0].rstrip(":") if line.strip() else ""
        decorator, prev_decorator = prev_decorator, line.startswith("@")
        if word in _CONTINUATIONS or decorator or i == 0:
            continue
        j = i
        while j > starts[-1] and lines[j - 1].lstrip().startswith("#"):
            j -= 1
        if j > starts[-1]:
            starts.append(j)
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


_ANALYSES: OrderedDict[tuple[str, str], FileAnalysis] = OrderedDict()


def analyse(source: str, path: str) -> FileAnalysis:
    """Chunked analysis of a file (LRU-cached); raises SyntaxError when it does not parse."""
    key = (path, source)
    if key in _ANALYSES:
        _ANALYSES.move_to_end(key)
        return _ANALYSES[key]
    result = _analyse(source, path)
    _ANALYSES[key] = result
    if len(_ANALYSES) > 64:
        _ANALYSES.popitem(last=False)
    return result


def _analyse(source: str, path: str) -> FileAnalysis:
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
        key = (path, text, maps.fingerprint(tree.sorted_names))
        mod = _MODULES.get(key)
        if mod is None:
            mod = _MODULES[key] = PyModule(chunk=tree, maps=maps)
            if len(_MODULES) > _MAX:
                _MODULES.popitem(last=False)
        else:
            _MODULES.move_to_end(key)
        modules.append((offset, mod))
    return FileAnalysis(source, path, modules, maps)
