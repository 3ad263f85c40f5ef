"""What a rule sees: the patch, the workspace config, and each file before and after.

Files are applied in memory with `git apply --check` semantics (guards.apply) before any
rule runs; Python versions are parsed once, lazily, and shared by all rules. `diff_hits`
is how AST rules compare: a fact found in the file after the patch counts only when the
file before did not already have it, so pre-existing code never raises a finding and
moved code does not either.
"""

from __future__ import annotations

import ast
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from guards.chunks import FileAnalysis, analyse
from guards.findings import Finding, Severity
from guards.patch import FileChange, Patch
from guards.pyast import PyModule
from guards.settings import GuardSettings
from labwarden.config import WorkspaceConfig

# Parsed files and scan results are pure functions of their inputs; an agent loop checks
# many patches against the same base file, so the "before" side is nearly always cached.
_MODULES: OrderedDict[tuple[str, str], PyModule | str] = OrderedDict()
_SCANS: OrderedDict[tuple[object, ...], list[Hit]] = OrderedDict()
_MAX_MODULES, _MAX_SCANS = 64, 4096


def parse_cached(text: str, path: str) -> PyModule | str:
    """The PyModule for `text`, or the syntax error message (LRU-cached)."""
    key = (path, text)
    if key in _MODULES:
        _MODULES.move_to_end(key)
        return _MODULES[key]
    try:
        value: PyModule | str = PyModule(text, path)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        value = f"{e.__class__.__name__}: {e}"
    _MODULES[key] = value
    if len(_MODULES) > _MAX_MODULES:
        _MODULES.popitem(last=False)
    return value


@dataclass(frozen=True)
class Hit:
    """One fact an AST scan found in one version of a file.

    `signature` identifies it independently of its line number (it is what before/after
    comparison counts); `line` and `evidence` locate it in that version.
    """

    signature: tuple[object, ...]
    line: int
    message: str
    evidence: str = ""
    severity: Severity | None = None


@dataclass
class FileState:
    change: FileChange
    before: str | None
    after: str | None
    _py: dict[str, PyModule | None] = field(default_factory=dict)
    _chunks: dict[str, FileAnalysis | None] = field(default_factory=dict)
    _changed: dict[str, list[tuple[int, PyModule]]] = field(default_factory=dict)
    syntax_error: str | None = None

    @property
    def path(self) -> str:
        return self.change.path

    @property
    def is_python(self) -> bool:
        return self.path.endswith((".py", ".pyi", ".pyw"))

    def python(self, which: str) -> PyModule | None:
        """The parsed `before` or `after` version; None for non-Python or missing files."""
        if which not in self._py:
            text = self.before if which == "before" else self.after
            mod = None
            if self.is_python and text is not None:
                parsed = parse_cached(text, self.path)
                if isinstance(parsed, str):
                    if which == "after":
                        self.syntax_error = parsed
                else:
                    mod = parsed
            self._py[which] = mod
        return self._py[which]

    def analysis(self, which: str) -> FileAnalysis | None:
        """The version as cached chunks (what AST rules scan); None when not Python."""
        if which not in self._chunks:
            text = self.before if which == "before" else self.after
            result = None
            if self.is_python and text is not None:
                try:
                    result = analyse(text, self.path)
                except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
                    if which == "after":
                        self.syntax_error = f"{e.__class__.__name__}: {e}"
            self._chunks[which] = result
        return self._chunks[which]

    def changed_chunks(self, which: str) -> list[tuple[int, PyModule]]:
        """Chunks of `which` with no identical twin (text and name maps) in the other version.

        Identical chunks give identical hits on both sides, which cancel in a before/after
        comparison; only these need scanning.
        """
        if which in self._changed:
            return self._changed[which]
        mine, other = self.analysis(which), self.analysis(
            "after" if which == "before" else "before")
        out: list[tuple[int, PyModule]] = []
        if mine is not None:
            twins = Counter(m.identity for _, m in other.modules) if other else Counter()
            for offset, mod in mine.modules:
                if twins[mod.identity] > 0:
                    twins[mod.identity] -= 1
                else:
                    out.append((offset, mod))
        self._changed[which] = out
        return out

    def added(self) -> dict[int, str]:
        return dict(self.change.added_lines())


class CheckContext:
    def __init__(self, config: WorkspaceConfig, settings: GuardSettings, patch: Patch,
                 files: list[FileState]) -> None:
        self.config = config
        self.settings = settings
        self.patch = patch
        self.files = files
        self._cache: dict[tuple[str, str], list[Hit]] = {}
        self.memo: dict[tuple[object, ...], object] = {}
        """Per-check results rules share (one rule's file-wide facts read by another)."""
        self.fingerprint = repr((settings, config.root, config.editable, config.frozen,
                                 config.hidden, config.state_dir, config.metric))

    @property
    def root(self) -> Path:
        return self.config.root

    def only_constants_changed(self) -> bool:
        """True when every chunk the patch changes, on both sides, only binds plain names to
        literal values (`LR = 0.03`). Such a patch cannot change any whole-file fact about
        functions, calls, loops or model code, so those analyses may skip it."""
        key = ("only-constants",)
        if key not in self.memo:
            self.memo[key] = all(
                _inert(mod) for state in self.python_files() for which in ("before", "after")
                for _, mod in state.changed_chunks(which))
        return bool(self.memo[key])

    def python_files(self) -> list[FileState]:
        """Files the patch leaves behind as Python source (analysable by AST rules)."""
        return [f for f in self.files if f.is_python and f.after is not None
                and f.analysis("after") is not None]

    def scan(self, key: str, state: FileState, which: str,
             scanner: Callable[[PyModule], list[Hit]]) -> list[Hit]:
        """Hits of `scanner` over the chunks of one version that differ from the other
        version, lines made file-absolute (see `FileState.changed_chunks`)."""
        cache_key = (f"{key}:{which}", state.path)
        if cache_key not in self._cache:
            hits: list[Hit] = []
            path = state.path
            for offset, mod in state.changed_chunks(which):
                shared = (key, path, mod.source, mod.fingerprint, self.fingerprint)
                if shared in _SCANS:
                    _SCANS.move_to_end(shared)
                    found = _SCANS[shared]
                else:
                    found = _SCANS[shared] = scanner(mod)
                    if len(_SCANS) > _MAX_SCANS:
                        _SCANS.popitem(last=False)
                hits.extend(shift(h, offset) for h in found)
            self._cache[cache_key] = hits
        return self._cache[cache_key]

    def diff_hits(self, key: str, scanner: Callable[[PyModule], list[Hit]]) -> list[
            tuple[FileState, Hit]]:
        """Hits present after the patch and not before (counted by signature)."""
        out: list[tuple[FileState, Hit]] = []
        for state in self.python_files():
            before = Counter(h.signature for h in self.scan(key, state, "before", scanner))
            for hit in self.scan(key, state, "after", scanner):
                if before[hit.signature] > 0:
                    before[hit.signature] -= 1
                else:
                    out.append((state, hit))
        return out

    def lost_hits(self, key: str, scanner: Callable[[PyModule], list[Hit]]) -> list[
            tuple[FileState, Hit]]:
        """Hits present before the patch and gone after it (a removed or changed line)."""
        out: list[tuple[FileState, Hit]] = []
        for state in self.python_files():
            after = Counter(h.signature for h in self.scan(key, state, "after", scanner))
            for hit in self.scan(key, state, "before", scanner):
                if after[hit.signature] > 0:
                    after[hit.signature] -= 1
                else:
                    out.append((state, hit))
        return out

    def finding(self, rule_id: str, severity: Severity, state: FileState | None, hit: Hit,
                *, lost: bool = False) -> Finding:
        """A finding for `hit`; a lost hit is pointed at the nearest changed line after."""
        line = hit.line
        if lost and state is not None:
            line = nearest_new_line(state.change, hit.line)
        return Finding(
            rule_id=rule_id,
            severity=hit.severity or severity,
            file=state.path if state else "",
            line=line,
            evidence=hit.evidence[:300],
            message=hit.message,
        )


def _literal(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.UnaryOp):
        return _literal(node.operand)
    if isinstance(node, ast.BinOp):
        return _literal(node.left) and _literal(node.right)
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return all(_literal(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(k is not None and _literal(k) for k in node.keys) and all(
            _literal(v) for v in node.values)
    return False


def _inert(mod: PyModule) -> bool:
    for stmt in mod.tree.body:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) or isinstance(
                stmt, ast.Pass):
            continue
        if isinstance(stmt, ast.Assign | ast.AnnAssign) and stmt.value is not None and (
                _literal(stmt.value)) and all(isinstance(t, ast.Name) for t in (
                stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target])):
            continue
        return False
    return True


def shift(hit: Hit, offset: int) -> Hit:
    if not offset:
        return hit
    return Hit(hit.signature, hit.line + offset if hit.line else 0, hit.message, hit.evidence,
               hit.severity)


def nearest_new_line(change: FileChange, old_line: int) -> int:
    """Where a removed old line sits in the new file (the first line after the hunk edit)."""
    best = 0
    for hunk in change.hunks:
        for ln in hunk.lines:
            if ln.old_no == old_line and ln.kind == "-":
                # the new line number where the removal happened
                new = hunk.new_start
                for prev in hunk.lines:
                    if prev is ln:
                        break
                    if prev.kind != "-":
                        new += 1
                return new
            if ln.new_no is not None:
                best = ln.new_no
    return best
